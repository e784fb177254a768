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
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

import pytest

from celeriac import states
from conftest import Project, wait_until
from services import AMQP, IN_CI, POSTGRES_PROCESS, REDIS_PROCESS_RESULTS, RedisServer

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


@pytest.fixture(params=["sqlite", "redis", "amqp", "postgresql"])
def deployment(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Deployment]:
    name = request.param
    with ExitStack() as later:  # undone in reverse: the project closes first
        if name == "sqlite":
            project = Project(tmp_path)
            lock = SQLiteLock(tmp_path / "broker.db")
            later.callback(lock.release)
            down, up = lock.take, lock.release
        elif name == "redis":
            if shutil.which("redis-server") is None:
                if IN_CI:
                    pytest.fail("redis-server is not installed (CI=true: services are required)")
                pytest.skip("redis-server is not installed")
            server = RedisServer(tmp_path)
            server.start()
            later.callback(server.stop)
            project = Project(tmp_path, server.url)
            down, up = server.kill, server.start
        elif name == "amqp":
            AMQP.prepare()
            REDIS_PROCESS_RESULTS.prepare()
            project = Project(tmp_path, AMQP.url, REDIS_PROCESS_RESULTS.url)
            later.callback(AMQP.cleanup, AMQP.url, [project.app.broker])
            down, up = (lambda: _rabbitmqctl("stop_app")), (lambda: _rabbitmqctl("start_app"))
        else:
            POSTGRES_PROCESS.prepare()
            proxy = Proxy(5432)
            later.callback(POSTGRES_PROCESS.cleanup, POSTGRES_PROCESS.url, [])
            later.callback(proxy.close)
            project = Project(tmp_path, POSTGRES_PROCESS.url.replace(":5432/", f":{proxy.port}/"))
            down, up = proxy.cut, proxy.restore
        later.callback(project.close)
        yield Deployment(name, project, down, up)


def _times(project: Project, kind: str) -> dict[str, list[float]]:
    """When each task (by tag) started, or ended, as the ``timed`` task records it."""
    seen: dict[str, list[float]] = collections.defaultdict(list)
    for tag, _pid, at in project.runs(kind):
        seen[tag].append(float(at))
    return seen


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


def _ran_twice(project: Project) -> set[str]:
    return {tag for tag, ends in _times(project, "end").items() if len(ends) > 1}


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


def test_a_broker_outage_mid_drain_loses_and_strands_nothing(deployment: Deployment) -> None:
    project = deployment.project
    # leases far longer than the outage: nothing runs twice, even on a broker whose lease
    # deadlines passed while it was away
    project.set(CELERIAC_TEST_VT="60", CELERIAC_TEST_PREFETCH="4")
    # tasks long enough that a child is mid-task, with jobs prefetched behind it, when the
    # broker goes: it gives those back (held up behind a task whose result cannot be stored)
    # while the broker is away
    tags = [f"t{i}" for i in range(400)]
    results = [project.send("timed", tag, 0.03) for tag in tags]
    worker = project.worker("-c", "2")
    wait_until(lambda: len(project.runs("end")) >= len(tags) // 4, timeout=60)
    cut_at = time.time()
    deployment.take_down()
    try:
        time.sleep(OUTAGE)
    finally:
        deployment.bring_back()
    assert [r.get(timeout=120) for r in results] == tags
    assert set(_times(project, "end")) == set(tags)
    twice = _ran_twice(project)
    _report(deployment, f"outage of {OUTAGE:g} s", tags, 1, twice)
    if deployment.name == "amqp":
        # RabbitMQ gives back what a lost connection held: only those could run again
        assert twice <= _running_at(project, [cut_at]), twice
    else:
        assert not twice, twice
    assert all(r.state == states.SUCCESS for r in results)
    assert worker.proc.poll() is None  # it rode the outage out


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
    assert [r.get(timeout=120) for r in results] == tags
    assert set(_times(project, "end")) == set(tags)
    twice = _ran_twice(project)
    _report(deployment, "SIGKILL of children and workers", tags, len(kills), twice)
    assert twice <= _running_at(project, kills), twice
    assert all(r.state == states.SUCCESS for r in results)
