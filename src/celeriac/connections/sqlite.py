"""What the SQLite broker and result backend share: URL rules, pragmas, and connections that
are private to each thread and each process.

One connection per thread keeps transactions of different threads apart, and a connection is
only ever closed by its own thread: ``close`` closes the caller's and marks the others stale,
and each other thread closes its own on its next use (or when it ends). Closing a connection
another thread is using crashes the interpreter. After ``fork`` the child opens new
connections; it must never close one it inherited (SQLite's POSIX locks and WAL bookkeeping
belong to the parent), so inherited connections are kept referenced for the life of the child.
"""

from __future__ import annotations

import os
import sqlite3
import threading
import time
import weakref
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from ..exceptions import ImproperlyConfigured, OperationalError
from ..utils.urls import safe_url

DEFAULT_FILENAME = "celeriac.db"
DEFAULT_BUSY_TIMEOUT = 10.0


def sqlite_path(url: str) -> str:
    """The absolute file path of a ``sqlite://`` URL.

    ``sqlite:///rel/path.db`` is relative to the current directory, ``sqlite:////abs/path.db``
    is absolute and ``sqlite://`` alone means ``celeriac.db`` in the current directory.
    """
    scheme, sep, rest = url.partition("://")
    if not sep or scheme.split("+")[0] != "sqlite":
        raise ImproperlyConfigured(f"not a sqlite:// URL: {safe_url(url)!r}")
    rest = rest.split("?", 1)[0]
    if rest and not rest.startswith("/"):
        raise ImproperlyConfigured(
            f"SQLite URL {safe_url(url)!r} has a host part; use sqlite:///relative/path.db "
            "or sqlite:////absolute/path.db"
        )
    path = rest[1:] or DEFAULT_FILENAME
    if path == ":memory:" or path.startswith("file::memory:"):
        raise ImproperlyConfigured(
            "sqlite:///:memory: cannot be used: an in-memory database is private to one "
            "connection, so producers and workers could not share it. Use a file "
            "(sqlite:///celeriac.db) or memory:// for a single process."
        )
    path = os.path.abspath(path)
    parent = os.path.dirname(path)
    if not os.path.isdir(parent):
        raise ImproperlyConfigured(
            f"SQLite URL {safe_url(url)!r}: directory {parent!r} does not exist"
        )
    return path


class _Conn:
    """A connection with the process and generation it was opened in."""

    __slots__ = ("__weakref__", "conn", "generation", "pid")

    def __init__(self, conn: sqlite3.Connection, pid: int, generation: int) -> None:
        self.conn = conn
        self.pid = pid
        self.generation = generation


# Every open connection of every database (weakly). Just before a fork they are all referenced
# strongly, so that the child (which drops the parent's other threads and their thread-locals)
# cannot garbage-collect, and so close, a connection it inherited.
_registry_lock = threading.Lock()
_registry: weakref.WeakSet[_Conn] = weakref.WeakSet()
_held_over_fork: list[_Conn] = []
_inherited: list[_Conn] = []
_databases: weakref.WeakSet[SQLiteDatabase] = weakref.WeakSet()  # their locks are reset in a child


def _before_fork() -> None:
    _registry_lock.acquire()  # held across fork so the child's copy is consistent
    _held_over_fork[:] = list(_registry)


def _after_fork_in_parent() -> None:
    _held_over_fork.clear()
    _registry_lock.release()


def _after_fork_in_child() -> None:
    _inherited.extend(_held_over_fork)
    _held_over_fork.clear()
    _registry_lock.release()
    for db in list(_databases):
        db._lock = threading.Lock()  # another thread of the parent may have held it


os.register_at_fork(
    before=_before_fork,
    after_in_parent=_after_fork_in_parent,
    after_in_child=_after_fork_in_child,
)


class _ForkGuard:
    """Calls into SQLite and write transactions in progress, so ``fork`` waits for them.

    SQLite keeps process-wide state: mutexes (its allocator's, for one) and, per database
    file, which locks this process's connections hold. A child forked while another thread
    is inside SQLite, or has a transaction open, inherits that state, and its first SQLite
    call hangs on the mutex or finds the database locked for ever. So every call into SQLite
    and every transaction is counted here, and a fork waits until none is running (and holds
    new ones back until it is done)."""

    def __init__(self) -> None:
        self._cond = threading.Condition(threading.Lock())
        self._active = 0
        self._forking = False
        self._local = threading.local()

    def __enter__(self) -> None:
        depth = getattr(self._local, "depth", 0)
        self._local.depth = depth + 1
        if depth:
            return
        with self._cond:
            while self._forking:
                self._cond.wait()
            self._active += 1

    def __exit__(self, *exc: object) -> None:
        self._local.depth -= 1
        if self._local.depth:
            return
        with self._cond:
            self._active -= 1
            if not self._active:
                self._cond.notify_all()

    def before_fork(self) -> None:
        if getattr(self._local, "depth", 0):
            return  # forking from inside a call: nothing to wait for that would ever end
        with self._cond:
            self._forking = True
            while self._active:
                self._cond.wait()

    def after_fork_in_parent(self) -> None:
        with self._cond:
            self._forking = False
            self._cond.notify_all()

    def after_fork_in_child(self) -> None:
        self.__init__()  # type: ignore[misc]  # the other threads are gone


_guard = _ForkGuard()
# registered after the registry hooks, so it runs before them (before-hooks run in reverse)
os.register_at_fork(
    before=_guard.before_fork,
    after_in_parent=_guard.after_fork_in_parent,
    after_in_child=_guard.after_fork_in_child,
)


class Rows:
    """The complete result of one statement, read while the fork guard was held.

    A statement left half-read keeps a read lock, which a forked child would inherit the
    record of; so every statement is stepped to its end (and reset) before the guard is let
    go, and its rows are handed out from here."""

    __slots__ = ("_next", "rowcount", "rows")

    def __init__(self, cursor: sqlite3.Cursor) -> None:
        self.rows: list[Any] = cursor.fetchall()
        self.rowcount = cursor.rowcount
        self._next = 0

    def fetchone(self) -> Any:
        if self._next >= len(self.rows):
            return None
        self._next += 1
        return self.rows[self._next - 1]

    def fetchall(self) -> list[Any]:
        rest, self._next = self.rows[self._next :], len(self.rows)
        return rest

    def __iter__(self) -> Iterator[Any]:
        while self._next < len(self.rows):
            yield self.fetchone()


class _GuardedConnection(sqlite3.Connection):
    """A connection whose statements run to completion inside the fork guard."""

    def _run(self, method: str, *args: Any) -> Rows:
        with _guard:
            cursor = self.cursor()
            try:
                getattr(cursor, method)(*args)
                return Rows(cursor)
            finally:
                cursor.close()

    def execute(self, sql: str, parameters: Any = (), /) -> Rows:  # type: ignore[override]
        return self._run("execute", sql, parameters)

    def executemany(self, sql: str, parameters: Any, /) -> Rows:  # type: ignore[override]
        return self._run("executemany", sql, parameters)

    def executescript(self, sql_script: str, /) -> Rows:  # type: ignore[override]
        return self._run("executescript", sql_script)

    def close(self) -> None:
        with _guard:
            super().close()


class SQLiteDatabase:
    """Connections to one SQLite file in WAL mode, one per thread and process.

    ``schema`` (``CREATE ... IF NOT EXISTS`` statements) is applied once per process.
    """

    def __init__(self, url: str, schema: str, options: dict[str, Any] | None = None) -> None:
        options = options or {}
        self.url = url
        self.safe_url = safe_url(url)
        self.path = sqlite_path(url)
        self.busy_timeout = float(options.get("busy_timeout", DEFAULT_BUSY_TIMEOUT))
        self._schema = schema
        self._local = threading.local()
        self._lock = threading.Lock()
        self._generation = 0
        self._schema_pid = 0
        with _registry_lock:
            _databases.add(self)

    # -- connections ----------------------------------------------------------------------

    def connection(self) -> sqlite3.Connection:
        """This thread's connection, opened (or reopened after fork or close) as needed."""
        held: _Conn | None = getattr(self._local, "held", None)
        pid = os.getpid()
        if held is not None and held.pid == pid and held.generation == self._generation:
            return held.conn
        if held is not None:
            if held.pid != pid:
                _inherited.append(held)  # forked without the at-fork hooks: never close it
            else:
                _close_quietly(held.conn)  # stale since close(): this thread's own
        held = _Conn(self._open(), pid, self._generation)
        self._local.held = held
        with _registry_lock:
            _registry.add(held)
        return held.conn

    def _open(self) -> sqlite3.Connection:
        with _guard:
            conn = sqlite3.connect(
                self.path,
                timeout=self.busy_timeout,
                isolation_level=None,  # autocommit; transactions are explicit (BEGIN IMMEDIATE)
                check_same_thread=False,  # a thread-local may be freed on another thread
                factory=_GuardedConnection,
            )
        try:
            self._set_wal(conn)
            conn.execute("PRAGMA synchronous=NORMAL")
            if self._schema_pid != os.getpid():
                with self._lock:
                    if self._schema_pid != os.getpid():
                        conn.executescript(f"BEGIN IMMEDIATE;\n{self._schema}\nCOMMIT;")
                        self._schema_pid = os.getpid()
        except BaseException:
            conn.close()
            raise
        return conn

    def _set_wal(self, conn: sqlite3.Connection) -> None:
        # Switching a new file to WAL takes an exclusive lock and may report "locked" at once
        # when many processes open it together, without waiting for busy_timeout.
        deadline = time.monotonic() + self.busy_timeout
        while True:
            try:
                conn.execute("PRAGMA journal_mode=WAL").fetchall()
                return
            except sqlite3.OperationalError as exc:
                if "locked" not in str(exc) or time.monotonic() > deadline:
                    raise
                time.sleep(0.01)

    def close(self) -> None:
        """Close this thread's connection; other threads reopen theirs on their next use."""
        with self._lock:
            self._generation += 1
        held: _Conn | None = getattr(self._local, "held", None)
        if held is not None and held.pid == os.getpid():
            self._local.held = None
            _close_quietly(held.conn)

    # -- helpers --------------------------------------------------------------------------

    @contextmanager
    def errors(self) -> Iterator[None]:
        """Raise sqlite3 errors as :class:`OperationalError` naming the database."""
        try:
            yield
        except sqlite3.Error as exc:
            raise OperationalError(f"{self.safe_url}: {exc}") from exc

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """A write transaction (``BEGIN IMMEDIATE``) on this thread's connection.

        Taking the write lock up front means the busy timeout applies, instead of the
        immediate ``SQLITE_BUSY`` a read transaction gets when it tries to become a writer.
        No fork happens while it is open: a child would inherit this process's record of the
        lock and find the database locked for ever."""
        with _guard:
            conn = self.connection()
            conn.execute("BEGIN IMMEDIATE")
            try:
                yield conn
                conn.execute("COMMIT")
            except BaseException:
                if conn.in_transaction:
                    try:
                        conn.execute("ROLLBACK")
                    except sqlite3.Error:
                        pass
                raise

    def data_version(self) -> int:
        """A number that changes whenever another connection commits to the database."""
        row = self.connection().execute("PRAGMA data_version").fetchone()
        return int(row[0])


def _close_quietly(conn: sqlite3.Connection) -> None:
    try:
        conn.close()
    except sqlite3.Error:
        pass


def poll_intervals(first: float = 0.002, factor: float = 1.5, cap: float = 0.02) -> Iterator[float]:
    """Sleep lengths for polling: short at first, growing to ``cap``."""
    delay = first
    while True:
        yield delay
        delay = min(delay * factor, cap)


class SQLiteStatements:
    """Statements with ``?`` placeholders run in one transaction on an SQLite file (the
    ``celeriac.databases`` plug-in for ``sqlite://``)."""

    identity_column = "INTEGER PRIMARY KEY AUTOINCREMENT"

    def __init__(self, url: str, ddl: Sequence[str], relations: Sequence[str]) -> None:
        self._db = SQLiteDatabase(url, ";\n".join(ddl) + ";")

    def run(self, statements: Sequence[tuple[str, Sequence[Any]]]) -> list[Any]:
        """Run ``statements`` in one transaction; the rows of the last one."""
        with self._db.errors(), self._db.transaction() as conn:
            rows: list[Any] = []
            for sql, params in statements:
                rows = conn.execute(sql, params).fetchall()
            return rows

    def close(self) -> None:
        self._db.close()
