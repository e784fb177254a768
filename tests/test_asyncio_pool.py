"""The asyncio pool on its own: how many jobs run at once, how finished jobs are reported,
resizing, and which event loop it runs."""

from __future__ import annotations

import asyncio
import importlib.util
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest

from celeriac import Celery
from celeriac.brokers.base import Delivery
from celeriac.exceptions import ImproperlyConfigured
from celeriac.execution import ACK, Outcome
from celeriac.message import Message
from celeriac.worker.pools.aio import AsyncioPool, new_loop
from celeriac.worker.pools.base import Job

HAS_UVLOOP = importlib.util.find_spec("uvloop") is not None


class Probe:
    """What the tasks saw: how many ran at once, at most."""

    def __init__(self) -> None:
        self.now = 0
        self.most = 0


def make_app(probe: Probe, loop: str = "asyncio") -> Celery:
    app = Celery("t", broker="memory://", task_ignore_result=True, worker_asyncio_loop=loop)

    @app.task(name="wait")
    async def wait(seconds: float) -> str:
        probe.now += 1
        probe.most = max(probe.most, probe.now)
        await asyncio.sleep(seconds)
        probe.now -= 1
        return "ok"

    @app.task(name="boom")
    async def boom() -> None:
        raise ValueError("boom")

    return app


class Reports:
    """The pool's on_done calls."""

    def __init__(self) -> None:
        self.calls: list[list[tuple[Job, Outcome]]] = []
        self.lock = threading.Lock()

    def __call__(self, done: list[tuple[Job, Outcome]]) -> None:
        with self.lock:
            self.calls.append(list(done))

    def jobs(self) -> list[tuple[Job, Outcome]]:
        with self.lock:
            return [item for call in self.calls for item in call]

    def wait_for(self, count: int, timeout: float = 10.0) -> None:
        deadline = time.monotonic() + timeout
        while len(self.jobs()) < count:
            assert time.monotonic() < deadline, f"{len(self.jobs())}/{count} jobs reported"
            time.sleep(0.01)


@contextmanager
def started(app: Celery, concurrency: int, reports: Reports) -> Iterator[AsyncioPool]:
    """A started pool, stopped afterwards."""
    pool = AsyncioPool(app, concurrency, reports, "host")
    pool.start()
    try:
        yield pool
    finally:
        pool.stop()


def job(app: Celery, number: int, task: str, *args: Any) -> Job:
    message = Message(id=f"id-{number}", task=task, args=list(args))
    delivery = Delivery(body=b"", queue="celery", priority=0, tag=number)
    return Job(id=number, message=message, delivery=delivery, task=app.tasks[task])


def test_runs_at_most_concurrency_and_reports_acks_in_batches() -> None:
    probe, reports = Probe(), Reports()
    app = make_app(probe)
    with started(app, 5, reports) as pool:
        for number in range(40):
            pool.submit(job(app, number, "wait", 0.02))
        reports.wait_for(40)
        assert pool.join(5)
    assert probe.most == 5
    done = reports.jobs()
    assert sorted(j.id for j, _ in done) == list(range(40))
    assert all(outcome.action == ACK and outcome.state == "SUCCESS" for _, outcome in done)
    # jobs finishing in the same turn of the loop are reported together
    assert len(reports.calls) < 40
    assert not pool.running() and not pool.has_pending()


def test_failure_is_settled_and_slot_freed() -> None:
    probe, reports = Probe(), Reports()
    app = make_app(probe)
    with started(app, 1, reports) as pool:
        pool.submit(job(app, 1, "boom"))
        pool.submit(job(app, 2, "wait", 0.0))
        reports.wait_for(2)
    states = {j.id: outcome.state for j, outcome in reports.jobs()}
    assert states == {1: "FAILURE", 2: "SUCCESS"}


def test_resize_starts_waiting_jobs_and_cancel_pending_takes_them_back() -> None:
    probe, reports = Probe(), Reports()
    app = make_app(probe)
    with started(app, 1, reports) as pool:
        for number in range(6):
            pool.submit(job(app, number, "wait", 0.2))
        time.sleep(0.05)
        assert len(pool.running()) == 1
        pool.resize(3)
        time.sleep(0.05)
        assert len(pool.running()) == 3
        taken = pool.cancel_pending()
        assert sorted(j.id for j in taken) == [3, 4, 5]
        reports.wait_for(3)
        assert pool.join(5)
    assert probe.most == 3
    with pytest.raises(ValueError):
        pool.resize(0)


def test_loop_kinds() -> None:
    loop = new_loop("asyncio")
    try:
        assert type(loop).__module__.startswith("asyncio")
    finally:
        loop.close()
    loop = new_loop("auto")
    try:
        assert type(loop).__module__.startswith("uvloop" if HAS_UVLOOP else "asyncio")
    finally:
        loop.close()
    with pytest.raises(ImproperlyConfigured):
        new_loop("trio")


@pytest.mark.skipif(HAS_UVLOOP, reason="uvloop is installed")
def test_uvloop_asked_for_but_missing() -> None:
    with pytest.raises(ImproperlyConfigured, match="not installed"):
        new_loop("uvloop")


def test_on_success_hook_runs_off_the_loop() -> None:
    """A task's own hook may block: it runs in the loop's executor, not on the loop."""
    seen: list[str] = []
    app = Celery("t", broker="memory://", task_ignore_result=True, worker_asyncio_loop="asyncio")

    class Hooked(app.Task):  # type: ignore[name-defined]
        def on_success(self, retval: Any, task_id: str, args: Any, kwargs: Any) -> None:
            seen.append(threading.current_thread().name)

    @app.task(name="hooked", base=Hooked)
    async def hooked() -> int:
        return 1

    reports = Reports()
    with started(app, 2, reports) as pool:
        pool.submit(job(app, 1, "hooked"))
        reports.wait_for(1)
    assert seen and seen[0] != "celeriac-asyncio"
