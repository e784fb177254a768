"""Fault injection on every broker: a broker outage of 20 seconds in the middle of a drain, and
SIGKILLs of prefork children and of whole workers in a loop. At the end every task has
succeeded, none is lost or stranded, and a task ran twice only if it was running when its
process was killed.

The outages are real: a private redis-server (append-only) killed and started again,
RabbitMQ's application stopped and started, PostgreSQL cut off behind a TCP proxy, and the
SQLite file locked by another process. ``CELERIAC_FAULT_OUTAGE`` sets the outage's length;
with ``CELERIAC_FAULT_REPORT`` set to a file, each test adds a line of JSON with its figures
(docs/reliability.md).
"""

from __future__ import annotations

import collections
import json
import os
import shutil
import signal
import sqlite3
import subprocess
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from celeriac import states
from conftest import Project
from services import (
    AMQP,
    POSTGRES_PROCESS,
    REDIS_PROCESS_RESULTS,
    RedisServer,
    require_redis_server,
)

from .proxy import Proxy

pytestmark = pytest.mark.slow

OUTAGE = float(os.environ.get("CELERIAC_FAULT_OUTAGE", "20"))


@dataclass
class Deployment:
    """A project on one broker, and how its broker goes away and comes back."""

    name: str
    project: Project
    take_down: Callable[[], None]
    bring_back: Callable[[], None]


class SQLiteLock:
    """Another process's exclusive hold on an SQLite file: nobody else writes meanwhile."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.conn: sqlite3.Connection | None = None

    def take(self) -> None:
        self.conn = sqlite3.connect(self.path, timeout=30, isolation_level=None)
        self.conn.execute("BEGIN EXCLUSIVE")

    def release(self) -> None:
        if self.conn is not None:
            self.conn.execute("COMMIT")
            self.conn.close()
            self.conn = None


def _rabbitmqctl(command: str) -> None:
    ctl = shutil.which("rabbitmqctl") or "/usr/sbin/rabbitmqctl"
    subprocess.run([ctl, "-q", command], check=True, capture_output=True, timeout=120)


BROKERS = ["sqlite", "redis", "amqp", "postgresql"]


@contextmanager
def deployed(name: str, directory: Path) -> Iterator[Deployment]:
    """A project on broker ``name``, its files in ``directory``."""
    directory.mkdir(exist_ok=True)
    with ExitStack() as later:  # undone in reverse: the project closes first
        if name == "sqlite":
            project = Project(directory)
            lock = SQLiteLock(directory / "broker.db")
            later.callback(lock.release)
            down, up = lock.take, lock.release
        elif name == "redis":
            require_redis_server()
            server = RedisServer(directory)
            server.start()
            later.callback(server.stop)
            project = Project(directory, server.url)
            down, up = server.kill, server.start
        elif name == "amqp":
            AMQP.prepare()
            REDIS_PROCESS_RESULTS.prepare()
            project = Project(directory, AMQP.url, REDIS_PROCESS_RESULTS.url)
            later.callback(AMQP.cleanup, AMQP.url, [project.app.broker])
            down, up = (lambda: _rabbitmqctl("stop_app")), (lambda: _rabbitmqctl("start_app"))
        else:
            POSTGRES_PROCESS.prepare()
            proxy = Proxy(5432)
            later.callback(POSTGRES_PROCESS.cleanup, POSTGRES_PROCESS.url, [])
            later.callback(proxy.close)
            project = Project(directory, POSTGRES_PROCESS.url.replace(":5432/", f":{proxy.port}/"))
            down, up = proxy.cut, proxy.restore
        later.callback(project.close)
        yield Deployment(name, project, down, up)


@pytest.fixture(params=BROKERS)
def deployment(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Deployment]:
    with deployed(request.param, tmp_path) as one:
        yield one


@pytest.fixture
def deployments(tmp_path: Path) -> Iterator[list[Deployment]]:
    """One project on each broker (they are independent: a test can fault them together)."""
    with ExitStack() as stack:
        yield [stack.enter_context(deployed(name, tmp_path / name)) for name in BROKERS]


def _times(project: Project, kind: str) -> dict[str, list[float]]:
    """When each task (by tag) started, or ended, as the ``timed`` task records it."""
    seen: dict[str, list[float]] = collections.defaultdict(list)
    for tag, _pid, at in project.runs(kind):
        seen[tag].append(float(at))
    return seen


def _every_task_succeeded(
    deployment: Deployment, results: list[Any], tags: list[str], fault: str, faults: int
) -> set[str]:
    """Check that every task succeeded and none is lost; report the figures; the tasks that
    finished twice."""
    assert [r.get(timeout=120) for r in results] == tags
    assert all(r.state == states.SUCCESS for r in results)
    assert set(_times(deployment.project, "end")) == set(tags)
    twice = {tag for tag, ends in _times(deployment.project, "end").items() if len(ends) > 1}
    _report(deployment, fault, tags, faults, twice)
    return twice


def _report(
    deployment: Deployment, fault: str, tags: list[str], faults: int, twice: set[str]
) -> None:
    path = os.environ.get("CELERIAC_FAULT_REPORT")
    if path:
        ended = set(_times(deployment.project, "end"))
        starts = _times(deployment.project, "start")
        figures = {
            "broker": deployment.name,
            "fault": fault,
            "tasks": len(tags),
            "faults": faults,
            "lost": len(set(tags) - ended),
            "started again": sum(1 for times in starts.values() if len(times) > 1),
            "ran twice": len(twice),
        }
        with open(path, "a") as f:
            f.write(json.dumps(figures) + "\n")


def _running_at(project: Project, moments: list[float]) -> set[str]:
    """The tasks started before one of ``moments`` and not finished well before it (a task
    that had just finished may not have had its result stored yet)."""
    starts, ends = _times(project, "start"), _times(project, "end")
    running = set()
    for moment in moments:
        for tag, started in starts.items():
            done = [t for t in ends.get(tag, ()) if t < moment - 0.5]
            if min(started) <= moment and not done:
                running.add(tag)
    return running


@pytest.mark.serial  # it stops RabbitMQ, which every test process shares
def test_a_broker_outage_mid_drain_loses_and_strands_nothing(
    deployments: list[Deployment],
) -> None:
    # every broker at once (each outage 20 s), to keep the suite short; leases far longer
    # than the outage, so nothing runs twice, even on a broker whose lease deadlines passed
    # while it was away; tasks long enough that a child is mid-task, with jobs prefetched
    # behind it, when its broker goes: it gives those back (held up behind a task whose
    # result cannot be stored) while the broker is away
    tags = [f"t{i}" for i in range(400)]
    sent, down_at, workers = {}, {}, {}
    for d in deployments:
        d.project.set(CELERIAC_TEST_VT="60", CELERIAC_TEST_PREFETCH="4")
        sent[d.name] = [d.project.send("timed", tag, 0.03) for tag in tags]
        workers[d.name] = d.project.worker("-c", "2")
    up: set[str] = set()
    try:
        deadline = time.monotonic() + 180
        while len(up) < len(deployments) and time.monotonic() < deadline:
            for d in deployments:
                if d.name not in down_at and len(d.project.runs("end")) >= len(tags) // 4:
                    down_at[d.name] = time.time()
                    d.take_down()
                elif d.name in down_at and d.name not in up:
                    if time.time() - down_at[d.name] >= OUTAGE:
                        d.bring_back()
                        up.add(d.name)
            time.sleep(0.05)
    finally:
        for d in deployments:
            if d.name in down_at and d.name not in up:
                d.bring_back()
    assert up == {d.name for d in deployments}
    for d in deployments:
        fault = f"outage of {OUTAGE:g} s"
        twice = _every_task_succeeded(d, sent[d.name], tags, fault, 1)
        if d.name == "amqp":
            # RabbitMQ gives back what a lost connection held: only those could run again
            assert twice <= _running_at(d.project, [down_at[d.name]]), twice
        else:
            assert not twice, (d.name, twice)
        assert workers[d.name].proc.poll() is None, d.name  # it rode the outage out


def _busy_child(project: Project) -> int | None:
    """The process of a task running now (the latest started that has not ended)."""
    ended = set(_times(project, "end"))
    for tag, pid, _ in reversed(project.runs("start")):
        if tag not in ended:
            return int(pid)
    return None


def test_sigkills_of_children_and_workers_lose_nothing(deployment: Deployment) -> None:
    project = deployment.project
    project.set(CELERIAC_TEST_VT="3", CELERIAC_TEST_PREFETCH="4")
    tags = [f"k{i}" for i in range(400)]
    results = [project.send("timed", tag, 0.02) for tag in tags]
    kills: list[float] = []
    worker = project.worker("-c", "2")
    for _ in range(2):
        for _ in range(2):  # a child, as the OOM killer would
            time.sleep(0.6)
            pid = _busy_child(project)
            if pid is not None:
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    continue
                kills.append(time.time())
        time.sleep(0.6)
        os.kill(worker.proc.pid, signal.SIGKILL)  # the worker: its children die with it
        worker.proc.wait(10)
        kills.append(time.time())
        worker = project.worker("-c", "2")
    fault = "SIGKILL of children and workers"
    twice = _every_task_succeeded(deployment, results, tags, fault, len(kills))
    assert twice <= _running_at(project, kills), twice
