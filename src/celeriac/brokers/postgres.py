"""A broker in PostgreSQL tables: ``postgresql://user:password@host:5432/db`` (or
``postgres://``), with any libpq parameters in the query string, e.g.
``?options=-csearch_path%3Dmyschema`` to keep the tables in their own schema.

The same design as the SQLite broker: a message is a row whose ``visible_at`` is when it is
next due (its eta, or the deadline of its lease), so delayed messages, expired leases and
released messages are all found by one query. A claim is one ``UPDATE`` over rows picked
``FOR UPDATE SKIP LOCKED``, writing a fresh lease token; settling matches ``(id, lease)``, so
a holder whose lease expired cannot touch the message once it is claimed again.

A publish commits durably (one statement; a large batch is a ``COPY`` in one transaction).
Claims and acknowledgements commit without waiting for the WAL to reach the disk
(``synchronous_commit`` off for just those transactions): a server crash may forget the last
fraction of a second of them, and those messages are then delivered again, as after a
worker's crash (at-least-once). Other sessions see them at once, crash or not.

Publishing and releasing ``NOTIFY`` a channel per queue (named after the schema and the
queue). An idle ``fetch`` has ``LISTEN``\\ed on those channels on its own connection before it
looked for work, and waits in ``select`` on that connection's socket and on a socket pair that
``wakeup`` writes to, for no longer than until the next message is due.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Sequence
from typing import Any

from ..connections.postgres import (
    Connection,
    PostgresDatabase,
    channel_name,
    discard,
    fd_readable,
    psycopg,
    sql,
    wait_readable,
)
from ..utils.io import Waker
from .base import (
    DeadLetter,
    Delivery,
    Outgoing,
    QueueStats,
    claimed,
    int_or_none,
    visibility_timeout,
)

DDL = [
    """CREATE TABLE IF NOT EXISTS celeriac_messages (
        id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        queue text NOT NULL,
        priority smallint NOT NULL,
        visible_at double precision NOT NULL,
        lease text,
        deliveries integer NOT NULL DEFAULT 0,
        published_at double precision NOT NULL,
        body bytea NOT NULL
    )""",
    # the claim: per queue, rows in delivery order; the next-due time: per queue, the minimum
    "CREATE INDEX IF NOT EXISTS celeriac_messages_order "
    "ON celeriac_messages (queue, priority DESC, id)",
    "CREATE INDEX IF NOT EXISTS celeriac_messages_due ON celeriac_messages (queue, visible_at)",
    """CREATE TABLE IF NOT EXISTS celeriac_dead_letters (
        id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        queue text NOT NULL,
        priority smallint NOT NULL,
        body bytea NOT NULL,
        reason text NOT NULL,
        dead_at double precision NOT NULL
    )""",
    "CREATE INDEX IF NOT EXISTS celeriac_dead_letters_queue ON celeriac_dead_letters (queue, id)",
]
RELATIONS = [
    "celeriac_messages",
    "celeriac_messages_order",
    "celeriac_messages_due",
    "celeriac_dead_letters",
    "celeriac_dead_letters_queue",
]

# The inserted ids follow the order of the batch (ORDER BY n), so FIFO holds within it. The
# arrays go in binary (%b): no escaping of the bodies.
_PUBLISH = """
WITH inserted AS (
    INSERT INTO celeriac_messages (queue, priority, visible_at, published_at, body)
    SELECT q, p, v, %(now)s, b
    FROM unnest(%(queues)b::text[], %(priorities)b::smallint[], %(visible)b::float8[],
                %(bodies)b::bytea[]) WITH ORDINALITY AS m(q, p, v, b, n)
    ORDER BY n
)
SELECT pg_notify(c, '') FROM unnest(%(channels)s::text[]) AS c
"""

# One message: plain parameters, nothing to build arrays of.
_PUBLISH_ONE = """
WITH inserted AS (
    INSERT INTO celeriac_messages (queue, priority, visible_at, published_at, body)
    VALUES (%s, %s, %s, %s, %b)
)
SELECT pg_notify(%s, '')
"""

# A large batch goes in by COPY (binary), in one transaction with its notifications: the rows
# get their ids in the order they are written, so FIFO holds within it.
_COPY = (
    "COPY celeriac_messages (queue, priority, visible_at, published_at, body) "
    "FROM STDIN (FORMAT BINARY)"
)
_COPY_TYPES = ["text", "int2", "float8", "float8", "bytea"]
_NOTIFY = "SELECT pg_notify(c, '') FROM unnest(%s::text[]) AS c"
COPY_FROM = 64  # messages in one publish from which COPY beats one INSERT of arrays

# Claims and acknowledgements commit without waiting for the WAL flush: the statement sets
# synchronous_commit off for its own transaction (set_config(..., true) lasts until its
# commit). A server crash may forget the last of them; the messages are then delivered again,
# as after a worker's crash (at-least-once). Publishing waits for the flush, as it must.
_ASYNC_COMMIT = "SELECT set_config('synchronous_commit', 'off', true)"

# Per queue, the first LIMIT due rows in (priority, id) order straight from the index, locked
# and skipping rows other claimers hold; then the best LIMIT of those, earlier queues first
# among equal priorities. The CTE is materialised so the locking scan runs exactly once.
_CLAIM = f"""
WITH async_commit AS MATERIALIZED ({_ASYNC_COMMIT}), picked AS MATERIALIZED (
    SELECT c.id
    FROM unnest(%(queues)s::text[]) WITH ORDINALITY AS q(name, qi)
    CROSS JOIN LATERAL (
        SELECT id, priority FROM celeriac_messages
        WHERE queue = q.name AND visible_at <= %(now)s
        ORDER BY priority DESC, id
        LIMIT %(limit)s
        FOR UPDATE SKIP LOCKED
    ) AS c
    ORDER BY c.priority DESC, q.qi, c.id
    LIMIT %(limit)s
)
UPDATE celeriac_messages AS m
SET lease = %(lease)s, visible_at = %(until)s, deliveries = m.deliveries + 1
FROM picked, async_commit
WHERE m.id = picked.id
RETURNING m.id, m.queue, m.priority, m.body, m.deliveries
"""

_NEXT_DUE = """
SELECT min(d.visible_at)
FROM unnest(%s::text[]) AS q(name)
CROSS JOIN LATERAL (
    SELECT visible_at FROM celeriac_messages WHERE queue = q.name ORDER BY visible_at LIMIT 1
) AS d
"""

_ACK = f"""
DELETE FROM celeriac_messages AS m
USING unnest(%s::bigint[], %s::text[]) AS t(id, lease), ({_ASYNC_COMMIT}) AS async_commit
WHERE m.id = t.id AND m.lease = t.lease
"""

_EXTEND = """
UPDATE celeriac_messages AS m SET visible_at = %s
FROM unnest(%s::bigint[], %s::text[]) AS t(id, lease)
WHERE m.id = t.id AND m.lease = t.lease
"""

_RELEASE = """
WITH released AS (
    UPDATE celeriac_messages SET lease = NULL, visible_at = %s
    WHERE id = %s AND lease = %s
    RETURNING 1
)
SELECT pg_notify(%s, '') FROM released
"""

_DEAD_LETTER = """
WITH moved AS (
    DELETE FROM celeriac_messages WHERE id = %s AND lease = %s
    RETURNING queue, priority, body
)
INSERT INTO celeriac_dead_letters (queue, priority, body, reason, dead_at)
SELECT queue, priority, body, %s, %s FROM moved
"""

_REQUEUE = """
WITH taken AS (
    DELETE FROM celeriac_dead_letters
    WHERE queue = %(queue)s AND (%(ids)s::bigint[] IS NULL OR id = ANY(%(ids)s::bigint[]))
    RETURNING id, queue, priority, body
), inserted AS (
    INSERT INTO celeriac_messages (queue, priority, visible_at, published_at, body)
    SELECT queue, priority, %(now)s, %(now)s, body FROM taken ORDER BY id
    RETURNING 1
)
SELECT n, pg_notify(%(channel)s, '') FROM (SELECT count(*) AS n FROM inserted) AS counted
"""

# A queue's rows split by state: due now (waiting, expired leases included), or due later
# and leased (in flight) or not (delayed); then its dead letters.
_STATS = """
SELECT w.n, f.leased, f.n - f.leased, d.n, w.oldest
FROM (SELECT count(*) AS n, min(visible_at) AS oldest FROM celeriac_messages
      WHERE queue = %(queue)s AND visible_at <= %(now)s) AS w,
     (SELECT count(*) AS n, count(lease) AS leased FROM celeriac_messages
      WHERE queue = %(queue)s AND visible_at > %(now)s) AS f,
     (SELECT count(*) AS n FROM celeriac_dead_letters WHERE queue = %(queue)s) AS d
"""


def _tag(delivery: Delivery) -> tuple[int, str]:
    row_id, lease = delivery.tag
    return int(row_id), str(lease)


class _Listener:
    """The fetching thread's connection, LISTENing on the channels of the queues it polls."""

    def __init__(self, conn: Connection, generation: tuple[int, int]) -> None:
        self.conn = conn
        self.generation = generation
        self.channels: set[str] = set()

    def listen(self, channels: Sequence[str]) -> None:
        missing = [c for c in channels if c not in self.channels]
        if not missing:
            return
        statement = sql.SQL("; ").join(
            sql.SQL("LISTEN {}").format(sql.Identifier(c)) for c in missing
        )
        self.conn.execute(statement)
        self.channels.update(missing)
        self.drain()

    def drain(self) -> None:
        """Read and drop the notifications received so far (without waiting)."""
        for _ in self.conn.notifies(timeout=0):
            pass


class PostgresBroker:
    """A broker stored in PostgreSQL tables, shared by any number of processes and hosts."""

    local_leases = False

    def __init__(self, url: str, options: dict[str, Any] | None = None) -> None:
        options = options or {}
        self.url = url
        self.visibility_timeout = visibility_timeout(options)
        self._db = PostgresDatabase(url, DDL, RELATIONS, options)
        self._listener: _Listener | None = None
        self._fetching = False
        self._waker = Waker()
        self._channels: dict[tuple[str, str], str] = {}  # (schema, queue) -> channel

    # -- helpers --------------------------------------------------------------------------

    def _channel(self, queue: str) -> str:
        key = (self._db.schema(), queue)
        channel = self._channels.get(key)
        if channel is None:
            if len(self._channels) >= 1024:  # queues named on the fly: keep it bounded
                self._channels.clear()
            channel = self._channels[key] = channel_name("q", *key)
        return channel

    # -- publishing -----------------------------------------------------------------------

    def publish(self, messages: Sequence[Outgoing]) -> None:
        """Insert ``messages`` and notify their queues, in one transaction: one statement,
        or for a large batch a COPY and the notifications."""
        if not messages:
            return
        now = time.time()
        if len(messages) == 1:
            m = messages[0]
            one = (
                m.queue,
                min(max(int(m.priority), 0), 9),
                now if m.eta is None else float(m.eta),
                now,
                bytes(m.body),
                self._channel(m.queue),
            )
            self._db.call(lambda conn: conn.execute(_PUBLISH_ONE, one))
            return
        if len(messages) >= COPY_FROM:
            self._db.call(lambda conn: self._copy(conn, messages, now))
            return
        params = {
            "now": now,
            "queues": [m.queue for m in messages],
            "priorities": [min(max(int(m.priority), 0), 9) for m in messages],
            "visible": [now if m.eta is None else float(m.eta) for m in messages],
            "bodies": [bytes(m.body) for m in messages],
            "channels": [self._channel(q) for q in dict.fromkeys(m.queue for m in messages)],
        }
        self._db.call(lambda conn: conn.execute(_PUBLISH, params))

    def _copy(self, conn: Connection, messages: Sequence[Outgoing], now: float) -> None:
        channels = [self._channel(q) for q in dict.fromkeys(m.queue for m in messages)]
        with conn.transaction():
            with conn.cursor().copy(_COPY) as copy:
                copy.set_types(_COPY_TYPES)
                write = copy.write_row
                for m in messages:
                    priority = min(max(int(m.priority), 0), 9)
                    visible = now if m.eta is None else float(m.eta)
                    write((m.queue, priority, visible, now, bytes(m.body)))
            conn.execute(_NOTIFY, (channels,))

    # -- fetching -------------------------------------------------------------------------

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
        deadline = time.monotonic() + max(timeout, 0.0)
        self._fetching = True
        try:
            listener = None
            reconnected = False
            while True:
                if listener is None and timeout > 0:
                    # LISTEN before looking, so nothing published after the look is missed
                    listener = self._listen(names)
                claimed = self._claim(names, limit)
                if claimed:
                    return claimed
                if self._waker.consume():
                    return []
                remaining = deadline - time.monotonic()
                if remaining <= 0 or listener is None:
                    return []
                due = self._next_due(names)
                if due is not None:
                    gap = due - time.time()
                    # due but not claimable means another claimer holds it for a moment
                    remaining = min(remaining, gap + 0.002 if gap > 0 else 0.02)
                try:
                    self._wait(listener, remaining)
                except psycopg.Error as exc:
                    self._drop_listener()
                    listener = None
                    if reconnected:  # the fresh connection failed too
                        raise self._db.error(exc) from exc
                    reconnected = True
        finally:
            self._fetching = False
            listener = self._listener
            if listener is not None and listener.generation != self._db.generation:
                self._drop_listener()

    def _listen(self, names: list[str]) -> _Listener:
        listener = self._listener
        if listener is not None and listener.generation != self._db.generation:
            self._drop_listener()
            listener = None
        channels = [self._channel(name) for name in names]
        while True:
            fresh = listener is None
            if listener is None:
                listener = _Listener(self._db.connect(), self._db.generation)
                self._listener = listener
            try:
                if not fresh and fd_readable(listener.conn.fileno()):
                    listener.drain()  # raises if the server ended the session while idle
                listener.listen(channels)
                return listener
            except psycopg.Error as exc:
                self._drop_listener()
                listener = None
                if fresh:
                    raise self._db.error(exc) from exc
            except BaseException:
                self._drop_listener()
                raise

    def _drop_listener(self) -> None:
        listener, self._listener = self._listener, None
        if listener is not None:
            discard(listener.conn, listener.generation[0])

    def _wait(self, listener: _Listener, seconds: float) -> None:
        """Sleep up to ``seconds``, returning early on a notification or a wakeup."""
        waker = self._waker
        wake_fd = waker.reader().fileno()
        if waker.woken:
            return
        fd = listener.conn.fileno()
        readable = wait_readable([fd, wake_fd], seconds)
        if wake_fd in readable:
            waker.drain()
        if fd in readable:
            listener.drain()  # raises when the server ended the session

    def _claim(self, names: list[str], limit: int) -> list[Delivery]:
        now = time.time()
        lease = secrets.token_hex(8)
        params = {
            "queues": names,
            "now": now,
            "limit": limit,
            "lease": lease,
            "until": now + self.visibility_timeout,
        }
        rows = self._db.call(lambda conn: conn.execute(_CLAIM, params, binary=True).fetchall())
        return claimed(rows, names, lease)

    def _next_due(self, names: list[str]) -> float | None:
        row = self._db.call(lambda conn: conn.execute(_NEXT_DUE, (names,)).fetchone())
        return None if row is None or row[0] is None else float(row[0])

    # -- settling -------------------------------------------------------------------------

    def extend(self, deliveries: Sequence[Delivery]) -> None:
        """Push the lease deadlines of ``deliveries`` still held to now + visibility_timeout."""
        if not deliveries:
            return
        tags = [_tag(d) for d in deliveries]
        params = (
            time.time() + self.visibility_timeout,
            [row_id for row_id, _ in tags],
            [lease for _, lease in tags],
        )
        self._db.call(lambda conn: conn.execute(_EXTEND, params))

    def ack(self, delivery: Delivery) -> None:
        """Delete the message if ``delivery`` still holds its lease."""
        self.ack_many([delivery])

    def ack_many(self, deliveries: Sequence[Delivery]) -> None:
        """Delete the messages whose deliveries still hold their leases, in one statement."""
        if not deliveries:
            return
        ids, leases = zip(*(_tag(d) for d in deliveries), strict=True)
        self._db.call(lambda conn: conn.execute(_ACK, (list(ids), list(leases))))

    def release(self, delivery: Delivery, delay: float | None = None) -> None:
        """Make the message due again (after ``delay`` seconds); its id keeps its place."""
        visible_at = time.time() + (delay if delay and delay > 0 else 0.0)
        params = (visible_at, *_tag(delivery), self._channel(delivery.queue))
        self._db.call(lambda conn: conn.execute(_RELEASE, params))

    def dead_letter(self, delivery: Delivery, reason: str) -> None:
        """Move the message to its queue's dead letters."""
        params = (*_tag(delivery), str(reason), time.time())
        self._db.call(lambda conn: conn.execute(_DEAD_LETTER, params))

    # -- inspecting and managing ----------------------------------------------------------

    def queue_length(self, queue: str) -> int:
        """Messages waiting, delayed or leased in ``queue``."""
        stats = self.queue_stats(queue)
        return stats.waiting + (stats.in_flight or 0) + (stats.delayed or 0)

    def queue_stats(self, queue: str) -> QueueStats:
        """Every field, exact, in one query."""
        now = time.time()
        params = {"queue": queue, "now": now}
        row = self._db.call(lambda conn: conn.execute(_STATS, params).fetchone())
        waiting, in_flight, delayed, dead, oldest = row or (0, 0, 0, 0, None)
        age = None if oldest is None else max(now - float(oldest), 0.0)
        return QueueStats(queue, int(waiting), int(in_flight), int(delayed), int(dead), age)

    def purge(self, queue: str) -> int:
        """Delete the messages of ``queue`` that are not under a live lease."""
        params = (queue, time.time())
        return self._db.call(
            lambda conn: (
                conn.execute(
                    "DELETE FROM celeriac_messages "
                    "WHERE queue = %s AND (lease IS NULL OR visible_at <= %s)",
                    params,
                ).rowcount
            )
        )

    def dead_letters(self, queue: str, limit: int = 100) -> list[DeadLetter]:
        """The oldest ``limit`` dead letters of ``queue``."""
        params = (queue, max(int(limit), 0))
        rows = self._db.call(
            lambda conn: conn.execute(
                "SELECT id, body, queue, reason, dead_at FROM celeriac_dead_letters "
                "WHERE queue = %s ORDER BY id LIMIT %s",
                params,
                binary=True,
            ).fetchall()
        )
        return [DeadLetter(i, bytes(body), q, reason, at) for i, body, q, reason, at in rows]

    def requeue_dead_letters(self, queue: str, ids: Sequence[Any] | None = None) -> int:
        """Publish dead letters (all, or those ``ids``) to ``queue`` again, oldest first."""
        wanted: list[int] | None = None
        if ids is not None:
            wanted = sorted({i for i in map(int_or_none, ids) if i is not None})
            if not wanted:
                return 0
        params = {
            "queue": queue,
            "ids": wanted,
            "now": time.time(),
            "channel": self._channel(queue),
        }
        row = self._db.call(lambda conn: conn.execute(_REQUEUE, params).fetchone())
        return int(row[0]) if row is not None else 0

    def purge_dead_letters(self, queue: str) -> int:
        """Delete the dead letters of ``queue``."""
        return self._db.call(
            lambda conn: (
                conn.execute(
                    "DELETE FROM celeriac_dead_letters WHERE queue = %s", (queue,)
                ).rowcount
            )
        )

    # -- lifecycle ------------------------------------------------------------------------

    def wakeup(self) -> None:
        """Make this broker's blocked (or next) ``fetch`` return at once.

        Safe to call from a signal handler: it sets a flag and writes one byte."""
        self._waker.wake()

    def close(self) -> None:
        """Close this process's connections (they reopen when the broker is used again).

        A ``fetch`` blocked in another thread is woken and closes its own connection."""
        self._db.close()
        if self._fetching:
            self.wakeup()
            return
        self._drop_listener()
        self._waker.close()
