"""A broker on RabbitMQ: ``amqp://user:password@host:5672/vhost`` (also ``amqps://`` and
``pyamqp://``; the vhost is URL-encoded and ``//`` means ``/``). Needs pika.

Queues are durable, with ``x-max-priority`` 9; messages are persistent and publishing waits
for confirms (unless the transport option ``confirm_publish`` is False). ``fetch`` takes
queue heads with ``basic.get`` (priorities hold across queues), many from one queue in one
push, and, when nothing is ready, waits on one-message consumers cancelled before it returns,
so nothing is prefetched beyond what was asked. A worker that consumes one queue gives its
prefetch window (:meth:`AMQPBroker.prefetch`): its fetches then take from a consumer kept open
with that window, as Celery's do, with no round trip per fetch. Runs of finished deliveries
are acknowledged with one ``multiple`` ack. Delays go through a ladder of TTL queues (see
:mod:`celeriac._amqp`). Leases are kept by this client: the I/O thread requeues a delivery
not extended in time, and settling checks the lease token. A delivery held past ``park_after``
(RabbitMQ closes channels holding one past ``consumer_timeout``) is *parked*: a copy waits in
``celeriac.lease.<token>``, expiring back into its queue unless refreshed, and the original
is acked; settling deletes that queue.
"""

from __future__ import annotations

import atexit
import itertools
import logging
import math
import os
import secrets
import socket
import threading
import time
import uuid
import weakref
from collections import OrderedDict
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import partial
from typing import Any

from ..connections.amqp import (
    DEFAULT_OPERATION_TIMEOUT,
    LEVELS,
    PRIORITY_ARGS,
    Claim,
    Item,
    Link,
    Raw,
    Step,
    connection_parameters,
    delay_ms,
    drain,
    ladder_steps,
    park_arguments,
    park_queue,
    properties,
    route,
    rung,
    rung_arguments,
    sequence,
)
from ..exceptions import OperationalError
from ..utils import safe_repr, yes_or_no
from ..utils.io import wait_readable
from ..utils.urls import safe_url
from .base import (
    DeadLetter,
    Delivery,
    Outgoing,
    QueueStats,
    dead_letter_queue,
    visibility_timeout,
)

logger = logging.getLogger("celeriac.brokers.amqp")

LATE_SWEEP = 1.0  # seconds: a lease sweep this late means the process did not run
DEFAULT_PARK_AFTER = 900.0  # RabbitMQ's consumer_timeout is 30 minutes by default
H_ID = "x-celeriac-id"  # stable per message: remembers its deliveries in this client
H_DELIVERIES = "x-celeriac-deliveries"  # deliveries before this copy was published
H_ETA = "x-celeriac-eta"  # floats travel as strings (pika has no float type)
H_PARK = "x-celeriac-park"  # which copy of a parked message this is
H_DEAD_ID = "x-celeriac-dead-id"
H_REASON = "x-celeriac-reason"
H_DEAD_AT = "x-celeriac-dead-at"
_SEEN_MAX = 10_000
_inherited: list[Any] = []  # a forked child's copies of its parent's connections, never used
# brokers that publish without waiting for confirms: at exit, each waits for them
_unconfirming: weakref.WeakSet[AMQPBroker] = weakref.WeakSet()


@atexit.register
def _wait_confirms_at_exit() -> None:
    for broker in list(_unconfirming):
        link = broker._link
        if link is not None and broker._pid == os.getpid():
            link.wait_confirms(broker._timeout)


@dataclass(eq=False)
class _Lease:
    token: str
    queue: str
    body: bytes
    priority: int
    message_id: str | None
    mid: str  # the H_ID header
    count: int  # delivery_count of this delivery
    link: Link | None  # where ``tag`` lives; None once parked
    tag: int
    expires: float  # monotonic
    since: float  # monotonic, when it was delivered
    parked: bool = False
    copy: int = 0  # the H_PARK of the parked copy
    mutex: threading.Lock = field(default_factory=threading.Lock)


class AMQPBroker:
    """A broker on a RabbitMQ server (or cluster node), shared by any number of hosts.

    Transport options: ``visibility_timeout``, ``park_after`` (seconds a delivery is held
    before it is parked), ``prefetch_count`` (most messages one fetch takes; default: what the
    worker asks for), ``connect_timeout``, ``operation_timeout``, ``heartbeat``,
    ``blocked_connection_timeout``, ``connection_name`` and ``ssl`` (for amqps: an SSLContext
    or a dict of ca_certs, certfile, keyfile, verify).
    """

    local_leases = True

    def __init__(self, url: str, options: dict[str, Any] | None = None) -> None:
        options = options or {}
        self.url = url
        self.visibility_timeout = visibility_timeout(options)
        self.park_after = float(options.get("park_after", DEFAULT_PARK_AFTER))
        self.prefetch_count = int(options.get("prefetch_count") or 0)
        #: every queue this object declared (tests delete them afterwards)
        self.declared_queues: set[str] = set()
        self._as_is: set[str] = set()  # queues that existed without priorities (Celery's)
        self._where = safe_url(url)
        self._params = connection_parameters(url, options)
        self._timeout = float(options.get("operation_timeout", DEFAULT_OPERATION_TIMEOUT))
        #: False: ``publish`` returns once the messages are handed to the connection, before
        #: RabbitMQ confirms them (Celery's default; a crash may lose what was unconfirmed)
        self.confirm_publish = _flag(options.get("confirm_publish", True))
        self._reset()
        if not self.confirm_publish:
            _unconfirming.add(self)

    def _reset(self) -> None:
        """Fresh per-process state (also in a forked child: the parent's is left alone)."""
        self._pid = os.getpid()
        self._lock = threading.Lock()  # leases, the delivery memory and the sweep plan
        self._connect_lock = threading.Lock()
        self._dlq_lock = threading.Lock()
        self._link: Link | None = None
        self._leases: dict[str, _Lease] = {}
        # lease tokens: random per process (they name lease queues on the server), then counted
        self._token_prefix = secrets.token_hex(6)
        self._tokens = itertools.count(1)
        self._seen: OrderedDict[str, tuple[int, bool]] = OrderedDict()
        self._sweep: tuple[float, Link | None] = (math.inf, None)
        self._woken = False  # a plain flag: wakeup() may run in a signal handler
        self._fetching = False
        self._window = 0  # a worker's prefetch window: fetches from one queue stream
        self._wake_r: socket.socket | None = None
        self._wake_w: socket.socket | None = None

    def _check_pid(self) -> None:
        if self._pid != os.getpid():
            _inherited.append((self._link, self._wake_r, self._wake_w))
            self._reset()

    # -- connection and topology --------------------------------------------------------------

    def _connection(self) -> Link:
        self._check_pid()
        link = self._link
        if link is not None and link.alive:
            return link
        with self._connect_lock:
            link = self._link
            if link is None or not link.alive:
                link = Link(self._params, self._where, self._notify, self._lost, self._timeout)
                link.open()
                self._link = link
            return link

    def _ready(self, queues: Sequence[str]) -> Link:
        """The live link, with ``queues`` and their dead-letter queues declared."""
        link = self._connection()
        missing = [q for q in dict.fromkeys(queues) if q not in link.declared]
        if missing:
            steps = []
            for queue in missing:
                steps += [
                    link.declare(queue, self._arguments(queue)),
                    link.declare(dead_letter_queue(queue)),
                ]
            try:
                link.call(sequence(steps))
            except OperationalError as exc:
                if not _inequivalent(exc):
                    raise
                link = self._adopt(missing)
            link.declared.update(missing)
            with self._lock:
                self.declared_queues.update(missing)
                self.declared_queues.update(dead_letter_queue(q) for q in missing)
        return link

    def _arguments(self, queue: str) -> dict[str, Any] | None:
        """The arguments ``queue`` is declared with: celeriac's priorities, unless it existed
        without them (see :meth:`_adopt`)."""
        return None if queue in self._as_is else PRIORITY_ARGS

    def _adopt(self, queues: Sequence[str]) -> Link:
        """Declare ``queues`` one by one; one that exists without ``x-max-priority`` (a queue
        Celery declared) is used as it is, with one warning: its messages keep their order
        of arrival instead of their priority."""
        for queue in queues:
            link = self._connection()  # the refused declaration closed the last one
            try:
                link.call(link.declare(queue, self._arguments(queue)))
            except OperationalError as exc:
                if not _inequivalent(exc):
                    raise
                self._as_is.add(queue)
                logger.warning(
                    "%s: queue %r exists without x-max-priority (declared by Celery?); "
                    "using it as it is, so its messages are taken in the order they came, "
                    "not by priority. To have priorities, delete it once it is empty "
                    "(rabbitmqctl delete_queue %s) and celeriac declares it again.",
                    self._where,
                    queue,
                    queue,
                )
                link = self._connection()
                link.call(link.declare(queue, None))
            link.call(link.declare(dead_letter_queue(queue)))
        return self._connection()

    def _send(self, link: Link, items: Sequence[Item], confirmed: bool = True) -> None:
        """Publish ``items`` and wait for their confirms (``confirmed``), first declaring
        (once per connection) the ladder exchanges and the rungs the delayed ones pass
        through. A message moved (its copy published, then the original acknowledged) is
        always confirmed first."""
        steps, marks, rungs = ladder_steps(link, items)
        if steps:
            with self._lock:
                self.declared_queues.update(rungs)
            link.call(sequence(steps))
            link.declared.update(marks)
        link.call(link.publish(items, confirmed))

    def _rungs(self, queue: str) -> list[tuple[int, str]]:
        """The levels and names of all rungs of ``queue``, highest first, about to be
        declared (so counted or purged; unbound rungs receive nothing)."""
        rungs = [(n, rung(queue, n)) for n in reversed(range(LEVELS))]
        with self._lock:
            self.declared_queues.update(name for _, name in rungs)
        return rungs

    def _lost(self, link: Link) -> None:
        """The link ended (I/O thread): its deliveries went back to their queues."""
        with self._lock:
            for token, lease in list(self._leases.items()):
                if lease.link is link:
                    del self._leases[token]
                    self._remember(lease.mid, lease.count, exact=False)

    # -- publishing ---------------------------------------------------------------------------

    def publish(self, messages: Sequence[Outgoing]) -> None:
        """Publish ``messages`` (delayed ones into the ladder) and wait for every confirm."""
        if not messages:
            return
        link = self._ready([m.queue for m in messages])
        now = time.time()
        items = []
        for m in messages:
            headers: dict[str, Any] = {H_ID: uuid.uuid4().hex}
            delay = delay_ms(m.eta - now) if m.eta is not None else 0
            if delay:
                headers[H_ETA] = repr(float(m.eta or 0.0))
            props = properties(m.priority, headers, m.message_id)
            items.append(route(m.queue, bytes(m.body), props, delay))
        self._send(link, items, self.confirm_publish)

    def _copy(self, lease: _Lease, delay: float = 0.0, **headers: Any) -> Item:
        """A fresh message for ``lease`` (never its AMQP headers: RabbitMQ would see a
        dead-letter cycle in a second trip through the ladder)."""
        ms = delay_ms(delay)
        fields = {H_ID: lease.mid, H_DELIVERIES: lease.count, **headers}
        if ms:
            fields[H_ETA] = repr(time.time() + delay)
        return route(
            lease.queue, lease.body, properties(lease.priority, fields, lease.message_id), ms
        )

    # -- fetching -----------------------------------------------------------------------------

    def fetch(
        self,
        queues: Sequence[str],
        limit: int,
        timeout: float,
        acks: Sequence[Delivery] = (),
    ) -> list[Delivery]:
        """Acknowledge ``acks``, then take up to ``limit`` ready messages, waiting up to
        ``timeout`` for one."""
        self.ack_many(acks)
        names = list(dict.fromkeys(queues))
        if not names or limit <= 0:
            return []
        if self.prefetch_count:
            limit = min(limit, self.prefetch_count)
        deadline = time.monotonic() + max(timeout, 0.0)
        link: Link | None = None
        self._fetching = True
        try:
            link = self._ready(names)
            window = self._window
            more: Callable[[float], Claim]
            if window and len(names) == 1:
                more = partial(self._take, link, names[0], min(limit, window), window)
                claim = more(0.0)
            else:
                more = partial(self._wait, link, names, limit)
                claim = link.call(link.claim(names, limit))
            while True:
                got = self._leased(link, claim)
                if got:
                    return got
                if self._woken:
                    self._woken = False
                    return []
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return []
                claim = more(remaining)
        except OperationalError:
            if link is not None and link.closing:
                return []  # close() from another thread
            raise
        finally:
            self._fetching = False

    def prefetch(self, window: int) -> None:
        """A worker says it keeps fetching with up to ``window`` messages unacknowledged
        (0: it stopped, or holds messages outside the window). Then a fetch from one queue
        takes from a consumer kept open with that prefetch window (:meth:`Link.stream`)
        instead of claiming with a round trip or more per fetch."""
        self._window = max(int(window), 0)

    def _take(self, link: Link, queue: str, limit: int, window: int, seconds: float) -> Claim:
        """What the stream of ``queue`` holds, waiting up to ``seconds`` for an arrival
        first (into an empty stream: after the last take found it empty)."""
        reader = self._wake_sockets()[0]
        if seconds > 0:
            wait_readable([reader.fileno()], seconds)
        stream = link.live_stream(queue, window) or link.call(link.stream(queue, window))
        drain(reader)  # before taking: an arrival after the take wakes the next wait
        return Claim(stream.take(limit), link.given_back())

    def _wait(self, link: Link, names: list[str], limit: int, seconds: float) -> Claim:
        """Consume until a message arrives, ``seconds`` pass or wakeup() is called."""
        reader = self._wake_sockets()[0]
        drain(reader)
        if self._woken:
            return Claim()
        tags = link.call(link.consume(names))
        try:
            wait_readable([reader.fileno()], seconds)
        finally:
            arrived = link.call(link.cancel(tags))
        if not arrived:
            return Claim()
        return link.call(link.claim(names, limit, arrived))  # fill up behind them

    def _leased(self, link: Link, claim: Claim) -> list[Delivery]:
        """Deliveries (under new leases) for what ``claim`` took."""
        now = time.time()
        early, defects = [], {}
        for raw in claim.taken:
            eta = raw.header(H_ETA)
            if eta is None:
                continue
            when = _number(eta)
            if when is None:  # written by something else: the worker dead-letters it
                defects[raw.tag] = f"bad {H_ETA} header: {safe_repr(eta, 80)}"
            elif when > now:
                early.append(raw)
        if early:
            self._delay_again(link, early, now)
        early_tags = {raw.tag for raw in early}
        deliveries = []
        start = time.monotonic()
        with self._lock:
            for raw in claim.returned:
                self._returned(raw)
            for raw in claim.taken:
                if raw.tag in early_tags:
                    continue
                lease = self._new_lease(link, raw, start)
                deliveries.append(
                    Delivery(
                        raw.body,
                        raw.queue,
                        raw.priority,
                        lease.token,
                        lease.count,
                        defect=defects.get(raw.tag),
                    )
                )
        if deliveries:
            self._plan_sweep(link, start + self.visibility_timeout)
        return deliveries

    def _new_lease(self, link: Link, raw: Raw, now: float) -> _Lease:
        mid = str(raw.header(H_ID) or uuid.uuid4().hex)
        count = _count(raw.header(H_DELIVERIES)) + (2 if raw.redelivered else 1)
        known = self._seen.get(mid)
        if known is not None:
            count = known[0] + 1 if known[1] else max(count, known[0] + 1)
        self._remember(mid, count, exact=False)
        lease = _Lease(
            token=f"{self._token_prefix}{next(self._tokens):x}",
            queue=raw.queue,
            body=raw.body,
            priority=raw.priority,
            message_id=raw.properties.message_id,
            mid=mid,
            count=count,
            link=link,
            tag=raw.tag,
            expires=now + self.visibility_timeout,
            since=now,
        )
        self._leases[lease.token] = lease
        return lease

    def _returned(self, raw: Raw) -> None:
        """A head looked at and put back: that was not a delivery (under self._lock)."""
        mid = raw.header(H_ID)
        if mid:
            known = self._seen.get(mid)
            before = _count(raw.header(H_DELIVERIES)) + (1 if raw.redelivered else 0)
            self._remember(mid, known[0] if known else before, exact=True)

    def _remember(self, mid: str, count: int, exact: bool) -> None:
        """Note that message ``mid`` was delivered ``count`` times (exactly, or at least)."""
        seen = self._seen
        seen[mid] = (count, exact)
        seen.move_to_end(mid)
        while len(seen) > _SEEN_MAX:
            seen.popitem(last=False)

    def _delay_again(self, link: Link, early: list[Raw], now: float) -> None:
        """Messages that arrived before their eta (a delay beyond the ladder's ~49 days, or
        another host's clock) go back into the ladder."""
        items = []
        for raw in early:
            eta = float(raw.header(H_ETA))  # a number: checked by _leased
            headers = {**(raw.properties.headers or {}), H_ETA: repr(eta)}
            headers = {k: v for k, v in headers.items() if k.startswith("x-celeriac-")}
            props = properties(raw.priority, headers, raw.properties.message_id)
            items.append(route(raw.queue, raw.body, props, delay_ms(eta - now)))
        self._send(link, items)
        link.call(link.settle(acks=[raw.tag for raw in early]))

    # -- lease expiry (timers in the link's I/O thread) -------------------------------------

    def _plan_sweep(self, link: Link, at: float) -> None:
        with self._lock:
            planned, planned_link = self._sweep
            if planned <= at and planned_link is link and link.alive:
                return
            self._sweep = (at, link)
        link.later(at - time.monotonic(), lambda: self._expire(link))

    def _expire(self, link: Link) -> None:
        """Requeue the deliveries whose lease ran out, in the order they were delivered.

        A sweep that runs late means this process did not run meanwhile (a task held the
        GIL, or the process was stopped), so its heartbeat could not renew either: the due
        leases get the time of one renewal first, instead of a task still running being
        delivered again."""
        now = time.monotonic()
        with self._lock:
            planned = self._sweep[0]
            self._sweep = (math.inf, None)
            if now - planned > LATE_SWEEP:
                grace = now + min(self.visibility_timeout, self.visibility_timeout / 3 + 1.0)
                for lease in self._leases.values():
                    lease.expires = max(lease.expires, grace)
            due = [x for x in self._leases.values() if x.expires <= now]
            requeue = []
            for lease in due:
                if lease.mutex.locked():
                    continue  # being settled or parked right now: look again soon
                del self._leases[lease.token]
                self._remember(lease.mid, lease.count, exact=True)
                if not lease.parked and lease.link is link:
                    requeue.append(lease.tag)
            busy = any(x.expires <= now for x in self._leases.values())
            nxt = min((x.expires for x in self._leases.values()), default=math.inf)
            nxt = min(nxt, now + 0.05) if busy else nxt
            if nxt < math.inf:
                self._sweep = (nxt, link)
        link.requeue_now(requeue)
        if nxt < math.inf:
            link.later(nxt - now, lambda: self._expire(link))

    # -- settling -----------------------------------------------------------------------------

    @contextmanager
    def _holding(self, delivery: Delivery) -> Iterator[_Lease | None]:
        """The lease of ``delivery`` if it is still current, locked for one settle."""
        self._check_pid()
        lease = self._leases.get(str(delivery.tag))
        if lease is None:
            yield None
            return
        with lease.mutex:
            yield lease if self._leases.get(lease.token) is lease else None

    def _drop(self, lease: _Lease, exact: bool = True) -> None:
        self._drop_many([lease], exact)

    def _drop_many(self, leases: Sequence[_Lease], exact: bool = True) -> None:
        with self._lock:
            current = self._leases
            for lease in leases:
                if current.get(lease.token) is lease:
                    del current[lease.token]
                self._remember(lease.mid, lease.count, exact)
                if lease.parked:
                    self.declared_queues.discard(park_queue(lease.token))

    def _finish(self, lease: _Lease) -> None:
        """Remove the leased message from where it is held (unparked: ack it)."""
        if lease.parked:
            link = self._connection()
            link.call(link.delete(park_queue(lease.token)))
        elif lease.link is not None:
            lease.link.post(lease.link.settle(acks=[lease.tag]))

    def extend(self, deliveries: Sequence[Delivery]) -> None:
        """Push the lease deadlines of ``deliveries`` still held to now + visibility_timeout,
        parking (or refreshing the parked copy of) those held longer than ``park_after``."""
        self._check_pid()
        now = time.monotonic()
        to_park = []
        with self._lock:
            for d in deliveries:
                lease = self._leases.get(str(d.tag))
                if lease is not None:
                    lease.expires = now + self.visibility_timeout
                    if lease.parked or now - lease.since >= self.park_after:
                        to_park.append(d)
        for d in to_park:
            with self._holding(d) as lease:
                if lease is not None:
                    self._park(lease)

    def _park(self, lease: _Lease) -> None:
        link = self._ready([lease.queue])
        name = park_queue(lease.token)
        ttl = str(math.ceil(self.visibility_timeout * 1000))
        copy = self._copy(lease, **{H_PARK: lease.copy + 1})
        item = ("", name, copy[2], copy[3])
        item[3].expiration = ttl
        if not lease.parked:
            if lease.link is not link:
                return  # its link ended: already requeued
            args = park_arguments(lease.queue, self.visibility_timeout)
            with self._lock:
                self.declared_queues.add(name)
            link.call(sequence([link.declare(name, args), link.publish([item])]))
            link.call(link.settle(acks=[lease.tag]))
            lease.parked, lease.link, lease.copy = True, None, 1
        else:
            _, old = link.call(sequence([link.publish([item]), link.get(name, pub=True)]))
            if old is not None:
                link.call(link.settle(acks=[old.tag], pub=True))
            if old is None or old.header(H_PARK) != lease.copy:
                # the previous copy expired into the queue: the lease was lost
                link.call(link.delete(name))
                self._drop(lease, exact=False)
                return
            lease.copy += 1
        self._plan_sweep(link, lease.expires)

    def ack(self, delivery: Delivery) -> None:
        """Remove the message if ``delivery`` still holds its lease."""
        with self._holding(delivery) as lease:
            if lease is not None:
                self._finish(lease)
                self._drop(lease)

    def ack_many(self, deliveries: Sequence[Delivery]) -> None:
        """:meth:`ack` each. Those of one connection go in one hand-off to its I/O thread,
        not waited for (AMQP acknowledgements have no reply), their leases locked until they
        are dropped, so that no sweep requeues one meanwhile; parked ones are removed one by
        one."""
        if len(deliveries) <= 1:
            for delivery in deliveries:
                self.ack(delivery)
            return
        self._check_pid()
        current = self._leases
        held: list[_Lease] = []  # locked (as _holding does) until the end
        try:
            batches: dict[Link, list[_Lease]] = {}
            for delivery in deliveries:
                lease = current.get(str(delivery.tag))
                if lease is None:
                    continue
                lease.mutex.acquire()
                held.append(lease)
                if current.get(lease.token) is not lease:
                    continue  # its lease ran out meanwhile
                if lease.parked or lease.link is None:
                    self._finish(lease)
                    self._drop(lease)
                else:
                    batches.setdefault(lease.link, []).append(lease)
            for link, leases in batches.items():
                link.post(link.settle(acks=[lease.tag for lease in leases]))
                self._drop_many(leases)
        finally:
            for lease in held:
                lease.mutex.release()

    def release(self, delivery: Delivery, delay: float | None = None) -> None:
        """Requeue the message in its place (nack) or, with ``delay``, through the ladder. A
        parked message is published again (its place is lost)."""
        with self._holding(delivery) as lease:
            if lease is None:
                return
            if not lease.parked and not delay_ms(delay or 0.0) and lease.link is not None:
                lease.link.call(lease.link.settle(requeue=[lease.tag]))
            else:
                link = self._ready([lease.queue])
                self._send(link, [self._copy(lease, delay or 0.0)])
                self._finish(lease)
            self._drop(lease)

    def dead_letter(self, delivery: Delivery, reason: str) -> None:
        """Publish the message to ``<queue>.dlq`` with ``reason``, then remove it."""
        with self._holding(delivery) as lease:
            if lease is None:
                return
            link = self._ready([lease.queue])
            headers = {
                H_ID: lease.mid,
                H_DEAD_ID: uuid.uuid4().hex,
                H_REASON: str(reason),
                H_DEAD_AT: repr(time.time()),
            }
            props = properties(lease.priority, headers, lease.message_id)
            dlq = dead_letter_queue(lease.queue)
            link.call(link.publish([("", dlq, lease.body, props)]))
            self._finish(lease)
            self._drop(lease)

    # -- inspection ---------------------------------------------------------------------------

    def queue_length(self, queue: str) -> int:
        """Messages ready or delayed in ``queue``, plus those this client holds (RabbitMQ does
        not report other clients' unacknowledged messages)."""
        ready, delayed, _ = self._counts(queue)
        with self._lock:
            held = sum(1 for lease in self._leases.values() if lease.queue == queue)
        return ready + delayed + held

    def queue_stats(self, queue: str) -> QueueStats:
        """What ``queue.declare-ok`` tells of the queue, its delay rungs and its dead-letter
        queue: their ready messages.

        ``in_flight`` is None: RabbitMQ reports no count of unacknowledged messages to a
        client (only its management plugin, another service, does), and the leases this
        client holds are only part of them. ``oldest_age`` is None: only the head message
        tells its age, and reading it (``basic.get``, then a requeue) would mark it
        redelivered. Waiting messages include one whose delay is beyond the ladder's ~49
        days, which stays in the queue until a fetch sends it back into the ladder."""
        ready, delayed, dead = self._counts(queue)
        return QueueStats(queue, ready, None, delayed, dead, None)

    def _counts(self, queue: str) -> tuple[int, int, int]:
        """The ready messages of ``queue``, of its delay rungs together, and of its
        dead-letter queue.

        Each comes from a declaration with the arguments the queue has, which answers as a
        passive one would; a passive declaration of a queue that does not exist (a rung no
        delay has used yet) would close the channel, and with it the connection and every
        lease it holds."""
        link = self._ready([queue])
        # Delayed messages only move down the ladder and into the queue, so counting in that
        # order never misses one, but may see one twice if it moves meanwhile: count again.
        steps = [link.declare(name, rung_arguments(n)) for n, name in self._rungs(queue)]
        steps.append(link.declare(queue, self._arguments(queue)))
        steps.append(link.declare(dead_letter_queue(queue)))
        best: list[int] = []
        for _ in range(3):
            counts = link.call(sequence(steps))
            if not any(counts[:-2]) or (best and sum(counts[:-1]) == sum(best[:-1])):
                best = counts
                break
            if not best or sum(counts[:-1]) < sum(best[:-1]):
                best = counts
        *rungs, ready, dead = best
        return int(ready), sum(rungs), int(dead)

    def purge(self, queue: str) -> int:
        """Delete the ready and delayed messages of ``queue`` (not the leased ones)."""
        link = self._ready([queue])
        steps: list[Step] = []
        for n, name in self._rungs(queue):  # declared first: purging a missing queue fails
            steps += [link.declare(name, rung_arguments(n)), link.purge(name)]
        counts = link.call(sequence([*steps, link.purge(queue)]))
        return sum(counts[1::2]) + counts[-1]

    def dead_letters(self, queue: str, limit: int = 100) -> list[DeadLetter]:
        """The oldest ``limit`` dead letters of ``queue`` (read, then requeued in place)."""
        if limit <= 0:
            return []
        link = self._ready([queue])
        with self._dlq_lock:
            raws = link.call(link.get_many(dead_letter_queue(queue), limit, pub=True))
            if raws:
                link.call(link.settle(requeue=[r.tag for r in raws], pub=True))
        return [
            DeadLetter(
                id=str(raw.header(H_DEAD_ID) or ""),
                body=raw.body,
                queue=queue,
                reason=str(raw.header(H_REASON) or ""),
                dead_at=_number(raw.header(H_DEAD_AT)) or 0.0,
            )
            for raw in raws
        ]

    def requeue_dead_letters(self, queue: str, ids: Sequence[Any] | None = None) -> int:
        """Publish dead letters (all, or those ``ids``) to ``queue`` again, oldest first."""
        wanted = None if ids is None else {str(i) for i in ids}
        if wanted is not None and not wanted:
            return 0
        link = self._ready([queue])
        dlq = dead_letter_queue(queue)
        moved, kept = 0, []
        with self._dlq_lock:
            try:
                while wanted is None or wanted:
                    raws = link.call(link.get_many(dlq, 500, pub=True))
                    if not raws:
                        break
                    take = [r for r in raws if wanted is None or r.header(H_DEAD_ID) in wanted]
                    taken = {r.tag for r in take}
                    kept += [r for r in raws if r.tag not in taken]
                    if wanted is not None:
                        wanted -= {str(r.header(H_DEAD_ID)) for r in take}
                    if take:
                        link.call(link.publish([_revived(queue, r) for r in take]))
                        link.call(link.settle(acks=[r.tag for r in take], pub=True))
                        moved += len(take)
            finally:
                if kept and link.alive:
                    link.call(link.settle(requeue=[r.tag for r in kept], pub=True))
        return moved

    def purge_dead_letters(self, queue: str) -> int:
        """Delete the dead letters of ``queue``."""
        link = self._ready([queue])
        return int(link.call(link.purge(dead_letter_queue(queue))))

    # -- lifecycle ----------------------------------------------------------------------------

    def _wake_sockets(self) -> tuple[socket.socket, socket.socket]:
        if self._wake_r is None or self._wake_w is None:
            reader, writer = socket.socketpair()
            reader.setblocking(False)
            writer.setblocking(False)
            self._wake_r, self._wake_w = reader, writer
        return self._wake_r, self._wake_w

    def _notify(self) -> None:
        """Wake a waiting fetch (from the I/O thread: a message arrived or the link ended)."""
        writer = self._wake_w
        if writer is not None and self._pid == os.getpid():
            try:
                writer.send(b"\0")
            except OSError:
                pass  # full (already woken) or closed

    def wakeup(self) -> None:
        """Make this broker's blocked (or next) ``fetch`` return at once.

        Safe to call from a signal handler: it sets a flag and writes one byte."""
        self._woken = True
        self._notify()

    def close(self) -> None:
        """Close this process's connection; the server requeues what it had delivered, and
        parked messages come back when their copy expires. The broker reconnects when used."""
        self._check_pid()
        with self._connect_lock:
            link, self._link = self._link, None
        if link is not None:
            if not self.confirm_publish:
                link.wait_confirms(self._timeout)
            link.close()
        with self._lock:
            self._leases.clear()
            self._sweep = (math.inf, None)
        if not self._fetching:
            reader, writer = self._wake_r, self._wake_w
            self._wake_r = self._wake_w = None
            for sock in (reader, writer):
                if sock is not None:
                    sock.close()


def _flag(value: Any) -> bool:
    """A yes/no transport option."""
    flag = yes_or_no(value)
    if flag is None:
        raise ValueError(f"broker_transport_options: expected True or False, got {value!r}")
    return flag


def _number(value: Any) -> float | None:
    """A number-valued header (pika gives a string, int or float); None if it is not one."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def _count(value: Any) -> int:
    """A count-valued header: 0 when absent or not a count."""
    number = _number(value)
    return int(number) if number is not None and 0 <= number < 1e9 else 0


def _revived(queue: str, raw: Raw) -> Item:
    """A dead letter as a new message of ``queue`` (a fresh id: its count starts again)."""
    props = properties(raw.priority, {H_ID: uuid.uuid4().hex}, raw.properties.message_id)
    return ("", queue, raw.body, props)


def _inequivalent(exc: OperationalError) -> bool:
    """Was a declaration refused because the queue exists with other arguments?"""
    text = str(exc)
    return "PRECONDITION_FAILED" in text and "inequivalent arg" in text
