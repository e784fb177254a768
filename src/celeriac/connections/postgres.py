"""What the PostgreSQL broker and result backend share: connection settings, a small pool of
autocommit connections private to each process, schema creation, notification channel names
and the translation of driver errors.

Connections are shared by the threads of a process through a pool: a thread takes one for
one call and gives it back. After ``fork`` the child forgets every connection it inherited
without closing it (closing would end the parent's sessions) and opens its own on first use.
Tables are created unqualified, so they land in the first schema of the URL's
``search_path``, and notification channels are named after that schema too, so databases
shared by several isolated schemas do not wake each other.
"""

from __future__ import annotations

import hashlib
import os
import threading
import weakref
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any, TypeVar
from urllib.parse import urlsplit

from ..exceptions import ImproperlyConfigured, OperationalError
from ..utils.io import fd_readable, wait_readable
from ..utils.urls import safe_url

try:
    import psycopg
    from psycopg import errors as pg_errors
    from psycopg import sql
    from psycopg.conninfo import conninfo_to_dict
    from psycopg.pq import TransactionStatus
except ModuleNotFoundError as exc:  # pragma: no cover - depends on the installation
    raise ImproperlyConfigured(
        "postgresql:// URLs need psycopg 3.2 or later: pip install 'celeriac[postgres]'"
    ) from exc

if tuple(int(p) for p in psycopg.__version__.split(".")[:2] if p.isdigit()) < (3, 2):
    raise ImproperlyConfigured(  # notifies(timeout=...) appeared in psycopg 3.2
        f"postgresql:// URLs need psycopg 3.2 or later (found {psycopg.__version__})"
    )

__all__ = [
    "Connection",
    "PostgresDatabase",
    "channel_name",
    "discard",
    "fd_readable",
    "psycopg",
    "sql",
    "wait_readable",
]

T = TypeVar("T")
Connection = psycopg.Connection[tuple[Any, ...]]

#: libpq settings used unless the URL (or the transport options) gives them.
DEFAULT_CONNINFO: dict[str, Any] = {
    "connect_timeout": 10,
    "application_name": "celeriac",
    "keepalives": 1,
    "keepalives_idle": 30,
    "keepalives_interval": 10,
    "keepalives_count": 3,
}
DEFAULT_MAX_CONNECTIONS = 20  # connections in use at once per process and object
DEFAULT_MAX_IDLE = 8  # idle connections kept per process and object
DEFAULT_POOL_TIMEOUT = 30.0  # how long a call waits for a connection when all are in use

# Every live database object, so that a forked child can reset them all before any thread of
# the child uses one. The lock is held across fork so the child's copy is consistent.
_registry_lock = threading.Lock()
_databases: weakref.WeakSet[PostgresDatabase] = weakref.WeakSet()
# Connections a child inherited: kept referenced so the child never finalises them (psycopg
# would not end the parent's session, but it warns about unclosed connections).
_inherited: list[Any] = []


def _before_fork() -> None:
    _registry_lock.acquire()


def _after_fork_in_parent() -> None:
    _registry_lock.release()


def _after_fork_in_child() -> None:
    _registry_lock.release()
    for db in list(_databases):
        db._forked()


os.register_at_fork(
    before=_before_fork,
    after_in_parent=_after_fork_in_parent,
    after_in_child=_after_fork_in_child,
)


def libpq_url(url: str) -> str:
    """``url`` as libpq understands it: ``postgresql+driver://`` becomes ``postgresql://``."""
    scheme, sep, rest = url.partition("://")
    if not sep or scheme.split("+")[0] not in ("postgresql", "postgres"):
        raise ImproperlyConfigured(f"not a postgresql:// URL: {safe_url(url)!r}")
    return f"postgresql://{rest}"


def _password(url: str) -> str | None:
    try:
        return urlsplit(url).password or None
    except ValueError:
        return None


def channel_name(kind: str, schema: str, name: str) -> str:
    """A NOTIFY channel for ``name`` in ``schema``: a short, always valid identifier."""
    digest = hashlib.blake2b(f"{schema}\0{name}".encode(), digest_size=16).hexdigest()
    return f"celeriac_{kind}_{digest}"


def discard(conn: Connection, opened_by: int) -> None:
    """Close ``conn`` if this process (pid ``opened_by``) opened it; a child only forgets it."""
    if opened_by != os.getpid():
        _inherited.append(conn)
        return
    try:
        conn.close()
    except Exception:
        pass


class PostgresDatabase:
    """Autocommit connections to one PostgreSQL URL, pooled per process.

    ``ddl`` (``CREATE ... IF NOT EXISTS`` statements) runs once per object, under an advisory
    lock, when any of the relations named in ``relations`` is missing.
    """

    def __init__(
        self,
        url: str,
        ddl: Sequence[str],
        relations: Sequence[str],
        options: dict[str, Any] | None = None,
    ) -> None:
        options = options or {}
        self.url = url
        self.safe_url = safe_url(url)
        self._password = _password(url)
        try:
            params: dict[str, Any] = conninfo_to_dict(libpq_url(url))
        except psycopg.Error as exc:
            raise ImproperlyConfigured(f"bad PostgreSQL URL {self.safe_url!r}: {exc}") from None
        for key, value in DEFAULT_CONNINFO.items():
            params.setdefault(key, options.get(key, value))
        self._params = params
        self._max_connections = int(options.get("max_connections", DEFAULT_MAX_CONNECTIONS))
        self._max_idle = int(options.get("max_idle_connections", DEFAULT_MAX_IDLE))
        self._pool_timeout = float(options.get("pool_timeout", DEFAULT_POOL_TIMEOUT))
        self._slots = threading.BoundedSemaphore(self._max_connections)
        self._ddl = list(ddl)
        self._relations = list(relations)
        self._lock = threading.Lock()
        self._idle: list[Connection] = []
        self._pid = os.getpid()
        self._generation = 0
        self._ready = False  # the tables are known to exist
        self._schema: str | None = None
        with _registry_lock:
            _databases.add(self)

    # -- process and pool -----------------------------------------------------------------

    def _forked(self) -> None:
        """Forget the parent's connections (never closing them); called in a new child."""
        self._lock = threading.Lock()
        self._slots = threading.BoundedSemaphore(self._max_connections)
        _inherited.extend(self._idle)
        self._idle = []
        self._pid = os.getpid()
        self._generation += 1

    def _check_pid(self) -> None:
        if self._pid != os.getpid():  # forked without the at-fork hooks
            with _registry_lock:
                if self._pid != os.getpid():
                    self._forked()

    @property
    def generation(self) -> tuple[int, int]:
        """Changes after ``close()`` and in a forked child: connections of an older one are
        not used again."""
        self._check_pid()
        return (self._pid, self._generation)

    def connect(self) -> Connection:
        """A new autocommit connection (driver errors as OperationalError)."""
        with self.errors():
            return psycopg.connect(autocommit=True, **self._params)

    def _acquire(self) -> tuple[Connection, tuple[int, int]]:
        self._check_pid()
        while True:
            with self._lock:
                generation = (self._pid, self._generation)
                conn = self._idle.pop() if self._idle else None
            if conn is None:
                return self.connect(), generation
            # An idle autocommit session receives nothing unless the server ended it (or sent
            # a notice): such a connection is replaced rather than failing a call.
            if not conn.closed and not fd_readable(conn.fileno()):
                return conn, generation
            self._discard(conn)

    def _release(self, conn: Connection, generation: tuple[int, int]) -> None:
        if os.getpid() != generation[0]:
            discard(conn, generation[0])
            return
        usable = (
            not conn.closed
            and not conn.broken
            and conn.info.transaction_status == TransactionStatus.IDLE
        )
        with self._lock:
            current = (self._pid, self._generation)
            if usable and generation == current and len(self._idle) < self._max_idle:
                self._idle.append(conn)
                return
        self._discard(conn)

    @staticmethod
    def _discard(conn: Connection) -> None:
        discard(conn, os.getpid())

    def close(self) -> None:
        """Close this process's idle connections; ones in use are closed when given back."""
        self._check_pid()
        with self._lock:
            self._generation += 1
            idle, self._idle = self._idle, []
        for conn in idle:
            self._discard(conn)

    # -- calls ----------------------------------------------------------------------------

    def call(self, fn: Callable[[Connection], T], limited: bool = True) -> T:
        """Run ``fn`` with a pooled connection, creating the tables first if needed.

        At most ``max_connections`` limited calls of this process hold a connection at once;
        others wait up to ``pool_timeout`` seconds for one. Long waits for notifications pass
        ``limited=False`` so they cannot starve short calls. Driver errors are raised as
        OperationalError; a statement that failed because the tables are gone (dropped behind
        our back) is retried once after recreating them."""
        if not limited:
            return self._call(fn)
        slots = self._slots
        if not slots.acquire(timeout=self._pool_timeout):
            raise OperationalError(
                f"{self.safe_url}: all {self._max_connections} connections stayed busy for "
                f"{self._pool_timeout:g}s (raise the max_connections option?)"
            )
        try:
            return self._call(fn)
        finally:
            slots.release()

    def _call(self, fn: Callable[[Connection], T]) -> T:
        for attempt in range(2):
            conn, generation = self._acquire()
            try:
                if not self._ready:
                    self._ensure_schema(conn)
                result = fn(conn)
            except pg_errors.UndefinedTable as exc:
                self._release(conn, generation)
                self._ready = False
                if attempt:
                    raise self.error(exc) from exc
                continue
            except psycopg.Error as exc:
                self._release(conn, generation)
                raise self.error(exc) from exc
            except BaseException:
                self._release(conn, generation)
                raise
            self._release(conn, generation)
            return result
        raise AssertionError("unreachable")

    def schema(self) -> str:
        """The schema the tables live in (the first existing one of the search_path)."""
        if self._schema is None:
            self.call(lambda conn: None)
        assert self._schema is not None
        return self._schema

    def _ensure_schema(self, conn: Connection) -> None:
        row = conn.execute(
            "SELECT current_schema(), bool_and(to_regclass(r) IS NOT NULL) "
            "FROM unnest(%s::text[]) AS r",
            (self._relations,),
        ).fetchone()
        assert row is not None
        schema, present = row
        if schema is None:
            raise OperationalError(
                f"{self.safe_url}: no schema of the search_path exists to create tables in"
            )
        if not present:
            with conn.transaction():
                conn.execute(
                    "SELECT pg_advisory_xact_lock(hashtext('celeriac:' || current_schema()))"
                )
                for statement in self._ddl:
                    conn.execute(statement)
        self._schema = str(schema)
        self._ready = True

    # -- errors ---------------------------------------------------------------------------

    def error(self, exc: BaseException) -> OperationalError:
        """``exc`` as an OperationalError naming the database (never its password)."""
        message = " ".join(str(exc).split()) or type(exc).__name__
        if self._password:
            message = message.replace(self._password, "***")
        return OperationalError(f"{self.safe_url}: {message}")

    @contextmanager
    def errors(self) -> Iterator[None]:
        """Raise driver errors as :class:`OperationalError`."""
        try:
            yield
        except psycopg.Error as exc:
            raise self.error(exc) from exc


class PostgresStatements:
    """Statements with ``?`` placeholders run in one transaction on PostgreSQL (the
    ``celeriac.databases`` plug-in for ``postgresql://``)."""

    identity_column = "BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY"

    def __init__(self, url: str, ddl: Sequence[str], relations: Sequence[str]) -> None:
        self._db = PostgresDatabase(url, ddl, relations)

    def run(self, statements: Sequence[tuple[str, Sequence[Any]]]) -> list[Any]:
        """Run ``statements`` in one transaction; the rows of the last one."""

        def go(conn: Any) -> list[Any]:
            rows: list[Any] = []
            with conn.transaction():
                for sql, params in statements:
                    cur = conn.execute(sql.replace("?", "%s"), params)
                    rows = cur.fetchall() if cur.description else []
            return rows

        with self._db.errors():
            return self._db.call(go)

    def close(self) -> None:
        self._db.close()
