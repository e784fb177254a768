"""Events from worker processes: task events from prefork children (fed by the parent on
RabbitMQ, consuming by themselves elsewhere), worker-offline on a warm shutdown, and a task
reported lost when its worker is killed mid-task."""

from __future__ import annotations

import signal
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from celeriac.events import State
from conftest import Project, wait_until
from test_distributed import deployment

pytestmark = pytest.mark.slow


@pytest.fixture(params=["sqlite", "redis", "amqp"])
def dist(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Project]:
    with deployment(request.param, tmp_path) as project:
        yield project


def read(receiver: Any, events: list[dict[str, Any]], until: Any, timeout: float = 30) -> None:
    def look() -> bool:
        events.extend(receiver.poll(1000, 0.2))
        return bool(until())

    wait_until(look, timeout=timeout, interval=0.0)


def test_prefork_children_send_task_events_and_the_worker_says_goodbye(dist: Project) -> None:
    receiver = dist.app.events.Receiver()
    receiver.poll(1, 0)
    events: list[dict[str, Any]] = []
    w = dist.worker("-P", "prefork", "-c", "2", "-E", "--heartbeat-interval", "0.5", "-n", "ev@%h")
    results = [dist.send("add", n, n) for n in range(6)]
    assert [r.get(timeout=30) for r in results] == [2 * n for n in range(6)]
    ids = {r.id for r in results}

    def succeeded() -> set[str]:
        return {e["uuid"] for e in events if e["type"] == "task-succeeded"}

    read(receiver, events, lambda: succeeded() >= ids)
    w.signal(signal.SIGTERM)
    assert w.wait() == 0
    read(receiver, events, lambda: any(e["type"] == "worker-offline" for e in events))
    worker_pid = w.proc.pid
    online = next(e for e in events if e["type"] == "worker-online")
    assert online["pid"] == worker_pid and online["hostname"].startswith("ev@")
    started = [e for e in events if e["type"] == "task-started" and e["uuid"] in ids]
    assert len(started) == 6
    assert all(e["pid"] != worker_pid for e in started)  # run (and told) by the children
    assert all(e["hostname"] == online["hostname"] for e in started)
    received = [e for e in events if e["type"] == "task-received" and e["uuid"] in ids]
    assert len(received) == 6
    receiver.close()


def test_a_task_running_on_a_killed_worker_is_reported_lost(dist: Project) -> None:
    receiver = dist.app.events.Receiver()
    receiver.poll(1, 0)
    events: list[dict[str, Any]] = []
    state = State()
    w = dist.worker("-P", "threads", "-c", "1", "-E", "--heartbeat-interval", "0.3")
    stuck = dist.send("sleep_record", "stuck", 30)
    read(
        receiver,
        events,
        lambda: any(e.get("uuid") == stuck.id for e in events if e["type"] == "task-started"),
    )
    w.kill()
    for event in events:
        state.event(event)
    assert state.lost_tasks() == []  # its worker was alive at the last heartbeat
    time.sleep(0.8)  # past two heartbeat intervals: the worker is gone
    events.extend(receiver.poll(1000, 0.1))
    for event in events:
        state.event(event)
    lost = state.lost_tasks()
    assert [t.uuid for t in lost] == [stuck.id]
    assert not lost[0].worker.alive  # type: ignore[union-attr]
    receiver.close()
