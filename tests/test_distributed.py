"""CLI workers as processes on every broker: crashes, restarts, many workers, many hosts.

Each test runs against the embedded SQLite broker and the real Redis, RabbitMQ and PostgreSQL
servers (see :mod:`services`), with the result backend named beside each broker.
"""

from __future__ import annotations

import collections
import contextlib
import os
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest

from celeriac import chord, signature, states
from celeriac.exceptions import WorkerLostError
from conftest import Project, wait_until
from services import (
    AMQP,
    POSTGRES,
    POSTGRES_PROCESS,
    REDIS_PROCESS,
    REDIS_PROCESS_RESULTS,
    RedisServer,
    Service,
    require_redis_server,
)

pytestmark = pytest.mark.slow

#: broker name -> (broker service, result backend service or None for the broker's own store)
DEPLOYMENTS: dict[str, tuple[Service | None, Service | None]] = {
    "sqlite": (None, None),
    "redis": (REDIS_PROCESS, None),
    "amqp": (AMQP, REDIS_PROCESS_RESULTS),
    "postgresql": (POSTGRES_PROCESS, None),
}


@contextlib.contextmanager
def deployment(name: str, tmp_path: Path) -> Iterator[Project]:
    """A project on the deployment ``name``, emptied before and after."""
    broker, backend = DEPLOYMENTS[name]
    for service in (broker, backend):
        if service is not None:
            service.prepare()
    project = Project(tmp_path, broker.url if broker else None, backend.url if backend else "")
    try:
        yield project
    finally:
        project.close()
        for service in (broker, backend):
            if service is not None:
                service.cleanup(service.url, [project.app.broker])


@pytest.fixture(params=sorted(DEPLOYMENTS))
def dist(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Project]:
    """A project on one broker (and result backend), emptied before and after the test."""
    with deployment(request.param, tmp_path) as project:
        yield project


def ended(project: Project) -> collections.Counter[str]:
    return collections.Counter(r[0] for r in project.runs("end"))


def mid_task(project: Project, host: str, ended_at_least: int) -> bool:
    """Has the worker named ``host...`` a task started and not ended (and have at least
    ``ended_at_least`` tasks ended)? A worker killed after a task ended but before its
    acknowledgement rightly runs it again, so kills in these tests aim mid-task."""
    done = {r[0] for r in project.runs("end")}
    started = [r for r in project.runs("start") if r[2].startswith(host)]
    return len(done) >= ended_at_least and any(r[0] not in done for r in started)


def test_priorities_mean_the_same_on_every_broker(dist: Project) -> None:
    sent = [dist.send("order", p, priority=p) for p in (5, 0, 6, 9, 7)]
    dist.worker("-c", "1")
    for result in sent:
        result.get(timeout=30)
    assert [int(r[0]) for r in dist.runs("order")] == [9, 7, 6, 5, 0]


def test_sigkill_mid_task_loses_nothing(dist: Project) -> None:
    dist.set(CELERIAC_TEST_VT="2")
    first = dist.worker("-c", "1")
    result = dist.send("sleep_record", "k", 1.0)
    wait_until(lambda: dist.runs("start"))
    first.kill()
    dist.worker("-c", "1")
    assert result.get(timeout=30) == "k"
    assert len(dist.runs("start")) == 2  # it never finished the first time
    assert ended(dist) == {"k": 1}


def test_task_longer_than_the_visibility_timeout_runs_once(dist: Project) -> None:
    dist.set(CELERIAC_TEST_VT="1")
    dist.worker("-c", "1", "-n", "a@%h")
    dist.worker("-c", "1", "-n", "b@%h")
    result = dist.send("sleep_record", "long", 3.0)
    assert result.get(timeout=30) == "long"
    assert len(dist.runs("start")) == 1


def test_eta_past_the_visibility_timeout_runs_once(dist: Project) -> None:
    dist.set(CELERIAC_TEST_VT="2")
    dist.worker("-c", "1", "-n", "a@%h")
    dist.worker("-c", "1", "-n", "b@%h")
    sent_at = time.time()
    result = dist.send("record", "eta", countdown=5)
    assert result.get(timeout=30) == "eta"
    assert time.time() - sent_at >= 4.9
    time.sleep(2.5)  # a second copy would have run by now
    assert len(dist.runs("run")) == 1


def test_three_workers_share_the_queue_and_survive_a_kill(dist: Project) -> None:
    dist.set(CELERIAC_TEST_VT="3")
    workers = [dist.worker("-c", "1", "-n", f"w{i}@%h") for i in range(3)]
    results = [dist.send("sleep_record", f"t{i}", 0.2) for i in range(24)]
    wait_until(lambda: mid_task(dist, "w0@", ended_at_least=4))
    workers[0].kill()
    assert [r.get(timeout=60) for r in results] == [f"t{i}" for i in range(24)]
    assert ended(dist) == {f"t{i}": 1 for i in range(24)}  # none finished twice
    hosts = {r[2].split("@")[0] for r in dist.runs("start")}
    assert len(hosts) >= 2, hosts


def test_chord_body_runs_once_when_a_worker_is_killed_mid_header(dist: Project) -> None:
    dist.set(CELERIAC_TEST_VT="2")
    first = dist.worker("-c", "2")
    header = [signature("proj.tasks.sleep_record", (f"h{i}", 0.4), app=dist.app) for i in range(6)]
    result = chord(header, signature("proj.tasks.collect", app=dist.app)).apply_async()
    wait_until(lambda: len(dist.runs("start")) >= 2)
    first.kill()
    dist.worker("-c", "2")
    assert result.get(timeout=60) == [f"h{i}" for i in range(6)]
    assert dist.runs("body") == [["6"]]
    assert ended(dist) == {f"h{i}": 1 for i in range(6)}


def test_a_task_that_kills_its_process_runs_again_until_dead_lettered(dist: Project) -> None:
    dist.set(CELERIAC_TEST_CONF='{"worker_max_deliveries": 2}')
    dist.worker("-c", "2")
    once = dist.send("crash_once", "once")  # as the OOM killer would, the first time
    always = dist.send("crash", "always")
    assert once.get(timeout=30) == "once"
    with pytest.raises(WorkerLostError, match="delivered 3 times"):
        always.get(timeout=30)
    starts = collections.Counter(r[0] for r in dist.runs("start"))
    assert starts == {"once": 2, "always": 2}
    [letter] = wait_until(lambda: dist.app.broker.dead_letters("celery"))
    assert "worker_max_deliveries=2" in letter.reason


def test_a_task_holding_the_gil_past_its_lease_runs_once(dist: Project) -> None:
    # the heartbeat of a threads pool's worker cannot run while the task holds the GIL: its
    # leases are renewed from the lease keeper's process (or, on RabbitMQ, the lease clock
    # starves with it)
    dist.set(CELERIAC_TEST_VT="1")
    dist.worker("-P", "threads", "-c", "2", "-n", "a@%h")
    dist.worker("-P", "threads", "-c", "2", "-n", "b@%h")
    result = dist.send("hold_gil", "gil", 3.0)
    assert result.get(timeout=30) == "gil"
    time.sleep(1.5)  # a second copy would have started by now
    assert len(dist.runs("start")) == 1


def test_a_message_with_mistyped_workflow_fields_does_not_wedge_a_prefork_worker(
    dist: Project,
) -> None:
    from celeriac.brokers.base import Outgoing
    from celeriac.serialization import json_dumps

    body = {"id": "bad-chain", "task": "proj.tasks.record", "args": ["bad"], "chain": [42]}
    chord_body = {**body, "id": "bad-chord", "chord": "zzz"}
    dist.app.broker.publish([Outgoing(json_dumps(b), "celery") for b in (body, chord_body)])
    worker = dist.worker("-c", "2")
    assert dist.send("record", "good").get(timeout=30) == "good"
    letters = wait_until(lambda: len(dist.app.broker.dead_letters("celery")) == 2 or None)
    assert letters
    reasons = sorted(dl.reason for dl in dist.app.broker.dead_letters("celery"))
    assert reasons == [
        "invalid message: message chain[0] is a int, not a signature",
        "invalid message: message chord is not an object",
    ]
    assert [r[0] for r in dist.runs("run")] == ["good"]
    worker.signal(signal.SIGTERM)
    assert worker.wait(20) == 0  # and a warm shutdown still ends


# -- broker restarts --------------------------------------------------------------------------


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[RedisServer]:
    require_redis_server()
    server = RedisServer(tmp_path)
    yield server
    server.stop()


def _restart_rabbitmq() -> None:
    ctl = shutil.which("rabbitmqctl") or "/usr/sbin/rabbitmqctl"
    try:
        subprocess.run([ctl, "-q", "stop_app"], check=True, capture_output=True, timeout=120)
        time.sleep(1)
    finally:  # the server is shared: never leave it stopped
        subprocess.run([ctl, "-q", "start_app"], check=True, capture_output=True, timeout=120)


def _terminate_postgres_connections(application_name: str) -> None:
    import psycopg

    with psycopg.connect(POSTGRES, autocommit=True) as conn:
        conn.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = %s",
            (application_name,),
        )


def _stream_through_a_restart(project: Project, restart: object) -> None:
    project.worker("-c", "2")
    results = [project.send("sleep_record", f"t{i}", 0.1) for i in range(10)]
    wait_until(lambda: len(project.runs("end")) >= 3)
    restart()  # type: ignore[operator]
    results += [
        project.send("sleep_record", f"t{i}", 0.1, retry=True, retry_policy={"max_retries": 20})
        for i in range(10, 20)
    ]
    assert [r.get(timeout=90) for r in results] == [f"t{i}" for i in range(20)]
    assert ended(project) == {f"t{i}": 1 for i in range(20)}
    assert all(r.state == states.SUCCESS for r in results)


def test_redis_restart_mid_stream(redis_server: RedisServer, tmp_path: Path) -> None:
    redis_server.start()
    project = Project(tmp_path, redis_server.url)
    try:
        _stream_through_a_restart(project, redis_server.restart)
        worker_log = project.workers[0].output
        assert worker_log.count("unavailable") <= 2, worker_log  # one warning, not a flood
    finally:
        project.close()


def test_result_backend_restart_mid_stream(redis_server: RedisServer, tmp_path: Path) -> None:
    """The result backend goes away while tasks finish: their results are stored once it is
    back, and none runs twice."""
    redis_server.start()
    project = Project(tmp_path, None, redis_server.url)
    try:
        _stream_through_a_restart(project, redis_server.restart)
        worker_log = project.workers[0].output
        assert "not renewed" not in worker_log  # the broker was there all along
    finally:
        project.close()


@pytest.mark.serial  # it stops RabbitMQ, which every test process shares
def test_rabbitmq_restart_mid_stream(tmp_path: Path) -> None:
    AMQP.prepare()
    REDIS_PROCESS_RESULTS.prepare()
    project = Project(tmp_path, AMQP.url, REDIS_PROCESS_RESULTS.url)
    try:
        _stream_through_a_restart(project, _restart_rabbitmq)
    finally:
        project.close()
        AMQP.cleanup(AMQP.url, [project.app.broker])


def test_postgresql_connections_killed_mid_stream(tmp_path: Path) -> None:
    POSTGRES_PROCESS.prepare()
    project = Project(tmp_path, POSTGRES_PROCESS.url)
    try:
        # this test process's own schema's connections (the other test processes have theirs)
        name = parse_qs(urlsplit(POSTGRES_PROCESS.url).query)["application_name"][0]
        _stream_through_a_restart(project, lambda: _terminate_postgres_connections(name))
    finally:
        project.close()


def test_worker_waits_for_the_broker_at_startup(redis_server: RedisServer, tmp_path: Path) -> None:
    project = Project(tmp_path, redis_server.url)
    try:
        worker = project.worker("-c", "1", ready=False)
        wait_until(lambda: f"Cannot connect to {redis_server.url}" in worker.output)
        redis_server.start()
        worker.wait_ready()
        assert project.send("add", 2, 2).get(timeout=30) == 4
    finally:
        project.close()


# -- separate hosts ---------------------------------------------------------------------------


def _ip(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["ip", *args], capture_output=True, text=True, timeout=30)


@pytest.fixture
def namespaces() -> Iterator[list[tuple[str, str]]]:
    """Three network namespaces, each joined to this one by a veth pair on its own subnet.

    Yields (namespace, address of this side) pairs; a process in a namespace reaches only that
    address. Skipped where namespaces cannot be made (no root, no ``ip``)."""
    if shutil.which("ip") is None or os.geteuid() != 0:
        pytest.skip("network namespaces need root and the ip command")
    tag = f"{os.getpid() % 10000}"
    made: list[tuple[str, str]] = []
    try:
        for i in range(3):
            ns, host_if, ns_if = f"cel{tag}n{i}", f"cel{tag}h{i}", f"cel{tag}c{i}"
            subnet = f"10.213.{i}"
            steps = [
                ("netns", "add", ns),
                ("link", "add", host_if, "type", "veth", "peer", "name", ns_if),
                ("link", "set", ns_if, "netns", ns),
                ("addr", "add", f"{subnet}.1/24", "dev", host_if),
                ("link", "set", host_if, "up"),
                ("-n", ns, "addr", "add", f"{subnet}.2/24", "dev", ns_if),
                ("-n", ns, "link", "set", ns_if, "up"),
                ("-n", ns, "link", "set", "lo", "up"),
            ]
            for step in steps:
                done = _ip(*step)
                if done.returncode != 0:
                    pytest.skip(
                        f"cannot make network namespaces: ip {' '.join(step)}: "
                        f"{done.stderr.strip()}"
                    )
                if step[:2] == ("netns", "add"):
                    made.append((ns, f"{subnet}.1"))
        yield made
    finally:
        for ns, _ in made:
            _ip("netns", "delete", ns)  # also removes its veth pair


def test_workers_on_separate_hosts(namespaces: list[tuple[str, str]], tmp_path: Path) -> None:
    """Three workers, each in its own network namespace, reach Redis only over their own
    link: every task runs once, on more than one of them, and a SIGKILL loses nothing."""
    server = RedisServer(tmp_path, bind=" ".join(addr for _, addr in namespaces))
    server.start()
    project = Project(tmp_path, server.url)
    try:
        for i, (ns, addr) in enumerate(namespaces):
            project.worker(
                "-c",
                "1",
                "-n",
                f"host{i}@%h",
                prefix=["ip", "netns", "exec", ns],
                CELERIAC_TEST_BROKER=f"redis://{addr}:{server.port}/0",
                CELERIAC_TEST_VT="3",
            )
        results = [project.send("sleep_record", f"t{i}", 0.2) for i in range(18)]
        wait_until(lambda: mid_task(project, "host0@", ended_at_least=3))
        project.workers[0].kill()
        assert [r.get(timeout=60) for r in results] == [f"t{i}" for i in range(18)]
        assert ended(project) == {f"t{i}": 1 for i in range(18)}
        assert len({r[2] for r in project.runs("start")}) >= 2
    finally:
        project.close()
        server.stop()
