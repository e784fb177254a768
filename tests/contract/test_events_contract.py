"""Worker and task events on every broker: a task's life cycle, worker online, heartbeat and
offline, custom events, task-sent, and switching task events on and off remotely."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import pytest

from celeriac import Celery
from celeriac.events import EventReceiver, State
from conftest import wait_until
from contract.test_worker_contract import worker

EVERY_EVENT = ("type", "hostname", "timestamp", "pid", "clock", "utcoffset")


class Seen:
    """The events a receiver read so far, read on demand."""

    def __init__(self, receiver: EventReceiver) -> None:
        self.receiver = receiver
        self.events: list[dict[str, Any]] = []

    def until(self, predicate: Callable[[list[dict[str, Any]]], bool], timeout: float = 20) -> None:
        def look() -> bool:
            self.events += self.receiver.poll(1000, 0.2)
            return predicate(self.events)

        wait_until(look, timeout=timeout, interval=0.0)

    def of(self, uuid: str) -> list[str]:
        return [e["type"] for e in self.events if e.get("uuid") == uuid]

    def types(self, hostname: str) -> list[str]:
        return [e["type"] for e in self.events if e.get("hostname") == hostname]


@pytest.fixture
def seen(app: Celery) -> Any:
    app.conf.event_heartbeat_interval = 0.3
    receiver = app.events.Receiver()
    receiver.poll(1, 0)  # from here on
    yield Seen(receiver)
    receiver.close()


def test_a_tasks_life_and_its_workers_are_events(app: Celery, seen: Seen) -> None:
    app.conf.worker_send_task_events = True

    @app.task
    def add(x, y):
        return x + y

    @app.task
    def boom():
        raise ValueError("boom")

    @app.task(bind=True, max_retries=1, default_retry_delay=0)
    def flaky(self):
        if self.request.retries == 0:
            raise self.retry(exc=KeyError("again"))
        return "ok"

    @app.task(bind=True)
    def progress(self):
        self.send_event("task-progress", current=1, total=2)
        self.update_state(state="PROGRESS", meta={"current": 2})
        return "done"

    with worker(app, hostname="ev@%h") as w:
        host = w.hostname
        ok, bad, retried, custom = add.delay(2, 3), boom.delay(), flaky.delay(), progress.delay()
        assert ok.get(timeout=15) == 5
        assert retried.get(timeout=15) == "ok"
        assert custom.get(timeout=15) == "done"
        with pytest.raises(ValueError):
            bad.get(timeout=15)
        seen.until(lambda _: "task-succeeded" in seen.of(custom.id))
        seen.until(lambda _: seen.types(host).count("worker-heartbeat") >= 2)
    seen.until(lambda _: "worker-offline" in seen.types(host))

    assert seen.of(ok.id) == ["task-received", "task-started", "task-succeeded"]
    assert seen.of(bad.id) == ["task-received", "task-started", "task-failed"]
    # the retry's message may be received before its first run's task-retried is sent
    retry_life = seen.of(retried.id)
    assert retry_life[:2] == ["task-received", "task-started"]
    assert retry_life[-1] == "task-succeeded"
    assert sorted(retry_life) == sorted(
        ["task-received", "task-started"] * 2 + ["task-retried", "task-succeeded"]
    )
    assert seen.of(custom.id) == [
        "task-received",
        "task-started",
        "task-progress",
        "task-state",
        "task-succeeded",
    ]
    by_type = {(e["type"], e.get("uuid")): e for e in seen.events}
    received = by_type["task-received", ok.id]
    assert received["name"] == add.name and received["args"] == "(2, 3)"
    assert received["payload"] == {"args": [2, 3], "kwargs": {}}
    assert received["queue"] == "celery"
    succeeded = by_type["task-succeeded", ok.id]
    assert succeeded["result"] == "5" and succeeded["runtime"] >= 0
    failed = by_type["task-failed", bad.id]
    assert "boom" in failed["exception"] and "ValueError" in failed["traceback"]
    assert by_type["task-progress", custom.id]["current"] == 1
    assert by_type["task-state", custom.id]["meta"] == {"current": 2}
    mine = [e for e in seen.events if e["hostname"] == host]
    assert mine[0]["type"] == "worker-online" and mine[-1]["type"] == "worker-offline"
    beat = next(e for e in mine if e["type"] == "worker-heartbeat")
    assert beat["freq"] == 0.3 and beat["sw_ident"] == "celeriac"
    assert {"active", "processed", "loadavg"} <= set(beat)
    for event in mine:
        assert set(EVERY_EVENT) <= set(event), event
    clocks = [e["clock"] for e in mine if e["pid"] == mine[0]["pid"]]
    assert len(set(clocks)) == len(clocks)  # one logical clock per process

    state = State()
    for event in seen.events:
        state.event(event)
    assert state.tasks[ok.id].state == "SUCCESS" and state.tasks[ok.id].result == "5"
    assert state.tasks[bad.id].state == "FAILURE"
    assert state.tasks[custom.id].state == "SUCCESS"
    ran_on = state.tasks[ok.id].worker
    assert ran_on is not None and ran_on.hostname == host
    assert not state.workers[host].alive  # it went offline


def test_task_events_are_switched_on_and_off_remotely(app: Celery, seen: Seen) -> None:
    @app.task
    def add(x, y):
        return x + y

    with worker(app, hostname="toggle@%h") as w:
        host = w.hostname
        ask: dict[str, Any] = {"reply": True, "timeout": 5, "destination": [host]}
        seen.until(lambda _: "worker-online" in seen.types(host))
        quiet = add.delay(1, 1)
        assert quiet.get(timeout=15) == 2
        replies = app.control.enable_events(**ask)
        assert replies == [{host: {"ok": "task events enabled"}}]
        loud = add.delay(2, 2)
        assert loud.get(timeout=15) == 4
        seen.until(lambda _: "task-succeeded" in seen.of(loud.id))
        assert app.control.disable_events(**ask) == [{host: {"ok": "task events disabled"}}]
        quiet_again = add.delay(3, 3)
        assert quiet_again.get(timeout=15) == 6
        seen.until(lambda _: seen.types(host).count("worker-heartbeat") >= 2)
    assert seen.of(quiet.id) == [] and seen.of(quiet_again.id) == []


def test_producers_send_task_sent_when_asked(app: Celery, seen: Seen) -> None:
    app.conf.task_send_sent_event = True

    @app.task
    def add(x, y):
        return x + y

    result = add.apply_async((1, 2), countdown=60, priority=7)
    seen.until(lambda _: "task-sent" in seen.of(result.id))
    sent = next(e for e in seen.events if e.get("uuid") == result.id)
    assert sent["name"] == add.name and sent["priority"] == 7
    assert sent["eta"] is not None and sent["eta"] > time.time() + 30
    result.revoke()


def test_argsrepr_keeps_the_arguments_out_of_the_events(app: Celery, seen: Seen) -> None:
    """``apply_async(argsrepr=..., kwargsrepr=...)``: task-sent and task-received show those
    texts, never the arguments; the task gets them in its request."""
    app.conf.worker_send_task_events = True
    app.conf.task_send_sent_event = True
    got: list[tuple[Any, Any]] = []

    @app.task(bind=True)
    def login(self: Any, user: str, password: str, remember: bool = False) -> str:
        got.append((self.request.argsrepr, self.request.kwargsrepr))
        return user

    hidden = login.apply_async(
        ("ann", "hunter2"), {"remember": True}, argsrepr="('ann', '***')", kwargsrepr="{}"
    )
    plain = login.delay("bob", "pw")
    with worker(app):
        assert hidden.get(timeout=20) == "ann" and plain.get(timeout=20) == "bob"
        seen.until(lambda _: {"task-sent", "task-received"} <= set(seen.of(hidden.id)))
    shown = [e for e in seen.events if e.get("uuid") == hidden.id and "received" in e["type"]]
    shown += [e for e in seen.events if e.get("uuid") == hidden.id and e["type"] == "task-sent"]
    for event in shown:
        assert "hunter2" not in repr(event) and "payload" not in event
        assert (event["args"], event["kwargs"]) == ("('ann', '***')", "{}")
    assert ("('ann', '***')", "{}") in got and (None, None) in got
    received = [e for e in seen.events if e.get("uuid") == plain.id and "received" in e["type"]]
    assert received[0]["payload"]["args"] == ["bob", "pw"]  # without argsrepr: as before
