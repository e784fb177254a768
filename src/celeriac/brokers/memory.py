"""An in-process broker: ``memory://`` or ``memory://name``.

Brokers created with the same URL in one process share their queues, so a producer app and a
worker app in the same process (tests, notebooks) talk to each other. Nothing survives the
process. It keeps every guarantee of :mod:`celeriac.brokers.base`.
"""

from __future__ import annotations

import heapq
import itertools
import secrets
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from ..connections.memory import PerURL
from .base import (
    DeadLetter,
    Delivery,
    Outgoing,
    QueueStats,
    int_or_none,
    visibility_timeout,
)


@dataclass(slots=True)
class _Message:
    id: int  # publication order: FIFO within a priority
    queue: str
    priority: int
    body: bytes
    visible_at: float  # due when <= now: after its eta, or when its lease has run out
    lease: str | None = None
    deliveries: int = 0


@dataclass(slots=True)
class _Queue:
    ids: set[int] = field(default_factory=set)
    # (-priority, id) of messages that were due when pushed. Entries go stale when the
    # message is settled or claimed; they are checked (and dropped) when they reach the top.
    ready: list[tuple[int, int]] = field(default_factory=list)


@dataclass(slots=True)
class _DeadLetter:
    id: int
    queue: str
    priority: int
    body: bytes
    reason: str
    dead_at: float


class _Store:
    """The shared state behind every MemoryBroker of one URL."""

    def __init__(self) -> None:
        self.cond = threading.Condition(threading.Lock())
        self.ids = itertools.count(1)
        self.messages: dict[int, _Message] = {}
        self.queues: dict[str, _Queue] = {}
        # (visible_at, id) of messages that become due later (eta, lease deadline, delay).
        self.timers: list[tuple[float, int]] = []
        self.dead: dict[str, dict[int, _DeadLetter]] = {}
        self.dead_ids = itertools.count(1)

    def queue(self, name: str) -> _Queue:
        q = self.queues.get(name)
        if q is None:
            q = self.queues[name] = _Queue()
        return q

    def schedule(self, msg: _Message, now: float) -> None:
        if msg.visible_at <= now:
            heapq.heappush(self.queue(msg.queue).ready, (-msg.priority, msg.id))
        else:
            heapq.heappush(self.timers, (msg.visible_at, msg.id))

    def add(self, queue: str, priority: int, body: bytes, visible_at: float, now: float) -> None:
        msg = _Message(next(self.ids), queue, priority, body, visible_at)
        self.messages[msg.id] = msg
        self.queue(queue).ids.add(msg.id)
        self.schedule(msg, now)

    def remove(self, msg: _Message) -> None:
        del self.messages[msg.id]
        self.queues[msg.queue].ids.discard(msg.id)

    def promote(self, now: float) -> None:
        """Move messages whose time has come from the timers to their queue."""
        timers = self.timers
        while timers and timers[0][0] <= now:
            at, msg_id = heapq.heappop(timers)
            msg = self.messages.get(msg_id)
            if msg is not None and msg.visible_at == at:
                heapq.heappush(self.queue(msg.queue).ready, (-msg.priority, msg.id))

    def head(self, queue: str, now: float) -> tuple[int, int] | None:
        """The (-priority, id) of the next due message of ``queue``, dropping stale entries."""
        q = self.queues.get(queue)
        if q is None:
            return None
        ready = q.ready
        while ready:
            msg = self.messages.get(ready[0][1])
            if msg is not None and msg.visible_at <= now:
                return ready[0]
            heapq.heappop(ready)
        return None

    def leased(self, tag: Any) -> _Message | None:
        """The message ``tag`` refers to, if that lease is still the current one."""
        msg_id, lease = tag
        msg = self.messages.get(msg_id)
        return msg if msg is not None and msg.lease == lease else None


_stores: PerURL[_Store] = PerURL(_Store)
_store_for = _stores.get
reset_stores = _stores.reset


class MemoryBroker:
    """A thread-safe in-process broker; brokers with the same URL share their queues."""

    local_leases = True

    def __init__(self, url: str = "memory://", options: dict[str, Any] | None = None) -> None:
        options = options or {}
        self.url = url
        self.visibility_timeout = visibility_timeout(options)
        self._store = _store_for(url)
        self._woken = False

    @classmethod
    def reset(cls, url: str | None = None) -> None:
        """Forget the queues of ``url`` (every URL when None). For tests."""
        reset_stores(url)

    def publish(self, messages: Sequence[Outgoing]) -> None:
        """Add messages to their queues."""
        store = self._store
        with store.cond:
            now = time.time()
            for m in messages:
                priority = min(max(int(m.priority), 0), 9)
                visible_at = now if m.eta is None else float(m.eta)
                store.add(m.queue, priority, m.body, visible_at, now)
            store.cond.notify_all()

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
        store = self._store
        deadline = time.monotonic() + max(timeout, 0.0)
        with store.cond:
            while True:
                now = time.time()
                store.promote(now)
                claimed = self._claim(names, limit, now)
                if claimed:
                    return claimed
                if self._woken:
                    self._woken = False
                    return []
                wait = deadline - time.monotonic()
                if wait <= 0:
                    return []
                if store.timers:
                    wait = min(wait, max(store.timers[0][0] - now, 0.0) + 0.001)
                # a wakeup that could not take the lock (see wakeup) is seen within 0.1 s
                store.cond.wait(min(wait, 0.1))

    def _claim(self, names: list[str], limit: int, now: float) -> list[Delivery]:
        store = self._store
        lease = secrets.token_hex(8)
        until = now + self.visibility_timeout
        out: list[Delivery] = []
        while len(out) < limit:
            best: tuple[int, int, int] | None = None
            for index, name in enumerate(names):
                head = store.head(name, now)
                if head is not None and (best is None or (head[0], index, head[1]) < best):
                    best = (head[0], index, head[1])
            if best is None:
                break
            heapq.heappop(store.queues[names[best[1]]].ready)
            msg = store.messages[best[2]]
            msg.lease = lease
            msg.visible_at = until
            msg.deliveries += 1
            heapq.heappush(store.timers, (until, msg.id))
            out.append(
                Delivery(
                    body=msg.body,
                    queue=msg.queue,
                    priority=msg.priority,
                    tag=(msg.id, lease),
                    delivery_count=msg.deliveries,
                )
            )
        return out

    def extend(self, deliveries: Sequence[Delivery]) -> None:
        """Renew the leases of ``deliveries`` that are still held."""
        store = self._store
        with store.cond:
            until = time.time() + self.visibility_timeout
            for d in deliveries:
                msg = store.leased(d.tag)
                if msg is not None:
                    msg.visible_at = until
                    heapq.heappush(store.timers, (until, msg.id))

    def ack(self, delivery: Delivery) -> None:
        """Remove the message, if ``delivery`` still holds its lease."""
        self.ack_many([delivery])

    def ack_many(self, deliveries: Sequence[Delivery]) -> None:
        """Remove the messages whose deliveries still hold their leases."""
        store = self._store
        with store.cond:
            for delivery in deliveries:
                msg = store.leased(delivery.tag)
                if msg is not None:
                    store.remove(msg)

    def release(self, delivery: Delivery, delay: float | None = None) -> None:
        """Make the message due again (after ``delay`` seconds), keeping its place."""
        store = self._store
        with store.cond:
            msg = store.leased(delivery.tag)
            if msg is None:
                return
            now = time.time()
            msg.lease = None
            msg.visible_at = now + delay if delay and delay > 0 else now
            store.schedule(msg, now)
            store.cond.notify_all()

    def dead_letter(self, delivery: Delivery, reason: str) -> None:
        """Move the message to its queue's dead letters."""
        store = self._store
        with store.cond:
            msg = store.leased(delivery.tag)
            if msg is None:
                return
            store.remove(msg)
            letter = _DeadLetter(
                next(store.dead_ids), msg.queue, msg.priority, msg.body, reason, time.time()
            )
            store.dead.setdefault(msg.queue, {})[letter.id] = letter

    def queue_length(self, queue: str) -> int:
        """Messages waiting, delayed or leased in ``queue``."""
        store = self._store
        with store.cond:
            q = store.queues.get(queue)
            return len(q.ids) if q is not None else 0

    def queue_stats(self, queue: str) -> QueueStats:
        """Every field, exact: a look at each message of ``queue`` under the store's lock."""
        store = self._store
        waiting = in_flight = delayed = 0
        oldest: float | None = None
        with store.cond:
            now = time.time()
            q = store.queues.get(queue)
            for msg_id in q.ids if q is not None else ():
                msg = store.messages[msg_id]
                if msg.visible_at <= now:
                    waiting += 1
                    oldest = msg.visible_at if oldest is None else min(oldest, msg.visible_at)
                elif msg.lease is not None:
                    in_flight += 1
                else:
                    delayed += 1
            dead = len(store.dead.get(queue, ()))
        age = None if oldest is None else now - oldest
        return QueueStats(queue, waiting, in_flight, delayed, dead, age)

    def purge(self, queue: str) -> int:
        """Delete the messages of ``queue`` that are not under a live lease."""
        store = self._store
        with store.cond:
            q = store.queues.get(queue)
            if q is None:
                return 0
            now = time.time()
            doomed = [
                store.messages[i]
                for i in q.ids
                if store.messages[i].lease is None or store.messages[i].visible_at <= now
            ]
            for msg in doomed:
                store.remove(msg)
            return len(doomed)

    def dead_letters(self, queue: str, limit: int = 100) -> list[DeadLetter]:
        """The oldest ``limit`` dead letters of ``queue``."""
        store = self._store
        with store.cond:
            letters = itertools.islice(store.dead.get(queue, {}).values(), max(limit, 0))
            return [DeadLetter(x.id, x.body, x.queue, x.reason, x.dead_at) for x in letters]

    def requeue_dead_letters(self, queue: str, ids: Sequence[Any] | None = None) -> int:
        """Publish dead letters (all, or those ``ids``) to ``queue`` again."""
        store = self._store
        with store.cond:
            letters = store.dead.get(queue, {})
            wanted = list(letters) if ids is None else [int_or_none(i) for i in ids]
            chosen = [i for i in dict.fromkeys(wanted) if i is not None and i in letters]
            now = time.time()
            for letter_id in chosen:
                letter = letters.pop(letter_id)
                store.add(queue, letter.priority, letter.body, now, now)
            if chosen:
                store.cond.notify_all()
            return len(chosen)

    def purge_dead_letters(self, queue: str) -> int:
        """Delete the dead letters of ``queue``."""
        store = self._store
        with store.cond:
            return len(store.dead.pop(queue, {}))

    def wakeup(self) -> None:
        """Make this broker's blocked (or next) ``fetch`` return at once (within 0.1 s when
        the lock is busy).

        Safe to call from a signal handler: it never waits for the lock, which the
        interrupted thread may hold."""
        self._woken = True
        cond = self._store.cond
        if cond.acquire(blocking=False):
            try:
                cond.notify_all()
            finally:
                cond.release()

    def close(self) -> None:
        """Nothing to release: the queues live as long as the process (see :func:`reset_stores`)."""
