"""The event-log contract, on every broker's technology: appends in order, readers from the
newest, the oldest or a cursor, waits, bounds, and many readers of one log."""

from __future__ import annotations

import gc
import itertools
import os
import threading
import time
import warnings
from collections.abc import Iterator

import pytest

from celeriac.eventlogs.base import LATEST, OLDEST, EventLog, create_event_log
from services import amqp_delete_queues

from .conftest import BrokerSetup

_streams = itertools.count()


@pytest.fixture
def event_log(broker_setup: BrokerSetup) -> Iterator[EventLog]:
    options: dict[str, object] = {}
    if broker_setup.name == "amqp":
        options["queue"] = f"celeriac.events.test-{os.getpid()}-{next(_streams)}"
    log = create_event_log(broker_setup.url, options)
    yield log
    log.close()
    if broker_setup.name == "amqp":
        amqp_delete_queues(broker_setup.url, [str(options["queue"])])
    elif broker_setup.name == "memory":
        from celeriac.eventlogs.memory import MemoryEventLog

        MemoryEventLog.reset(broker_setup.url)


def bodies(entries: list[tuple[str, bytes]]) -> list[bytes]:
    return [body for _, body in entries]


def read_all(reader: object, want: int, timeout: float = 10.0) -> list[tuple[str, bytes]]:
    got: list[tuple[str, bytes]] = []
    deadline = time.monotonic() + timeout
    while len(got) < want and time.monotonic() < deadline:
        got += reader.read(1000, 0.5)  # type: ignore[attr-defined]
    return got


def test_a_reader_from_the_oldest_gets_every_event_in_order(event_log: EventLog) -> None:
    event_log.append([b"1", b"2"])
    event_log.append([b"3"])
    reader = event_log.reader(OLDEST)
    assert bodies(read_all(reader, 3)) == [b"1", b"2", b"3"]
    assert reader.read(10, 0.2) == []
    reader.close()


def test_a_reader_from_the_latest_sees_only_what_comes_after(event_log: EventLog) -> None:
    event_log.append([b"old"])
    reader = event_log.reader(LATEST)
    assert reader.read(10, 0.3) == []
    event_log.append([b"new"])
    assert bodies(read_all(reader, 1)) == [b"new"]
    reader.close()


def test_a_cursor_resumes_where_a_reader_stopped(event_log: EventLog) -> None:
    event_log.append([b"a", b"b", b"c"])
    first = event_log.reader(OLDEST)
    got = read_all(first, 3)
    first.close()
    assert first.cursor == got[-1][0]
    resumed = event_log.reader(got[0][0])
    assert bodies(read_all(resumed, 2)) == [b"b", b"c"]
    resumed.close()


def test_limit_bounds_one_read(event_log: EventLog) -> None:
    event_log.append([str(n).encode() for n in range(10)])
    reader = event_log.reader(OLDEST)
    got = reader.read(3, 5.0)
    assert 1 <= len(got) <= 3
    got += read_all(reader, 10 - len(got))
    assert bodies(got) == [str(n).encode() for n in range(10)]
    reader.close()


def test_a_waiting_reader_wakes_when_an_event_arrives(event_log: EventLog) -> None:
    reader = event_log.reader(LATEST)
    reader.read(10, 0.1)  # positions it
    threading.Timer(0.3, lambda: event_log.append([b"late"])).start()
    started = time.monotonic()
    got = reader.read(10, 5.0)
    assert bodies(got) == [b"late"]
    assert time.monotonic() - started < 4.0
    reader.close()


def test_many_readers_each_get_every_event(event_log: EventLog) -> None:
    readers = [event_log.reader(OLDEST) for _ in range(3)]
    event_log.append([b"x", b"y"])
    for reader in readers:
        assert bodies(read_all(reader, 2)) == [b"x", b"y"]
        reader.close()


def test_appends_from_threads_are_all_kept(event_log: EventLog) -> None:
    def send(n: int) -> None:
        for i in range(5):
            event_log.append([f"{n}-{i}".encode()])

    threads = [threading.Thread(target=send, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    reader = event_log.reader(OLDEST)
    got = bodies(read_all(reader, 20))
    reader.close()
    assert sorted(got) == sorted(f"{n}-{i}".encode() for n in range(4) for i in range(5))
    for n in range(4):  # each thread's events in its order
        mine = [g for g in got if g.startswith(f"{n}-".encode())]
        assert mine == [f"{n}-{i}".encode() for i in range(5)]


def test_closing_the_log_closes_what_every_appending_thread_opened(
    broker_setup: BrokerSetup,
) -> None:
    with warnings.catch_warnings():  # what earlier tests left is not this test's
        warnings.simplefilter("ignore", ResourceWarning)
        gc.collect()
    options: dict[str, object] = {}
    if broker_setup.name == "amqp":
        options["queue"] = f"celeriac.events.test-{os.getpid()}-{next(_streams)}"
    log = create_event_log(broker_setup.url, options)
    threads = [threading.Thread(target=log.append, args=([b"e"],)) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    del threads
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ResourceWarning)
        log.close()
        gc.collect()
    if broker_setup.name == "amqp":
        amqp_delete_queues(broker_setup.url, [str(options["queue"])])
    assert [str(w.message) for w in caught if w.category is ResourceWarning] == []


def test_trim_keeps_the_newest(event_log: EventLog, broker_setup: BrokerSetup) -> None:
    if broker_setup.name == "amqp":
        pytest.skip("RabbitMQ applies a stream's retention itself, by age and size")
    event_log.append([str(n).encode() for n in range(50)])
    event_log.trim(None, 10)
    got = bodies(read_all(event_log.reader(OLDEST), 10, timeout=2.0))
    # Redis trims whole nodes (MAXLEN ~): at least the newest 10 are kept, in order
    assert got[-10:] == [str(n).encode() for n in range(40, 50)]
    if broker_setup.name != "redis":
        assert len(got) == 10
    event_log.trim(0.0, None)
    time.sleep(0.01)
    event_log.trim(0.001, None)
    assert event_log.reader(OLDEST).read(100, 0.2) == [] or broker_setup.name == "redis"


def test_logs_of_other_names_at_one_url_are_apart(
    event_log: EventLog, broker_setup: BrokerSetup
) -> None:
    options: dict[str, object] = {"name": "control_test"}
    if broker_setup.name == "amqp":
        options["queue"] = f"celeriac.control-test-{os.getpid()}-{next(_streams)}"
    other = create_event_log(broker_setup.url, options)
    try:
        other.append([b"theirs"])
        event_log.append([b"mine"])
        for log, expected in ((other, b"theirs"), (event_log, b"mine")):
            reader = log.reader(OLDEST)
            assert bodies(read_all(reader, 1)) == [expected]
            reader.close()
    finally:
        other.close()
        if broker_setup.name == "amqp":
            amqp_delete_queues(broker_setup.url, [str(options["queue"])])
    with pytest.raises(ValueError, match="lowercase"):
        create_event_log(broker_setup.url, {"name": "Bad-Name"})
