"""A broker in one SQLite file: ``sqlite:///relative.db``, ``sqlite:////abs/path.db`` or
``sqlite://`` (``celeriac.db`` in the current directory).

Many producer and worker processes on one machine may share the file. A message is a row;
its ``visible_at`` is when it is next due (its eta, or the deadline of its lease), so delayed
messages, expired leases and released messages are all found by the same query. Each claim
writes a fresh random lease token into the row, and settling a delivery matches on
``(id, lease)``, so a holder whose lease expired cannot touch the message once it is claimed
again. An idle ``fetch`` waits on a doorbell that every publish rings (a unix datagram
socket per waiting process, in a directory of the temporary directory named after the
file), polls ``PRAGMA data_version`` (a counter in shared memory that moves when another
connection commits) in case a commit rang nothing, and wakes at the next due time.
"""

from __future__ import annotations

import functools
import hashlib
import os
import secrets
import tempfile
import time
from collections.abc import Sequence
from typing import Any

from ..connections.sqlite import SQLiteDatabase, poll_intervals
from ..utils.io import Doorbell, Waker
from .base import (
    DeadLetter,
    Delivery,
    Outgoing,
    QueueStats,
    claimed,
    int_or_none,
    visibility_timeout,
)

SCHEMA = """
CREATE TABLE IF NOT EXISTS celeriac_messages (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    queue TEXT NOT NULL,
    priority INTEGER NOT NULL,
    visible_at REAL NOT NULL,
    body BLOB NOT NULL,
    lease TEXT,
    deliveries INTEGER NOT NULL DEFAULT 0,
    published_at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS celeriac_messages_order
    ON celeriac_messages (queue, priority DESC, id, visible_at);
CREATE INDEX IF NOT EXISTS celeriac_messages_due
    ON celeriac_messages (queue, visible_at);
CREATE TABLE IF NOT EXISTS celeriac_dead_letters (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    queue TEXT NOT NULL,
    priority INTEGER NOT NULL,
    body BLOB NOT NULL,
    reason TEXT NOT NULL,
    dead_at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS celeriac_dead_letters_queue ON celeriac_dead_letters (queue, id);
"""

#: the longest pause between two polls of an idle fetch, with a doorbell and without one
BELL_POLL = 0.05
POLL = 0.02

_INSERT = (
    "INSERT INTO celeriac_messages (queue, priority, visible_at, body, published_at) "
    "VALUES (?, ?, ?, ?, ?)"
)


# A queue's rows split by state: due now (waiting, expired leases included), or due later
# and leased (in flight) or not (delayed); then its dead letters.
_STATS = """
SELECT w.n, f.leased, f.n - f.leased, d.n, w.oldest
FROM (SELECT count(*) AS n, min(visible_at) AS oldest FROM celeriac_messages
      WHERE queue = :queue AND visible_at <= :now) AS w,
     (SELECT count(*) AS n, count(lease) AS leased FROM celeriac_messages
      WHERE queue = :queue AND visible_at > :now) AS f,
     (SELECT count(*) AS n FROM celeriac_dead_letters WHERE queue = :queue) AS d
"""


@functools.lru_cache(maxsize=64)
def _claim_sql(n_queues: int) -> str:
    # Per queue, the first LIMIT due rows in (priority, id) order straight from the index;
    # then the best LIMIT of those, earlier queues first among equal priorities.
    per_queue = " UNION ALL ".join(
        f"SELECT id, priority, {i} AS qi FROM (SELECT id, priority FROM celeriac_messages "
        "INDEXED BY celeriac_messages_order WHERE queue = ? AND visible_at <= ? "
        "ORDER BY priority DESC, id LIMIT ?)"
        for i in range(n_queues)
    )
    return (
        "UPDATE celeriac_messages SET lease = ?, visible_at = ?, deliveries = deliveries + 1 "
        f"WHERE id IN (SELECT id FROM ({per_queue}) ORDER BY priority DESC, qi, id LIMIT ?) "
        "RETURNING id, queue, priority, body, deliveries"
    )


@functools.lru_cache(maxsize=64)
def _next_due_sql(n_queues: int) -> str:
    per_queue = " UNION ALL ".join(
        "SELECT (SELECT MIN(visible_at) FROM celeriac_messages WHERE queue = ?) AS t"
        for _ in range(n_queues)
    )
    return f"SELECT MIN(t) FROM ({per_queue})"


def _bell_directory(path: str) -> str:
    """Where the waiting processes of the SQLite file ``path`` keep their doorbells: short
    enough for a unix socket's path, whatever the file's."""
    digest = hashlib.sha1(os.path.realpath(path).encode(), usedforsecurity=False).hexdigest()
    uid = os.getuid() if hasattr(os, "getuid") else 0
    return os.path.join(tempfile.gettempdir(), f"celeriac-{uid}-{digest[:16]}")


def _tag(delivery: Delivery) -> tuple[int, str]:
    row_id, lease = delivery.tag
    return int(row_id), str(lease)


class SQLiteBroker:
    """A broker stored in a SQLite file shared by the processes of one machine."""

    local_leases = False

    def __init__(self, url: str = "sqlite://", options: dict[str, Any] | None = None) -> None:
        options = options or {}
        self.url = url
        self.visibility_timeout = visibility_timeout(options)
        self._db = SQLiteDatabase(url, SCHEMA, options)
        self._waker = Waker()
        self._bell = Doorbell(_bell_directory(self._db.path))

    def publish(self, messages: Sequence[Outgoing]) -> None:
        """Insert ``messages`` in one transaction."""
        if not messages:
            return
        now = time.time()
        rows = [
            (
                m.queue,
                min(max(int(m.priority), 0), 9),
                now if m.eta is None else float(m.eta),
                m.body,
                now,
            )
            for m in messages
        ]
        with self._db.errors(), self._db.transaction() as conn:
            conn.executemany(_INSERT, rows)
        self._bell.ring()

    def fetch(
        self,
        queues: Sequence[str],
        limit: int,
        timeout: float,
        acks: Sequence[Delivery] = (),
    ) -> list[Delivery]:
        """Acknowledge ``acks``, then claim up to ``limit`` due messages, waiting up to
        ``timeout`` for one."""
        self.ack_many(acks)
        names = list(dict.fromkeys(queues))
        if not names or limit <= 0:
            return []
        db = self._db
        deadline = time.monotonic() + max(timeout, 0.0)
        with db.errors():
            while True:
                version = db.data_version()
                due = self._next_due(names)
                now = time.time()
                if due is not None and due <= now:
                    claimed = self._claim(names, limit, now)
                    if claimed:
                        return claimed
                if self._waker.consume():
                    return []
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return []
                if due is not None:
                    remaining = min(remaining, max(due - now, 0.0) + 0.001)
                self._wait_for_change(version, remaining)

    def _next_due(self, names: list[str]) -> float | None:
        row = self._db.connection().execute(_next_due_sql(len(names)), names).fetchone()
        return None if row is None or row[0] is None else float(row[0])

    def _claim(self, names: list[str], limit: int, now: float) -> list[Delivery]:
        lease = secrets.token_hex(8)
        params: list[Any] = [lease, now + self.visibility_timeout]
        for name in names:
            params += (name, now, limit)
        params.append(limit)
        conn = self._db.connection()
        rows = conn.execute(_claim_sql(len(names)), params).fetchall()
        return claimed(rows, names, lease)

    def _wait_for_change(self, version: int, seconds: float) -> None:
        """Sleep up to ``seconds``, returning early on another connection's commit or wakeup."""
        end = time.monotonic() + seconds
        for interval in poll_intervals(cap=BELL_POLL if self._bell.socket() else POLL):
            left = end - time.monotonic()
            if left <= 0 or self._waker.wait(min(interval, left), self._bell):
                return
            if self._db.data_version() != version:
                return

    def extend(self, deliveries: Sequence[Delivery]) -> None:
        """Push the lease deadlines of ``deliveries`` still held to now + visibility_timeout."""
        if not deliveries:
            return
        until = time.time() + self.visibility_timeout
        rows = [(until, *_tag(d)) for d in deliveries]
        with self._db.errors(), self._db.transaction() as conn:
            conn.executemany(
                "UPDATE celeriac_messages SET visible_at = ? WHERE id = ? AND lease = ?", rows
            )

    def ack(self, delivery: Delivery) -> None:
        """Delete the message if ``delivery`` still holds its lease."""
        self.ack_many([delivery])

    def ack_many(self, deliveries: Sequence[Delivery]) -> None:
        """Delete the messages whose deliveries still hold their leases, in one transaction."""
        if not deliveries:
            return
        rows = [_tag(d) for d in deliveries]
        with self._db.errors(), self._db.transaction() as conn:
            conn.executemany("DELETE FROM celeriac_messages WHERE id = ? AND lease = ?", rows)

    def release(self, delivery: Delivery, delay: float | None = None) -> None:
        """Make the message due again (after ``delay`` seconds); its id keeps its place."""
        visible_at = time.time() + (delay if delay and delay > 0 else 0.0)
        with self._db.errors():
            self._db.connection().execute(
                "UPDATE celeriac_messages SET lease = NULL, visible_at = ? "
                "WHERE id = ? AND lease = ?",
                (visible_at, *_tag(delivery)),
            )

    def dead_letter(self, delivery: Delivery, reason: str) -> None:
        """Move the message to its queue's dead letters."""
        tag = _tag(delivery)
        with self._db.errors(), self._db.transaction() as conn:
            moved = conn.execute(
                "INSERT INTO celeriac_dead_letters (queue, priority, body, reason, dead_at) "
                "SELECT queue, priority, body, ?, ? FROM celeriac_messages "
                "WHERE id = ? AND lease = ?",
                (reason, time.time(), *tag),
            ).rowcount
            if moved:
                conn.execute("DELETE FROM celeriac_messages WHERE id = ? AND lease = ?", tag)

    def queue_length(self, queue: str) -> int:
        """Messages waiting, delayed or leased in ``queue``."""
        stats = self.queue_stats(queue)
        return stats.waiting + (stats.in_flight or 0) + (stats.delayed or 0)

    def queue_stats(self, queue: str) -> QueueStats:
        """Every field, exact, in one query."""
        now = time.time()
        with self._db.errors():
            row = self._db.connection().execute(_STATS, {"queue": queue, "now": now}).fetchone()
        waiting, in_flight, delayed, dead, oldest = row
        age = None if oldest is None else max(now - float(oldest), 0.0)
        return QueueStats(queue, int(waiting), int(in_flight), int(delayed), int(dead), age)

    def purge(self, queue: str) -> int:
        """Delete the messages of ``queue`` that are not under a live lease."""
        with self._db.errors():
            cur = self._db.connection().execute(
                "DELETE FROM celeriac_messages "
                "WHERE queue = ? AND (lease IS NULL OR visible_at <= ?)",
                (queue, time.time()),
            )
        return cur.rowcount

    def dead_letters(self, queue: str, limit: int = 100) -> list[DeadLetter]:
        """The oldest ``limit`` dead letters of ``queue``."""
        with self._db.errors():
            rows = (
                self._db.connection()
                .execute(
                    "SELECT id, body, queue, reason, dead_at FROM celeriac_dead_letters "
                    "WHERE queue = ? ORDER BY id LIMIT ?",
                    (queue, max(limit, 0)),
                )
                .fetchall()
            )
        return [DeadLetter(i, bytes(body), q, reason, at) for i, body, q, reason, at in rows]

    def requeue_dead_letters(self, queue: str, ids: Sequence[Any] | None = None) -> int:
        """Publish dead letters (all, or those ``ids``) to ``queue`` again, oldest first."""
        now = time.time()
        select = (
            "INSERT INTO celeriac_messages (queue, priority, visible_at, body, published_at) "
            "SELECT queue, priority, ?, body, ? FROM celeriac_dead_letters WHERE queue = ?"
        )
        delete = "DELETE FROM celeriac_dead_letters WHERE queue = ?"
        with self._db.errors(), self._db.transaction() as conn:
            if ids is None:
                moved = conn.execute(select + " ORDER BY id", (now, now, queue)).rowcount
                conn.execute(delete, (queue,))
                return moved
            wanted = sorted({i for i in map(int_or_none, ids) if i is not None})
            if not wanted:
                return 0
            conn.executemany(select + " AND id = ?", [(now, now, queue, i) for i in wanted])
            cur = conn.executemany(delete + " AND id = ?", [(queue, i) for i in wanted])
            return cur.rowcount

    def purge_dead_letters(self, queue: str) -> int:
        """Delete the dead letters of ``queue``."""
        with self._db.errors():
            cur = self._db.connection().execute(
                "DELETE FROM celeriac_dead_letters WHERE queue = ?", (queue,)
            )
        return cur.rowcount

    def wakeup(self) -> None:
        """Make this broker's blocked (or next) ``fetch`` return at once.

        Safe to call from a signal handler: it sets a flag and writes one byte."""
        self._waker.wake()

    def close(self) -> None:
        """Close this process's connections (they reopen when the broker is used again)."""
        self._bell.close()
        self._db.close()
