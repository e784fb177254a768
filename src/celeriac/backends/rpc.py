"""Results sent back to the caller as messages on the broker: ``rpc://`` (Celery's RPC
result backend), on every broker.

Each process that sends tasks has a reply queue of its own (:attr:`RPCBackend.reply_to`,
``celeriac.reply.<uuid>``), named in the messages it sends. A worker publishes every state
of such a task (STARTED, RETRY, SUCCESS, FAILURE ...) to that queue through the app's broker;
the sender reads its queue when asked for a result, keeps the latest state of every task it
sees (results for other ids it sent included) and acknowledges the messages.

As in Celery, only the sender can read a result (another process sees PENDING), results live
as long as the sending process (a restarted client has a new queue, and the old one's
messages stay in the broker until purged), and there is no shared store: chords, saving and
restoring groups, revocations, run-time and global rate limits, broadcast queues and event
subscriptions need a result backend that keeps values (Redis, SQLite, PostgreSQL). Writing
one raises :class:`NotImplementedError` saying so; reading one finds nothing. Remote control
needs none: it travels in the control log beside the broker.
"""

from __future__ import annotations

import collections
import threading
import time
import uuid
from collections.abc import Sequence
from typing import Any

from .. import _state
from ..states import READY_STATES
from .base import CeleryMethods

#: the prefix of every reply queue's name
REPLY_PREFIX = "celeriac.reply."
#: the results a process keeps in memory at most (the oldest are dropped first)
CACHE_LIMIT = 10_000
#: messages taken from the reply queue per round trip
BATCH = 100

NO_VALUES = (
    "the rpc:// result backend keeps no shared values, and {what} needs them: celeriac keeps "
    "chord joins, saved groups, revocations, prefork children's control changes, run-time "
    "and global rate limits, broadcast queues and event subscriptions in the result "
    "backend. Use one that keeps values, such as redis://, sqlite:// or postgresql://"
)
#: what needs a key, by the second part of its name (celeriac.keys)
_FEATURES = {
    "revoked": "revoking a task",
    "revocations": "revoking a task",
    "revoked-stamps": "revoking tasks by stamped header",
    "control": "changing a prefork worker's queues or time limits remotely",
    "group": "GroupResult.save()",
    "chord": "a chord",
    "chord-fired": "a chord",
    "rate": "a global rate limit",
    "rate-limits": "a run-time rate limit",
    "broadcast": "a broadcast queue",
    "event": "an event subscription",
    "beat": "beat's shared state",
}


class RPCBackend(CeleryMethods):
    """Results as messages to the sending process's reply queue (see the module's text)."""

    #: there is no key-value store behind this backend (workflows and control check this)
    keeps_values = False

    def __init__(self, url: str = "rpc://", options: dict[str, Any] | None = None) -> None:
        self.url = url
        self.options = dict(options or {})
        self._cond = threading.Condition(threading.Lock())
        self._reading = False  # a thread is taking messages from the reply queue
        self._queue: str | None = None
        self._reader: Any = None  # a broker of our own: only one thread may fetch from one
        # task id -> (state, payload): the latest state seen, oldest first
        self._cache: collections.OrderedDict[str, tuple[str, bytes]] = collections.OrderedDict()

    # -- the reply queue --------------------------------------------------------------------

    @property
    def reply_to(self) -> str:
        """This process's reply queue, named in the messages it sends."""
        if self._queue is None:
            with self._cond:
                if self._queue is None:
                    self._queue = REPLY_PREFIX + uuid.uuid4().hex
        return self._queue

    def _broker(self) -> Any:
        if self.app is None:
            raise RuntimeError("the rpc:// backend is used through an app (app.backend)")
        return self.app.broker

    def store_for(
        self, reply_to: str, task_id: str, state: str, payload: bytes, expires_in: float | None
    ) -> None:
        """Send ``state`` and ``payload`` of ``task_id`` to the reply queue ``reply_to``."""
        if self.app is None:
            raise RuntimeError("the rpc:// backend is used through an app (app.backend)")
        body = b"%s\n%s\n%s" % (task_id.encode(), state.encode(), payload)
        self.app.producer.publish_bytes(reply_to, body, task_id)

    def store(self, task_id: str, state: str, payload: bytes, expires_in: float | None) -> None:
        """Send the state to whoever sent the task running now (Celery falls back to the
        current task's request too); with no task running, this process is the one asking,
        and the state is kept here."""
        request = _state.current_request.get()
        reply_to = getattr(request, "reply_to", None)
        if reply_to:
            self.store_for(reply_to, task_id, state, payload, expires_in)
        else:
            with self._cond:
                self._remember(task_id, state, payload)
                self._cond.notify_all()

    # -- reading ----------------------------------------------------------------------------

    def load(self, task_id: str) -> bytes | None:
        """The latest state of ``task_id`` this process received (the queue is read first)."""
        self._poll()
        with self._cond:
            record = self._cache.get(task_id)
        return None if record is None else record[1]

    def load_many(self, task_ids: Sequence[str]) -> dict[str, bytes]:
        """The latest payloads received for those ``task_ids`` that have one."""
        self._poll()
        with self._cond:
            found = {tid: self._cache.get(tid) for tid in task_ids}
        return {tid: record[1] for tid, record in found.items() if record is not None}

    def wait_for(self, task_id: str, timeout: float | None) -> bytes | None:
        """Read the reply queue until ``task_id`` is ready (one thread reads; the others
        wait for what it finds)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            with self._cond:
                record = self._cache.get(task_id)
                if record is not None and record[0] in READY_STATES:
                    return record[1]
                left = None if deadline is None else deadline - time.monotonic()
                if left is not None and left <= 0:
                    return None
                if self._reading or self._queue is None:  # None: only local states come
                    self._cond.wait(1.0 if left is None else min(left, 1.0))
                    continue
                self._reading = True
            self._read(1.0 if left is None else min(left, 1.0))

    def _poll(self) -> None:
        """Take what waits in the reply queue, unless another thread is reading it."""
        if self._queue is None:
            return  # this process sent nothing with a reply queue: nothing can be there
        with self._cond:
            if self._reading:
                return
            self._reading = True
        self._read(0.0)

    def _read(self, timeout: float) -> None:
        """Fetch from the reply queue (the caller set ``_reading``), keep what came and
        acknowledge it, then let the other threads look."""
        try:
            if self._reader is None:
                broker = self._broker()
                options = dict(self.app.conf.broker_transport_options or {})
                self._reader = type(broker)(broker.url, options)
            deliveries = self._reader.fetch([self.reply_to], BATCH, timeout)
            with self._cond:
                for delivery in deliveries:
                    task_id, _, rest = bytes(delivery.body).partition(b"\n")
                    state, _, payload = rest.partition(b"\n")
                    self._remember(task_id.decode(), state.decode(), payload)
            if deliveries:
                self._reader.ack_many(deliveries)
        finally:
            with self._cond:
                self._reading = False
                self._cond.notify_all()

    def _remember(self, task_id: str, state: str, payload: bytes) -> None:
        cache = self._cache
        cache.pop(task_id, None)
        cache[task_id] = (state, payload)
        while len(cache) > CACHE_LIMIT:
            cache.popitem(last=False)

    def forget(self, task_id: str) -> None:
        """Drop what this process received for ``task_id``."""
        with self._cond:
            self._cache.pop(task_id, None)

    def cleanup(self) -> int:
        """Nothing is stored: a result is gone once its sender has read it."""
        return 0

    # -- no values: reads find nothing, writes say what to use instead ------------------------

    def _refuse(self, key: str) -> NotImplementedError:
        part = key.split(":")[1] if key.count(":") else key
        return NotImplementedError(NO_VALUES.format(what=_FEATURES.get(part, repr(key))))

    def incr(self, key: str, amount: int = 1, expires_in: float | None = None) -> int:
        raise self._refuse(key)

    def add_to_set(self, key: str, member: str, expires_in: float | None = None) -> int:
        raise self._refuse(key)

    def set_members(self, key: str) -> list[str]:
        return []

    def set_value(
        self, key: str, value: bytes, expires_in: float | None = None, only_if_absent: bool = False
    ) -> bool:
        raise self._refuse(key)

    def get_value(self, key: str) -> bytes | None:
        return None

    def delete_value(self, key: str) -> None:
        """Nothing to delete."""

    def close(self) -> None:
        """Close the reader's connections (the queue and what this process received stay)."""
        reader, self._reader = self._reader, None
        if reader is not None:
            reader.close()
