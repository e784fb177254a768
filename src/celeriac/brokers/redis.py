"""A broker in Redis: ``redis://[:password@]host:6379/db`` or ``rediss://`` (TLS).

Each message is a member of sorted sets named after its queue: the member is its place, the
priority digit ``9 - priority`` followed by a 16-digit sequence number from ``INCR``, so plain
byte order is delivery order (priority 9 first, FIFO within a priority). Waiting messages are
in ``ready:<queue>`` (all scored 0, ordered by member), delayed ones in ``delayed:<queue>``
scored by their due time and leased ones in ``leased:<queue>`` scored by their lease
deadline in whole milliseconds (a small sorted set keeps its scores as text in a compact
list, where an integer is compared without parsing a float); bodies and delivery counts are
fields of the hash ``msgs:<queue>``. Every change is one Lua script, so it is atomic. A fetch
first moves due delayed messages and expired leases back to ``ready`` (keeping their place),
then claims the best members across its queues; the delivery count, raised by each claim, is
the lease token that settling checks.

Publishing and releasing push a token to ``wake:<queue>``; an idle ``fetch`` waits in
``BLPOP`` on those lists, on its own connection, for no longer than until the next delayed
message or lease is due, with the claim script sent right behind it: Redis runs the claim
the moment the wait ends, so a woken fetch has its messages without another round trip.
``wakeup`` interrupts the wait through a local socket pair and ends the ``BLPOP`` with
``CLIENT UNBLOCK``, so the claim behind it is still read, never lost. Times are the Redis
server's clock (``TIME`` inside the scripts); ETAs are UNIX times compared with it.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

from .._redis import RedisClient, Script, Waker, never
from .base import (
    DeadLetter,
    Delivery,
    Outgoing,
    dead_letter_queue,
    int_or_none,
    visibility_timeout,
)

WAKE_TOKENS = 16  # tokens kept at most in a queue's wake list
WAKE_TTL_MS = 60_000  # a wake list nobody pops disappears after this long

_NOW = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local now_ms = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
"""

_WAKE = """
local function wake(key, count, cap, ttl)
  local room = cap - redis.call('LLEN', key)
  if room <= 0 then return end  -- enough tokens wait already
  local tokens = {}
  for i = 1, math.min(count, room) do tokens[i] = '1' end
  redis.call('RPUSH', key, unpack(tokens))
  redis.call('PEXPIRE', key, ttl)
end
"""

# one command with many arguments, sent in chunks (Lua's stack limits unpack)
_CHUNKS = """
local function each_chunk(cmd, key, items)
  for s = 1, #items, 1000 do
    redis.call(cmd, key, unpack(items, s, math.min(s + 999, #items)))
  end
end
"""

# KEYS: the lease of one delivery (leased, msgs); ARGV[1], ARGV[2]: member, delivery count
_HELD = """
local member = ARGV[1]
local function held()
  return redis.call('ZSCORE', KEYS[1], member)
    and redis.call('HGET', KEYS[2], 'n:' .. member) == ARGV[2]
end
"""

# KEYS: seq, then per queue: ready, delayed, msgs, wake
# ARGV: wake cap, wake ttl, then per message: queue index (0-based), priority, eta, body
# Writes are gathered per queue and sent as multi-member HSET/ZADD calls: a batch costs a
# few commands per queue instead of three per message.
_PUBLISH = Script(
    _WAKE
    + _CHUNKS
    + """
local now  -- the server's clock, read only when a message has an eta
local n = (#ARGV - 2) / 4
local first = redis.call('INCRBY', KEYS[1], n) - n
local batches = {}
for i = 0, n - 1 do
  local a = 3 + i * 4
  local q = tonumber(ARGV[a])
  local b = batches[q]
  if not b then
    b = {bodies = {}, ready = {}, delayed = {}, count = 0}
    batches[q] = b
  end
  local member = string.format('%d%016d', 9 - tonumber(ARGV[a + 1]), first + i + 1)
  local bodies = b.bodies
  bodies[#bodies + 1] = 'b:' .. member
  bodies[#bodies + 1] = ARGV[a + 3]
  local eta = tonumber(ARGV[a + 2])
  if eta and not now then
    local t = redis.call('TIME')
    now = tonumber(t[1]) + tonumber(t[2]) / 1000000
  end
  if eta and eta > now then
    b.delayed[#b.delayed + 1] = ARGV[a + 2]
    b.delayed[#b.delayed + 1] = member
  else
    b.ready[#b.ready + 1] = 0
    b.ready[#b.ready + 1] = member
  end
  b.count = b.count + 1
end
for q, b in pairs(batches) do
  local k = 2 + q * 4
  each_chunk('HSET', KEYS[k + 2], b.bodies)
  each_chunk('ZADD', KEYS[k], b.ready)
  each_chunk('ZADD', KEYS[k + 1], b.delayed)
  wake(KEYS[k + 3], b.count, tonumber(ARGV[1]), ARGV[2])
end
return n
"""
)

# KEYS: per queue: ready, delayed, leased, msgs.  ARGV: limit, visibility timeout
# Returns {ms until the next delayed message or lease is due (-1: none), then per claimed
# message: queue index, member, delivery count, body}.
_CLAIM = Script(
    _NOW
    + _CHUNKS
    + """
local limit, nq = tonumber(ARGV[1]), #KEYS / 4
local function promote(from, to, upto)
  local due = redis.call('ZRANGEBYSCORE', from, '-inf', upto)
  for _, m in ipairs(due) do redis.call('ZADD', to, 0, m) end
  if #due > 0 then redis.call('ZREMRANGEBYSCORE', from, '-inf', upto) end
end
local picked = {}
for q = 0, nq - 1 do
  local ready = KEYS[q * 4 + 1]
  promote(KEYS[q * 4 + 2], ready, now)
  promote(KEYS[q * 4 + 3], ready, now_ms)
  for _, m in ipairs(redis.call('ZRANGE', ready, 0, limit - 1)) do
    picked[#picked + 1] = {string.byte(m, 1), q, m}
  end
end
table.sort(picked, function(a, b)
  if a[1] ~= b[1] then return a[1] < b[1] end
  if a[2] ~= b[2] then return a[2] < b[2] end
  return a[3] < b[3]
end)
local out, deadline = {-1}, now_ms + math.floor(tonumber(ARGV[2]) * 1000)
local taken, bodies = {}, {}
for i = 1, math.min(limit, #picked) do
  local q, m = picked[i][2], picked[i][3]
  if not taken[q] then taken[q], bodies[q] = {}, {} end
  taken[q][#taken[q] + 1] = m
end
for q, members in pairs(taken) do  -- a few commands per queue, not three per message
  local k, fields, leases = q * 4, {}, {}
  for j, m in ipairs(members) do fields[j] = 'b:' .. m end
  each_chunk('ZREM', KEYS[k + 1], members)
  for s = 1, #fields, 1000 do
    local got = redis.call('HMGET', KEYS[k + 4], unpack(fields, s, math.min(s + 999, #fields)))
    for j, body in ipairs(got) do
      if body then
        local m = members[s + j - 1]
        bodies[q][m] = body
        leases[#leases + 1], leases[#leases + 2] = deadline, m
      end
    end
  end
  each_chunk('ZADD', KEYS[k + 3], leases)
end
for i = 1, math.min(limit, #picked) do
  local q, m = picked[i][2], picked[i][3]
  local body = bodies[q][m]
  if body then
    local n = redis.call('HINCRBY', KEYS[q * 4 + 4], 'n:' .. m, 1)
    out[#out + 1], out[#out + 2], out[#out + 3], out[#out + 4] = q, m, n, body
  end
end
if #out == 1 then
  local due
  for q = 0, nq - 1 do
    for j = 2, 3 do
      local head = redis.call('ZRANGE', KEYS[q * 4 + j], 0, 0, 'WITHSCORES')
      local at = head[2] and tonumber(head[2]) / (j == 3 and 1000 or 1)  -- leases: ms
      if at and (not due or at < due) then due = at end
    end
  end
  if due then out[1] = math.max(math.ceil((due - now) * 1000), 1) end
end
return out
"""
)

# KEYS: per delivery: leased, msgs.  ARGV: per delivery: member, delivery count
_ACK = Script(
    _CHUNKS
    + """
local n, held = 0, {}
for i = 1, #KEYS / 2 do
  local leased, msgs = KEYS[i * 2 - 1], KEYS[i * 2]
  local m, count = ARGV[i * 2 - 1], ARGV[i * 2]
  if redis.call('ZSCORE', leased, m) and redis.call('HGET', msgs, 'n:' .. m) == count then
    local h = held[leased]
    if not h then
      h = {msgs, {}, {}}
      held[leased] = h
    end
    h[2][#h[2] + 1] = m
    h[3][#h[3] + 1], h[3][#h[3] + 2] = 'b:' .. m, 'n:' .. m
    n = n + 1
  end
end
for leased, h in pairs(held) do  -- the writes: two commands per queue
  each_chunk('ZREM', leased, h[2])
  each_chunk('HDEL', h[1], h[3])
end
return n
"""
)

# KEYS: leased, msgs, ready, delayed, wake.  ARGV: member, count, delay, wake cap, wake ttl
_RELEASE = Script(
    _NOW
    + _WAKE
    + _HELD
    + """
if not held() then return 0 end
redis.call('ZREM', KEYS[1], member)
local delay = tonumber(ARGV[3])
if delay > 0 then
  redis.call('ZADD', KEYS[4], now + delay, member)
else
  redis.call('ZADD', KEYS[3], 0, member)
end
wake(KEYS[5], 1, tonumber(ARGV[4]), ARGV[5])
return 1
"""
)

# KEYS: per delivery: leased, msgs.  ARGV: visibility timeout, then per delivery: member, count
_EXTEND = Script(
    _NOW
    + """
local deadline, n = now_ms + math.floor(tonumber(ARGV[1]) * 1000), 0
for i = 1, #KEYS / 2 do
  local leased, msgs = KEYS[i * 2 - 1], KEYS[i * 2]
  local m, count = ARGV[i * 2], ARGV[i * 2 + 1]
  if redis.call('ZSCORE', leased, m) and redis.call('HGET', msgs, 'n:' .. m) == count then
    redis.call('ZADD', leased, deadline, m)
    n = n + 1
  end
end
return n
"""
)

# KEYS: leased, msgs, dead, dead data, dead seq.  ARGV: member, count, reason
_DEAD_LETTER = Script(
    _NOW
    + _HELD
    + """
if not held() then return 0 end
local id = redis.call('INCR', KEYS[5])
redis.call('ZADD', KEYS[3], id, id)
redis.call('HSET', KEYS[4], 'b:' .. id, redis.call('HGET', KEYS[2], 'b:' .. member),
  'p:' .. id, 9 - tonumber(string.sub(member, 1, 1)), 'r:' .. id, ARGV[3], 't:' .. id, now)
redis.call('ZREM', KEYS[1], member)
redis.call('HDEL', KEYS[2], 'b:' .. member, 'n:' .. member)
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

# KEYS: dead, dead data, seq, ready, msgs, wake.  ARGV: wake cap, wake ttl, ids (none: all)
_REQUEUE = Script(
    _WAKE
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
    local member = string.format('%d%016d', 9 - tonumber(v[2]), redis.call('INCR', KEYS[3]))
    redis.call('HSET', KEYS[5], 'b:' .. member, v[1])
    redis.call('ZADD', KEYS[4], 0, member)
    redis.call('ZREM', KEYS[1], id)
    redis.call('HDEL', KEYS[2], 'b:' .. id, 'p:' .. id, 'r:' .. id, 't:' .. id)
    moved = moved + 1
  end
end
if moved > 0 then wake(KEYS[6], moved, tonumber(ARGV[1]), ARGV[2]) end
return moved
"""
)

# KEYS: ready, delayed, leased, msgs.  Deletes waiting and delayed messages (expired leases
# count as waiting); returns how many.
_PURGE = Script(
    _NOW
    + """
local n = 0
for _, m in ipairs(redis.call('ZRANGEBYSCORE', KEYS[3], '-inf', now_ms)) do
  redis.call('ZADD', KEYS[1], 0, m)
end
redis.call('ZREMRANGEBYSCORE', KEYS[3], '-inf', now_ms)
for k = 1, 2 do
  for _, m in ipairs(redis.call('ZRANGE', KEYS[k], 0, -1)) do
    redis.call('HDEL', KEYS[4], 'b:' .. m, 'n:' .. m)
    n = n + 1
  end
  redis.call('DEL', KEYS[k])
end
return n
"""
)


def _tag(delivery: Delivery) -> tuple[str, str]:
    member, count = delivery.tag
    return str(member), str(int(count))


class RedisBroker:
    """A broker stored in Redis, shared by any number of processes and hosts."""

    def __init__(self, url: str, options: dict[str, Any] | None = None) -> None:
        options = options or {}
        self.url = url
        self.visibility_timeout = visibility_timeout(options)
        self._db = RedisClient(url, options)
        self._prefix = self._db.prefix
        self._waker = Waker()
        self._keys: dict[str, list[str]] = {}  # per queue, see _queue_keys
        self._fetching = False
        self._closing = False

    # -- keys -----------------------------------------------------------------------------

    def _key(self, kind: str, name: str) -> str:
        return f"{self._prefix}{kind}:{name}"

    def _queue_keys(self, queue: str) -> list[str]:
        """ready, delayed, leased, msgs, wake."""
        keys = self._keys.get(queue)
        if keys is None:
            kinds = ("ready", "delayed", "leased", "msgs", "wake")
            keys = self._keys[queue] = [self._key(kind, queue) for kind in kinds]
        return keys

    def _lease_keys(self, delivery: Delivery) -> list[str]:
        return self._queue_keys(delivery.queue)[2:4]

    def _dead_keys(self, queue: str) -> list[str]:
        """The dead-letter index and data of ``queue``."""
        dlq = dead_letter_queue(queue)
        return [self._key("dead", dlq), self._key("deaddata", dlq)]

    # -- publishing -----------------------------------------------------------------------

    def publish(self, messages: Sequence[Outgoing]) -> None:
        """Store ``messages`` and wake their queues' fetchers, in one script."""
        if not messages:
            return
        order = {q: i for i, q in enumerate(dict.fromkeys(m.queue for m in messages))}
        keys = [self._prefix + "seq"]
        for queue in order:
            ready, delayed, _, msgs, wake = self._queue_keys(queue)
            keys += [ready, delayed, msgs, wake]
        args: list[Any] = [WAKE_TOKENS, WAKE_TTL_MS]
        placed: dict[tuple[str, int, float | None], tuple[int, int, str]] = {}
        for m in messages:  # a group's members share their queue, priority and eta
            where = placed.get((m.queue, m.priority, m.eta))
            if where is None:
                eta = "" if m.eta is None else repr(float(m.eta))
                where = (order[m.queue], min(max(int(m.priority), 0), 9), eta)
                placed[m.queue, m.priority, m.eta] = where
            args += where
            args.append(m.body)
        # no retries here: the producer's retry policy decides (a retry after the reply was
        # lost would store the messages twice)
        self._db.run(_PUBLISH, keys, args, idempotent=False, stop=never)

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
        wake_keys = [self._queue_keys(name)[4] for name in names]
        claim = (
            _CLAIM,
            [key for name in names for key in self._queue_keys(name)[:4]],
            [limit, repr(self.visibility_timeout)],
        )
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
        if acks:
            reply = self._db.run_many([self._ack_call(acks), claim], stop)[1]
        else:
            reply = self._db.run(*claim, stop=stop)
        return self._claimed(reply, names)

    def _claimed(self, reply: Any, names: list[str]) -> tuple[list[Delivery], float | None]:
        """The deliveries in a claim's reply, and in how many seconds the next one is due."""
        deliveries = []
        for i in range(1, len(reply), 4):
            index, member, count, body = reply[i : i + 4]
            member = member.decode()
            deliveries.append(
                Delivery(
                    body=bytes(body),
                    queue=names[int(index)],
                    priority=9 - int(member[0]),
                    tag=(member, int(count)),
                    delivery_count=int(count),
                )
            )
        due_ms = int(reply[0])
        return deliveries, (None if due_ms < 0 else due_ms / 1000.0)

    def wakeup(self) -> None:
        """Make this broker's blocked (or next) ``fetch`` return at once.

        Safe to call from a signal handler: it sets a flag and writes one byte."""
        self._waker.wake()

    # -- settling -------------------------------------------------------------------------

    def extend(self, deliveries: Sequence[Delivery]) -> None:
        """Push the lease deadlines of ``deliveries`` still held to now + visibility_timeout."""
        if not deliveries:
            return
        keys: list[str] = []
        args: list[Any] = [repr(self.visibility_timeout)]
        for d in deliveries:
            keys += self._lease_keys(d)
            args += _tag(d)
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
        for d in deliveries:
            keys += self._lease_keys(d)
            args += _tag(d)
        return _ACK, keys, args

    def release(self, delivery: Delivery, delay: float | None = None) -> None:
        """Make the message due again (after ``delay`` seconds), keeping its place."""
        queue = delivery.queue
        keys = self._lease_keys(delivery)
        keys += [self._key("ready", queue), self._key("delayed", queue), self._key("wake", queue)]
        args = [*_tag(delivery), repr(float(delay or 0.0)), WAKE_TOKENS, WAKE_TTL_MS]
        self._db.run(_RELEASE, keys, args)

    def dead_letter(self, delivery: Delivery, reason: str) -> None:
        """Move the message to its queue's dead letters, with ``reason`` and the time."""
        keys = [*self._lease_keys(delivery), *self._dead_keys(delivery.queue)]
        keys.append(self._prefix + "deadseq")
        self._db.run(_DEAD_LETTER, keys, [*_tag(delivery), str(reason)])

    # -- inspecting and managing ----------------------------------------------------------

    def queue_length(self, queue: str) -> int:
        """Messages waiting, delayed or leased in ``queue``."""
        ready, delayed, leased, _, _ = self._queue_keys(queue)
        replies = self._db.execute(("ZCARD", ready), ("ZCARD", delayed), ("ZCARD", leased))
        return sum(int(n) for n in replies)

    def purge(self, queue: str) -> int:
        """Delete the messages of ``queue`` that are not under a live lease."""
        return int(self._db.run(_PURGE, self._queue_keys(queue)[:4], []))

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
        keys = [*self._dead_keys(queue), self._prefix + "seq"]
        keys += [self._key("ready", queue), self._key("msgs", queue), self._key("wake", queue)]
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
