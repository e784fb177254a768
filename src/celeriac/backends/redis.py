"""A result backend in Redis (same URLs as the Redis broker; they may share a database).

A result is the string key ``result:<task id>`` holding the state, a newline and the payload,
written with ``SET`` (``PX`` when it expires: Redis deletes it by itself, so ``cleanup`` has
nothing to do). Storing a ready state also ``PUBLISH``es on a channel named after the
database and the task id. ``wait_for`` subscribes to that channel first, then reads the key,
then waits for a message, so it never polls and never misses the write it waits for. Keys of
the small key-value store are ``kv:<key>``; counters are plain ``INCRBY`` integers.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

from ..connections.redis import RedisClient, ResponseError, Script
from ..exceptions import OperationalError
from ..states import READY_STATES
from .base import CeleryMethods

_CHUNK = 1000  # keys per MGET in load_many (all sent in one round trip)
_MAX_WAIT = 30.0  # a waiting subscriber re-reads the result at least this often

# KEYS: counter.  ARGV: amount, expiry in ms ('' keeps the one it has)
_INCR = Script(
    """
local value = redis.call('INCRBY', KEYS[1], ARGV[1])
if ARGV[2] ~= '' then redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
return value
"""
)

# KEYS: set.  ARGV: member, expiry in ms ('' keeps the one it has)
_ADD_TO_SET = Script(
    """
redis.call('SADD', KEYS[1], ARGV[1])
if ARGV[2] ~= '' then redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
return redis.call('SCARD', KEYS[1])
"""
)


def _ms(expires_in: float | None) -> list[Any]:
    """``PX`` arguments of SET for ``expires_in`` seconds (none when it never expires)."""
    return [] if expires_in is None else ["PX", max(int(expires_in * 1000), 1)]


def _ready(record: bytes | None) -> bytes | None:
    """The payload of a stored record if its state is a ready one."""
    if record is None:
        return None
    state, _, payload = record.partition(b"\n")
    return payload if state.decode() in READY_STATES else None


class RedisBackend(CeleryMethods):
    """Results and keys stored in Redis, shared by every process and host."""

    def __init__(self, url: str, options: dict[str, Any] | None = None) -> None:
        self.url = url
        self._db = RedisClient(url, options)
        self._prefix = self._db.prefix

    def _key(self, task_id: str) -> str:
        return f"{self._prefix}result:{task_id}"

    def _kv(self, key: str) -> str:
        return f"{self._prefix}kv:{key}"

    def _channel(self, task_id: str) -> str:
        # channels are shared by every database of the server: the number keeps them apart
        return f"{self._prefix}{self._db.db}:ready:{task_id}"

    # -- results --------------------------------------------------------------------------

    def store(self, task_id: str, state: str, payload: bytes, expires_in: float | None) -> None:
        """Record ``state`` and ``payload`` for ``task_id``, replacing what was there; a ready
        state wakes whoever waits for it."""
        key = self._key(task_id)
        commands: list[Sequence[Any]] = [
            ("SET", key, state.encode() + b"\n" + bytes(payload), *_ms(expires_in))
        ]
        if state in READY_STATES:
            commands.append(("PUBLISH", self._channel(task_id), state))
        self._db.execute(*commands)

    def load(self, task_id: str) -> bytes | None:
        """The payload stored for ``task_id`` unless missing or expired."""
        record = self._db.command("GET", self._key(task_id))
        return None if record is None else bytes(record).partition(b"\n")[2]

    def load_many(self, task_ids: Sequence[str]) -> dict[str, bytes]:
        """Payloads of those ``task_ids`` that have one, in one round trip."""
        ids = list(dict.fromkeys(task_ids))
        if not ids:
            return {}
        chunks = [ids[i : i + _CHUNK] for i in range(0, len(ids), _CHUNK)]
        replies = self._db.execute(*[("MGET", *map(self._key, chunk)) for chunk in chunks])
        found: dict[str, bytes] = {}
        for chunk, records in zip(chunks, replies, strict=True):
            for task_id, record in zip(chunk, records, strict=True):
                if record is not None:
                    found[task_id] = bytes(record).partition(b"\n")[2]
        return found

    def wait_for(self, task_id: str, timeout: float | None) -> bytes | None:
        """Block until ``task_id`` is ready; its payload, or None after ``timeout`` seconds."""
        if timeout is not None and timeout <= 0:
            return _ready(self._db.command("GET", self._key(task_id)))
        deadline = None if timeout is None else time.monotonic() + timeout
        late = None if deadline is None else (lambda: time.monotonic() >= deadline)
        return self._db.call(lambda: self._wait(task_id, deadline), stop=late)

    def _wait(self, task_id: str, deadline: float | None) -> bytes | None:
        channel = self._channel(task_id)
        with self._db.wait_connection() as conn:
            conn.send_command("SUBSCRIBE", channel)
            conn.read_response(push_request=True)
            while True:
                payload = _ready(self._db.command("GET", self._key(task_id)))
                left = _MAX_WAIT if deadline is None else deadline - time.monotonic()
                if payload is not None or left <= 0:
                    self._unsubscribe(conn, channel)
                    return payload
                # can_read also sees a message read along with an earlier reply
                if conn.can_read(timeout=min(left, _MAX_WAIT)):
                    conn.read_response(push_request=True)  # the message (or an error)

    @staticmethod
    def _unsubscribe(conn: Any, channel: str) -> None:
        """Leave subscribed mode, so the pooled connection can be used again."""
        conn.send_command("UNSUBSCRIBE", channel)
        while True:  # messages published meanwhile come first
            reply = conn.read_response(push_request=True)
            if isinstance(reply, list) and reply[:1] == [b"unsubscribe"] and reply[2] == 0:
                return

    def forget(self, task_id: str) -> None:
        """Delete the result of ``task_id``."""
        self._db.command("DEL", self._key(task_id))

    def cleanup(self) -> int:
        """Nothing to do: Redis deletes expired results and keys by itself. Returns 0."""
        return 0

    # -- keys -----------------------------------------------------------------------------

    def incr(self, key: str, amount: int = 1, expires_in: float | None = None) -> int:
        """Add ``amount`` to counter ``key`` (missing or expired: 0) and return the sum.

        ``expires_in`` (re)sets the key's expiry; None keeps the one it has. Raises
        ValueError when the key holds something that is not an integer (or the sum overflows
        a 64-bit integer)."""
        ms = "" if expires_in is None else max(int(expires_in * 1000), 1)
        try:
            return int(self._db.run(_INCR, [self._kv(key)], [int(amount), ms], idempotent=False))
        except OperationalError as exc:
            if isinstance(exc.__cause__, ResponseError) and "integer" in str(exc.__cause__):
                raise ValueError(f"cannot increment {key!r}: {exc.__cause__}") from None
            raise

    def add_to_set(self, key: str, member: str, expires_in: float | None = None) -> int:
        """Add ``member`` to the set ``key``; returns its number of distinct members.

        ``expires_in`` (re)sets the set's expiry; None keeps the one it has."""
        ms = "" if expires_in is None else max(int(expires_in * 1000), 1)
        return int(self._db.run(_ADD_TO_SET, [self._kv(key)], [str(member), ms]))

    def set_members(self, key: str) -> list[str]:
        """The members of the set ``key``."""
        members = self._db.command("SMEMBERS", self._kv(key), idempotent=True) or []
        return sorted(m.decode() if isinstance(m, bytes) else str(m) for m in members)

    def set_value(
        self, key: str, value: bytes, expires_in: float | None = None, only_if_absent: bool = False
    ) -> bool:
        """Set ``key``; with ``only_if_absent`` only when missing or expired."""
        args = ["SET", self._kv(key), bytes(value), *_ms(expires_in)]
        if only_if_absent:
            args.append("NX")
        return self._db.command(*args, idempotent=not only_if_absent) is not None

    def get_value(self, key: str) -> bytes | None:
        """The value of ``key`` (counters as ASCII digits) unless missing or expired."""
        value = self._db.command("GET", self._kv(key))
        return None if value is None else bytes(value)

    def delete_value(self, key: str) -> None:
        """Delete ``key`` (a value, counter or set)."""
        self._db.command("DEL", self._kv(key))

    def close(self) -> None:
        """Close this process's connections (they reopen when the backend is used again)."""
        self._db.close()
