"""What the RabbitMQ broker needs from pika: connection settings from a URL, the names of the
delay ladder, and a connection owned by one I/O thread that other threads hand work to.

pika connections are not thread-safe, so a :class:`Link` runs a ``SelectConnection`` in a
thread of its own. Any other thread asks it for something with :meth:`Link.call`, which runs
a *step* in the I/O thread and waits for the value the step passes to its ``done`` callback (an
exception passed to ``done`` is raised in the caller). A link has two channels: ``work``
receives messages (``basic.get`` and short-lived consumers) and settles them; ``pub``
publishes in confirm mode, declares, purges and reads dead-letter and lease queues. Any
channel or connection error ends the whole link: the calls waiting on it fail with
OperationalError, and the broker opens a new link on its next call.
"""

from __future__ import annotations

import itertools
import logging
import math
import socket
import ssl
import struct
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import partial
from typing import Any
from urllib.parse import unquote, urlsplit

from ..exceptions import ImproperlyConfigured, OperationalError

try:
    import pika
    from pika import exceptions as pika_errors
    from pika import frame as pika_frame
    from pika import spec
except ModuleNotFoundError as exc:  # pragma: no cover - depends on the installation
    raise ImproperlyConfigured("amqp:// URLs need pika: pip install 'celeriac[amqp]'") from exc

logger = logging.getLogger("celeriac.brokers.amqp")

#: pika's ERROR lines for a connection that could not be made: the broker reports the same
#: failure once, with the URL (password masked) and when it tries again, so these are logged
#: at DEBUG
_CONNECT_FAILURES = (
    "Full-stack connection workflow failed",
    "Self-initiated stack bring-up failed",
    "Connection closed while",
    "Socket failed to connect",
    "Address resolution failed",
)
_WORKFLOW_LOGGER = "pika.adapters.utils.connection_workflow"  # only ever connects
_CONNECT_LOGGERS = (
    _WORKFLOW_LOGGER,
    "pika.adapters.utils.io_services_utils",
    "pika.adapters.utils.selector_ioloop_adapter",
    "pika.adapters.base_connection",
    "pika.connection",
)


def _connect_failure_at_debug(record: logging.LogRecord) -> bool:
    if record.levelno != logging.ERROR or not (
        record.name == _WORKFLOW_LOGGER
        or (isinstance(record.msg, str) and record.msg.startswith(_CONNECT_FAILURES))
    ):
        return True
    record.levelno, record.levelname = logging.DEBUG, "DEBUG"
    return logging.getLogger(record.name).isEnabledFor(logging.DEBUG)


for _name in _CONNECT_LOGGERS:
    logging.getLogger(_name).addFilter(_connect_failure_at_debug)

Done = Callable[[Any], None]
Step = Callable[[Done], None]
#: (exchange, routing key, body, properties) of one message to publish
Item = tuple[str, str, bytes, Any]

DEFAULT_CONNECT_TIMEOUT = 10.0
DEFAULT_OPERATION_TIMEOUT = 60.0

# -- the delay ladder ---------------------------------------------------------------------------
#
# Rung L of queue Q (``Q.delay.L``) holds messages for 2**L milliseconds (a queue-level TTL,
# so its messages expire in arrival order). A delayed message is published to exchange
# ``celeriac.delay.31`` with the routing key "b31.b30. ... .b0.Q", the delay's bits. Exchange L
# sends a message whose bit L is 1 to rung L of its queue, and one whose bit is 0 on to exchange
# L-1; rung L dead-letters into exchange L-1, and exchange 0 passes everything to
# ``celeriac.delay.deliver``, which routes it to Q. A message so waits exactly its delay, in at
# most one rung per set bit, and never behind a longer delay.

LEVELS = 32
MAX_DELAY_MS = (1 << LEVELS) - 1
DELIVER = "celeriac.delay.deliver"
PRIORITY_ARGS = {"x-max-priority": 9}
#: a claim of this many messages or more from one queue takes them with a consumer whose
#: prefetch window is as large, in one push, instead of one basic.get round trip each
BATCH_MIN = 8
#: how long such a consumer waits for the messages the queue said it had (others may take
#: them first), in seconds
BATCH_WAIT = 0.02
#: a stream (see :meth:`Link.stream`) holding messages that no fetch took for this long ends,
#: giving them back, in seconds
STREAM_IDLE = 2.0


def ladder_exchange(level: int) -> str:
    return f"celeriac.delay.{level}" if level >= 0 else DELIVER


ENTRY = ladder_exchange(LEVELS - 1)


def rung(queue: str, level: int) -> str:
    """The queue holding ``queue``'s messages for 2**level milliseconds."""
    return f"{queue}.delay.{level}"


def rung_arguments(level: int) -> dict[str, Any]:
    return {"x-message-ttl": 1 << level, "x-dead-letter-exchange": ladder_exchange(level - 1)}


def delay_key(delay_ms: int, queue: str) -> str:
    return ".".join(format(delay_ms, f"0{LEVELS}b")) + "." + queue


def rung_binding(level: int, queue: str) -> str:
    words = ["*"] * LEVELS
    words[LEVELS - 1 - level] = "1"
    return ".".join(words) + "." + queue


def pass_binding(level: int) -> str:
    return ".".join(["*"] * (LEVELS - 1 - level) + ["0", "#"])


def deliver_binding(queue: str) -> str:
    return ".".join(["*"] * LEVELS) + "." + queue


def delay_ms(seconds: float) -> int:
    """A delay in whole milliseconds, rounded up (0: none; at most the ladder's range)."""
    return 0 if seconds <= 0 else min(math.ceil(seconds * 1000.0), MAX_DELAY_MS)


def route(queue: str, body: bytes, props: Any, delay: int) -> Item:
    """Straight to ``queue``, or into the ladder for ``delay`` milliseconds."""
    if delay:
        return (ENTRY, delay_key(delay, queue), body, props)
    return ("", queue, body, props)


def ladder_steps(link: Link, items: Sequence[Item]) -> tuple[list[Step], list[str], list[str]]:
    """What ``link`` has yet to declare before ``items`` go through the ladder: the steps, the
    marks to add to ``link.declared`` once they ran, and the names of the rungs."""
    marks: list[str] = []
    for exchange, key, _, _ in items:
        if exchange == ENTRY:
            bits, queue = key[: 2 * LEVELS - 1].split("."), key[2 * LEVELS :]
            levels = [n for n, bit in enumerate(reversed(bits)) if bit == "1"]
            for mark in ["\0ladder", f"\0{queue}", *(f"\0{queue}\0{n}" for n in levels)]:
                if mark not in link.declared and mark not in marks:
                    marks.append(mark)
    steps: list[Step] = []
    rungs: list[str] = []
    for mark in marks:
        queue, _, level = mark[1:].partition("\0")
        if mark == "\0ladder":  # the shared exchanges
            steps += [link.declare_exchange(ladder_exchange(n)) for n in range(-1, LEVELS)]
            for n in range(LEVELS):
                source, destination = ladder_exchange(n), ladder_exchange(n - 1)
                steps.append(link.bind_exchange(destination, source, pass_binding(n)))
        elif not level:  # the queue's binding to the end of the ladder
            steps.append(link.bind(queue, DELIVER, deliver_binding(queue)))
        else:
            rungs.append(rung(queue, int(level)))
            steps.append(link.declare(rungs[-1], rung_arguments(int(level))))
            steps.append(
                link.bind(rungs[-1], ladder_exchange(int(level)), rung_binding(int(level), queue))
            )
    return steps, marks, rungs


def park_queue(token: str) -> str:
    """The queue holding the parked copy of the delivery with lease ``token``."""
    return f"celeriac.lease.{token}"


def park_arguments(queue: str, visibility_timeout: float) -> dict[str, Any]:
    """A lease queue's copy expires (per-message TTL) back into ``queue``; the queue deletes
    itself once unused for well over that."""
    return {
        "x-dead-letter-exchange": "",
        "x-dead-letter-routing-key": queue,
        "x-expires": math.ceil((2 * visibility_timeout + 60) * 1000),
    }


def drain(reader: socket.socket) -> None:
    """Read and drop what a non-blocking socket holds."""
    try:
        while reader.recv(4096):
            pass
    except (BlockingIOError, InterruptedError):
        pass


# -- settings ---------------------------------------------------------------------------------


def connection_parameters(url: str, options: dict[str, Any]) -> Any:
    """pika parameters for ``amqp://user:password@host:port/vhost`` (or ``amqps://``).

    The vhost is URL-encoded; an empty path or ``/`` means the default vhost ``/``, and
    ``//`` means ``/`` too."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise ImproperlyConfigured(f"bad AMQP URL: {exc}") from None
    secure = parts.scheme.split("+")[0] == "amqps"
    vhost = "/" if parts.path in ("", "/") else unquote(parts.path[1:])
    timeout = float(options.get("connect_timeout", DEFAULT_CONNECT_TIMEOUT))
    kwargs: dict[str, Any] = {
        "host": parts.hostname or "localhost",
        "port": port or (5671 if secure else 5672),
        "virtual_host": vhost,
        "credentials": pika.PlainCredentials(
            unquote(parts.username or "guest"), unquote(parts.password or "guest")
        ),
        "connection_attempts": 1,
        "socket_timeout": timeout,
        "stack_timeout": timeout,
        "client_properties": {"connection_name": str(options.get("connection_name", "celeriac"))},
    }
    for key in ("heartbeat", "blocked_connection_timeout", "frame_max", "channel_max"):
        if options.get(key) is not None:
            kwargs[key] = options[key]
    if secure:
        kwargs["ssl_options"] = pika.SSLOptions(_ssl_context(options.get("ssl")), parts.hostname)
    return pika.ConnectionParameters(**kwargs)


def _ssl_context(option: Any) -> ssl.SSLContext:
    """``ssl`` transport option: an SSLContext, or a dict of ca_certs, certfile, keyfile and
    verify (False skips certificate checks)."""
    if isinstance(option, ssl.SSLContext):
        return option
    option = option if isinstance(option, dict) else {}
    context = ssl.create_default_context(cafile=option.get("ca_certs"))
    if option.get("certfile"):
        context.load_cert_chain(option["certfile"], option.get("keyfile"))
    if option.get("verify") is False:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    return context


def properties(
    priority: int,
    headers: dict[str, Any],
    message_id: str | None = None,
    expiration: str | None = None,
) -> Any:
    """Properties of a persistent message."""
    return pika.BasicProperties(
        delivery_mode=2,
        priority=min(max(int(priority), 0), 9),
        headers=headers,
        message_id=message_id,
        expiration=expiration,
    )


# -- messages and replies -----------------------------------------------------------------------


@dataclass(slots=True)
class Raw:
    """A message as a channel delivered it."""

    queue: str
    tag: int
    redelivered: bool
    properties: Any
    body: bytes
    #: the messages still ready in the queue after it (basic.get-ok's message count)
    remaining: int = 0

    @property
    def priority(self) -> int:
        return int(self.properties.priority or 0)

    def header(self, key: str, default: Any = None) -> Any:
        return (self.properties.headers or {}).get(key, default)


@dataclass(slots=True)
class Claim:
    """What a claim took, and the heads of other queues it looked at and put back."""

    taken: list[Raw] = field(default_factory=list)
    returned: list[Raw] = field(default_factory=list)


class _Unsettled:
    """The delivery tags of a channel not acknowledged or requeued yet, in order, so that a
    run of them is acknowledged with one ``multiple`` ack: RabbitMQ spends about three times
    the CPU on a message acknowledged by itself."""

    def __init__(self) -> None:
        self._order: deque[int] = deque()  # tags come in increasing order on a channel
        self._live: set[int] = set()

    def add(self, tag: int) -> None:
        self._order.append(tag)
        self._live.add(tag)

    def drop(self, tags: Sequence[int]) -> None:
        """``tags`` are settled (their frames written before any later ack)."""
        self._live.difference_update(tags)

    def acks(self, tags: Sequence[int]) -> tuple[int, list[int]]:
        """Settle ``tags``: ``(upto, rest)``, one multiple ack of ``upto`` (0: none) for those
        up to it (every other tag up to it is settled already) and one ack each for the
        rest. Tags settled already are left out: a delivery is never acknowledged twice."""
        live, order = self._live, self._order
        tags = [tag for tag in tags if tag in live]
        live.difference_update(tags)
        settled = 0
        while order and order[0] not in live:
            settled = order.popleft()
        upto = max((t for t in tags if t <= settled), default=0)
        return upto, [t for t in tags if t > settled]


class Stream:
    """A consumer kept open on one queue (:meth:`Link.stream`). The I/O thread appends what
    it receives; any thread takes from it, without a round trip to the I/O thread."""

    def __init__(self, queue: str, window: int) -> None:
        self.queue = queue
        self.window = window
        self.tag: str | None = None
        self.ended = False
        self.taken_at = time.monotonic()
        self._buffer: deque[Raw] = deque()
        self._lock = threading.Lock()

    def take(self, limit: int) -> list[Raw]:
        """Up to ``limit`` of the messages received (none once it ended)."""
        with self._lock:
            self.taken_at = time.monotonic()
            if self.ended:
                return []
            buffer = self._buffer
            return [buffer.popleft() for _ in range(min(limit, len(buffer)))]

    def add(self, raw: Raw) -> bool:
        """Keep a message it received; False once it ended (the caller gives it back)."""
        with self._lock:
            if self.ended:
                return False
            self._buffer.append(raw)
            return len(self._buffer) == 1

    def holding(self) -> bool:
        return bool(self._buffer)

    def serves(self, queue: str, window: int) -> bool:
        return not self.ended and self.queue == queue and self.window == window

    def end(self) -> list[Raw]:
        """End it; the messages it held, to give back."""
        with self._lock:
            self.ended = True
            held = list(self._buffer)
            self._buffer.clear()
            return held


class _Reply:
    """A value the I/O thread hands to a waiting caller (an exception is raised there)."""

    def __init__(self) -> None:
        self._event = threading.Event()
        self._lock = threading.Lock()
        self._value: Any = None

    def set(self, value: Any) -> None:
        with self._lock:
            if not self._event.is_set():
                self._value = value
                self._event.set()

    def wait(self, timeout: float) -> Any:
        if not self._event.wait(timeout):
            raise TimeoutError
        if isinstance(self._value, BaseException):
            raise self._value
        return self._value


class _Batch:
    """Published messages waiting for their confirms."""

    def __init__(self, count: int, done: Done) -> None:
        self.left = count
        self.failure: str | None = None
        self.done = done

    def confirm(self, failure: str | None) -> None:
        self.failure = self.failure or failure
        self.left -= 1
        if self.left == 0:
            self.done(OperationalError(self.failure) if self.failure else None)


def sequence(steps: Sequence[Step]) -> Step:
    """One step running ``steps`` one after the other; its value is the list of theirs."""

    def start(done: Done) -> None:
        results: list[Any] = []

        def next_step(value: Any = None, first: bool = False) -> None:
            if not first:
                if isinstance(value, BaseException):
                    done(value)
                    return
                results.append(value)
            if len(results) == len(steps):
                done(results)
            else:
                steps[len(results)](next_step)

        next_step(first=True)

    return start


# -- the link -----------------------------------------------------------------------------------


class Link:
    """One connection, its I/O thread and its two channels."""

    _ids = itertools.count(1)

    def __init__(
        self,
        params: Any,
        where: str,
        notify: Callable[[], None],
        on_lost: Callable[[Link], None],
        timeout: float = DEFAULT_OPERATION_TIMEOUT,
    ) -> None:
        self.where = where  # the URL with its password masked, for errors
        self.declared: set[str] = set()  # names this link declared (cleared on a return)
        self.alive = False
        self.closing = False  # closed on purpose
        self._params = params
        self._notify = notify
        self._on_lost = on_lost
        self._timeout = timeout
        self._lock = threading.Lock()
        self._pending: set[_Reply] = set()
        self._opened = _Reply()
        self._dead = False
        self._reason = "connection lost"
        self._conn: Any = None
        self.work: Any = None
        self.pub: Any = None
        self._thread: threading.Thread | None = None
        self._gets: dict[int, deque[tuple[str, Done]]] = {}
        self._getting: dict[int, bool] = {}
        self._unconfirmed: dict[int, _Batch] = {}
        self._published = 0
        self._returned = False
        self._arrived: list[Raw] = []
        self._stream: Stream | None = None
        self._unsettled = _Unsettled()  # the work channel's
        self._given_back: deque[Raw] = deque()  # by ended streams, for the broker's counts

    # -- lifecycle (any thread) ------------------------------------------------------------

    def open(self) -> None:
        """Connect and open the channels, or raise OperationalError."""
        self._thread = threading.Thread(
            target=self._run, name=f"celeriac-amqp-{next(self._ids)}", daemon=True
        )
        self._thread.start()
        limit = float(self._params.socket_timeout or DEFAULT_CONNECT_TIMEOUT) * 2 + 5
        try:
            self._opened.wait(limit)
        except TimeoutError:
            self.kill(f"no answer within {limit:.0f}s")
            raise self.error() from None

    def close(self) -> None:
        """Close the connection (the broker requeues what it had delivered) and stop."""
        self.closing = True
        self._reason = "connection closed"
        thread = self._thread
        if thread is not None and thread.is_alive() and thread is not threading.current_thread():
            self._post(self._shutdown)
            thread.join(10)
        self._die(self._reason)

    def kill(self, reason: str) -> None:
        """Give up on this link: fail every waiting call and close the connection."""
        self._reason = reason
        self._die(reason)
        self._post(self._shutdown)

    def error(self) -> OperationalError:
        return OperationalError(f"{self.where}: {self._reason}")

    def call(self, step: Step, timeout: float | None = None) -> Any:
        """Run ``step`` in the I/O thread and wait for its value."""
        reply = _Reply()
        with self._lock:
            if not self.alive:
                raise self.error()
            self._pending.add(reply)

        def run() -> None:
            try:
                step(reply.set)
            except Exception as exc:  # pika refused synchronously
                reply.set(OperationalError(f"{self.where}: {describe(exc)}"))

        try:
            self._post(run)
            return reply.wait(self._timeout if timeout is None else timeout)
        except TimeoutError:
            self.kill(f"no answer within {self._timeout:g}s")
            raise self.error() from None
        finally:
            with self._lock:
                self._pending.discard(reply)

    def post(self, step: Step) -> None:
        """Run ``step`` in the I/O thread without waiting for it (for steps with no answer
        to wait for, such as acknowledgements); if the link ends first, it never runs."""
        if not self.alive:
            raise self.error()
        self._post(partial(_guarded, partial(step, _ignore)))

    def later(self, delay: float, fn: Callable[[], None]) -> None:
        """Run ``fn`` in the I/O thread after ``delay`` seconds (never if the link ends)."""

        def arm() -> None:
            if self.alive:
                self._conn.ioloop.call_later(max(delay, 0.0), partial(_guarded, fn))

        if threading.current_thread() is self._thread:
            arm()
        else:
            self._post(arm)

    def _post(self, fn: Callable[[], None]) -> None:
        try:
            self._conn.ioloop.add_callback_threadsafe(fn)
        except Exception as exc:  # the loop is gone: the link is dead
            self._die(describe(exc))

    # -- the I/O thread ---------------------------------------------------------------------

    def _run(self) -> None:
        try:
            self._conn = pika.SelectConnection(
                self._params,
                on_open_callback=self._on_open,
                on_open_error_callback=self._on_open_error,
                on_close_callback=self._on_closed,
            )
            self._conn.ioloop.start()
        except Exception as exc:
            self._reason = describe(exc)
        finally:
            self._die(self._reason)
            if self._conn is not None:
                try:
                    self._conn.ioloop.close()
                except Exception:
                    pass

    def _on_open(self, conn: Any) -> None:
        conn.channel(on_open_callback=self._on_work_open)

    def _on_work_open(self, channel: Any) -> None:
        self.work = channel
        self._watch(channel)
        if _Reader.fits(self._conn, channel):  # deliveries to it are read by a _Reader
            reader = _Reader(self._conn)
            reader.channels[channel.channel_number] = channel
            self._conn._on_data_available = reader
        # consumers (only used to wait) take one message each; basic.get ignores prefetch
        channel.basic_qos(
            prefetch_count=1,
            callback=lambda _: self._conn.channel(on_open_callback=self._on_pub_open),
        )

    def _on_pub_open(self, channel: Any) -> None:
        self.pub = channel
        self._watch(channel)
        channel.add_on_return_callback(self._on_return)
        channel.confirm_delivery(ack_nack_callback=self._on_confirm, callback=self._on_ready)

    def _on_ready(self, _frame: Any) -> None:
        with self._lock:
            self.alive = not self._dead
        self._opened.set(None)

    def _watch(self, channel: Any) -> None:
        number = channel.channel_number
        self._gets[number], self._getting[number] = deque(), False
        channel.add_on_close_callback(self._on_channel_closed)
        channel.add_callback(
            lambda _frame: self._got(channel, None), [spec.Basic.GetEmpty], one_shot=False
        )

    def _on_open_error(self, conn: Any, exc: BaseException) -> None:
        self._reason = f"cannot connect: {describe(exc)}"
        conn.ioloop.stop()

    def _on_closed(self, conn: Any, reason: BaseException) -> None:
        if not self.closing and not self._dead:  # else a channel error said why already
            self._reason = describe(reason)
        self._die(self._reason)
        conn.ioloop.stop()

    def _on_channel_closed(self, _channel: Any, reason: BaseException) -> None:
        if self.closing or self._dead:
            return
        self._reason = describe(reason)
        self._die(self._reason)
        self._shutdown()

    def _shutdown(self) -> None:
        conn = self._conn
        if conn is None:
            return
        if conn.is_closing or conn.is_closed:
            conn.ioloop.stop()
            return
        try:
            conn.close()
        except Exception:
            conn.ioloop.stop()

    def _die(self, reason: str) -> None:
        with self._lock:
            if self._dead:
                return
            self._dead = True
            self.alive = False
            pending, self._pending = list(self._pending), set()
        error = OperationalError(f"{self.where}: {reason}")
        self._opened.set(error)
        unwaited = sum(1 for b in list(self._unconfirmed.values()) if b.done == self._unwaited)
        if unwaited:
            logger.error(
                "%s: %d message(s) published without waiting for confirms were not confirmed "
                "before the connection ended; they may be lost",
                self.where,
                unwaited,
            )
        for reply in pending:
            reply.set(error)
        try:
            self._on_lost(self)
        finally:
            self._notify()

    # -- steps (built in any thread, run in the I/O thread) -------------------------------

    def declare(self, queue: str, arguments: dict[str, Any] | None = None) -> Step:
        """Declare a durable queue; the value is its count of ready messages."""
        return lambda done: self.pub.queue_declare(
            queue,
            durable=True,
            arguments=arguments,
            callback=lambda frame: done(frame.method.message_count),
        )

    def declare_exchange(self, name: str) -> Step:
        return lambda done: self.pub.exchange_declare(
            name, exchange_type="topic", durable=True, callback=done
        )

    def bind(self, queue: str, exchange: str, key: str) -> Step:
        return lambda done: self.pub.queue_bind(queue, exchange, key, callback=done)

    def bind_exchange(self, destination: str, source: str, key: str) -> Step:
        return lambda done: self.pub.exchange_bind(destination, source, key, callback=done)

    def purge(self, queue: str) -> Step:
        """Delete the ready messages of ``queue``; the value is how many."""
        return lambda done: self.pub.queue_purge(
            queue, callback=lambda frame: done(frame.method.message_count)
        )

    def delete(self, queue: str) -> Step:
        return lambda done: self.pub.queue_delete(queue, callback=done)

    def publish(self, items: Sequence[Item], confirmed: bool = True) -> Step:
        """Publish ``items`` (mandatory, so an unroutable one fails); done when all are
        confirmed, or (``confirmed=False``) once they are handed to the connection, their
        confirms still awaited here: a refusal is logged, and :meth:`wait_confirms` waits
        for them."""

        def start(done: Done) -> None:
            if not items:
                done(None)
                return
            batch = _Batch(len(items), done if confirmed else self._unwaited)
            for exchange, key, body, props in items:
                self.pub.basic_publish(exchange, key, body, props, mandatory=True)
                self._published += 1
                self._unconfirmed[self._published] = batch
            if not confirmed:
                done(None)

        return start

    def _unwaited(self, failure: BaseException | None) -> None:
        """The confirms of a publish nobody waited for came: a refusal is all there is to tell."""
        if failure is not None:
            logger.error("%s (published without waiting for its confirm)", failure)

    def wait_confirms(self, timeout: float) -> bool:
        """Wait up to ``timeout`` seconds until every message published on this link is
        confirmed; whether they all were (False also when the link ended first)."""
        deadline = time.monotonic() + timeout
        while self._unconfirmed:
            if not self.alive or time.monotonic() > deadline:
                return False
            time.sleep(0.002)
        return True

    def _on_return(self, _channel: Any, method: Any, _props: Any, _body: bytes) -> None:
        # the message's confirm follows: fail the batches it covers, and declare again
        self._returned = True
        self.declared.clear()
        logger.warning("%s: message to %r could not be routed", self.where, method.routing_key)

    def _on_confirm(self, frame: Any) -> None:
        method = frame.method
        failure = None
        if self._returned:
            failure = f"{self.where}: a message could not be routed (was its queue deleted?)"
        elif not isinstance(method, spec.Basic.Ack):
            failure = f"{self.where}: the broker refused to store a message"
        self._returned = False
        if method.multiple:
            tags = list(itertools.takewhile(lambda t: t <= method.delivery_tag, self._unconfirmed))
        else:
            tags = [method.delivery_tag]
        for tag in tags:
            batch = self._unconfirmed.pop(tag, None)
            if batch is not None:
                batch.confirm(failure)

    def _received(
        self, queue: str, method: Any, props: Any, body: bytes, remaining: int = 0
    ) -> Raw:
        """A message the work channel delivered (every one is counted until settled)."""
        self._unsettled.add(method.delivery_tag)
        return Raw(queue, method.delivery_tag, method.redelivered, props, body, remaining)

    def _requeue(self, tags: Sequence[int]) -> None:
        """Give work-channel deliveries back to their queues."""
        for tag in tags:
            self.work.basic_nack(tag, requeue=True)
        self._unsettled.drop(tags)

    def get(self, queue: str, pub: bool = False) -> Step:
        """``basic.get`` one message (None when the queue is empty)."""

        def start(done: Done) -> None:
            channel = self.pub if pub else self.work
            number = channel.channel_number
            self._gets[number].append((queue, done))
            if not self._getting[number]:
                self._next_get(channel)

        return start

    def _next_get(self, channel: Any) -> None:
        number = channel.channel_number
        queue, _ = self._gets[number][0]
        self._getting[number] = True

        def got(_ch: Any, method: Any, props: Any, body: bytes) -> None:
            remaining = int(getattr(method, "message_count", 0) or 0)
            if channel is self.work:
                raw = self._received(queue, method, props, body, remaining)
            else:
                raw = Raw(queue, method.delivery_tag, method.redelivered, props, body, remaining)
            self._got(channel, raw)

        channel.basic_get(queue, callback=got)

    def _got(self, channel: Any, raw: Raw | None) -> None:
        number = channel.channel_number
        _, done = self._gets[number].popleft()
        self._getting[number] = False
        if self._gets[number]:
            self._next_get(channel)
        done(raw)

    def get_many(self, queue: str, count: int, pub: bool = False) -> Step:
        """Up to ``count`` messages of ``queue`` (fewer when it runs out)."""

        def start(done: Done) -> None:
            got: list[Raw] = []

            def received(raw: Raw | None) -> None:
                if raw is not None:
                    got.append(raw)
                    if len(got) < count:
                        self.get(queue, pub)(received)
                        return
                done(got)

            if count > 0:
                self.get(queue, pub)(received)
            else:
                done(got)

        return start

    def claim(self, queues: Sequence[str], limit: int, seeds: Sequence[Raw] = ()) -> Step:
        """Take up to ``limit`` messages from ``queues`` on the work channel, highest priority
        first, earlier queues first among equals. It looks at the head of each queue (``seeds``
        are heads already received) and puts back the heads it did not take (a stream on the
        work channel ends first)."""

        def start(done: Done) -> None:
            def claimed(claim: Any) -> None:
                if isinstance(claim, Claim) and self._given_back:
                    claim.returned += self.given_back()
                done(claim)

            step = self._claim(queues, limit, seeds)
            if self._stream is not None:
                self._end_stream(lambda: step(claimed))
            else:
                step(claimed)

        return start

    def _claim(self, queues: Sequence[str], limit: int, seeds: Sequence[Raw]) -> Step:
        if len(queues) == 1 and not seeds and limit >= BATCH_MIN:
            return self._claim_batch(queues[0], limit)

        def start(done: Done) -> None:
            heads: list[Any] = [_UNKNOWN] * len(queues)
            extra: list[Raw] = []  # a second seed of one queue (never expected)
            for raw in seeds:
                i = queues.index(raw.queue)
                (extra.append(raw) if isinstance(heads[i], Raw) else heads.__setitem__(i, raw))
            taken: list[Raw] = []

            def step() -> None:
                if len(taken) < limit:
                    for i, head in enumerate(heads):
                        if head is _UNKNOWN:
                            self.get(queues[i])(partial(arrived, i))
                            return
                    ready = [(-h.priority, i) for i, h in enumerate(heads) if isinstance(h, Raw)]
                    if ready:
                        _, best = min(ready)
                        taken.append(heads[best])
                        heads[best] = _UNKNOWN
                        step()
                        return
                returned = [h for h in heads if isinstance(h, Raw)] + extra
                self._requeue([raw.tag for raw in returned])
                done(Claim(taken, returned))

            def arrived(i: int, raw: Raw | None) -> None:
                heads[i] = raw
                step()

            step()

        return start

    def _claim_batch(self, queue: str, limit: int) -> Step:
        """:meth:`claim` from one queue: its head by ``basic.get``, whose answer tells how
        many more are ready; as many of those as wanted (``limit`` in all) come in one push
        to a consumer whose prefetch window is that size, cancelled once they are here (or
        after :data:`BATCH_WAIT`). The queue's own order (priority, then arrival) holds."""

        def start(done: Done) -> None:
            def head(raw: Raw | None) -> None:
                if raw is None:
                    done(Claim())
                    return
                want = min(limit - 1, raw.remaining)
                if want <= 0:
                    done(Claim([raw]))
                    return
                taken = [raw]
                consumer: list[str] = []
                finished = False

                def finish() -> None:
                    nonlocal finished
                    if finished:
                        return
                    finished = True

                    def cancelled(_frame: Any = None) -> None:
                        # what came before the cancel's answer is in ``taken``; the waiting
                        # consumers (consume()) take one message each again
                        self.work.basic_qos(prefetch_count=1, callback=lambda _: done(Claim(taken)))

                    if consumer and consumer[0] in self.work.consumer_tags:
                        self.work.basic_cancel(consumer[0], callback=cancelled)
                    else:
                        cancelled()

                def delivered(_ch: Any, method: Any, props: Any, body: bytes) -> None:
                    taken.append(self._received(queue, method, props, body))
                    if len(taken) > want:
                        finish()

                def consuming(_frame: Any) -> None:
                    if len(taken) > want:
                        finish()
                    else:
                        self._conn.ioloop.call_later(BATCH_WAIT, partial(_guarded, finish))

                def windowed(_frame: Any) -> None:
                    consumer.append(self.work.basic_consume(queue, delivered, callback=consuming))

                self.work.basic_qos(prefetch_count=want, callback=windowed)

            self.get(queue)(head)

        return start

    def stream(self, queue: str, window: int) -> Step:
        """The :class:`Stream` of ``queue``: a consumer kept open with a prefetch window of
        ``window`` (the unacknowledged messages it may hold, those taken included), so
        messages stream in as others are acknowledged and a fetch takes them without a
        round trip. Started on the first call (a stream of another queue or window ends
        first). A stream also ends when a claim comes, or when what it holds waited
        :data:`STREAM_IDLE` seconds with nothing taken; what it holds then goes back to its
        queue. Each arrival into an empty stream calls ``notify``."""

        def start(done: Done) -> None:
            current = self._stream
            if current is not None:
                if current.serves(queue, window):
                    done(current)
                else:
                    self._end_stream(lambda: start(done))
                return
            stream = self._stream = Stream(queue, window)

            def delivered(_ch: Any, method: Any, props: Any, body: bytes) -> None:
                raw = self._received(queue, method, props, body)
                if stream.ended:  # came after the stream ended: back it goes
                    self._give_back([raw])
                elif stream.add(raw):
                    self._notify()

            def consuming(_frame: Any) -> None:
                if stream.ended:  # ended before it began: no consumer for it
                    done(stream)
                    return
                stream.tag = self.work.basic_consume(
                    queue, delivered, callback=lambda _: done(stream)
                )

            self.work.basic_qos(prefetch_count=window, callback=consuming)
            self._check_later(stream, STREAM_IDLE)

        return start

    def live_stream(self, queue: str, window: int) -> Stream | None:
        """The stream :meth:`stream` would give, if it runs now (any thread)."""
        stream = self._stream
        return stream if stream is not None and stream.serves(queue, window) else None

    def _check_later(self, stream: Stream, delay: float) -> None:
        self._conn.ioloop.call_later(delay, partial(_guarded, partial(self._check, stream)))

    def _check(self, stream: Stream) -> None:
        """End ``stream`` if what it holds waited long for a taker (a timer while it runs):
        given back, other consumers can have it."""
        if stream is not self._stream or not self.alive:
            return
        idle = time.monotonic() - stream.taken_at
        if idle < STREAM_IDLE:
            self._check_later(stream, STREAM_IDLE - idle)
        elif stream.holding():
            self._end_stream(lambda: None)
        else:
            self._check_later(stream, STREAM_IDLE)

    def _end_stream(self, then: Callable[[], None]) -> None:
        """Cancel the stream's consumer and give back what it holds (deliveries still on
        their way are rejected by the channel, which requeues them too), then ``then()``."""
        stream, self._stream = self._stream, None
        assert stream is not None

        def cancelled(_frame: Any = None) -> None:
            # the waiting consumers (consume()) take one message each again
            self.work.basic_qos(prefetch_count=1, callback=lambda _: then())

        if stream.tag is not None and stream.tag in self.work.consumer_tags:
            self.work.basic_cancel(stream.tag, callback=cancelled)
            self._give_back(stream.end())
        else:
            self._give_back(stream.end())
            cancelled()

    def _give_back(self, raws: list[Raw]) -> None:
        self._requeue([raw.tag for raw in raws])
        self._given_back.extend(raws)

    def given_back(self) -> list[Raw]:
        """The messages ended streams gave back since the last call (any thread): they
        were looked at, not delivered."""
        given = self._given_back
        return [given.popleft() for _ in range(len(given))]

    def consume(self, queues: Sequence[str]) -> Step:
        """Start a consumer (one message at most) on each of ``queues``; the value is their
        tags. Messages they receive are kept until :meth:`cancel`."""

        def start(done: Done) -> None:
            tags: list[str] = []
            for n, queue in enumerate(queues, 1):
                last = n == len(queues)
                tags.append(
                    self.work.basic_consume(
                        queue,
                        partial(self._on_message, queue),
                        callback=(lambda _: done(tags)) if last else None,
                    )
                )

        return start

    def _on_message(self, queue: str, _ch: Any, method: Any, props: Any, body: bytes) -> None:
        self._arrived.append(self._received(queue, method, props, body))
        self._notify()

    def cancel(self, tags: Sequence[str]) -> Step:
        """Cancel consumers; the value is the messages they received."""

        def start(done: Done) -> None:
            def next_tag(_frame: Any = None) -> None:
                while pending:
                    tag = pending.popleft()
                    if tag in self.work.consumer_tags:
                        self.work.basic_cancel(tag, callback=next_tag)
                        return
                arrived, self._arrived = self._arrived, []
                done(arrived)

            pending = deque(tags)
            next_tag()

        return start

    def settle(
        self, acks: Sequence[int] = (), requeue: Sequence[int] = (), pub: bool = False
    ) -> Step:
        """Ack and requeue deliveries of one channel (no reply to wait for)."""

        def start(done: Done) -> None:
            if pub:
                for tag in acks:
                    self.pub.basic_ack(tag)
                for tag in requeue:
                    self.pub.basic_nack(tag, requeue=True)
            else:
                self._requeue(requeue)  # first: a multiple ack after it must not cover them
                upto, rest = self._unsettled.acks(acks)
                if upto or rest:
                    _send_acks(self._conn, self.work, upto, rest)
            done(None)

        return start

    def requeue_now(self, tags: Sequence[int]) -> None:
        """Requeue work-channel deliveries; only from the I/O thread (timers)."""
        if self.alive:
            self._requeue(tags)


_UNKNOWN = object()

# frame type, channel, size (13), method (basic.ack), delivery tag, flags (1: multiple), end
_ACK = struct.Struct(">BHLIQBB")


def _send_acks(conn: Any, channel: Any, upto: int, tags: Sequence[int]) -> None:
    """``channel.basic_ack(upto, multiple=True)`` (unless ``upto`` is 0), then
    ``channel.basic_ack(tag)`` for each of ``tags``: the frames marshalled together and handed
    to the transport in one write (pika marshals and writes each one by itself)."""
    count = len(tags) + (1 if upto else 0)
    if count < 2 or not hasattr(conn, "_adapter_emit_data"):
        if upto:
            channel.basic_ack(upto, multiple=True)
        for tag in tags:
            channel.basic_ack(tag)
        return
    if not channel.is_open or conn.is_closed:
        channel.basic_ack(upto or tags[0])  # raises pika's error for the state it is in
        return
    number, method = channel.channel_number, spec.Basic.Ack.INDEX
    pack, end = _ACK.pack, spec.FRAME_END
    frames = [pack(spec.FRAME_METHOD, number, 13, method, upto, 1, end)] if upto else []
    frames += [pack(spec.FRAME_METHOD, number, 13, method, tag, 0, end) for tag in tags]
    data = b"".join(frames)
    conn.bytes_sent += len(data)
    conn.frames_sent += count
    conn._adapter_emit_data(data)


# -- reading frames -----------------------------------------------------------------------------

_FRAME = struct.Struct(">BHL")  # type, channel, size; the payload and FRAME_END follow
_METHOD_ID = struct.Struct(">I")
_CONTENT = struct.Struct(">HHQ")  # a content header: class, weight, body size
_DELIVER = spec.Basic.Deliver.INDEX
#: what pika's connection and channels must have for :class:`_Reader` to stand in (else
#: pika reads every frame itself)
_READER_NEEDS = (
    ("_frame_buffer", "bytes_received", "frames_received", "_process_frame"),
    ("_consumers", "_cancelled", "_consumers_with_noack"),
)


class _Reader:
    """Reads the connection's incoming frames in place of pika's own loop, which is most of
    the I/O thread's time when messages stream in: for each of a delivery's three frames pika
    copies what is left of its buffer, looks for callbacks registered on the frame and hands
    it through the channel to a content assembler. Here a ``basic.deliver`` to one of
    ``channels`` and its content frames are decoded in place and the message goes straight
    to its consumer (as pika's channel does: a delivery to a cancelled consumer is rejected,
    which requeues it); every other frame still goes through pika's ``_process_frame``."""

    def __init__(self, conn: Any) -> None:
        self.conn = conn
        self.channels: dict[int, Any] = {}  # channel number -> pika channel read here
        # channel number -> [delivery method, properties, body size, fragments, received]
        self.content: dict[int, list[Any]] = {}

    @staticmethod
    def fits(conn: Any, channel: Any) -> bool:
        """Does this pika have the internals the reader relies on?"""
        conn_needs, channel_needs = _READER_NEEDS
        return all(hasattr(conn, n) for n in conn_needs) and all(
            hasattr(channel, n) for n in channel_needs
        )

    def __call__(self, data: bytes) -> None:
        conn = self.conn
        buf = conn._frame_buffer + data if conn._frame_buffer else data
        size_all = len(buf)
        pos = 0
        try:
            while size_all - pos >= 8:
                kind, number, size = _FRAME.unpack_from(buf, pos)
                end = pos + size + 8
                if end > size_all:
                    break
                if buf[end - 1] != spec.FRAME_END:
                    raise pika_errors.InvalidFrameError("Invalid FRAME_END marker")
                start, pos = pos, end
                content = self.content.get(number)
                if content is not None:
                    conn.frames_received += 1
                    self._content(number, content, kind, buf, start + 7, end - 1)
                elif (
                    kind == spec.FRAME_METHOD
                    and number in self.channels
                    and _METHOD_ID.unpack_from(buf, start + 7)[0] == _DELIVER
                ):
                    conn.frames_received += 1
                    method = spec.Basic.Deliver().decode(buf, start + 11)
                    self.content[number] = [method, None, 0, [], 0]
                else:
                    _, value = pika_frame.decode_frame(buf[start:end])
                    if value is not None:
                        conn._process_frame(value)
        finally:
            conn._frame_buffer = buf[pos:] if pos < size_all else b""
            conn.bytes_received += pos

    def _content(
        self, number: int, content: list[Any], kind: int, buf: bytes, start: int, end: int
    ) -> None:
        """A content frame of the delivery under way on channel ``number``."""
        if kind == spec.FRAME_HEADER and content[1] is None:
            content[2] = _CONTENT.unpack_from(buf, start)[2]
            content[1] = spec.BasicProperties().decode(buf, start + 12)
        elif kind == spec.FRAME_BODY and content[1] is not None:
            content[3].append(buf[start:end])
            content[4] += end - start
        else:
            del self.content[number]
            raise pika_errors.UnexpectedFrameError(f"frame of type {kind} inside a delivery")
        if content[4] >= content[2]:
            del self.content[number]
            if content[4] > content[2]:
                raise pika_errors.BodyTooLongError(content[4], content[2])
            method, props, _, fragments, _ = content
            body = fragments[0] if len(fragments) == 1 else b"".join(fragments)
            self._deliver(self.channels[number], method, props, body)

    @staticmethod
    def _deliver(channel: Any, method: Any, props: Any, body: bytes) -> None:
        tag = method.consumer_tag
        if tag in channel._cancelled:
            if channel.is_open and tag not in channel._consumers_with_noack:
                channel.basic_reject(method.delivery_tag)
            return
        consumer = channel._consumers.get(tag)
        if consumer is None:
            logger.error("unexpected delivery to consumer %r", tag)
            return
        consumer(channel, method, props, body)


def _ignore(_value: Any) -> None:
    pass


def _guarded(fn: Callable[[], None]) -> None:
    try:
        fn()
    except Exception:  # never let a timer end the I/O loop
        logger.exception("celeriac amqp timer failed")


def describe(exc: BaseException) -> str:
    """A one-line description of a pika (or socket) error: of the error a failed connection
    attempt wraps (pika nests it in two or three layers), else of the error itself."""
    while True:
        inner = getattr(exc, "exception", None) or (getattr(exc, "exceptions", None) or [None])[-1]
        if inner is None and exc.args and isinstance(exc.args[0], BaseException):
            inner = exc.args[0]
        if not isinstance(inner, BaseException) or inner is exc:
            break
        exc = inner
    code = getattr(exc, "reply_code", None)
    text = getattr(exc, "reply_text", None)
    if code is not None:
        return f"{type(exc).__name__}: {code} {text}"
    message = " ".join(str(exc).split())
    return f"{type(exc).__name__}: {message}" if message else type(exc).__name__
