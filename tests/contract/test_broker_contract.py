"""The broker contract (see :mod:`celeriac.brokers.base`), run against every broker."""

from __future__ import annotations

import multiprocessing
import signal
import threading
import time
from collections.abc import Callable
from typing import Any

import pytest

from celeriac.brokers.base import Broker, Delivery, Outgoing, create_broker
from conftest import wait_until

from .conftest import SHORT_LEASE, BrokerSetup

Q = "contract"


def send(broker: Broker, *bodies: str, queue: str = Q, priority: int = 0, **kw: Any) -> None:
    broker.publish([Outgoing(b.encode(), queue, priority, **kw) for b in bodies])


def bodies(deliveries: list[Delivery]) -> list[str]:
    return [d.body.decode() for d in deliveries]


def drain(broker: Broker, queues: list[str] | None = None, limit: int = 100) -> list[Delivery]:
    """Fetch (without waiting) until nothing is due; the deliveries are left leased."""
    out: list[Delivery] = []
    while batch := broker.fetch(queues or [Q], limit, 0):
        out += batch
    return out


def later(seconds: float, action: Callable[[], Any]) -> threading.Thread:
    """Run ``action`` in a thread after ``seconds``."""
    thread = threading.Timer(seconds, action)
    thread.start()
    return thread


def test_is_a_broker(broker: Broker, broker_setup: BrokerSetup) -> None:
    assert isinstance(broker, Broker)
    assert broker.url == broker_setup.url
    assert broker_setup.make(visibility_timeout=12.5).visibility_timeout == 12.5


def test_publish_fetch_ack_roundtrip(broker: Broker) -> None:
    payload = bytes(range(256)) * 4
    broker.publish([Outgoing(payload, Q, 3, message_id="m-1")])
    assert broker.queue_length(Q) == 1
    [d] = broker.fetch([Q], 10, 1.0)
    assert (d.body, d.queue, d.priority, d.delivery_count) == (payload, Q, 3, 1)
    assert not d.redelivered
    assert broker.fetch([Q], 10, 0) == []
    assert broker.queue_length(Q) == 1  # leased messages still count
    broker.ack(d)
    assert broker.queue_length(Q) == 0
    assert broker.fetch([Q], 10, 0) == []


def test_empty_publish_and_unknown_queue(broker: Broker) -> None:
    broker.publish([])
    assert broker.queue_length("nowhere") == 0
    assert broker.purge("nowhere") == 0
    assert broker.fetch(["nowhere"], 5, 0) == []
    assert broker.dead_letters("nowhere") == []


def test_priority_order_and_fifo_within_priority(broker: Broker) -> None:
    sent = [(i * 7 % 10, f"m{i}") for i in range(40)]
    broker.publish([Outgoing(body.encode(), Q, prio) for prio, body in sent])
    expected = [body for prio, body in sorted(sent, key=lambda pb: -pb[0])]  # sort is stable
    first = broker.fetch([Q], 1, 0)
    rest = drain(broker, limit=7)
    assert bodies(first + rest) == expected
    assert [d.priority for d in first + rest] == sorted((p for p, _ in sent), reverse=True)


def test_batch_fetch_is_ordered(broker: Broker) -> None:
    broker.publish([Outgoing(f"{p}".encode(), Q, p) for p in (0, 5, 9, 1, 9, 0)])
    assert [d.priority for d in broker.fetch([Q], 10, 0)] == [9, 9, 5, 1, 0, 0]


def test_fetch_from_several_queues(broker: Broker) -> None:
    send(broker, "a0", "a1", queue="a", priority=1)
    send(broker, "b0", "b1", queue="b", priority=1)
    send(broker, "b-high", queue="b", priority=8)
    send(broker, "c0", queue="c", priority=9)
    # priority first; among equal priorities the queue listed first; then FIFO
    assert bodies(broker.fetch(["a", "b"], 10, 0)) == ["b-high", "a0", "a1", "b0", "b1"]
    assert broker.queue_length("c") == 1
    assert bodies(broker.fetch(["c", "a"], 10, 0)) == ["c0"]


def test_fetch_limit(broker: Broker) -> None:
    send(broker, *(f"m{i}" for i in range(10)))
    assert bodies(broker.fetch([Q], 3, 0)) == ["m0", "m1", "m2"]
    assert bodies(broker.fetch([Q], 3, 0)) == ["m3", "m4", "m5"]


def test_eta_is_held_by_the_broker(broker: Broker) -> None:
    eta = time.time() + 0.4
    send(broker, "later", eta=eta)
    send(broker, "now")
    assert bodies(broker.fetch([Q], 10, 0)) == ["now"]
    assert broker.queue_length(Q) == 2
    started = time.monotonic()
    got = broker.fetch([Q], 10, 3.0)
    assert bodies(got) == ["later"]
    assert time.time() >= eta - 0.01
    assert time.monotonic() - started < 1.5  # woke at the eta, not at the timeout


def test_eta_in_the_past_is_due_at_once(broker: Broker) -> None:
    send(broker, "overdue", eta=time.time() - 60)
    assert bodies(broker.fetch([Q], 1, 0)) == ["overdue"]


def test_expired_lease_is_delivered_again(broker_setup: BrokerSetup) -> None:
    broker = broker_setup.make(short_lease=True)
    assert broker.visibility_timeout == SHORT_LEASE
    send(broker, "job")
    [first] = broker.fetch([Q], 1, 0)
    assert first.delivery_count == 1
    assert broker.fetch([Q], 1, 0) == []
    started = time.monotonic()
    [second] = broker.fetch([Q], 1, 3.0)
    waited = time.monotonic() - started
    assert second.body == b"job"
    assert second.delivery_count == 2 and second.redelivered
    assert SHORT_LEASE * 0.5 < waited < SHORT_LEASE + 1.0
    [third] = broker.fetch([Q], 1, 3.0)
    assert third.delivery_count == 3


def test_stale_lease_cannot_disturb_the_new_holder(broker_setup: BrokerSetup) -> None:
    broker = broker_setup.make(short_lease=True)
    send(broker, "job", "other")
    [old, _other] = broker.fetch([Q], 2, 0)
    [new] = broker.fetch([Q], 1, 3.0)  # "job" comes back first (FIFO)
    assert new.body == b"job" and new.delivery_count == 2
    broker.ack(old)
    broker.release(old)
    broker.dead_letter(old, "stale")
    broker.extend([old])
    assert broker.queue_length(Q) == 2
    assert broker.dead_letters(Q) == []
    broker.extend([new])
    assert all(d.body != b"job" for d in broker.fetch([Q], 5, 0))
    broker.ack(new)
    assert all(d.body != b"job" for d in broker.fetch([Q], 5, 1.0))


def test_extend_keeps_the_lease(broker_setup: BrokerSetup) -> None:
    broker = broker_setup.make(short_lease=True)
    send(broker, "long job")
    [d] = broker.fetch([Q], 1, 0)
    until = time.monotonic() + SHORT_LEASE * 2.5
    while time.monotonic() < until:
        time.sleep(SHORT_LEASE / 4)
        broker.extend([d])
        assert broker.fetch([Q], 1, 0) == []
    broker.ack(d)
    assert broker.queue_length(Q) == 0


def test_release_keeps_the_place(broker: Broker) -> None:
    send(broker, "first", "second")
    [d] = broker.fetch([Q], 1, 0)
    broker.release(d)
    [again] = broker.fetch([Q], 1, 0)
    assert again.body == b"first" and again.delivery_count == 2
    assert broker.queue_length(Q) == 2


def test_release_with_delay(broker: Broker) -> None:
    send(broker, "job")
    [d] = broker.fetch([Q], 1, 0)
    released = time.monotonic()
    broker.release(d, delay=0.4)
    assert broker.fetch([Q], 1, 0) == []
    [again] = broker.fetch([Q], 1, 3.0)
    assert again.body == b"job"
    assert 0.3 < time.monotonic() - released < 1.5


def test_release_wakes_a_waiting_fetch(broker_setup: BrokerSetup) -> None:
    producer, consumer = broker_setup.make(), broker_setup.make()
    send(producer, "job")
    [d] = producer.fetch([Q], 1, 0)
    started = time.monotonic()
    releaser = later(0.2, lambda: producer.release(d))
    assert bodies(consumer.fetch([Q], 1, 5.0)) == ["job"]
    assert time.monotonic() - started < 1.5
    releaser.join(5)


def test_dead_letters(broker: Broker) -> None:
    send(broker, "keep")
    send(broker, "bad1", "bad2", priority=6)
    bad1, bad2, keep = broker.fetch([Q], 3, 0)
    before = time.time()
    broker.dead_letter(bad1, "boom")
    broker.dead_letter(bad2, "worse")
    broker.ack(keep)
    assert broker.queue_length(Q) == 0
    letters = broker.dead_letters(Q)
    assert [(x.body, x.queue, x.reason) for x in letters] == [
        (b"bad1", Q, "boom"),
        (b"bad2", Q, "worse"),
    ]
    assert all(before - 1 <= x.dead_at <= time.time() + 1 for x in letters)
    assert [x.body for x in broker.dead_letters(Q, limit=1)] == [b"bad1"]
    assert broker.dead_letters("other") == []

    assert broker.requeue_dead_letters(Q, [letters[1].id]) == 1
    assert [x.body for x in broker.dead_letters(Q)] == [b"bad1"]
    [back] = broker.fetch([Q], 5, 0)
    assert (back.body, back.priority) == (b"bad2", 6)
    broker.ack(back)

    assert broker.requeue_dead_letters(Q) == 1
    assert broker.requeue_dead_letters(Q) == 0
    assert bodies(broker.fetch([Q], 5, 0)) == ["bad1"]


def test_purge_dead_letters(broker: Broker) -> None:
    send(broker, "a", "b", "c")
    for d in broker.fetch([Q], 3, 0):
        broker.dead_letter(d, "no")
    assert broker.purge_dead_letters(Q) == 3
    assert broker.dead_letters(Q) == []
    assert broker.requeue_dead_letters(Q) == 0
    assert broker.purge_dead_letters(Q) == 0


def test_purge(broker: Broker) -> None:
    send(broker, *"abcde")
    send(broker, "delayed", eta=time.time() + 60)
    send(broker, "elsewhere", queue="other")
    [held] = broker.fetch([Q], 1, 0)
    assert broker.purge(Q) == 5  # waiting and delayed, not the leased one
    assert broker.queue_length(Q) == 1
    assert broker.queue_length("other") == 1
    broker.ack(held)
    assert broker.queue_length(Q) == 0
    assert broker.purge(Q) == 0


def test_fetch_waits_for_the_timeout(broker: Broker) -> None:
    started = time.monotonic()
    assert broker.fetch([Q], 1, 0.3) == []
    assert 0.25 <= time.monotonic() - started < 1.5


def test_fetch_returns_when_a_message_arrives(broker_setup: BrokerSetup) -> None:
    consumer, producer = broker_setup.make(), broker_setup.make()
    started = time.monotonic()
    sender = later(0.3, lambda: send(producer, "hello"))
    assert bodies(consumer.fetch([Q], 5, 10.0)) == ["hello"]
    assert 0.25 <= time.monotonic() - started < 2.0
    sender.join(5)  # the consumer can have it before the producer has its reply


def test_wakeup_interrupts_fetch(broker: Broker) -> None:
    started = time.monotonic()
    waker = later(0.3, broker.wakeup)
    assert broker.fetch([Q], 5, 10.0) == []
    waker.join(5)
    assert time.monotonic() - started < 2.0
    send(broker, "after")
    assert bodies(broker.fetch([Q], 5, 1.0)) == ["after"]


def test_a_wakeup_from_a_signal_handler_ends_a_waiting_fetch(broker: Broker) -> None:
    # the worker's handlers of SIGTERM call wakeup(), at any point of the thread they
    # interrupt, which may be holding a lock of the broker's own wait
    # interrupts, which may be holding a lock of the broker's own wait: a storm of them
    previous = signal.signal(signal.SIGALRM, lambda signum, frame: broker.wakeup())
    try:
        signal.setitimer(signal.ITIMER_REAL, 0.001, 0.001)
        end = time.monotonic() + 1.0
        while time.monotonic() < end:
            started = time.monotonic()
            assert broker.fetch([Q], 5, 10.0) == []
            assert time.monotonic() - started < 2.0
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def test_fetch_acknowledges_the_acks_it_is_given(broker: Broker) -> None:
    send(broker, "a", "b")
    first = broker.fetch([Q], 2, 0)
    assert bodies(first) == ["a", "b"]
    send(broker, "c")
    got = broker.fetch([Q], 5, 1.0, first)
    assert bodies(got) == ["c"]
    broker.ack_many(got)
    assert wait_until(lambda: broker.queue_length(Q) == 0, timeout=5)


def test_batch_of_1000_in_one_call(broker: Broker) -> None:
    broker.publish([Outgoing(f"m{i}".encode(), Q, 0) for i in range(1000)])
    assert broker.queue_length(Q) == 1000
    got = drain(broker, limit=100)
    assert bodies(got) == [f"m{i}" for i in range(1000)]
    for d in got:
        broker.ack(d)
    assert broker.queue_length(Q) == 0


def test_concurrent_fetchers_never_share_a_message(broker_setup: BrokerSetup) -> None:
    total = 400
    producer = broker_setup.make()
    producer.publish([Outgoing(f"{i}".encode(), Q, i % 10) for i in range(total)])
    seen: list[str] = []
    lock = threading.Lock()
    errors: list[BaseException] = []

    def consume(broker: Broker) -> None:
        try:
            while broker.queue_length(Q):
                got = broker.fetch([Q], 7, 0.05)
                with lock:
                    seen.extend(bodies(got))
                for d in got:
                    broker.ack(d)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=consume, args=(broker_setup.make(),)) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert not errors
    assert len(seen) == total
    assert sorted(map(int, seen)) == list(range(total))


# -- several processes (brokers shared between processes only) --------------------------------


def _produce(url: str, first: int, count: int) -> None:
    broker = create_broker(url, {})
    for start in range(first, first + count, 10):
        broker.publish([Outgoing(f"{i}".encode(), Q, i % 10) for i in range(start, start + 10)])
    broker.close()


def _consume(broker: Broker, done: Any, results: Any) -> None:
    got: list[str] = []
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        batch = broker.fetch([Q], 10, 0.1)
        got += bodies(batch)
        for d in batch:
            broker.ack(d)
        if not batch and done.is_set() and broker.queue_length(Q) == 0:
            break
    results.put(got)


def test_processes_claim_each_message_once(broker_setup: BrokerSetup) -> None:
    if not broker_setup.kind.cross_process:
        pytest.skip(f"{broker_setup.name} brokers are private to one process")
    ctx = multiprocessing.get_context("fork")
    # the parent's broker has open connections when the children fork and then use it
    broker = broker_setup.make()
    broker.publish([Outgoing(f"{i}".encode(), Q, i % 10) for i in range(100)])
    assert broker.queue_length(Q) == 100
    done, results = ctx.Event(), ctx.Queue()
    consumers = [ctx.Process(target=_consume, args=(broker, done, results)) for _ in range(3)]
    producers = [
        ctx.Process(target=_produce, args=(broker_setup.url, 100 + 150 * i, 150)) for i in range(2)
    ]
    for p in consumers + producers:
        p.start()
    for p in producers:
        p.join(30)
        assert p.exitcode == 0
    done.set()
    seen = [body for _ in consumers for body in results.get(timeout=60)]
    for p in consumers:
        p.join(10)
        assert p.exitcode == 0
    assert len(seen) == 400
    assert sorted(map(int, seen)) == list(range(400))
    assert broker.queue_length(Q) == 0  # the parent's broker still works after the forks
