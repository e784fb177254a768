"""The rpc:// result backend with a real worker, on every broker: results come back as
messages to the process that sent the task, as in Celery; what needs a shared store fails at
once saying what to use instead."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from celeriac import Celery, chord, group, states
from celeriac.result import GroupResult

from .conftest import BROKERS, _app
from .test_worker_contract import AppError, worker


@pytest.fixture(params=sorted(BROKERS))
def rpc_app(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Celery]:
    """An app whose results come back through ``rpc://``, on each broker."""
    yield from _app(request.param, "rpc", tmp_path)


def test_results_states_and_workflows_come_back_to_the_sender(rpc_app: Celery) -> None:
    app = rpc_app
    seen: list[str] = []

    @app.task(bind=True)
    def add(self, x, y):
        seen.append(self.request.reply_to)
        return x + y

    @app.task
    def fail():
        raise AppError("broken")

    @app.task(bind=True, max_retries=1, default_retry_delay=0)
    def flaky(self):
        if not self.request.retries:
            raise self.retry()
        return "second try"

    assert app.backend is not None
    first = add.delay(2, 3)
    others = [add.delay(i, i) for i in range(4)]
    bad, retried = fail.delay(), flaky.delay()
    workflow = (add.s(1, 2) | add.s(10)).delay()
    members = group(add.s(i, 1) for i in range(3)).delay()
    with worker(app):
        # read in another order than sent: the others are kept as they arrive
        assert [r.get(timeout=15) for r in reversed(others)] == [6, 4, 2, 0]
        assert first.get(timeout=15) == 5
        assert first.state == states.SUCCESS and first.successful()
        with pytest.raises(AppError):
            bad.get(timeout=15)
        assert bad.state == states.FAILURE
        assert retried.get(timeout=15) == "second try"
        assert workflow.get(timeout=15) == 13
        assert members.get(timeout=15) == [1, 2, 3]
    assert set(seen) == {app.backend.reply_to}  # type: ignore[attr-defined]


def test_only_the_sender_reads_a_result(rpc_app: Celery) -> None:
    app = rpc_app

    @app.task
    def echo(x):
        return x

    result = echo.delay("mine")
    with worker(app):
        assert result.get(timeout=15) == "mine"
    # another client (its own app, its own reply queue) never receives it, as in Celery
    other = Celery("other", broker=app.conf.broker_url, backend="rpc://")
    try:
        assert other.AsyncResult(result.id).state == states.PENDING
    finally:
        other.close()


def test_threads_share_one_reply_queue(rpc_app: Celery) -> None:
    app = rpc_app

    @app.task
    def square(x):
        return x * x

    results = [square.delay(i) for i in range(6)]
    got: dict[int, int] = {}

    def wait(i: int) -> None:
        got[i] = results[i].get(timeout=20)

    with worker(app):
        threads = [threading.Thread(target=wait, args=(i,)) for i in range(6)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(30)
    assert got == {i: i * i for i in range(6)}


def test_what_needs_a_shared_store_fails_at_once(rpc_app: Celery) -> None:
    app = rpc_app

    @app.task
    def add(x, y):
        return x + y

    with pytest.raises(NotImplementedError, match="does not support chords"):
        chord([add.s(1, 1)], add.s(1)).delay()
    with pytest.raises(NotImplementedError, match="revoking a task needs them"):
        app.control.revoke("some-id")
    assert app.control.inspect(timeout=0.2).ping() is None  # control needs no result backend
    with pytest.raises(NotImplementedError, match=r"GroupResult\.save\(\)"):
        GroupResult("g", [app.AsyncResult("a")], app=app).save()
    assert app.broker.queue_length("celery") == 0  # nothing of the chord was sent
