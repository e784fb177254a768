"""The event store on every technology: a task's life, out-of-order and repeated events,
retention by count and by age, the queries, lost tasks, workers alive and offline, the
cursor; then the ingester, and a real worker on every broker ingested across a restart of
the monitor."""

from __future__ import annotations

import itertools
import os
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from celeriac import Celery
from celeriac.eventlogs.memory import MemoryEventLog
from celeriac.events.event import Event, encode, task_fields
from celeriac.exceptions import OperationalError
from celeriac.monitor.ingest import Ingester, default_source
from celeriac.monitor.memory import MemoryEventStore
from celeriac.monitor.sqlite import SQLiteEventStore
from celeriac.monitor.store import EventStore, create_store
from conftest import wait_until
from contract.test_worker_contract import worker
from services import AMQP, POSTGRES_EVENTS, REDIS_EVENTS, Service

_unique = itertools.count()
PRODUCER = "producer@here"
W1, W2, W3, W4 = "w1@here", "w2@here", "w3@here", "w4@here"


# -- building events ----------------------------------------------------------------------


def task(type: str, uuid: str, at: float, hostname: str = W1, **fields: Any) -> dict[str, Any]:
    """A task event as a worker sends it."""
    return Event(
        type, fields, uuid=uuid, hostname=hostname, timestamp=at, pid=1, clock=0, utcoffset=0
    )


def arrived(
    type: str,
    uuid: str,
    at: float,
    name: str = "proj.add",
    args: list[Any] | None = None,
    kwargs: dict[str, Any] | None = None,
    hostname: str = W1,
    **message: Any,
) -> dict[str, Any]:
    """``task-sent`` or ``task-received``, with the fields the worker takes from a message."""
    fields = task_fields(
        {
            "id": uuid,
            "task": name,
            "args": [2, 3] if args is None else args,
            "kwargs": kwargs or {},
            "queue": "celery",
            **message,
        }
    )
    fields.pop("uuid")
    return task(type, uuid, at, hostname, **fields)


def beat(type: str, hostname: str, at: float, freq: float = 2.0, **fields: Any) -> dict[str, Any]:
    """A worker event."""
    defaults: dict[str, Any] = {
        "freq": freq,
        "active": 0,
        "processed": 0,
        "loadavg": [0.5, 0.25, 0.1],
        "sw_ident": "celeriac",
        "sw_ver": "0.1.0",
        "sw_sys": "Linux",
        "pid": 100,
    }
    return Event(type, {**defaults, **fields}, hostname=hostname, timestamp=at, clock=0)


def life(uuid: str, at: float, hostname: str = W1, name: str = "proj.add") -> list[dict[str, Any]]:
    """A task that ran and succeeded, its events a tenth of a second apart from ``at``."""
    return [
        arrived("task-received", uuid, at, name=name, hostname=hostname),
        task("task-started", uuid, at + 0.1, hostname),
        task("task-succeeded", uuid, at + 0.2, hostname, result="5", runtime=0.1),
    ]


# -- the stores ----------------------------------------------------------------------------


@dataclass
class StoreSetup:
    """One test's store technology: its URL and a factory for more stores on it."""

    name: str
    url: str
    made: list[EventStore] = field(default_factory=list)

    def make(self, **options: Any) -> EventStore:
        store = create_store(self.url, options)
        self.made.append(store)
        return store


def _memory(tmp_path: Path) -> str:
    return f"memory://events-{os.getpid()}-{next(_unique)}"


STORES: dict[str, tuple[Callable[[Path], str], Service | None]] = {
    "memory": (_memory, None),
    "sqlite": (lambda tmp: f"sqlite:///{tmp}/events.db", None),
    "redis": (lambda tmp: REDIS_EVENTS.url, REDIS_EVENTS),
    "postgresql": (lambda tmp: POSTGRES_EVENTS.url, POSTGRES_EVENTS),
}


@pytest.fixture(params=sorted(STORES))
def setup(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[StoreSetup]:
    url, service = STORES[request.param]
    if service is not None:
        service.prepare()
    made = StoreSetup(request.param, url(tmp_path))
    yield made
    for store in made.made:
        store.close()
    if service is not None:
        service.cleanup(made.url, [])
    if request.param == "memory":
        MemoryEventStore.reset(made.url)


@pytest.fixture
def store(setup: StoreSetup) -> EventStore:
    return setup.make()


def states_of(store: EventStore, *uuids: str) -> list[str | None]:
    found = [store.task(u) for u in uuids]
    return [t["state"] if t else None for t in found]


def snapshot(store: EventStore, now: float) -> Any:
    return (
        store.tasks(limit=1000),
        store.workers(now=now),
        store.counts(),
        store.stats(),
        store.task_names(),
    )


# -- a task's life -------------------------------------------------------------------------


def test_a_tasks_life_is_one_row(store: EventStore) -> None:
    t = time.time() - 60
    store.apply(
        [
            arrived(
                "task-sent",
                "ok",
                t,
                hostname=PRODUCER,
                args=[2, 3],
                kwargs={"z": [1, "é"]},
                root_id="root",
                parent_id="parent",
                priority=7,
            ),
            arrived("task-received", "ok", t + 1, args=[2, 3], kwargs={"z": [1, "é"]}),
            task("task-started", "ok", t + 2),
            task("task-succeeded", "ok", t + 3, result="5", runtime=0.5),
        ]
    )
    ok = store.task("ok")
    assert ok is not None
    assert ok["state"] == "SUCCESS" and ok["name"] == "proj.add" and ok["worker"] == W1
    assert ok["queue"] == "celery" and ok["priority"] == 7
    assert (ok["sent"], ok["received"], ok["started"], ok["succeeded"]) == (t, t + 1, t + 2, t + 3)
    assert ok["failed"] is None and ok["retried"] is None and ok["revoked"] is None
    assert ok["runtime"] == 0.5 and ok["result"] == "5" and ok["retries"] == 0
    assert ok["args"] == "(2, 3)" and ok["kwargs"] == "{'z': [1, 'é']}"
    assert ok["payload"] == {"args": [2, 3], "kwargs": {"z": [1, "é"]}}
    assert (ok["root_id"], ok["parent_id"]) == ("root", "parent")
    assert ok["updated"] == t + 3 and ok["timestamp"] == t + 3

    store.apply(
        [
            arrived("task-received", "bad", t + 1),
            task("task-started", "bad", t + 2),
            task("task-failed", "bad", t + 3, exception="ValueError('no')", traceback="Trace..."),
            arrived("task-received", "gone", t + 1),
            task("task-revoked", "gone", t + 2, terminated=False, expired=True),
        ]
    )
    bad = store.task("bad")
    assert bad is not None and bad["state"] == "FAILURE" and bad["failed"] == t + 3
    assert bad["exception"] == "ValueError('no')" and bad["traceback"] == "Trace..."
    assert states_of(store, "gone", "nothing") == ["REVOKED", None]


def test_retries_and_custom_states(store: EventStore) -> None:
    t = time.time() - 60
    store.apply(
        [
            arrived("task-received", "r", t),
            task("task-started", "r", t + 1),
            # the retry's message can be received before the first run's task-retried is sent
            arrived("task-received", "r", t + 1.5, retries=1, hostname=W2),
            task("task-retried", "r", t + 2, exception="KeyError('again')", traceback="tb"),
        ]
    )
    assert states_of(store, "r") == ["RETRY"]
    store.apply(
        [
            task("task-started", "r", t + 3, W2),
            task("task-state", "r", t + 4, W2, state="PROGRESS", meta={"done": [1, 2]}),
        ]
    )
    r = store.task("r")
    assert r is not None and r["state"] == "PROGRESS" and r["meta"] == {"done": [1, 2]}
    assert r["retries"] == 1 and r["retried"] == t + 2 and r["worker"] == W2
    assert r["exception"] == "KeyError('again')"
    store.apply([task("task-succeeded", "r", t + 5, W2, result="'ok'", runtime=2.0)])
    r = store.task("r")
    assert r is not None and r["state"] == "SUCCESS" and r["meta"] == {"done": [1, 2]}
    # a custom event only refreshes the task
    store.apply([task("task-progress", "r", t + 6, W2, current=3)])
    r = store.task("r")
    assert r is not None and r["state"] == "SUCCESS" and r["updated"] == t + 6


def test_out_of_order_events_do_not_move_a_task_back(store: EventStore) -> None:
    t = time.time() - 60
    events = [
        arrived("task-received", "a", t),
        task("task-started", "a", t + 1),
        task("task-succeeded", "a", t + 2, result="5", runtime=1.0),
    ]
    store.apply(events[::-1])  # in one batch
    for event in events[::-1]:  # one by one, for another task
        store.apply([{**event, "uuid": "b"}])
    for uuid in ("a", "b"):
        found = store.task(uuid)
        assert found is not None and found["state"] == "SUCCESS", uuid
        assert found["name"] == "proj.add" and found["received"] == t and found["started"] == t + 1
        assert found["updated"] == t + 2 and found["timestamp"] == t + 2
    # a later state with an older timestamp (another process's clock) still wins
    store.apply([arrived("task-received", "c", t + 5), task("task-started", "c", t + 4.9)])
    assert states_of(store, "c") == ["STARTED"]
    # ... but a newer timestamp wins too: a task received again after its run
    store.apply([arrived("task-received", "c", t + 6)])
    assert states_of(store, "c") == ["RECEIVED"]


def test_applying_events_again_changes_nothing(setup: StoreSetup, store: EventStore) -> None:
    t = time.time() - 60
    events = [
        beat("worker-online", W1, t),
        *life("one", t),
        arrived("task-received", "two", t + 1, name="proj.mul", kwargs={"x": 1}),
        task("task-started", "two", t + 1.1),
        task("task-retried", "two", t + 1.2, exception="E()", traceback="tb"),
        arrived("task-received", "two", t + 1.3, name="proj.mul", kwargs={"x": 1}, retries=1),
        task("task-started", "two", t + 1.4),
        task("task-state", "two", t + 1.5, state="PROGRESS", meta={"n": 1}),
        beat("worker-heartbeat", W1, t + 2, active=1, processed=1),
        beat("worker-offline", W1, t + 3),
    ]
    store.apply(events, cursor="10")
    now = t + 4
    before = snapshot(store, now)
    assert states_of(store, "one", "two") == ["SUCCESS", "PROGRESS"]
    store.apply(events, cursor="10")
    assert snapshot(store, now) == before
    for event in events[::-1]:  # again, one by one and newest first
        store.apply([event])
    assert snapshot(store, now) == before
    assert setup.make().cursor() == "10"


def test_many_monitors_can_feed_one_store(setup: StoreSetup) -> None:
    stores = [setup.make(), setup.make()]
    t = time.time() - 60
    uuids = [f"t{n}" for n in range(40)]
    plan = [
        [arrived("task-received", u, t + n) for n, u in enumerate(uuids)],
        [task("task-started", u, t + n + 0.1) for n, u in enumerate(uuids)],
        [task("task-succeeded", u, t + n + 0.2, result="1") for n, u in enumerate(uuids)],
    ]
    errors: list[BaseException] = []

    def feed(store: EventStore, kinds: list[list[dict[str, Any]]]) -> None:
        try:
            for n in range(0, 40, 4):
                for events in kinds:
                    store.apply(events[n : n + 4])
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [
        threading.Thread(target=feed, args=(stores[0], [plan[0], plan[2]])),
        threading.Thread(target=feed, args=(stores[1], [plan[1]])),
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert not errors
    found = stores[0].tasks(limit=100)
    assert len(found) == 40 and {t["state"] for t in found} == {"SUCCESS"}
    assert all(t["name"] == "proj.add" and t["started"] is not None for t in found)
    assert stores[1].counts()["states"] == {"SUCCESS": 40}


# -- events the store cannot use -----------------------------------------------------------


def test_unusable_events_are_skipped_and_odd_values_kept_safely(store: EventStore) -> None:
    t = time.time() - 60
    store.apply(
        [
            {"type": "task-received", "timestamp": t},  # no uuid
            {"type": "task-started", "uuid": "x", "timestamp": "yesterday"},
            {"type": "task-started", "uuid": ["a", "list"], "timestamp": t},
            {"type": "task-started", "uuid": "u" * 300, "timestamp": t},
            {"type": "worker-heartbeat", "timestamp": t},  # no hostname
            {"type": 5},
            {"type": "worker-custom", "hostname": W1, "timestamp": t},
            {"type": "something-else", "uuid": "y", "timestamp": t},
            {
                "type": "task-received",
                "uuid": "odd",
                "hostname": W1,
                "timestamp": t,
                "name": "nul\x00name",
                "args": "\udc80 lone surrogate",
                "kwargs": {"not": "a string"},
                "retries": 2**70,
                "priority": True,
                "eta": "2024-01-01T00:00:00",
                "runtime": float("nan"),
                "payload": {"args": "not a list", "kwargs": {}},
                "result": "r" * 100_000,
                "traceback": "frame\n" * 20_000 + "ValueError: last line",
            },
            task("task-state", "odd", t + 1, state="PROGRESS", meta={"big": "x" * 100_000}),
            task("task-succeeded", "fine", t, result="1"),
        ]
    )
    odd = store.task("odd")
    assert odd is not None and odd["state"] == "PROGRESS"
    assert odd["name"] == "nul\ufffdname" and odd["args"] == "\ufffd lone surrogate"
    assert odd["kwargs"] == '{"not": "a string"}'
    assert odd["retries"] == 0 and odd["priority"] is None and odd["eta"] is None
    assert odd["runtime"] is None and odd["payload"] is None and odd["meta"] is None
    assert len(odd["result"]) <= 4096 and odd["traceback"].endswith("ValueError: last line")
    assert states_of(store, "fine", "x", "y") == ["SUCCESS", None, None]
    assert store.stats()["tasks"] == 2 and store.workers() == []


# -- retention -----------------------------------------------------------------------------


def test_retention_by_count_keeps_the_newest(setup: StoreSetup) -> None:
    store = setup.make(max_tasks=10, prune_interval=3600)
    t = time.time() - 600
    store.apply([arrived("task-received", f"t{n:02}", t + n) for n in range(30)])
    store.prune()
    assert [x["uuid"] for x in store.tasks()] == [f"t{n:02}" for n in range(29, 19, -1)]
    assert store.stats()["oldest"] == t + 20
    # between two passes the store holds a twentieth more at most
    bounded = setup.make(max_tasks=100, prune_interval=3600)
    for n in range(0, 400, 7):
        bounded.apply([arrived("task-received", f"b{n + k:03}", t + 100 + n + k) for k in range(7)])
        assert bounded.stats()["tasks"] <= 100 + 5
    bounded.prune()
    assert bounded.stats()["tasks"] == 100
    assert bounded.tasks(limit=1)[0]["uuid"] == "b405"
    counts = bounded.counts()
    assert counts["states"] == {"RECEIVED": 100} and counts["names"] == {
        "proj.add": {"RECEIVED": 100}
    }


def test_retention_by_age_forgets_old_tasks_and_workers(setup: StoreSetup) -> None:
    store = setup.make(max_age=3600, prune_interval=3600)
    now = time.time()
    store.apply(
        [
            *life("old", now - 7300, hostname=W2),
            *life("new", now - 100),
            beat("worker-offline", W2, now - 7200),
            beat("worker-heartbeat", W1, now - 1),
        ]
    )
    assert store.stats()["tasks"] == 2
    store.prune(now=now)
    assert states_of(store, "old", "new") == [None, "SUCCESS"]
    assert [w["hostname"] for w in store.workers()] == [W1]
    assert store.task_names() == ["proj.add"]
    assert store.counts()["states"] == {"SUCCESS": 1}
    # applied as batches come, when the pass is due
    eager = setup.make(max_age=3600, prune_interval=0)
    eager.apply(life("older", now - 9000))
    assert states_of(eager, "older", "new") == [None, "SUCCESS"]


def test_the_defaults_and_no_bounds(setup: StoreSetup) -> None:
    store = setup.make()
    assert (store.max_age, store.max_tasks) == (7 * 24 * 3600.0, 100_000)
    unbounded = setup.make(max_age=None, max_tasks=None, prune_interval=0)
    unbounded.apply(life("ancient", 1000.0))
    unbounded.prune()
    assert states_of(unbounded, "ancient") == ["SUCCESS"]


# -- queries -------------------------------------------------------------------------------


def test_queries_and_filters(store: EventStore) -> None:
    t = time.time() - 600
    events: list[dict[str, Any]] = []
    for n in range(12):
        name = "proj.add" if n % 3 else "proj.mul"
        host = W1 if n % 2 else W2
        events += life(f"t{n:02}", t + 10 * n, hostname=host, name=name)
    events += [arrived("task-received", "waiting", t + 200, name="proj.slow", hostname=W1)]
    events += [task("task-started", "nameless", t + 201, W2)]
    store.apply(events)

    newest = store.tasks()
    assert [x["uuid"] for x in newest[:3]] == ["nameless", "waiting", "t11"]
    assert len(newest) == 14 and newest[-1]["uuid"] == "t00"
    assert [x["uuid"] for x in store.tasks(limit=3, offset=2)] == ["t11", "t10", "t09"]
    assert [x["uuid"] for x in store.tasks(state="RECEIVED")] == ["waiting"]
    assert [x["uuid"] for x in store.tasks(name="proj.mul")] == ["t09", "t06", "t03", "t00"]
    assert [x["uuid"] for x in store.tasks(name="proj.mul", worker=W1)] == ["t09", "t03"]
    assert [x["uuid"] for x in store.tasks(name="proj.mul", worker=W1, offset=1)] == ["t03"]
    assert [x["uuid"] for x in store.tasks(state="SUCCESS", worker=W2, limit=2)] == [
        "t10",
        "t08",
    ]
    window = store.tasks(since=t + 30.1, until=t + 60.3)
    assert [x["uuid"] for x in window] == ["t06", "t05", "t04", "t03"]
    assert store.tasks(state="FAILURE") == [] and store.tasks(limit=0) == []
    assert store.task_names() == ["proj.add", "proj.mul", "proj.slow"]
    counts = store.counts()
    assert counts["states"] == {"SUCCESS": 12, "RECEIVED": 1, "STARTED": 1}
    assert counts["names"] == {
        "proj.add": {"SUCCESS": 8},
        "proj.mul": {"SUCCESS": 4},
        "proj.slow": {"RECEIVED": 1},
        "": {"STARTED": 1},
    }
    stats = store.stats()
    assert stats == {"tasks": 14, "workers": 0, "oldest": t + 0.2, "newest": t + 201}


def test_an_empty_store(store: EventStore) -> None:
    assert store.tasks() == [] and store.workers() == [] and store.lost_tasks() == []
    assert store.counts() == {"states": {}, "names": {}} and store.task_names() == []
    assert store.stats() == {"tasks": 0, "workers": 0, "oldest": None, "newest": None}
    assert store.cursor() is None and store.task("x") is None
    store.apply([])
    store.prune()


# -- workers and lost tasks ----------------------------------------------------------------


def test_workers_alive_and_offline(store: EventStore) -> None:
    now = time.time()
    store.apply(
        [
            beat("worker-online", W1, now - 5, freq=2.0),
            beat("worker-heartbeat", W1, now - 1, freq=2.0, active=2, processed=7, pid=42),
            beat("worker-online", W2, now - 60, freq=1.0),
            beat("worker-heartbeat", W2, now - 30, freq=1.0),
            beat("worker-online", W3, now - 20),
            beat("worker-offline", W3, now - 10),
            beat("worker-heartbeat", W3, now - 12),  # late, from before it went
        ]
    )
    found = {w["hostname"]: w for w in store.workers(now=now)}
    assert sorted(found) == [W1, W2, W3]
    w1 = found[W1]
    assert w1["alive"] and w1["offline_at"] is None and w1["last_heartbeat"] == now - 1
    assert (w1["active"], w1["processed"], w1["pid"], w1["freq"]) == (2, 7, 42, 2.0)
    assert w1["online_at"] == now - 5 and w1["loadavg"] == [0.5, 0.25, 0.1]
    assert (w1["sw_ident"], w1["sw_ver"], w1["sw_sys"]) == ("celeriac", "0.1.0", "Linux")
    assert not found[W2]["alive"] and found[W2]["offline_at"] is None  # heartbeats stopped
    assert not found[W3]["alive"] and found[W3]["offline_at"] == now - 10
    assert not store.workers(now=now + 10)[0]["alive"]  # W1, two intervals later
    # back: a newer heartbeat than its worker-offline
    store.apply([beat("worker-online", W3, now - 0.5)])
    w3 = {w["hostname"]: w for w in store.workers(now=now)}[W3]
    assert w3["alive"] and w3["offline_at"] is None and w3["online_at"] == now - 0.5


def test_lost_tasks(store: EventStore) -> None:
    now = time.time()
    store.apply(
        [
            beat("worker-online", W1, now - 30),  # heartbeats stopped
            beat("worker-heartbeat", W2, now - 1),  # alive
            beat("worker-offline", W3, now - 2),  # went offline
            beat("worker-online", W4, now - 1),  # restarted since its task started
            arrived("task-received", "on-w1", now - 29, hostname=W1),
            task("task-started", "on-w1", now - 28, W1),
            task("task-started", "on-w2", now - 5, W2),
            task("task-started", "on-w3", now - 5, W3),
            task("task-started", "on-w4", now - 5, W4),
            task("task-started", "on-nobody", now - 5, "unknown@here"),
            *life("done-on-w1", now - 40),
        ]
    )
    assert sorted(t["uuid"] for t in store.lost_tasks(now=now)) == ["on-w1", "on-w3", "on-w4"]
    lost = {t["uuid"]: t for t in store.lost_tasks(now=now)}
    assert lost["on-w1"]["name"] == "proj.add" and lost["on-w1"]["worker"] == W1
    # W2's heartbeats stop too
    assert len(store.lost_tasks(now=now + 10)) == 4


# -- the cursor ----------------------------------------------------------------------------


def test_the_cursor_is_saved_with_its_batch(setup: StoreSetup, store: EventStore) -> None:
    t = time.time() - 60
    assert store.cursor() is None
    store.apply(life("a", t), cursor="3")
    store.apply([], cursor="4-0")  # a batch of nothing the store keeps still moves it
    store.apply(life("b", t), cursor="9", source="another log")
    again = setup.make()
    assert again.cursor() == "4-0" and again.cursor("another log") == "9"
    assert states_of(again, "a", "b") == ["SUCCESS", "SUCCESS"]


# -- the ingester --------------------------------------------------------------------------


class Flaky(MemoryEventStore):
    """A memory store that fails when told to, and cannot take some events."""

    down = False
    applied: list[str]

    def apply(self, events: Any, cursor: str | None = None, source: str = "events") -> None:
        if self.down:
            raise OperationalError("the store is down")
        if any(e.get("uuid") == "poison" for e in events):
            raise ValueError("cannot take it")
        self.applied += [e["type"] for e in events]
        super().apply(events, cursor, source)


@pytest.fixture
def memory_app() -> Iterator[Celery]:
    url = f"memory://ingest-{os.getpid()}-{next(_unique)}"
    app = Celery("ingest", broker=url, backend=url)
    yield app
    app.close()
    MemoryEventLog.reset(url)


def test_the_ingester_resumes_skips_and_rides_out_outages(memory_app: Celery) -> None:
    log = memory_app.events.create_log()
    t = time.time() - 60
    log.append([b"not json", *map(encode, life("a", t))])
    store = Flaky(f"memory://ingest-store-{next(_unique)}")
    store.applied = []
    ingester = Ingester(memory_app, store, batch=2)
    # two entries a batch, the first not an event
    assert ingester.step(0) == 1 and ingester.step(0) == 2 and ingester.step(0) == 0
    assert states_of(store, "a") == ["SUCCESS"] and store.cursor(ingester.source) == "4"

    log.append([encode(e) for e in life("b", t)])
    store.down = True
    with pytest.raises(OperationalError):
        ingester.step(0)
    store.down = False
    assert ingester.step(0) == 2  # the batch read before the outage
    ingester.close()  # a monitor stopped with one event not applied

    log.append([encode(arrived("task-received", "poison", t)), *map(encode, life("c", t))])
    again = Ingester(memory_app, store, batch=10)
    assert again.step(0) == 4  # b's last event, then c's three (the poison skipped)
    assert again.skipped == 1 and states_of(store, "b", "c", "poison") == [
        "SUCCESS",
        "SUCCESS",
        None,
    ]
    assert store.applied.count("task-succeeded") == 3  # nothing applied twice

    # run() goes on through an outage until stopped
    store.down = True
    stop = threading.Event()
    runner = threading.Thread(target=again.run, args=(stop, 0.05))
    runner.start()
    log.append([encode(e) for e in life("d", t)])
    time.sleep(0.3)
    store.down = False
    wait_until(lambda: states_of(store, "d") == ["SUCCESS"], timeout=10)
    stop.set()
    runner.join(10)
    assert not runner.is_alive()


# -- a real worker, on every broker --------------------------------------------------------


def offline(store: EventStore, hostname: str) -> float | None:
    found = {x["hostname"]: x for x in store.workers()}
    return found[hostname]["offline_at"] if hostname in found else None


class Recording(SQLiteEventStore):
    """A SQLite store that keeps a list of the task events it was given."""

    seen: list[tuple[str, str]]

    def apply(self, events: Any, cursor: str | None = None, source: str = "events") -> None:
        super().apply(events, cursor, source)
        self.seen += [(e["uuid"], e["type"]) for e in events if "uuid" in e]


# Every broker, each on a place of its own (not the shared databases of the worker contract,
# which other test runs flush), with a queue of its own on RabbitMQ's shared virtual host.
WORKER_PAIRS: dict[str, tuple[Callable[[Path], str], Service | None, Service | None]] = {
    "memory": (_memory, None, None),
    "sqlite": (lambda tmp: f"sqlite:///{tmp}/broker.db", None, None),
    "redis": (lambda tmp: REDIS_EVENTS.url, REDIS_EVENTS, None),
    "amqp": (lambda tmp: AMQP.url, AMQP, POSTGRES_EVENTS),
    "postgresql": (lambda tmp: POSTGRES_EVENTS.url, POSTGRES_EVENTS, None),
}


@pytest.fixture(params=sorted(WORKER_PAIRS))
def app(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Celery]:
    """An app on one broker (results in the broker's store, or PostgreSQL for RabbitMQ)."""
    url, broker, backend = WORKER_PAIRS[request.param]
    for service in (broker, backend):
        if service is not None:
            service.prepare()
    broker_url = url(tmp_path)
    backend_url = backend.url if backend is not None else broker_url
    app = Celery("store", broker=broker_url, backend=backend_url)
    app.conf.task_default_queue = f"event-store-{os.getpid()}-{next(_unique)}"
    yield app
    app.close()
    if broker is not None:
        broker.cleanup(broker_url, [app.broker])
    if backend is not None:
        backend.cleanup(backend_url, [app.backend])
    if request.param == "memory":
        MemoryEventLog.reset(broker_url)


def test_a_real_workers_events_across_a_monitor_restart(app: Celery, tmp_path: Path) -> None:
    app.conf.worker_send_task_events = True
    app.conf.event_heartbeat_interval = 0.5

    @app.task
    def add(x: int, y: int) -> int:
        return x + y

    url = f"sqlite:///{tmp_path}/monitor.db"
    seen: list[tuple[str, str]] = []

    def monitor() -> tuple[Ingester, Recording]:
        store = Recording(url)
        store.seen = seen
        return Ingester(app, store, batch=50), store

    def ingest(ingester: Ingester, done: Callable[[], bool]) -> None:
        wait_until(lambda: (ingester.step(0.2), done())[1], timeout=30, interval=0)

    def succeeded(store: Recording, ids: list[str]) -> bool:
        return states_of(store, *ids) == ["SUCCESS"] * len(ids)

    with worker(app, hostname="store@%h", queues=[app.conf.task_default_queue]) as w:
        host = w.hostname
        first = [add.delay(n, n) for n in range(10)]
        assert [r.get(timeout=15) for r in first] == [2 * n for n in range(10)]
        ingester, store = monitor()
        ingest(ingester, lambda: succeeded(store, [r.id for r in first]))
        ingester.close()
        store.close()

        second = [add.delay(n, 1) for n in range(10)]
        assert [r.get(timeout=15) for r in second] == [n + 1 for n in range(10)]
        ingester, store = monitor()  # a new monitor on the same store

        def alive() -> bool:
            return any(x["hostname"] == host and x["alive"] for x in store.workers())

        ingest(ingester, lambda: succeeded(store, [r.id for r in second]) and alive())
    ingest(ingester, lambda: offline(store, host) is not None)

    ids = [r.id for r in first + second]
    arguments = [(n, n) for n in range(10)] + [(n, 1) for n in range(10)]
    for r, args in zip(first + second, arguments, strict=True):
        row = store.task(r.id)
        assert row is not None and row["name"] == add.name and row["worker"] == host
        assert row["payload"] == {"args": list(args), "kwargs": {}}
        assert row["result"] == repr(sum(args)) and row["runtime"] is not None
    mine = [s for s in seen if s[0] in ids]
    expected = {(u, k) for u in ids for k in ("task-received", "task-started", "task-succeeded")}
    assert sorted(mine) == sorted(expected)  # every event once: none missed, none twice
    assert store.counts()["names"][add.name]["SUCCESS"] >= 20
    gone = {x["hostname"]: x for x in store.workers()}[host]
    assert not gone["alive"] and gone["sw_ident"] == "celeriac"
    assert not [t for t in store.lost_tasks() if t["uuid"] in ids]
    ingester.close()
    store.close()


def test_the_cursor_is_kept_under_the_logs_url_and_name() -> None:
    app = Celery("named", broker="redis://:secret@127.0.0.1:6379/2", set_as_current=False)
    assert default_source(app) == "redis://:***@127.0.0.1:6379/2"
    app.conf.event_log_options = {"name": "audit"}
    assert default_source(app) == "redis://:***@127.0.0.1:6379/2#audit"
    assert Ingester(app, MemoryEventStore(_memory(Path("."))), batch=0).batch == 1
