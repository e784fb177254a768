"""The control commands that change a running worker (consumers, time limits, pool size)
and those celeriac answers with an error saying why, on every broker."""

from __future__ import annotations

import asyncio
import os
import sys
import threading
import time
from pathlib import Path
from typing import Any

from celeriac import Celery
from celeriac.exceptions import SoftTimeLimitExceeded
from celeriac.worker import state
from conftest import wait_until
from contract.test_worker_contract import worker


def _one(replies: list[dict[str, Any]] | None, host: str) -> Any:
    assert replies is not None and len(replies) == 1, replies
    return replies[0][host]


def test_control_changes_a_running_workers_queues_limits_and_pool(app: Celery) -> None:
    gate = threading.Event()

    @app.task
    def add(x, y):
        return x + y

    @app.task
    def held(n):
        gate.wait(30)
        return n

    @app.task
    def slow():
        try:
            for _ in range(200):
                time.sleep(0.02)
        except SoftTimeLimitExceeded:
            return "soft limit"
        return "finished"

    control = app.control
    try:
        with worker(app, concurrency=1, hostname="ctl@%h") as w:
            host = w.hostname
            # only this worker answers (another test's may share the service)
            ask: dict[str, Any] = {"reply": True, "timeout": 5, "destination": [host]}
            inspect = control.inspect(timeout=5, destination=[host])
            wait_until(lambda: inspect.ping())
            # consumers
            assert _one(control.add_consumer("extra", **ask), host) == {"ok": "add consumer extra"}
            assert "already" in _one(control.add_consumer("extra", **ask), host)["ok"]
            assert [q["name"] for q in inspect.active_queues()[host]] == ["celery", "extra"]
            assert add.apply_async((1, 2), queue="extra").get(timeout=15) == 3
            assert "no longer" in _one(control.cancel_consumer("extra", **ask), host)["ok"]
            assert "only queue" in _one(control.cancel_consumer("celery", **ask), host)["error"]
            assert "not consuming" in _one(control.cancel_consumer("nope", **ask), host)["error"]
            assert [q["name"] for q in inspect.active_queues()[host]] == ["celery"]
            assert inspect.active_queues()[host][0]["exchange"]["type"] == "direct"  # Celery's
            control.revoke("never-sent")
            assert "never-sent" in inspect.revoked()[host]  # at once, not at the next poll
            # time limits, by task name
            reply = _one(control.time_limit(slow.name, soft=0.2, **ask), host)
            assert reply == {"ok": "time limits set successfully"}
            assert slow.delay().get(timeout=15) == "soft limit"
            assert "unknown task" in _one(control.time_limit("no.such", 1, **ask), host)["error"]
            # the pool's size (threads), and the prefetch window with it
            assert _one(control.pool_grow(2, **ask), host) == {"ok": "pool will grow to 3"}
            stats = inspect.stats()[host]
            assert stats["pool"]["max-concurrency"] == 3
            three = [held.delay(i) for i in range(3)]
            wait_until(lambda: len((inspect.active() or {}).get(host, [])) == 3)
            gate.set()
            assert [r.get(timeout=15) for r in three] == [0, 1, 2]
            gate.clear()
            assert _one(control.pool_shrink(2, **ask), host) == {"ok": "pool will shrink to 1"}
            assert "below one" in _one(control.pool_shrink(1, **ask), host)["error"]
            assert "max=2" in _one(control.autoscale(2, 1, **ask), host)["ok"]
            assert inspect.stats()[host]["pool"]["max-concurrency"] == 2
            gate.set()
            assert add.delay(2, 2).get(timeout=15) == 4
            runs = {add.name: 2, held.name: 3, slow.name: 1}  # Celery's `total`
            wait_until(lambda: inspect.stats()[host]["total"] == runs)
            assert inspect.stats()[host]["rusage"]["utime"] > 0
            # the rest: a heartbeat now, and clear errors for what celeriac does not have
            assert "leases renewed" in _one(control.heartbeat(**ask), host)["ok"]
            assert "not needed" in _one(control.election("id", "topic", **ask), host)["error"]
            disabled = _one(control.pool_restart(**ask), host)["error"]
            assert disabled.startswith("Pool restarts not enabled")
            # memory: the worker's RSS as text, the samples kept for memdump
            sample = inspect.memsample()[host]
            assert sample.startswith(f"worker {os.getpid()} ") and sample.endswith("B")
            inspect.memsample()
            dump = inspect.memdump(1)[host]
            assert dump.startswith("- rss (sample):\n-    > ") and dump.count("-    > ") == 1
            assert f"- rss (end): worker {os.getpid()} " in dump
            assert "pip install objgraph" in inspect.objgraph()[host]["error"]
    finally:
        gate.set()


def test_a_pool_of_fixed_size_says_so(app: Celery) -> None:
    with worker(app, pool="solo", hostname="solo@%h") as w:
        only = [w.hostname]
        wait_until(lambda: app.control.inspect(timeout=1, destination=only).ping())
        replies = app.control.pool_grow(1, reply=True, timeout=5, destination=only)
        assert "fixed size" in _one(replies, w.hostname)["error"]


def test_an_asyncio_pool_grows_and_shrinks(app: Celery) -> None:
    gate = threading.Event()

    @app.task
    async def held(n: int) -> int:
        while not gate.is_set():
            await asyncio.sleep(0.02)
        return n

    try:
        with worker(app, pool="asyncio", concurrency=1, hostname="aio@%h") as w:
            host = w.hostname
            ask: dict[str, Any] = {"reply": True, "timeout": 5, "destination": [host]}
            inspect = app.control.inspect(timeout=5, destination=[host])
            wait_until(lambda: inspect.ping())
            assert _one(app.control.pool_grow(2, **ask), host) == {"ok": "pool will grow to 3"}
            assert inspect.stats()[host]["pool"]["max-concurrency"] == 3
            three = [held.delay(i) for i in range(3)]
            wait_until(lambda: len((inspect.active() or {}).get(host, [])) == 3)
            assert _one(app.control.pool_shrink(2, **ask), host) == {"ok": "pool will shrink to 1"}
            gate.set()
            assert [r.get(timeout=15) for r in three] == [0, 1, 2]
            gate.clear()
            late = [held.delay(i) for i in (3, 4)]
            wait_until(lambda: len((inspect.active() or {}).get(host, [])) == 1)
            time.sleep(0.3)  # the second waits for the first
            assert len(inspect.active()[host]) == 1
            gate.set()
            assert [r.get(timeout=15) for r in late] == [3, 4]
    finally:
        gate.set()


def test_pool_restart_reloads_modules_in_a_threads_pool(app: Celery, tmp_path: Path) -> None:
    """With ``worker_pool_restarts``, ``pool_restart`` imports and reloads modules (the
    threads pool runs the tasks in the worker's process: reloading is all it takes)."""
    (tmp_path / "restarted_helper.py").write_text("def value():\n    return 1\n")
    sys.path.insert(0, str(tmp_path))
    app.conf.worker_pool_restarts = True

    @app.task
    def value() -> int:
        return int(sys.modules["restarted_helper"].value())

    try:
        with worker(app, hostname="restart@%h") as w:
            host = w.hostname
            ask: dict[str, Any] = {"reply": True, "timeout": 5, "destination": [host]}
            wait_until(lambda: app.control.inspect(timeout=5, destination=[host]).ping())
            reply = app.control.pool_restart(modules=["restarted_helper"], **ask)
            assert _one(reply, host) == {"ok": "reload started"}  # imported
            assert value.delay().get(timeout=15) == 1
            (tmp_path / "restarted_helper.py").write_text("def value():\n    return 22\n")
            app.control.pool_restart(modules=["restarted_helper"], **ask)  # not reloaded
            assert value.delay().get(timeout=15) == 1
            reply = app.control.pool_restart(modules=["restarted_helper"], reload=True, **ask)
            assert _one(reply, host) == {"ok": "reload started"}
            assert value.delay().get(timeout=15) == 22
            failed = _one(app.control.pool_restart(modules=["no_such_module"], **ask), host)
            assert "No module named 'no_such_module'" in failed["error"]
    finally:
        sys.path.remove(str(tmp_path))
        sys.modules.pop("restarted_helper", None)


def test_celerys_worker_state_views_see_the_running_worker(app: Celery) -> None:
    """``celery.worker.state``'s names, as a project's health checks and control commands
    read them in the worker's process."""
    gate = threading.Event()

    @app.task
    def held() -> None:
        gate.wait(20)

    @app.task
    def quick() -> int:
        return 1

    assert len(state.active_requests) == 0 and len(state.total_count) == 0  # no worker
    try:
        with worker(app, concurrency=1) as w:
            assert quick.delay().get(timeout=20) == 1
            running = held.delay()
            # quick may still count as running a moment after its result is stored
            wait_until(lambda: [r.id for r in state.active_requests] == [running.id])
            [request] = list(state.active_requests)
            assert (request.id, request.name) == (running.id, held.name)
            assert request.info()["id"] == running.id and running.id in state.requests
            wait_until(lambda: state.total_count.get(quick.name) == 1)
            app.control.revoke("revoked-elsewhere")
            wait_until(lambda: "revoked-elsewhere" in state.revoked, timeout=30)
            inspect = app.control.inspect(timeout=5, destination=[w.hostname])
            [hello] = (inspect.hello("other@host") or {}).values()
            assert "revoked-elsewhere" in hello["revoked"] and hello["clock"] >= 1
            gate.set()
            running.get(timeout=20)
    finally:
        gate.set()
    assert len(state.requests) == 0 and "revoked-elsewhere" not in state.revoked
