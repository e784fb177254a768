"""celeriac.contrib.abortable with a real worker, on every broker and result backend: a
caller in another process marks a task ABORTED, and the task sees it."""

from __future__ import annotations

import multiprocessing
import threading
import time

import pytest

from celeriac import Celery, states
from celeriac.contrib.abortable import ABORTED, AbortableAsyncResult, AbortableTask

from .test_worker_contract import worker


def _abort_from_another_process(broker_url: str, backend_url: str, task_id: str) -> None:
    app = Celery("caller", broker=broker_url, backend=backend_url)
    AbortableAsyncResult(task_id, app=app).abort()
    app.close()


def test_a_task_sees_it_was_aborted(app: Celery) -> None:
    started = threading.Event()

    @app.task(bind=True, base=AbortableTask)
    def long_task(self):
        started.set()
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            if self.is_aborted():
                return "stopped"
            time.sleep(0.05)
        return "ran to the end"

    result = long_task.delay()
    assert isinstance(result, AbortableAsyncResult)
    assert not result.is_aborted()
    with worker(app):
        assert started.wait(15)
        if str(app.conf.result_backend).startswith("memory"):
            result.abort()  # an in-process backend: the caller is this process
        else:
            ctx = multiprocessing.get_context("spawn")
            caller = ctx.Process(
                target=_abort_from_another_process,
                args=(app.conf.broker_url, app.conf.result_backend, result.id),
            )
            caller.start()
            caller.join(30)
            assert caller.exitcode == 0
        assert result.get(timeout=15) == "stopped"
    assert result.state == states.SUCCESS
    assert not result.is_aborted()


def test_abort_marks_the_state_and_spares_finished_tasks(app: Celery) -> None:
    @app.task(base=AbortableTask)
    def quick():
        return 1

    pending = AbortableAsyncResult("not-started-yet", app=app)
    pending.abort()
    assert pending.state == ABORTED and pending.is_aborted()
    done = quick.delay()
    assert isinstance(done, AbortableAsyncResult)
    with worker(app):
        assert done.get(timeout=15) == 1
    done.abort()
    assert done.state == states.SUCCESS


def test_abort_on_rpc_says_what_to_use(tmp_path) -> None:
    app = Celery("rpc", broker="memory://abort-rpc", backend="rpc://")
    with pytest.raises(NotImplementedError, match="rpc://"):
        AbortableAsyncResult("x", app=app).abort()
