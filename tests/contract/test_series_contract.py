"""The event store's dashboard queries on every technology: search, sort and count of tasks,
throughput per bucket, runtime percentiles, time-series samples within their bounds and
alert states; then a real worker feeding a store (SQLite and Redis) with the sampler
recording its broker's queues."""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from celeriac import Celery
from celeriac.eventlogs.memory import MemoryEventLog
from celeriac.monitor.ingest import Ingester
from celeriac.monitor.series import Sampler
from celeriac.monitor.store import EventStore, create_store
from conftest import wait_until
from contract import test_event_store_contract as event_store_contract
from contract.test_event_store_contract import (
    W1,
    W2,
    StoreSetup,
    _unique,
    arrived,
    beat,
    task,
)
from contract.test_worker_contract import worker
from services import REDIS_EVENTS, Service

# the event store contract's fixtures: every technology, each store private to its test
setup = event_store_contract.setup
store = event_store_contract.store


def ran(
    uuid: str,
    at: float,
    name: str | None = "proj.add",
    runtime: float | None = 1.0,
    failed: bool = False,
    hostname: str = W1,
    args: list[Any] | None = None,
    **outcome: Any,
) -> list[dict[str, Any]]:
    """A task received at ``at - 2``, started at ``at - 1`` and finished at ``at``."""
    received = arrived("task-received", uuid, at - 2, name=name or "", args=args, hostname=hostname)
    if name is None:
        received = {k: v for k, v in received.items() if k != "name"}
    done = (
        task("task-failed", uuid, at, hostname, exception="ValueError('no')", **outcome)
        if failed
        else task("task-succeeded", uuid, at, hostname, result="5", runtime=runtime, **outcome)
    )
    return [received, task("task-started", uuid, at - 1, hostname), done]


def uuids(rows: list[dict[str, Any]]) -> list[str]:
    return [row["uuid"] for row in rows]


# -- search, sort and count ----------------------------------------------------------------


def test_search_sort_and_count(store: EventStore) -> None:
    t = time.time() - 600
    store.apply(
        [
            *ran("a1", t + 1, name="proj.Add", runtime=3.0, args=[42, "Needle"]),
            *ran("a2", t + 2, name="proj.add", runtime=1.0, hostname=W2),
            *ran("b1", t + 3, name="proj.mul", failed=True),
            *ran("c1", t + 4, name="proj.100%_done", runtime=2.0),
            arrived("task-received", "waiting", t + 5, name="proj.zzz", args=["x"]),
            task("task-started", "nameless", t + 6, W2),
        ]
    )
    everything = ["nameless", "waiting", "c1", "b1", "a2", "a1"]
    assert uuids(store.tasks()) == everything and store.count_tasks() == 6
    # a search looks in the name, uuid, args, kwargs, result and exception, ASCII case apart
    assert uuids(store.tasks(search="ADD")) == ["a2", "a1"]
    assert uuids(store.tasks(search="needle")) == ["a1"]
    assert uuids(store.tasks(search="42, ")) == ["a1"]
    assert uuids(store.tasks(search="valueerror")) == ["b1"]
    assert uuids(store.tasks(search="NAMELESS")) == ["nameless"]
    # LIKE's wildcards are plain characters
    assert uuids(store.tasks(search="100%_")) == ["c1"]
    assert uuids(store.tasks(search="%")) == ["c1"] and store.tasks(search="_d_") == []
    assert store.count_tasks(search="add") == 2 and store.count_tasks(search="nothing") == 0
    assert store.count_tasks(search="add", worker=W2) == 1
    assert store.count_tasks(state="SUCCESS") == 3 and store.count_tasks(name="proj.mul") == 1
    assert store.count_tasks(since=t + 2, until=t + 4) == 3
    assert store.count_tasks(state="SUCCESS", worker=W1, since=t + 1.5) == 1
    assert uuids(store.tasks(search="proj", state="SUCCESS", limit=2, offset=1)) == ["a2", "a1"]

    # sorts: ties by updated then uuid, in the same order; rows without a value last
    assert uuids(store.tasks(order="asc")) == everything[::-1]
    by_name = ["c1", "a1", "a2", "b1", "waiting", "nameless"]  # code points: "1" < "A" < "a"
    assert uuids(store.tasks(sort="name", order="asc")) == by_name
    assert uuids(store.tasks(sort="name")) == [*by_name[-2::-1], "nameless"]
    assert uuids(store.tasks(sort="runtime", order="asc")) == [
        "a2",
        "c1",
        "a1",
        "b1",
        "waiting",
        "nameless",
    ]
    assert uuids(store.tasks(sort="runtime", limit=2, offset=1)) == ["c1", "a2"]
    assert uuids(store.tasks(sort="state", order="asc", search="proj.")) == [
        "b1",
        "waiting",
        "a1",
        "a2",
        "c1",
    ]
    assert uuids(store.tasks(sort="worker", name="proj.add")) == ["a2"]
    assert uuids(store.tasks(sort="uuid", limit=3)) == ["waiting", "nameless", "c1"]
    assert store.tasks(sort="runtime", limit=0) == []
    with pytest.raises(ValueError, match="cannot sort"):
        store.tasks(sort="payload")
    with pytest.raises(ValueError, match="order"):
        store.tasks(order="up")


# -- throughput and runtimes ---------------------------------------------------------------


def test_throughput_per_bucket(store: EventStore) -> None:
    start = (int(time.time()) // 60 - 10) * 60.0  # a minute's start, ten minutes ago
    events: list[dict[str, Any]] = []
    for n in range(3):
        events += ran(f"ok{n}", start + 5 + n)  # first minute
    events += ran("bad0", start + 30, failed=True)
    events += ran("ok-later", start + 125)  # third minute
    events += ran("bad-later", start + 179.5, failed=True)
    events += ran("before", start - 1)  # outside the window
    events += [arrived("task-received", "running", start + 10)]
    store.apply(events)

    found = store.throughput(start, start + 180)
    assert found == [
        {"t": start, "succeeded": 3, "failed": 1},
        {"t": start + 60, "succeeded": 0, "failed": 0},
        {"t": start + 120, "succeeded": 1, "failed": 1},
        {"t": start + 180, "succeeded": 0, "failed": 0},
    ]
    # the window cuts inside buckets; its edges count
    total = store.throughput(start + 7, start + 125, bucket=10)
    assert sum(b["succeeded"] for b in total) == 2 and sum(b["failed"] for b in total) == 1
    assert [b["t"] for b in total] == [start + 10 * k for k in range(13)]
    assert store.throughput(start + 200, start + 100) == []
    with pytest.raises(ValueError):
        store.throughput(start, start + 60, bucket=0)
    with pytest.raises(ValueError):
        store.throughput(0, 1e12, bucket=1)


def test_runtime_percentiles(store: EventStore) -> None:
    t = time.time() - 3600
    events: list[dict[str, Any]] = []
    for n in range(1, 101):  # runtimes 1 .. 100 s, in a shuffled order
        k = (n * 37) % 100 + 1
        events += ran(f"a{k}", t + n, name="proj.a", runtime=float(k))
    events += ran("b-ok", t + 10, name="proj.b", runtime=0.5)
    events += ran("b-bad", t + 11, name="proj.b", failed=True)  # from its start: 1 s
    events += ran("b-old", t - 100, name="proj.b", runtime=99.0)  # before the window
    events += [arrived("task-received", "c-waiting", t + 5, name="proj.c")]
    events += ran("nameless", t + 20, name=None, runtime=2.0)
    store.apply(events)

    found = store.runtimes(t, t + 200)
    assert found == [
        {"name": "", "count": 1, "p50": 2.0, "p95": 2.0, "p99": 2.0},
        {"name": "proj.a", "count": 100, "p50": 50.0, "p95": 95.0, "p99": 99.0},
        {"name": "proj.b", "count": 2, "p50": 0.5, "p95": 1.0, "p99": 1.0},
    ]
    assert store.runtimes(t, t + 200, names=["proj.b", "proj.c"]) == found[2:]
    assert store.runtimes(t, t + 200, names=[]) == []
    assert [r["count"] for r in store.runtimes(t + 1, t + 10)] == [10, 1]


# -- samples -------------------------------------------------------------------------------


def test_samples_are_kept_and_read_back(store: EventStore) -> None:
    t = time.time() - 300
    for n in range(5):
        store.record_samples(
            "queues",
            t + 10 * n,
            {
                "celery": {"waiting": n, "oldest_age": None if n == 0 else 1.5 * n},
                "high": {"waiting": 10 * n, "oldest_age": 0.25},
            },
        )
    store.record_samples("workers", t, {W1: {"load": 0.5, "active": 2}})
    store.record_samples("queues", t + 20, {"celery": {"waiting": 99, "oldest_age": 1.0}})

    found = store.samples("queues")
    assert sorted(found) == ["celery", "high"]
    assert [p["t"] for p in found["celery"]] == [t + 10 * n for n in range(5)]
    assert found["celery"][0] == {"t": t, "waiting": 0.0, "oldest_age": None}
    assert found["celery"][2] == {"t": t + 20, "waiting": 99.0, "oldest_age": 1.0}  # replaced
    window = store.samples("queues", since=t + 10, until=t + 30, keys=["high", "missing"])
    assert window == {
        "high": [{"t": t + 10 * n, "waiting": 10.0 * n, "oldest_age": 0.25} for n in (1, 2, 3)]
    }
    assert store.samples("workers") == {W1: [{"t": t, "load": 0.5, "active": 2.0}]}
    assert store.samples("nothing") == {} and store.samples("queues", keys=[]) == {}


def test_samples_are_bounded_by_count_and_age(setup: StoreSetup) -> None:
    now = time.time()
    store = setup.make(max_samples=5, max_age=3600, prune_interval=3600)
    for n in range(12):
        store.record_samples("queues", now - 100 + n, {"q": {"waiting": n}, "r": {"waiting": 1}})
    assert [p["waiting"] for p in store.samples("queues")["q"]] == [7.0, 8.0, 9.0, 10.0, 11.0]
    # as of the newest sample, older than max_age goes
    store.record_samples("workers", now - 9000, {W1: {"active": 1}})
    store.record_samples("workers", now - 5000, {W1: {"active": 2}, W2: {"active": 3}})
    assert [p["active"] for p in store.samples("workers")[W1]] == [2.0]
    # a pass of the retention forgets old samples of every series, and empty series
    store.prune(now=now + 3600 - 90.5)
    assert store.samples("workers") == {}
    assert [p["waiting"] for p in store.samples("queues")["q"]] == [10.0, 11.0]
    assert sorted(store.samples("queues")) == ["q", "r"]
    # without an age limit, only the count bounds them
    forever = setup.make(max_age=None, max_samples=3)
    forever.record_samples("queues", 1000.0, {"old": {"waiting": 1}})
    forever.prune()
    assert forever.samples("queues", keys=["old"]) == {"old": [{"t": 1000.0, "waiting": 1.0}]}


# -- alert states --------------------------------------------------------------------------


def test_alert_states_are_kept(setup: StoreSetup, store: EventStore) -> None:
    assert store.alert_states() == {}
    firing = {"state": "firing", "since": 1.5, "value": 3, "labels": {"queue": "é"}}
    store.save_alert_states({"backlog:celery": firing, "lost": {"state": "resolved"}})
    store.save_alert_states({})
    again = setup.make()
    assert again.alert_states() == {"backlog:celery": firing, "lost": {"state": "resolved"}}
    again.save_alert_states({"lost": None, "backlog:celery": {**firing, "acknowledged_by": "ann"}})
    assert store.alert_states() == {"backlog:celery": {**firing, "acknowledged_by": "ann"}}
    store.save_alert_states({"never": None})
    assert list(store.alert_states()) == ["backlog:celery"]


def test_a_store_without_samples_or_tasks(store: EventStore) -> None:
    now = time.time()
    assert store.count_tasks() == 0 and store.tasks(search="x", sort="name") == []
    assert store.runtimes(now - 60, now) == []
    empty = store.throughput(now - 120, now)
    assert len(empty) in (2, 3) and all(b["succeeded"] == b["failed"] == 0 for b in empty)
    store.record_samples("queues", now, {})
    assert store.samples("queues") == {}
    store.apply([beat("worker-online", W1, now)])
    assert store.count_tasks() == 0


# -- a real worker feeding a store, with the sampler ---------------------------------------

FED: dict[str, tuple[Callable[[Path], str], Service | None]] = {
    "sqlite": (lambda tmp: f"sqlite:///{tmp}/broker.db", None),
    "redis": (lambda tmp: REDIS_EVENTS.url, REDIS_EVENTS),
}


@pytest.fixture(params=sorted(FED))
def fed_app(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Celery]:
    """An app on SQLite or Redis, whose event store is on the same technology."""
    url, service = FED[request.param]
    if service is not None:
        service.prepare()
    broker_url = url(tmp_path)
    app = Celery("series", broker=broker_url, backend=broker_url)
    app.conf.task_default_queue = f"series-{os.getpid()}-{next(_unique)}"
    app.conf.worker_send_task_events = True
    app.conf.event_heartbeat_interval = 0.5
    yield app
    app.close()
    if service is not None:
        service.cleanup(broker_url, [app.broker])
    MemoryEventLog.reset(broker_url)


def test_a_real_worker_feeds_the_dashboard_queries(fed_app: Celery, tmp_path: Path) -> None:
    app = fed_app
    queue = app.conf.task_default_queue

    @app.task
    def add(x: int, y: int) -> int:
        return x + y

    @app.task
    def boom(text: str) -> None:
        raise ValueError(text)

    on_redis = app.broker.url.startswith("redis")
    store = create_store(
        app.broker.url if on_redis else f"sqlite:///{tmp_path}/events.db",
        {"key_prefix": "series:"} if on_redis else {},
    )
    ingester = Ingester(app, store, batch=100)
    sampler = Sampler(app, store)
    start = time.time()
    try:
        waiting = [add.delay(100, n) for n in range(3)]  # sent before any worker
        sampler.sample()
        before = store.samples("queues", keys=[queue])[queue][-1]
        assert before["waiting"] == 3.0 and before["dead_lettered"] == 0.0

        with worker(app, hostname="series@%h", queues=[queue]) as w:
            done = [add.delay(n, n) for n in range(6)]
            failed = [boom.delay("needle in a haystack") for _ in range(2)]
            assert [r.get(timeout=15) for r in done] == [2 * n for n in range(6)]
            for r in failed:
                with pytest.raises(ValueError):
                    r.get(timeout=15)
            assert [r.get(timeout=15) for r in waiting] == [100, 101, 102]
            ids = [r.id for r in [*waiting, *done, *failed]]

            def ingested() -> bool:
                ingester.step(0.2)
                rows = [store.task(i) for i in ids]
                finished = all(r and r["state"] in ("SUCCESS", "FAILURE") for r in rows)
                alive = any(x["hostname"] == w.hostname and x["alive"] for x in store.workers())
                return finished and alive

            wait_until(ingested, timeout=30, interval=0)
            sampler.sample()

        now = time.time()
        assert store.count_tasks(name=add.name, state="SUCCESS") == 9
        assert sorted(uuids(store.tasks(search="NEEDLE"))) == sorted(r.id for r in failed)
        assert store.count_tasks(search="needle", state="FAILURE") == 2
        slow_first = store.tasks(name=add.name, sort="runtime", limit=9)
        runtimes = [x["runtime"] for x in slow_first]
        assert runtimes == sorted(runtimes, reverse=True) and None not in runtimes
        buckets = store.throughput(start - 1, now)
        assert sum(b["succeeded"] for b in buckets) == 9
        assert sum(b["failed"] for b in buckets) == 2
        found = {r["name"]: r for r in store.runtimes(start - 1, now)}
        assert found[add.name]["count"] == 9 and found[boom.name]["count"] == 2
        assert 0 <= found[add.name]["p50"] <= found[add.name]["p95"] <= found[add.name]["p99"]

        queues = store.samples("queues", since=start - 1, keys=[queue])[queue]
        assert len(queues) == 2 and queues[-1]["waiting"] == 0.0
        assert queues[0]["t"] < queues[1]["t"]
        workers = store.samples("workers", since=start - 1)
        assert any(key.startswith("series@") for key in workers)
        sample = next(v for k, v in workers.items() if k.startswith("series@"))[-1]
        assert set(sample) >= {"t", "load", "active", "processed"}
    finally:
        ingester.close()
        store.close()
