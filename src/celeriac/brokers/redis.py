"""A broker in Redis: ``redis://[:password@]host:6379/db`` or ``rediss://`` (TLS). Needs
Redis 7.0 or newer (``LMPOP``).

A message is stored as an *item*: its priority digit, the number of times it was delivered
before, a colon, then the encoded body (``50:{...}``). Waiting items are in one list per
queue and priority, ``ready:<queue>:<p>``, oldest first, so publishing is one ``RPUSH`` and
FIFO within a priority is the list's order. Delayed items are in the sorted set
``delayed:<queue>``, scored by their due time, each behind a unique tag (``<tag>|<item>``).

A fetch claims with one Lua script: it moves due delayed items to the back of their lists
and the items of expired leases to the front of theirs (keeping their place), then pops up to
its limit with ``LMPOP`` over the queues' lists in delivery order (priority 9 first, then the
order of the queues). Everything one fetch claims from a queue is one *lease*: the hash
``lease:<queue>:<id>`` holds the items by their position (1, 2, ...), and ``leased:<queue>``
scores the lease id by its deadline in whole milliseconds. A delivery's tag is its lease id
and position. Settling deletes the position from the lease's hash, so a delivery whose lease
expired (and was given back to the queue) settles nothing; the last settled position ends
the lease. Claiming and acknowledging therefore cost a few commands per batch, not per
message, and a message's bytes are written once when published and once when claimed.

Publishing and releasing push a token to ``wake:<queue>`` (cut back to a few tokens, and set
to expire when nobody pops them, by every release and by one publish in ``TRIM_EVERY``); an
idle ``fetch`` waits in ``BLPOP`` on those lists, on its own connection, for no longer than
until the next delayed message or lease is due, with the claim script sent right behind it:
Redis runs the claim the moment the wait ends, so a woken fetch has its messages without
another round trip. ``wakeup`` interrupts the wait through a local socket pair and ends the
``BLPOP`` with ``CLIENT UNBLOCK``, so the claim behind it is still read, never lost. Due
times and deadlines are the Redis server's clock (``TIME`` in
the scripts); ETAs are UNIX times compared with it.
"""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from typing import Any

from ..connections.redis import RedisClient, Script, never, pack
from ..exceptions import OperationalError
from ..utils.io import Waker
from .base import (
    DeadLetter,
    Delivery,
    Outgoing,
    QueueStats,
    dead_letter_queue,
    int_or_none,
    visibility_timeout,
)

WAKE_TOKENS = 16  # tokens kept at most in a queue's wake list
WAKE_TTL_MS = 60_000  # a wake list nobody pops disappears after this long
TRIM_EVERY = 16  # a producer trims a wake list (and sets its TTL) once per so many publishes
CHUNK = 1000  # arguments per command inside a script (Lua's unpack has a stack limit)
#: the item header of a message published with priority p (never delivered before)
HEADERS = [b"%d0:" % p for p in range(10)]

_NOW = """
local t = redis.call('TIME')
local now_ms = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local now = now_ms / 1000
"""

_HELPERS = (
    f"local CHUNK = {CHUNK}\n"
    + """
-- An item is its priority digit, its delivery count, a colon, then the body. Bytes that are
-- not an item (written by something else) are taken as a body with priority p, so they
-- reach a worker, which dead-letters what it cannot read: nothing in a queue breaks these
-- scripts.
local function sane(item, p)
  local head = string.match(item, '^%d%d+:')
  if head and #head <= 12 then return item end
  return p .. '0:' .. item
end
local function each_chunk(cmd, key, items)
  for s = 1, #items, CHUNK do
    redis.call(cmd, key, unpack(items, s, math.min(s + CHUNK - 1, #items)))
  end
end
-- an item given back to its queue counts one more delivery
local function bump(item)
  item = sane(item, '0')
  local c = string.find(item, ':', 2, true)
  return string.sub(item, 1, 1) .. (tonumber(string.sub(item, 2, c - 1)) + 1)
    .. string.sub(item, c)
end
local function wake(key, count, cap, ttl)
  local tokens = {}
  for i = 1, math.min(count, cap) do tokens[i] = '1' end
  redis.call('RPUSH', key, unpack(tokens))
  redis.call('LTRIM', key, 0, cap - 1)
  redis.call('PEXPIRE', key, ttl)
end
-- settling one position of a lease; the lease ends with its last position
local function take(leased, lease_key, lease, index)
  local item = redis.call('HGET', lease_key, index)
  if not item then return nil end
  redis.call('HDEL', lease_key, index)
  if redis.call('EXISTS', lease_key) == 0 then redis.call('ZREM', leased, lease) end
  return sane(item, '0')
end
"""
)

# Per queue, KEYS[base + 1 .. base + 10] are its ready lists (priority 9 first), then
# KEYS[base + 11] its delayed set and KEYS[base + 12] its lease deadlines; ARGV[first_prefix
# + q] is the prefix of its lease hashes.
_QUEUE = """
local function ready_of(base, item)
  return KEYS[base + 10 - (string.byte(item, 1) - 48)]
end
-- due delayed items to the back of their lists, expired leases' items to the front
local function due_back(base, prefix, now, now_ms)
  local delayed = KEYS[base + 11]
  local due = redis.call('ZRANGEBYSCORE', delayed, '-inf', now, 'LIMIT', 0, CHUNK)
  for _, m in ipairs(due) do
    local bar = string.find(m, '|', 1, true)
    local item = sane(bar and string.sub(m, bar + 1) or m, '0')
    redis.call('RPUSH', ready_of(base, item), item)
  end
  if #due > 0 then each_chunk('ZREM', delayed, due) end
  local leased = KEYS[base + 12]
  local expired = redis.call('ZRANGEBYSCORE', leased, '-inf', now_ms)
  for _, lease in ipairs(expired) do
    local flat = redis.pcall('HGETALL', prefix .. lease)
    if flat.err then flat = {} end  -- not a lease's hash (written by something else)
    local held = {}
    for j = 1, #flat, 2 do held[#held + 1] = {tonumber(flat[j]) or 0, flat[j + 1]} end
    table.sort(held, function(a, b) return a[1] > b[1] end)
    for _, e in ipairs(held) do
      local item = bump(e[2])
      redis.call('LPUSH', ready_of(base, item), item)
    end
    redis.call('DEL', prefix .. lease)
  end
  if #expired > 0 then each_chunk('ZREM', leased, expired) end
end
"""

# KEYS: lease sequence, then per queue: its 12 keys.  ARGV: limit, visibility timeout (ms),
# then per queue: the prefix of its lease hashes.
# Returns {ms until the next delayed message or lease is due (-1: none), the lease id,
# then per run of items from one list: queue index, position of its first item, count,
# the items}.
_CLAIM = Script(
    _NOW
    + _HELPERS
    + _QUEUE
    + """
local limit, vt, nq = tonumber(ARGV[1]), tonumber(ARGV[2]), (#KEYS - 1) / 12
for q = 0, nq - 1 do due_back(1 + q * 12, ARGV[3 + q], now, now_ms) end
local args, owner, level = {nq * 10}, {}, {}
for p = 9, 0, -1 do
  for q = 0, nq - 1 do
    local k = KEYS[1 + q * 12 + 10 - p]
    args[#args + 1] = k
    owner[k] = q
    level[k] = tostring(p)
  end
end
args[#args + 1] = 'LEFT'
args[#args + 1] = 'COUNT'
args[#args + 1] = limit
local out, got, lease, stored, counts = {-1, 0}, 0, nil, {}, {}
while got < limit do
  args[#args] = limit - got
  local popped = redis.call('LMPOP', unpack(args))
  if not popped then break end
  if not lease then
    lease = redis.call('INCR', KEYS[1])
    out[2] = lease
  end
  local q, items, p = owner[popped[1]], popped[2], level[popped[1]]
  local first = counts[q] or 0
  local fields = stored[q]
  if not fields then
    fields = {}
    stored[q] = fields
  end
  out[#out + 1], out[#out + 2], out[#out + 3] = q, first + 1, #items
  for j, item in ipairs(items) do
    item = sane(item, p)
    out[#out + 1] = item
    fields[#fields + 1], fields[#fields + 2] = first + j, item
  end
  counts[q] = first + #items
  got = got + #items
end
if lease then
  local deadline = now_ms + vt
  for q, fields in pairs(stored) do
    each_chunk('HSET', ARGV[3 + q] .. lease, fields)
    redis.call('ZADD', KEYS[1 + q * 12 + 12], deadline, lease)
  end
  return out
end
local due
for q = 0, nq - 1 do
  for j = 11, 12 do
    local head = redis.call('ZRANGE', KEYS[1 + q * 12 + j], 0, 0, 'WITHSCORES')
    local at = head[2] and tonumber(head[2]) / (j == 12 and 1000 or 1)  -- leases: ms
    if at and (not due or at < due) then due = at end
  end
end
if due then out[1] = math.max(math.ceil((due - now) * 1000), 1) end
return out
"""
)

# KEYS: per lease: its deadlines set, its hash.  ARGV: per lease: its id, how many
# positions, the positions.
_ACK = Script(
    _HELPERS
    + """
local a = 1
for g = 1, #KEYS, 2 do
  local n = tonumber(ARGV[a + 1])
  local positions = {}
  for j = a + 2, a + 1 + n do positions[#positions + 1] = ARGV[j] end
  each_chunk('HDEL', KEYS[g + 1], positions)
  if redis.call('EXISTS', KEYS[g + 1]) == 0 then redis.call('ZREM', KEYS[g], ARGV[a]) end
  a = a + 2 + n
end
return 1
"""
)

# KEYS: per lease: its deadlines set.  ARGV: visibility timeout (ms), then per lease: its id
_EXTEND = Script(
    _NOW
    + """
local deadline = now_ms + tonumber(ARGV[1])
for i = 1, #KEYS do redis.call('ZADD', KEYS[i], 'XX', deadline, ARGV[i + 1]) end
return 1
"""
)

# KEYS: deadlines set, lease hash, ready list, delayed, wake.
# ARGV: lease id, position, delay, wake cap, wake ttl
_RELEASE = Script(
    _NOW
    + _HELPERS
    + """
local item = take(KEYS[1], KEYS[2], ARGV[1], ARGV[2])
if not item then return 0 end
item = bump(item)
local delay = tonumber(ARGV[3])
if delay > 0 then
  redis.call('ZADD', KEYS[4], now + delay, 'r' .. ARGV[1] .. '.' .. ARGV[2] .. '|' .. item)
else
  redis.call('LPUSH', KEYS[3], item)
end
wake(KEYS[5], 1, tonumber(ARGV[4]), ARGV[5])
return 1
"""
)

# KEYS: deadlines set, lease hash, dead, dead data, dead seq.  ARGV: lease id, position, reason
_DEAD_LETTER = Script(
    _NOW
    + _HELPERS
    + """
local item = take(KEYS[1], KEYS[2], ARGV[1], ARGV[2])
if not item then return 0 end
local id = redis.call('INCR', KEYS[5])
redis.call('ZADD', KEYS[3], id, id)
redis.call('HSET', KEYS[4], 'b:' .. id, string.sub(item, string.find(item, ':', 2, true) + 1),
  'p:' .. id, string.sub(item, 1, 1), 'r:' .. id, ARGV[3], 't:' .. id, now)
return 1
"""
)

# KEYS: dead, dead data.  ARGV: limit.  Returns {id, body, reason, dead_at, ...}
_DEAD_LETTERS = Script(
    """
local out = {}
for _, id in ipairs(redis.call('ZRANGE', KEYS[1], 0, tonumber(ARGV[1]) - 1)) do
  local v = redis.call('HMGET', KEYS[2], 'b:' .. id, 'r:' .. id, 't:' .. id)
  out[#out + 1], out[#out + 2], out[#out + 3], out[#out + 4] = id, v[1], v[2], v[3]
end
return out
"""
)

# KEYS: dead, dead data, the queue's ready lists (9 to 0), wake.
# ARGV: wake cap, wake ttl, ids (none: all)
_REQUEUE = Script(
    _HELPERS
    + """
local ids = {}
if #ARGV > 2 then
  for i = 3, #ARGV do ids[#ids + 1] = ARGV[i] end
else
  ids = redis.call('ZRANGE', KEYS[1], 0, -1)
end
local moved = 0
for _, id in ipairs(ids) do
  if redis.call('ZSCORE', KEYS[1], id) then
    local v = redis.call('HMGET', KEYS[2], 'b:' .. id, 'p:' .. id)
    redis.call('RPUSH', KEYS[3 + 9 - tonumber(v[2])], v[2] .. '0:' .. v[1])
    redis.call('ZREM', KEYS[1], id)
    redis.call('HDEL', KEYS[2], 'b:' .. id, 'p:' .. id, 'r:' .. id, 't:' .. id)
    moved = moved + 1
  end
end
if moved > 0 then wake(KEYS[13], moved, tonumber(ARGV[1]), ARGV[2]) end
return moved
"""
)

# KEYS: one queue's 12 keys.  ARGV: its lease prefix.
# Deletes the waiting and delayed messages, expired leases' included; returns how many.
_PURGE = Script(
    _NOW
    + _HELPERS
    + _QUEUE
    + """
due_back(0, ARGV[1], now, now_ms)
local n = redis.call('ZCARD', KEYS[11])
for j = 1, 10 do n = n + redis.call('LLEN', KEYS[j]) end
redis.call('DEL', unpack(KEYS, 1, 11))
return n
"""
)

# KEYS: one queue's 12 keys, then its dead-letter index.  ARGV: its lease prefix.
# Returns {waiting, in flight, delayed, dead}. Reads only: due delayed items and the items of
# expired leases count as waiting where they are.
_STATS = Script(
    _NOW
    + """
local waiting, in_flight = 0, 0
for j = 1, 10 do waiting = waiting + redis.call('LLEN', KEYS[j]) end
local due = redis.call('ZCOUNT', KEYS[11], '-inf', now)
local delayed = redis.call('ZCARD', KEYS[11]) - due
waiting = waiting + due
local leases = redis.call('ZRANGE', KEYS[12], 0, -1, 'WITHSCORES')
for i = 1, #leases, 2 do
  local held = redis.pcall('HLEN', ARGV[1] .. leases[i])
  if type(held) ~= 'number' then held = 0 end  -- not a lease's hash (written by something else)
  if tonumber(leases[i + 1]) <= now_ms then
    waiting = waiting + held
  else
    in_flight = in_flight + held
  end
end
return {waiting, in_flight, delayed, redis.call('ZCARD', KEYS[13])}
"""
)


def _clamp(priority: int) -> int:
    return 0 if priority < 0 else 9 if priority > 9 else int(priority)


class _QueueKeys:
    """A queue's keys, and its publishing commands packed once."""

    __slots__ = ("lease_prefix", "published", "push", "script", "trim", "wake", "wake_token")

    def __init__(self, key: Any, queue: str) -> None:
        #: the claim script's 12 keys: ready lists 9 to 0, delayed, lease deadlines
        self.script = [key("ready", f"{queue}:{p}") for p in range(9, -1, -1)]
        self.script += [key("delayed", queue), key("leased", queue)]
        self.lease_prefix = key("lease", queue) + ":"
        self.wake = key("wake", queue)
        #: by priority, ``RPUSH <ready list>`` packed with room for the item
        self.push = [pack("RPUSH", k, more=1) for k in reversed(self.script[:10])]
        self.wake_token = pack("RPUSH", self.wake, 1)
        #: what keeps the wake list short and gone when nobody pops it (see TRIM_EVERY)
        self.trim = pack("LTRIM", self.wake, 0, WAKE_TOKENS - 1) + pack(
            "PEXPIRE", self.wake, WAKE_TTL_MS
        )
        self.published = 0


class RedisBroker:
    """A broker stored in Redis, shared by any number of processes and hosts."""

    local_leases = False

    def __init__(self, url: str, options: dict[str, Any] | None = None) -> None:
        options = options or {}
        self.url = url
        self.visibility_timeout = visibility_timeout(options)
        self._vt_ms = max(1, int(self.visibility_timeout * 1000))
        self._db = RedisClient(url, options)
        self._prefix = self._db.prefix
        self._waker = Waker()
        self._keys: dict[str, _QueueKeys] = {}
        self._fetching = False
        self._closing = False

    # -- keys -----------------------------------------------------------------------------

    def _key(self, kind: str, name: str) -> str:
        return f"{self._prefix}{kind}:{name}"

    def _queue(self, queue: str) -> _QueueKeys:
        known = self._keys.get(queue)
        if known is None:
            known = self._keys[queue] = _QueueKeys(self._key, queue)
        return known

    def _dead_keys(self, queue: str) -> list[str]:
        """The dead-letter index and data of ``queue``."""
        dlq = dead_letter_queue(queue)
        return [self._key("dead", dlq), self._key("deaddata", dlq)]

    # -- publishing -----------------------------------------------------------------------

    def publish(self, messages: Sequence[Outgoing]) -> None:
        """Store ``messages`` and wake their queues' fetchers, in one round trip: per queue
        one ``RPUSH`` for each priority (and one ``ZADD`` for the delayed ones), then the
        wake tokens. The commands are packed here: most of their bytes are the items."""
        if not messages:
            return
        if len(messages) == 1:  # the common call, delay(): two commands
            m = messages[0]
            q = self._queue(m.queue)
            p = _clamp(m.priority)
            if m.eta is None:
                data = q.push[p] + _bulk(HEADERS[p], m.body)
            else:
                data = pack("ZADD", q.script[10], more=2) + _delayed(m.eta, p, m.body)
            q.published += 1
            trim = q.published % TRIM_EVERY == 1
            data += q.wake_token + q.trim if trim else q.wake_token
            self._db.execute_packed(data, 4 if trim else 2, idempotent=False, stop=never)
            return
        ready: dict[tuple[str, int], list[bytes]] = {}  # (queue, priority) -> packed items
        delayed: dict[str, list[bytes]] = {}  # queue -> packed scores and members
        counts: dict[str, int] = {}
        for m in messages:
            p = _clamp(m.priority)
            if m.eta is None:
                ready.setdefault((m.queue, p), []).append(_bulk(HEADERS[p], m.body))
            else:
                delayed.setdefault(m.queue, []).append(_delayed(m.eta, p, m.body))
            counts[m.queue] = counts.get(m.queue, 0) + 1
        parts: list[bytes] = []
        count = 0
        for (queue, p), items in ready.items():
            key = self._queue(queue).script[9 - p]
            for s in range(0, len(items), 10 * CHUNK):
                chunk = items[s : s + 10 * CHUNK]
                parts += (pack("RPUSH", key, more=len(chunk)), *chunk)
                count += 1
        for queue, pairs in delayed.items():
            key = self._queue(queue).script[10]
            for s in range(0, len(pairs), 10 * CHUNK):
                chunk = pairs[s : s + 10 * CHUNK]
                parts += (pack("ZADD", key, more=2 * len(chunk)), *chunk)
                count += 1
        for queue, n in counts.items():
            q = self._queue(queue)
            parts += (pack("RPUSH", q.wake, *["1"] * min(n, WAKE_TOKENS)), q.trim)
            count += 3
        # no retries: the producer's retry policy decides (a retry after the reply was lost
        # would store the messages twice)
        self._db.execute_packed(b"".join(parts), count, idempotent=False, stop=never)

    # -- fetching -------------------------------------------------------------------------

    def fetch(
        self,
        queues: Sequence[str],
        limit: int,
        timeout: float,
        acks: Sequence[Delivery] = (),
    ) -> list[Delivery]:
        """Acknowledge ``acks`` and claim up to ``limit`` due messages in one round trip,
        waiting up to ``timeout`` for one."""
        names = list(dict.fromkeys(queues))
        if not names or limit <= 0:
            self.ack_many(acks)
            return []
        deadline = time.monotonic() + max(timeout, 0.0)
        keys: list[str] = [self._prefix + "leaseseq"]
        args: list[Any] = [limit, self._vt_ms]
        wake_keys = []
        for name in names:
            q = self._queue(name)
            keys += q.script
            args.append(q.lease_prefix)
            wake_keys.append(q.wake)
        claim = (_CLAIM, keys, args)
        self._fetching = True
        try:
            broken = False
            reply = None  # a claim sent along with the last wait
            while True:
                if reply is None:
                    claimed, due_in = self._claim(claim, names, acks)
                    acks = ()
                else:
                    claimed, due_in = self._claimed(reply, names)
                if claimed:
                    return claimed
                if self._waker.consume():
                    return []
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return []
                if due_in is not None:
                    remaining = min(remaining, due_in)
                # a lease taken elsewhere meanwhile is due at the soonest this much later
                remaining = min(remaining, self.visibility_timeout)
                # a broken wait is retried once (after a claim); twice in a row raises
                ok, reply = self._db.blpop(wake_keys, remaining, self._waker, broken, claim)
                broken = not ok
        finally:
            self._fetching = False
            if self._closing:
                self._closing = False
                self._db.close_blocking()

    def _claim(
        self,
        claim: tuple[Script, list[str], list[Any]],
        names: list[str],
        acks: Sequence[Delivery],
    ) -> tuple[list[Delivery], float | None]:
        """Acknowledge ``acks`` and run ``claim``; what it claimed, or in how many seconds
        the next message is due."""
        stop = lambda: self._waker.woken  # noqa: E731
        try:
            if acks:
                reply = self._db.run_many([self._ack_call(acks), claim], stop)[1]
            else:
                reply = self._db.run(*claim, stop=stop)
        except OperationalError as exc:
            if "Unknown Redis command" in str(exc):  # LMPOP
                raise OperationalError(
                    f"{exc} (the Redis broker needs Redis 7.0 or newer)"
                ) from exc
            raise
        return self._claimed(reply, names)

    @staticmethod
    def _claimed(reply: Any, names: list[str]) -> tuple[list[Delivery], float | None]:
        """The deliveries in a claim's reply, and in how many seconds the next one is due."""
        deliveries = []
        lease = str(reply[1])
        i, end = 2, len(reply)
        while i < end:
            queue, first, n = names[reply[i]], reply[i + 1], reply[i + 2]
            i += 3
            for position in range(first, first + n):
                item = reply[i]
                i += 1
                colon = item.index(b":", 1)
                count = int(item[1:colon]) + 1
                deliveries.append(
                    Delivery(item[colon + 1 :], queue, item[0] - 48, (lease, position), count)
                )
        due_ms = reply[0]
        return deliveries, (None if due_ms < 0 else due_ms / 1000.0)

    def wakeup(self) -> None:
        """Make this broker's blocked (or next) ``fetch`` return at once.

        Safe to call from a signal handler: it sets a flag and writes one byte."""
        self._waker.wake()

    # -- settling -------------------------------------------------------------------------

    def _leases(self, deliveries: Sequence[Delivery]) -> dict[tuple[str, str], list[int]]:
        """The positions of ``deliveries`` by queue and lease."""
        leases: dict[tuple[str, str], list[int]] = {}
        for d in deliveries:
            lease, position = d.tag
            held = leases.get((d.queue, lease))
            if held is None:
                leases[d.queue, lease] = [position]
            else:
                held.append(position)
        return leases

    def extend(self, deliveries: Sequence[Delivery]) -> None:
        """Push the deadlines of the leases ``deliveries`` hold to now + visibility_timeout."""
        if not deliveries:
            return
        keys: list[str] = []
        args: list[Any] = [self._vt_ms]
        for queue, lease in self._leases(deliveries):
            keys.append(self._queue(queue).script[11])
            args.append(lease)
        self._db.run(_EXTEND, keys, args)

    def ack(self, delivery: Delivery) -> None:
        """Delete the message if ``delivery`` still holds its lease."""
        self.ack_many([delivery])

    def ack_many(self, deliveries: Sequence[Delivery]) -> None:
        """Delete the messages whose deliveries still hold their leases, in one script."""
        if deliveries:
            self._db.run(*self._ack_call(deliveries))

    def _ack_call(self, deliveries: Sequence[Delivery]) -> tuple[Script, list[str], list[Any]]:
        keys: list[str] = []
        args: list[Any] = []
        for (queue, lease), positions in self._leases(deliveries).items():
            q = self._queue(queue)
            keys += (q.script[11], q.lease_prefix + lease)
            args += (lease, len(positions), *positions)
        return _ACK, keys, args

    def _held(self, delivery: Delivery) -> tuple[list[str], list[Any]]:
        """The keys and arguments that name ``delivery``'s lease: deadlines, hash; id, position."""
        q = self._queue(delivery.queue)
        lease, position = delivery.tag
        return [q.script[11], q.lease_prefix + lease], [lease, position]

    def release(self, delivery: Delivery, delay: float | None = None) -> None:
        """Make the message due again (after ``delay`` seconds), keeping its place."""
        keys, args = self._held(delivery)
        q = self._queue(delivery.queue)
        keys += [q.script[9 - _clamp(delivery.priority)], q.script[10], q.wake]
        args += [repr(float(delay or 0.0)), WAKE_TOKENS, WAKE_TTL_MS]
        self._db.run(_RELEASE, keys, args)

    def dead_letter(self, delivery: Delivery, reason: str) -> None:
        """Move the message to its queue's dead letters, with ``reason`` and the time."""
        keys, args = self._held(delivery)
        keys += [*self._dead_keys(delivery.queue), self._prefix + "deadseq"]
        self._db.run(_DEAD_LETTER, keys, [*args, str(reason)])

    # -- inspecting and managing ----------------------------------------------------------

    def queue_length(self, queue: str) -> int:
        """Messages waiting, delayed or leased in ``queue``."""
        stats = self.queue_stats(queue)
        return stats.waiting + (stats.in_flight or 0) + (stats.delayed or 0)

    def queue_stats(self, queue: str) -> QueueStats:
        """The counts, exact, in one script that only reads.

        ``oldest_age`` is None: a waiting item holds no time (publishing is a bare ``RPUSH``,
        and a due delayed item moves to its list without its due time)."""
        q = self._queue(queue)
        keys = [*q.script, self._dead_keys(queue)[0]]
        waiting, in_flight, delayed, dead = self._db.run(_STATS, keys, [q.lease_prefix])
        return QueueStats(queue, int(waiting), int(in_flight), int(delayed), int(dead), None)

    def purge(self, queue: str) -> int:
        """Delete the messages of ``queue`` that are not under a live lease."""
        q = self._queue(queue)
        return int(self._db.run(_PURGE, q.script, [q.lease_prefix], idempotent=False))

    def dead_letters(self, queue: str, limit: int = 100) -> list[DeadLetter]:
        """The oldest ``limit`` dead letters of ``queue``."""
        if limit <= 0:
            return []
        reply = self._db.run(_DEAD_LETTERS, self._dead_keys(queue), [int(limit)])
        return [
            DeadLetter(int(i), bytes(body or b""), queue, (reason or b"").decode(), float(at))
            for i, body, reason, at in (reply[j : j + 4] for j in range(0, len(reply), 4))
        ]

    def requeue_dead_letters(self, queue: str, ids: Sequence[Any] | None = None) -> int:
        """Publish dead letters (all, or those ``ids``) to ``queue`` again, oldest first."""
        args: list[Any] = [WAKE_TOKENS, WAKE_TTL_MS]
        if ids is not None:
            wanted = sorted({i for i in map(int_or_none, ids) if i is not None})
            if not wanted:
                return 0
            args += wanted
        q = self._queue(queue)
        keys = [*self._dead_keys(queue), *q.script[:10], q.wake]
        return int(self._db.run(_REQUEUE, keys, args, idempotent=False))

    def purge_dead_letters(self, queue: str) -> int:
        """Delete the dead letters of ``queue``."""
        index, data = self._dead_keys(queue)
        replies = self._db.execute(("MULTI",), ("ZCARD", index), ("DEL", index, data), ("EXEC",))
        return int(replies[-1][0])

    # -- lifecycle ------------------------------------------------------------------------

    def close(self) -> None:
        """Close this process's connections (they reopen when the broker is used again).

        A ``fetch`` blocked in another thread is woken and closes its own connection."""
        self._db.close()
        if self._fetching:
            self._closing = True
            self.wakeup()
            return
        self._db.close_blocking()
        self._waker.close()


def _bulk(header: bytes, body: bytes) -> bytes:
    """An item (``header`` then ``body``) packed as one argument of a command."""
    return b"$%d\r\n%b%b\r\n" % (len(header) + len(body), header, body)


def _delayed(eta: float, priority: int, body: bytes) -> bytes:
    """A delayed item packed as the two arguments of a ``ZADD``: its due time, and its
    member in the sorted set (a unique tag, then the item)."""
    tag = os.urandom(8).hex().encode() + b"|" + HEADERS[priority]
    return _bulk(b"", repr(float(eta)).encode()) + _bulk(tag, body)
