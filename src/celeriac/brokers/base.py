"""The broker contract. Every broker module implements :class:`Broker`; one shared test suite
(``tests/contract``) checks each against the guarantees written here.

Guarantees every broker gives:

* **Priorities** 0-9, 9 delivered first, FIFO within one priority of one queue.
* **Delays** are held by the broker: a message published with ``eta`` is not delivered before
  it, and never waits in a worker's memory.
* **Leases**: ``fetch`` hands out deliveries under a lease of ``visibility_timeout`` seconds. A
  lease that is neither extended nor settled (ack, release, dead_letter) expires and the
  message is delivered again: at-least-once. Settling uses the delivery's own lease, so a
  worker whose lease expired and was re-claimed elsewhere cannot disturb the new holder.
* **Dead letters**: each queue has a dead-letter queue that keeps the original bytes with the
  reason; it can be listed, requeued and purged.
* **Statistics**: ``queue_stats`` tells what a queue holds, by state, in as few round trips as
  the technology allows; what the technology cannot tell cheaply is None, never a guess.
* **Threads**: ``fetch`` is called by one thread; every other method may be called from any
  thread of the process.
* **Processes**: a delivery may be settled or extended by another process using the same
  URL (the prefork pool's parent does that for its children), unless the broker says
  ``local_leases``: then only the process that fetched it can.
* **Errors**: driver errors are raised as :class:`celeriac.exceptions.OperationalError`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

from .. import plugins

DEFAULT_VISIBILITY_TIMEOUT = 30.0


@dataclass(slots=True)
class Outgoing:
    """A message to publish: encoded bytes and where/when to deliver them."""

    body: bytes
    queue: str
    priority: int = 0
    eta: float | None = None  # UNIX time; None means now
    message_id: str | None = None


@dataclass(slots=True)
class Delivery:
    """A message handed to a consumer under a lease."""

    body: bytes
    queue: str
    priority: int
    tag: Any  # the broker's handle for this lease
    delivery_count: int = 1  # 1 on first delivery; more means redelivered
    seq: int = 0  # the consumer's own number for it (a prefork child's, told to its parent)
    #: what the broker found wrong with it (the worker dead-letters it with this reason)
    defect: str | None = None

    @property
    def redelivered(self) -> bool:
        return self.delivery_count > 1


@dataclass(slots=True)
class DeadLetter:
    """A message in a dead-letter queue."""

    id: Any
    body: bytes
    queue: str
    reason: str
    dead_at: float


@dataclass(frozen=True, slots=True)
class QueueStats:
    """What one queue holds, by state, as :meth:`Broker.queue_stats` saw it.

    None means the broker cannot tell that cheaply (each broker's ``queue_stats`` says
    which and why), never a guess."""

    queue: str
    #: messages due now and under no live lease (an expired lease's included)
    waiting: int
    #: messages leased to a worker and not yet settled
    in_flight: int | None
    #: messages due later: an eta or countdown, or a retry's delay
    delayed: int | None
    #: messages in the queue's dead-letter queue
    dead_lettered: int
    #: seconds since the longest-waiting message became due (was published, its eta or
    #: delay passed, or it was given back); None when nothing is waiting
    oldest_age: float | None


@runtime_checkable
class Broker(Protocol):
    """What a broker does. ``url`` is the URL it was created from (password masked by
    :func:`~celeriac.utils.urls.safe_url` when shown)."""

    url: str
    visibility_timeout: float
    #: deliveries can be settled only by the process that fetched them (their leases live
    #: in its connection, or the whole broker in its memory)
    local_leases: bool

    def publish(self, messages: Sequence[Outgoing]) -> None:
        """Store messages durably, in one round trip where the technology allows it.

        Returns only when every message is stored (or raises OperationalError)."""

    def fetch(
        self,
        queues: Sequence[str],
        limit: int,
        timeout: float,
        acks: Sequence[Delivery] = (),
    ) -> list[Delivery]:
        """Acknowledge ``acks`` (as :meth:`ack_many`, in the same round trip as the claim
        where the technology allows), then claim up to ``limit`` due messages from
        ``queues`` under fresh leases.

        Highest priority first, FIFO within a priority; ``queues`` earlier in the list are
        preferred only among equal priorities. Messages whose lease expired are due again.
        Blocks up to ``timeout`` seconds when nothing is due, waking early when a message
        arrives (without busy polling where the technology allows it). May return fewer."""

    # A broker may also have ``prefetch(window: int) -> None``: a worker calls it before
    # each fetch with the messages it keeps unacknowledged at most (0: none promised), and
    # a broker that pushes messages (RabbitMQ) may then keep a consumer open with that
    # window instead of claiming on each fetch.

    def extend(self, deliveries: Sequence[Delivery]) -> None:
        """Renew the leases of deliveries still being worked on."""

    def ack(self, delivery: Delivery) -> None:
        """The message is done with: remove it."""

    def ack_many(self, deliveries: Sequence[Delivery]) -> None:
        """:meth:`ack` several deliveries, in one round trip where the technology allows."""

    def release(self, delivery: Delivery, delay: float | None = None) -> None:
        """Put the message back in its queue (due after ``delay`` seconds), keeping its place."""

    def dead_letter(self, delivery: Delivery, reason: str) -> None:
        """Move the message to its queue's dead-letter queue with ``reason``."""

    def queue_length(self, queue: str) -> int:
        """Messages waiting or leased in ``queue`` (delayed ones included)."""

    def queue_stats(self, queue: str) -> QueueStats:
        """How many messages of ``queue`` are waiting, in flight, delayed and dead-lettered,
        and how long the oldest waiting one has waited; one round trip where the technology
        allows. A queue that was never used has zeros (and no age)."""

    def purge(self, queue: str) -> int:
        """Delete the messages waiting in ``queue``; returns how many."""

    def dead_letters(self, queue: str, limit: int = 100) -> list[DeadLetter]:
        """The oldest ``limit`` messages in ``queue``'s dead-letter queue."""

    def requeue_dead_letters(self, queue: str, ids: Sequence[Any] | None = None) -> int:
        """Move dead letters (all, or those ``ids``) back to ``queue``; returns how many."""

    def purge_dead_letters(self, queue: str) -> int:
        """Delete ``queue``'s dead letters; returns how many."""

    def wakeup(self) -> None:
        """Make a ``fetch`` blocked in another thread (or interrupted by the signal handler
        calling this) return early. Safe in a signal handler: it takes no lock."""

    def close(self) -> None:
        """Release connections. The broker may be used again afterwards (it reconnects)."""


def create_broker(url: str, options: dict[str, Any] | None = None) -> Broker:
    """Create the broker for ``url`` (``options`` is ``broker_transport_options``): the
    class the ``celeriac.brokers`` entry point of its scheme names."""
    cls = plugins.for_url(plugins.BROKERS, url, "broker")
    broker: Broker = cls(url, dict(options or {}))
    return broker


def visibility_timeout(options: dict[str, Any]) -> float:
    """The lease length from ``broker_transport_options`` (positive seconds)."""
    value = float(options.get("visibility_timeout", DEFAULT_VISIBILITY_TIMEOUT))
    if value <= 0:
        raise ValueError("visibility_timeout must be positive")
    return value


def int_or_none(value: Any) -> int | None:
    """``value`` as an int, or None when it is not one (dead-letter ids from users)."""
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def claimed(rows: Sequence[Sequence[Any]], queues: Sequence[str], lease: str) -> list[Delivery]:
    """Deliveries from claimed SQL rows ``(id, queue, priority, body, deliveries)``, in
    delivery order: priority first, then the order of ``queues``, then id (RETURNING rows
    come in no defined order)."""
    order = {name: i for i, name in enumerate(queues)}
    ordered = sorted(rows, key=lambda r: (-r[2], order[r[1]], r[0]))
    return [
        Delivery(
            body=bytes(body),
            queue=queue,
            priority=priority,
            tag=(row_id, lease),
            delivery_count=deliveries,
        )
        for row_id, queue, priority, body, deliveries in ordered
    ]


def dead_letter_queue(queue: str) -> str:
    """The name of ``queue``'s dead-letter queue."""
    return f"{queue}.dlq"
