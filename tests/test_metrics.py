"""Prometheus metrics: counters and histograms from events, bounded labels, worker and queue
gauges, the HTTP server, the event feeder, and a worker started with ``--metrics-port``
(scraped over real HTTP)."""

from __future__ import annotations

import logging
import os
import signal
import sys
import time
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from celeriac import Celery
from celeriac.brokers.base import Outgoing, QueueStats
from celeriac.exceptions import ImproperlyConfigured, OperationalError
from celeriac.monitor.metrics import OTHER, UNKNOWN, Metrics, MetricsFeeder, Server
from celeriac.worker import Worker
from celeriac.worker.metrics import start_metrics
from conftest import Project, wait_until
from services import free_port
from test_distributed import deployment

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def scrape(port: int) -> Samples:
    """Every sample served at ``http://127.0.0.1:port/metrics``."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as response:
        assert response.status == 200
        text = response.read().decode()
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def value(samples: Samples, metric: str, /, **labels: str) -> float | None:
    return samples.get((metric, frozenset(labels.items())))


def label_values(samples: Samples, name: str, label: str) -> set[str]:
    return {dict(labels)[label] for (n, labels) in samples if n == name}


@pytest.fixture
def served() -> Iterator[list[Server]]:
    servers: list[Server] = []
    yield servers
    for server in servers:
        server.shutdown()


def serve(metrics: Metrics, servers: list[Server]) -> int:
    server = metrics.serve(0)
    servers.append(server)
    return server.address[1]


def task(metrics: Metrics, type: str, id: str, at: float, **fields: Any) -> None:
    metrics.event({"type": type, "uuid": id, "hostname": "w@h", "timestamp": at, **fields})


def life(metrics: Metrics, name: str, queue: str = "celery", outcome: str = "succeeded") -> str:
    """One task's events: sent at 100, received at 101, started at 102, done at 104.5."""
    id = str(uuid.uuid4())
    task(metrics, "task-received", id, 101.0, name=name, queue=queue, sent_at=100.0)
    task(metrics, "task-started", id, 102.0)
    if outcome == "succeeded":
        task(metrics, "task-succeeded", id, 104.5, runtime=2.5, result="1")
    else:
        task(metrics, f"task-{outcome}", id, 104.5, exception="ValueError()")
    return id


# -- events -----------------------------------------------------------------------------------


def test_task_events_are_counted_by_name_state_and_queue(served: list[Server]) -> None:
    metrics = Metrics(queues=["celery"])
    for _ in range(3):
        life(metrics, "proj.add")
    life(metrics, "proj.fail", queue="images", outcome="failed")
    retried = life(metrics, "proj.flaky", outcome="retried")
    task(metrics, "task-revoked", retried, 105.0, terminated=False)
    samples = scrape(serve(metrics, served))

    def count(name: str, state: str, queue: str = "celery") -> float | None:
        return value(samples, "celeriac_tasks_total", name=name, state=state, queue=queue)

    assert count("proj.add", "received") == 3
    assert count("proj.add", "started") == 3
    assert count("proj.add", "succeeded") == 3
    assert count("proj.add", "failed") is None
    assert count("proj.fail", "failed", "images") == 1
    assert count("proj.flaky", "retried") == 1
    assert count("proj.flaky", "revoked") == 1


def test_runtime_and_queue_wait_histograms(served: list[Server]) -> None:
    metrics = Metrics(queues=["celery"])
    life(metrics, "proj.add")
    life(metrics, "proj.add")
    life(metrics, "proj.fail", outcome="failed")
    samples = scrape(serve(metrics, served))
    runtime = "celeriac_task_runtime_seconds"
    assert value(samples, f"{runtime}_count", name="proj.add") == 2
    assert value(samples, f"{runtime}_sum", name="proj.add") == 5.0
    assert value(samples, f"{runtime}_bucket", name="proj.add", le="2.5") == 2
    assert value(samples, f"{runtime}_bucket", name="proj.add", le="1.0") == 0
    # a failure's runtime: from its task-started to its task-failed
    assert value(samples, f"{runtime}_count", name="proj.fail") == 1
    assert value(samples, f"{runtime}_sum", name="proj.fail") == 2.5
    wait = "celeriac_task_queue_wait_seconds"
    assert value(samples, f"{wait}_count", name="proj.add", queue="celery") == 2
    assert value(samples, f"{wait}_sum", name="proj.add", queue="celery") == 4.0


def test_an_event_before_its_task_received_waits_for_it() -> None:
    """A prefork child's task-started can reach the log before its parent's task-received."""
    metrics = Metrics(queues=["celery"])
    get = metrics.registry.get_sample_value
    task(metrics, "task-started", "t1", 102.0)
    unknown = {"name": UNKNOWN, "queue": UNKNOWN}
    assert get("celeriac_tasks_total", {**unknown, "state": "started"}) is None
    task(metrics, "task-received", "t1", 101.0, name="proj.add", queue="celery", sent_at=100.0)
    labels = {"name": "proj.add", "queue": "celery"}
    assert get("celeriac_tasks_total", {**labels, "state": "started"}) == 1
    assert get("celeriac_task_queue_wait_seconds_sum", labels) == 2.0


def test_an_event_of_a_task_never_introduced_counts_as_unknown_after_the_grace() -> None:
    metrics = Metrics(queues=["celery"], grace=0.0)
    get = metrics.registry.get_sample_value
    unknown = {"name": UNKNOWN, "queue": UNKNOWN}
    task(metrics, "task-started", "t1", 102.0)
    metrics.flush()
    assert get("celeriac_tasks_total", {**unknown, "state": "started"}) == 1
    task(metrics, "task-failed", "t1", 103.0)  # no wait now, and its runtime is known
    assert get("celeriac_tasks_total", {**unknown, "state": "failed"}) == 1
    assert get("celeriac_task_runtime_seconds_sum", {"name": UNKNOWN}) == 1.0


def test_bad_fields_are_ignored() -> None:
    metrics = Metrics(queues=["celery"])
    events: list[dict[str, Any]] = [
        {"type": "task-received", "uuid": 5, "name": ["x"], "queue": None, "sent_at": "soon"},
        {"type": "task-succeeded", "name": "n", "runtime": "long", "timestamp": "now"},
        {"type": "worker-heartbeat", "hostname": 7},
        {"type": "worker-heartbeat", "hostname": "w", "freq": "x", "active": -3},
        {"type": "no-such-event"},
        {},
    ]
    for event in events:
        metrics.event(event)
    get = metrics.registry.get_sample_value
    assert get("celeriac_tasks_total", {"name": "n", "state": "succeeded", "queue": UNKNOWN}) == 1
    assert get("celeriac_worker_active_tasks", {"hostname": "w"}) == 0


# -- label bounds ---------------------------------------------------------------------------


def test_task_names_are_bounded(served: list[Server]) -> None:
    metrics = Metrics(queues=["celery"])
    for n in range(300):
        life(metrics, f"proj.task{n}")
    samples = scrape(serve(metrics, served))
    names = label_values(samples, "celeriac_tasks_total", "name")
    assert len(names) == 201 and OTHER in names
    assert value(samples, "celeriac_tasks_total", name=OTHER, state="succeeded", queue="celery")
    assert len(label_values(samples, "celeriac_task_runtime_seconds_count", "name")) == 201


def test_queues_are_the_known_ones_and_a_bounded_number_of_others(served: list[Server]) -> None:
    metrics = Metrics(queues=["a", "b"], max_queues=3)
    for n in range(10):
        life(metrics, "proj.add", queue=f"q{n}")
    life(metrics, "proj.add", queue="b")
    samples = scrape(serve(metrics, served))
    queues = label_values(samples, "celeriac_tasks_total", "queue")
    assert queues == {"q0", "q1", "q2", OTHER, "b"}


def test_workers_online_expire_and_hostnames_are_bounded(served: list[Server]) -> None:
    now = 1000.0
    metrics = Metrics(queues=[], max_hostnames=2, clock=lambda: now)

    def beat(hostname: str, at: float, active: int, type: str = "worker-heartbeat") -> None:
        event = {"type": type, "hostname": hostname, "freq": 2.0, "active": active}
        metrics.event({**event, "timestamp": at})

    beat("d@h", 999.0, 1, "worker-online")
    beat("c@h", 999.5, 2)
    beat("b@h", 998.0, 3)
    beat("a@h", 996.5, 4)  # its heartbeat expired at 1000.5: alive
    beat("old@h", 995.0, 5)  # expired at 999.0
    port = serve(metrics, served)
    samples = scrape(port)
    assert value(samples, "celeriac_workers_online") == 4
    assert label_values(samples, "celeriac_worker_active_tasks", "hostname") == {
        "a@h",
        "b@h",
        OTHER,
    }
    assert value(samples, "celeriac_worker_active_tasks", hostname=OTHER) == 3
    now = 1001.0  # a@h's heartbeat has expired now
    beat("c@h", 1000.5, 0, "worker-offline")
    samples = scrape(port)
    assert value(samples, "celeriac_workers_online") == 2
    assert label_values(samples, "celeriac_worker_active_tasks", "hostname") == {"b@h", "d@h"}


# -- queue gauges ---------------------------------------------------------------------------


def _fill(app: Celery) -> None:
    """celery: 1 waiting, 1 in flight, 1 delayed, 1 dead-lettered."""
    broker = app.broker
    broker.publish([Outgoing(f"m{n}".encode(), "celery") for n in range(3)])
    broker.publish([Outgoing(b"later", "celery", eta=time.time() + 300)])
    _in_flight, second = broker.fetch(["celery"], 2, 0.5)
    broker.dead_letter(second, "broken")
    time.sleep(0.05)  # the waiting one has waited


def test_queue_gauges_come_from_the_broker_at_each_scrape(
    sqlite_app: Celery, served: list[Server]
) -> None:
    _fill(sqlite_app)
    metrics = Metrics(sqlite_app)
    assert metrics.queues == ["celery"]
    port = serve(metrics, served)
    samples = scrape(port)
    assert value(samples, "celeriac_queue_waiting", queue="celery") == 1
    assert value(samples, "celeriac_queue_in_flight", queue="celery") == 1
    assert value(samples, "celeriac_queue_delayed", queue="celery") == 1
    assert value(samples, "celeriac_queue_dead_lettered", queue="celery") == 1
    age = value(samples, "celeriac_queue_oldest_age_seconds", queue="celery")
    assert age is not None and 0.05 <= age < 60
    sqlite_app.broker.purge("celery")
    assert value(scrape(port), "celeriac_queue_waiting", queue="celery") == 0


def test_a_value_the_broker_cannot_tell_is_not_exported(
    sqlite_app: Celery, served: list[Server], monkeypatch: pytest.MonkeyPatch
) -> None:
    stats = QueueStats("celery", 2, None, None, 0, None)
    monkeypatch.setattr(sqlite_app.broker, "queue_stats", lambda queue: stats)
    samples = scrape(serve(Metrics(sqlite_app), served))
    assert value(samples, "celeriac_queue_waiting", queue="celery") == 2
    assert value(samples, "celeriac_queue_dead_lettered", queue="celery") == 0
    for name in ("in_flight", "delayed", "oldest_age_seconds"):
        assert label_values(samples, f"celeriac_queue_{name}", "queue") == set()


def test_a_broker_error_skips_the_queue_gauges_and_is_logged_once(
    sqlite_app: Celery,
    served: list[Server],
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    def down(queue: str) -> QueueStats:
        raise OperationalError("broker away")

    metrics = Metrics(sqlite_app)
    metrics.event({"type": "worker-heartbeat", "hostname": "w", "freq": 60.0})
    port = serve(metrics, served)
    monkeypatch.setattr(sqlite_app.broker, "queue_stats", down)
    with caplog.at_level(logging.INFO, logger="celeriac.monitor"):
        for _ in range(3):
            samples = scrape(port)
            assert value(samples, "celeriac_workers_online") == 1
            assert label_values(samples, "celeriac_queue_waiting", "queue") == set()
        monkeypatch.undo()
        assert value(scrape(port), "celeriac_queue_waiting", queue="celery") == 0
    messages = [r.getMessage() for r in caplog.records]
    assert len([m for m in messages if "broker away" in m]) == 1
    assert any("available again" in m for m in messages)


# -- serving and feeding ----------------------------------------------------------------------


def test_the_server_binds_this_host_by_default_and_shuts_down() -> None:
    server = Metrics(queues=[]).serve(0)
    host, port = server.address
    assert host == "127.0.0.1"
    assert "celeriac_workers_online" in {name for name, _ in scrape(port)}
    server.shutdown()
    with pytest.raises(OSError):
        scrape(port)


def test_a_forked_process_does_not_keep_the_port(served: list[Server]) -> None:
    server = Metrics(queues=[]).serve(0)
    served.append(server)
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        os._exit(0 if server.httpd.socket.fileno() == -1 else 1)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0


def test_the_feeder_follows_the_log_from_now_on_for_one_hostname(sqlite_app: Celery) -> None:
    before = sqlite_app.events.Dispatcher(hostname="w1@h")
    before.send("task-received", uuid="old", name="proj.old", queue="celery")
    before.flush()
    metrics = Metrics(sqlite_app)
    feeder = MetricsFeeder(sqlite_app, metrics, hostname="w1@h", poll_timeout=0.1)
    feeder.start()
    mine, other = (sqlite_app.events.Dispatcher(hostname=h) for h in ("w1@h", "w2@h"))
    for n, dispatcher in enumerate((mine, other, mine)):
        dispatcher.send("task-received", uuid=f"t{n}", name="proj.add", queue="celery")
        dispatcher.send("task-succeeded", uuid=f"t{n}", runtime=0.01)
    mine.flush()
    other.flush()
    labels = {"name": "proj.add", "queue": "celery"}

    def succeeded() -> float | None:
        return metrics.registry.get_sample_value(
            "celeriac_tasks_total", {**labels, "state": "succeeded"}
        )

    wait_until(lambda: succeeded() == 2, timeout=10)
    time.sleep(0.3)
    feeder.stop()
    assert succeeded() == 2
    assert (
        metrics.registry.get_sample_value(
            "celeriac_tasks_total", {"name": "proj.old", "state": "received", "queue": "celery"}
        )
        is None
    )
    for dispatcher in (before, mine, other):
        dispatcher.close()


def test_start_metrics_serves_and_turns_task_events_on(
    memory_app: Celery, caplog: pytest.LogCaptureFixture
) -> None:
    memory_app.conf.worker_metrics_port = 0
    worker = Worker(memory_app, pool="threads", hostname="m@h", install_signal_handlers=False)
    with caplog.at_level(logging.INFO, logger="celeriac.worker"):
        exporter = start_metrics(worker)
    try:
        assert exporter.server is not None
        port = exporter.server.address[1]
        served = [r.getMessage() for r in caplog.records if "metrics of" in r.getMessage()]
        assert served == [f"metrics of m@h served at http://127.0.0.1:{port}/metrics"]
        assert memory_app.events.tasks is not None and memory_app.events.tasks.enabled
        assert value(scrape(port), "celeriac_queue_waiting", queue="celery") == 0
    finally:
        exporter.stop()


def test_no_port_no_metrics(memory_app: Celery) -> None:
    worker = Worker(memory_app, pool="threads", install_signal_handlers=False)
    exporter = start_metrics(worker)
    assert exporter.server is None and memory_app.events.tasks is None
    exporter.stop()


def test_a_worker_without_prometheus_client_refuses_to_start(
    memory_app: Celery, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "prometheus_client", None)  # import fails
    monkeypatch.delitem(sys.modules, "celeriac.monitor.metrics")
    memory_app.conf.worker_metrics_port = 9999
    worker = Worker(memory_app, pool="threads", install_signal_handlers=False)
    with pytest.raises(ImproperlyConfigured, match=r"pip install 'celeriac\[metrics\]'"):
        start_metrics(worker)


def test_a_bad_port_is_refused(memory_app: Celery) -> None:
    memory_app.conf.worker_metrics_port = "ninety"
    worker = Worker(memory_app, pool="threads", install_signal_handlers=False)
    with pytest.raises(ImproperlyConfigured, match="worker_metrics_port"):
        start_metrics(worker)


# -- a worker process ---------------------------------------------------------------------------


@pytest.fixture(params=["sqlite", "redis"])
def dist(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Project]:
    with deployment(request.param, tmp_path) as project:
        yield project


@pytest.mark.slow
def test_a_prefork_worker_serves_its_metrics(dist: Project) -> None:
    port = free_port()
    w = dist.worker(
        "-P", "prefork", "-c", "2", "--heartbeat-interval", "1", "-n", "metrics@%h",
        "--metrics-port", str(port),
    )  # fmt: skip
    assert f"served at http://127.0.0.1:{port}/metrics" in w.output
    adds = [dist.send("add", n, n) for n in range(4)]
    failed = dist.send("fail", "on purpose")
    dist.send("add", 0, 0, countdown=300)  # delayed
    assert [r.get(timeout=30) for r in adds] == [0, 2, 4, 6]
    with pytest.raises(Exception, match="on purpose"):
        failed.get(timeout=30)

    def count(name: str, state: str, samples: Samples) -> float | None:
        labels = {"name": f"proj.tasks.{name}", "state": state, "queue": "celery"}
        return value(samples, "celeriac_tasks_total", **labels)

    def done() -> Samples | None:
        samples = scrape(port)
        finished = count("add", "succeeded", samples) == 4 and count("fail", "failed", samples)
        online = value(samples, "celeriac_workers_online") == 1
        return samples if finished and online else None

    samples = wait_until(done, timeout=30, interval=0.2)
    assert count("add", "received", samples) == 4  # the one due later was not received
    assert count("add", "started", samples) == 4
    assert count("fail", "received", samples) == 1
    assert count("fail", "failed", samples) == 1
    assert label_values(samples, "celeriac_tasks_total", "name") == {
        "proj.tasks.add",
        "proj.tasks.fail",
    }
    runtime = "celeriac_task_runtime_seconds_count"
    assert value(samples, runtime, name="proj.tasks.add") == 4
    assert value(samples, runtime, name="proj.tasks.fail") == 1
    wait = "celeriac_task_queue_wait_seconds_count"
    assert value(samples, wait, name="proj.tasks.add", queue="celery") == 4
    hostnames = label_values(samples, "celeriac_worker_active_tasks", "hostname")
    assert len(hostnames) == 1 and hostnames.pop().startswith("metrics@")
    assert value(samples, "celeriac_queue_waiting", queue="celery") == 0
    assert value(samples, "celeriac_queue_delayed", queue="celery") == 1
    assert value(samples, "celeriac_queue_in_flight", queue="celery") == 0
    assert value(samples, "celeriac_queue_dead_lettered", queue="celery") == 0
    w.signal(signal.SIGTERM)
    assert w.wait() == 0
