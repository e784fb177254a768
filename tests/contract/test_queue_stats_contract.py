"""``Broker.queue_stats`` (see :class:`celeriac.brokers.base.QueueStats`), run against every
broker."""

from __future__ import annotations

import time

from celeriac.brokers.base import Broker, Outgoing, QueueStats
from conftest import wait_until

from .conftest import SHORT_LEASE, BrokerSetup

Q = "stats"

#: The fields each broker says it cannot tell (None), as its ``queue_stats`` documents.
UNKNOWN: dict[str, set[str]] = {
    "memory": set(),
    "sqlite": set(),
    "postgresql": set(),
    "redis": {"oldest_age"},  # a waiting item holds no time
    "amqp": {"in_flight", "oldest_age"},  # not told to clients; reading the head disturbs it
}
#: A broker of another distribution may leave unknown whatever the type allows.
NULLABLE = {"in_flight", "delayed", "oldest_age"}


def unknown(setup: BrokerSetup) -> set[str]:
    return UNKNOWN.get(setup.name, NULLABLE)


def check(stats: QueueStats, setup: BrokerSetup, **expected: int) -> None:
    """Each of ``expected`` is what ``stats`` says, or None where the broker cannot tell."""
    assert stats.queue == Q
    for name, value in expected.items():
        got = getattr(stats, name)
        if name in unknown(setup):
            assert got is None, f"{name}: {got!r}, documented as unknown"
        else:
            assert got == value, f"{name}: {got!r} instead of {value!r}"


def publish(broker: Broker, *bodies: str, eta: float | None = None) -> None:
    broker.publish([Outgoing(body.encode(), Q, eta=eta) for body in bodies])


def test_each_state_is_counted(broker: Broker, broker_setup: BrokerSetup) -> None:
    publish(broker, *(f"ready-{i}" for i in range(6)))
    publish(broker, "later-0", "later-1", eta=time.time() + 60)
    taken = broker.fetch([Q], 4, 1.0)
    assert len(taken) == 4
    broker.dead_letter(taken[0], "bad input")
    broker.release(taken[1], delay=60)  # a retry's delay: delayed, not in flight
    stats = broker.queue_stats(Q)
    check(stats, broker_setup, waiting=2, in_flight=2, delayed=3, dead_lettered=1)
    if "oldest_age" not in unknown(broker_setup):
        assert stats.oldest_age is not None and 0 <= stats.oldest_age < 30
    if stats.in_flight is not None and stats.delayed is not None:
        assert broker.queue_length(Q) == stats.waiting + stats.in_flight + stats.delayed
    broker.ack_many(taken[2:])
    check(broker.queue_stats(Q), broker_setup, waiting=2, in_flight=0, delayed=3)


def test_a_queue_never_used_is_empty(broker: Broker, broker_setup: BrokerSetup) -> None:
    stats = broker.queue_stats(Q)
    check(stats, broker_setup, waiting=0, in_flight=0, delayed=0, dead_lettered=0)
    assert stats.oldest_age is None


def test_oldest_age_grows_while_a_message_waits(broker: Broker, broker_setup: BrokerSetup) -> None:
    publish(broker, "later", eta=time.time() + 60)
    assert broker.queue_stats(Q).oldest_age is None  # nothing is waiting
    publish(broker, "first")
    time.sleep(0.3)
    publish(broker, "second")
    age = broker.queue_stats(Q).oldest_age
    if "oldest_age" in unknown(broker_setup):
        assert age is None
    else:
        assert age is not None and 0.3 <= age < 5


def test_an_expired_lease_is_waiting_again(broker_setup: BrokerSetup) -> None:
    broker = broker_setup.make(short_lease=True)
    publish(broker, "slow")
    assert len(broker.fetch([Q], 1, 1.0)) == 1
    check(broker.queue_stats(Q), broker_setup, waiting=0, in_flight=1)
    time.sleep(SHORT_LEASE + 0.1)
    # RabbitMQ's leases end in this client's I/O thread, which gives the message back
    wait_until(lambda: broker.queue_stats(Q).waiting == 1, timeout=5)
    check(broker.queue_stats(Q), broker_setup, waiting=1, in_flight=0, delayed=0)
