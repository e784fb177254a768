"""Names Celery projects import, with a real worker on every broker and backend: custom
worker requests (Task.Request), the old task_sent signal, task_store_errors_even_if_ignored."""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

import pytest

import celeriac
from celeriac import Celery, Task, chain, group, signals, states
from celeriac.app.control import flatten_reply
from celeriac.contrib.testing.manager import Manager, Sentinel
from celeriac.events.state import heartbeat_expires
from celeriac.exceptions import (
    BackendError,
    BackendGetMetaError,
    BackendStoreError,
    CeleryCommandException,
    CeleryWarning,
    DuplicateTaskNameWarning,
    Ignore,
    IncompleteStream,
    SoftTimeLimitExceeded,
    reraise,
)
from celeriac.result import ResultBase
from celeriac.utils.log import LOG_LEVELS, ColorFormatter, LoggingProxy, mlevel
from celeriac.worker import WorkController, Worker
from celeriac.worker.request import Request
from conftest import wait_until

from .test_worker_contract import AppError, worker

calls: list[tuple[str, Any]] = []


class RecordingRequest(Request):
    def on_success(self, failed__retval__runtime: Any, **kwargs: Any) -> None:
        calls.append(("success", (self.name, failed__retval__runtime[1])))

    def on_failure(
        self, exc_info: Any, send_failed_event: bool = True, return_ok: bool = False
    ) -> None:
        super().on_failure(exc_info, send_failed_event=send_failed_event, return_ok=return_ok)
        calls.append(("failure", type(exc_info.exception).__name__))

    def on_timeout(self, soft: bool, timeout: float | None) -> None:
        calls.append(("timeout", (soft, timeout)))


class RecordingTask(Task):
    Request = f"{__name__}:RecordingRequest"


def test_a_custom_request_gets_its_hooks(app: Celery) -> None:
    calls.clear()

    @app.task(base=RecordingTask)
    def ok():
        return 7

    @app.task(base=RecordingTask)
    def bad():
        raise AppError("no")

    @app.task(base=RecordingTask, soft_time_limit=0.2)
    def slow():
        time.sleep(5)

    results = [ok.delay(), bad.delay(), slow.delay()]
    with worker(app):
        for r in results:
            r.get(timeout=20, propagate=False)
    assert ("success", (ok.name, 7)) in calls
    assert ("failure", "AppError") in calls
    assert ("timeout", (True, 0.2)) in calls
    assert ("failure", "SoftTimeLimitExceeded") in calls
    assert results[2].state == states.FAILURE
    assert isinstance(results[2].result, SoftTimeLimitExceeded)


def test_task_sent_fires_with_celerys_old_arguments(app: Celery) -> None:
    got: list[dict[str, Any]] = []

    def receiver(**kwargs: Any) -> None:
        got.append(kwargs)

    signals.task_sent.connect(receiver)
    try:

        @app.task
        def add(x, y):
            return x + y

        result = add.apply_async((1, 2), countdown=0)
    finally:
        signals.task_sent.disconnect(receiver)
    assert len(got) == 1
    sent = got[0]
    assert sent["sender"] == add.name and sent["task"] == add.name
    assert sent["task_id"] == result.id
    assert sent["args"] == [1, 2] and sent["kwargs"] == {}
    assert sent["eta"] is not None and sent["taskset"] is None


def test_errors_are_stored_even_if_ignored_when_asked(
    app: Celery, caplog: pytest.LogCaptureFixture
) -> None:
    app.conf.task_store_errors_even_if_ignored = True

    @app.task(ignore_result=True)
    def quiet_fail():
        raise AppError("stored anyway")

    @app.task(ignore_result=True)
    def quiet_ok():
        return 1

    failed, passed = quiet_fail.delay(), quiet_ok.delay()
    with caplog.at_level(logging.ERROR), worker(app):
        wait_until(lambda: app.AsyncResult(failed.id).state == states.FAILURE, timeout=15)
        time.sleep(0.3)
    assert app.AsyncResult(passed.id).state == states.PENDING


def test_then_calls_back_once_the_result_is_ready(app: Celery) -> None:
    @app.task
    def add(x, y):
        return x + y

    @app.task
    def fail():
        raise AppError("no")

    seen: list[Any] = []
    errors: list[BaseException] = []
    ok, bad = add.delay(1, 2), fail.delay()

    def record(r: Any) -> str:
        seen.append(r.result)
        return "called"

    done = ok.then(record)
    failed = bad.then(lambda r: 1 / 0, on_error=errors.append)
    with worker(app):
        assert done.result(timeout=20) == "called"
        with pytest.raises(ZeroDivisionError):
            failed.result(timeout=20)
    assert seen == [3]
    assert isinstance(errors[0], ZeroDivisionError)
    again = ok.then(lambda r: r.state)  # already ready: called at once
    assert again.done() and again.result() == states.SUCCESS


def test_app_loader_is_celerys(app: Celery, tmp_path: Any, monkeypatch: Any) -> None:
    (tmp_path / "loader_tasks_mod.py").write_text("VALUE = 42\n")
    monkeypatch.chdir(tmp_path)
    app.conf.imports = ("loader_tasks_mod",)
    got: list[Any] = []
    signals.import_modules.connect(lambda sender=None, **kw: got.append(sender))
    modules = app.loader.import_default_modules()
    assert [m.VALUE for m in modules] == [42] and app in got
    assert app.loader.conf is app.conf
    assert app.loader.import_task_module("loader_tasks_mod").VALUE == 42
    assert "loader_tasks_mod" in app.loader.task_modules
    app.loader.on_worker_init()
    app.loader.on_task_init("id", None)


def test_many_tasks_through_celerys_pooled_connection_and_producer(app: Celery) -> None:
    """Celery's ways of publishing many tasks through one connection or producer; celeriac's
    producer publishes either way. A producer's own ``publish`` says what to use instead."""

    @app.task
    def double(x: int) -> int:
        return 2 * x

    results = []
    with app.connection_for_write() as conn:
        results += [double.apply_async((1,), connection=conn)]
    with app.pool.acquire(block=True) as conn:
        results += [double.apply_async((2,), connection=conn)]
    with app.connection_or_acquire() as conn:
        results += [double.apply_async((3,), connection=conn)]
    with app.producer_pool.acquire(block=True) as producer:
        results += [double.apply_async((4,), producer=producer)]
    with app.producer_or_acquire() as producer:
        results += [double.apply_async((5,), producer=producer)]
        with pytest.raises(NotImplementedError, match=r"apply_async"):
            producer.publish({"raw": 1}, routing_key="celery")
    with worker(app):
        assert [r.get(timeout=20) for r in results] == [2, 4, 6, 8, 10]


class Shadowed(Task):
    def shadow_name(self, args: Any, kwargs: Any, options: dict[str, Any]) -> str:
        return f"report-for-{args[0]}"


def test_a_shadow_name_is_what_the_log_lines_show(app: Celery, caplog: Any) -> None:
    """``apply_async(shadow=...)`` and a class's ``shadow_name``: the worker's log lines name
    the invocation so; everything else (routing, events, results) keeps the task's name."""

    @app.task(base=Shadowed)
    def report(customer: int) -> int:
        return customer

    @app.task
    def plain(x: int) -> int:
        return x

    results = [report.delay(7), plain.apply_async((1,), shadow="nightly-plain"), plain.delay(2)]
    # a shadow header that is not a name (headers come from whoever sent the message)
    results += [plain.apply_async((3,), headers={"shadow": {"x": 1}})]
    results += [plain.apply_async((4,), headers={"shadow": "n" * 10_000})]
    with caplog.at_level(logging.INFO), worker(app):
        assert [r.get(timeout=20) for r in results] == [7, 1, 2, 3, 4]
        wait_until(lambda: sum("succeeded in" in r.getMessage() for r in caplog.records) >= 5)
    lines = [r.getMessage() for r in caplog.records]
    for name, result in (("report-for-7", results[0]), ("nightly-plain", results[1])):
        assert f"Task {name}[{result.id}] received" in lines
        assert any(line.startswith(f"Task {name}[{result.id}] succeeded in") for line in lines)
    for result in results[2:]:
        assert f"Task {plain.name}[{result.id}] received" in lines


def test_a_results_graph_as_celery_walks_it(app: Celery) -> None:
    """``as_list``, ``iterdeps``, ``get_leaf`` and ``exists`` on a chain's results, and
    ``ResultBase`` as the base of every result."""

    @app.task
    def add(x: int, y: int) -> int:
        return x + y

    @app.task(bind=True)
    def spawn(self: Task, x: int) -> int:
        add.delay(x, 1)  # a child of this task
        return x

    last = chain(add.s(1, 1), add.s(2), add.s(3)).apply_async()
    assert last.as_list() == [last.id, last.parent.id, last.parent.parent.id]
    assert issubclass(type(last), ResultBase)
    assert issubclass(type(group([add.s(1, 1)]).freeze()), ResultBase)
    never_sent = app.AsyncResult("no-such-task")
    parent = spawn.delay(5)
    with worker(app):
        assert last.get(timeout=20) == 7
        parent.get(timeout=20)
        wait_until(lambda: parent.children and parent.children[0].ready(), timeout=20)
    assert last.exists() and not never_sent.exists()
    assert never_sent.state == states.PENDING
    walked = list(parent.iterdeps())
    assert [node.id for _, node in walked] == [parent.id, parent.children[0].id]
    assert walked[0][0] is None and walked[1][0] is parent
    assert parent.get_leaf() == 6
    pending = app.AsyncResult("still-pending")
    with pytest.raises(IncompleteStream):
        list(pending.iterdeps())
    assert list(pending.iterdeps(intermediate=True)) == [(None, pending)]


def test_celerys_version_and_error_names() -> None:
    assert celeriac.VERSION >= (4, 1) and celeriac.version_info.major == 5
    assert celeriac.__version__ in celeriac.VERSION_BANNER
    celeriac.maybe_patch_concurrency()  # nothing to patch: gevent/eventlet run on threads
    err = BackendStoreError("too big", state=states.SUCCESS, task_id="t1")
    assert isinstance(err, BackendError) and (err.state, err.task_id) == ("SUCCESS", "t1")
    assert BackendGetMetaError("down", task_id="t2").task_id == "t2"
    assert CeleryCommandException("no", exit_code=2).exit_code == 2
    assert issubclass(DuplicateTaskNameWarning, CeleryWarning)
    try:
        raise ValueError("first")
    except ValueError as exc:
        tb = exc.__traceback__
    with pytest.raises(ValueError, match="first") as caught:
        reraise(ValueError, ValueError("first"), tb)
    assert caught.value.__traceback__ is not None
    assert flatten_reply([{"a@h": {"ok": 1}}, {"b@h": {"ok": 2}}]) == {
        "a@h": {"ok": 1},
        "b@h": {"ok": 2},
    }
    assert heartbeat_expires(100.0, freq=2.0) == 104.0
    assert WorkController is Worker


def test_celerys_logging_helpers() -> None:
    assert mlevel("info") == logging.INFO and mlevel(10) == 10 and mlevel("FATAL") == 50
    assert LOG_LEVELS["WARNING"] == 30 and LOG_LEVELS[30] == "WARNING"
    with pytest.raises(ValueError, match="unknown log level"):
        mlevel("loud")
    records: list[logging.LogRecord] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            records.append(record)

    log = logging.getLogger("celeriac.test.proxy")
    handler = Keep()
    log.addHandler(handler)
    try:
        proxy = LoggingProxy(log, "ERROR")
        print("line one\n\nline two", file=proxy)
    finally:
        log.removeHandler(handler)
    assert [(r.levelno, r.getMessage()) for r in records] == [(40, "line one"), (40, "line two")]
    record = logging.LogRecord("x", logging.ERROR, __file__, 1, "boom", None, None)
    assert ColorFormatter("%(message)s").format(record) == "\033[31mboom\033[0m"
    assert ColorFormatter("%(message)s", use_color=False).format(record) == "boom"


def test_a_task_sends_its_own_invocation_again_from_its_request(app: Celery) -> None:
    """``signature_from_request``: a custom re-queue (the same id, queue and priority) with
    new arguments; the first run ignores itself so the second one's result is the task's."""

    @app.task(bind=True)
    def requeue(self: Task, n: int) -> int:
        if n == 0:
            again = self.signature_from_request(args=(1,), countdown=0)
            assert again.options["task_id"] == self.request.id
            assert again.options["queue"] == "celery" and again.options["priority"] == 7
            again.apply_async()
            raise Ignore()
        return 10 * n

    result = requeue.apply_async((0,), priority=7)
    with worker(app):
        assert result.get(timeout=20) == 10


def test_a_skewed_group_and_a_callback_once_it_is_done(app: Celery) -> None:
    @app.task
    def clock(i: int) -> float:
        return time.time()

    capped = group(clock.s(i) for i in range(4)).skew(start=1, stop=2, step=1)
    assert [t.options["countdown"] for t in capped.tasks] == [1, 2, 2, 2]
    spread = group(clock.s(i) for i in range(3)).skew(start=0, step=1)
    result = spread.apply_async()
    assert result.backend is app.backend
    done = result.then(lambda r: len(r.get()))
    with worker(app):
        assert done.result(timeout=20) == 3
    times = result.get(timeout=5)
    assert times[2] - times[0] >= 1.5  # countdowns 0 and 2


def test_get_reports_progress_to_on_message(app: Celery) -> None:
    """Celery's progress recipe: ``update_state(state="PROGRESS", meta=...)`` in the task,
    ``result.get(on_message=...)`` in the caller; ``on_interval`` and ``callback`` too."""

    @app.task(bind=True)
    def crunch(self: Task, steps: int) -> str:
        for i in range(steps):
            self.update_state(state="PROGRESS", meta={"done": i + 1, "of": steps})
            time.sleep(0.3)
        return "crunched"

    seen: list[tuple[str, Any]] = []
    ticks: list[int] = []
    called: list[tuple[str, Any]] = []
    result = crunch.delay(3)
    with worker(app):
        value = result.get(
            timeout=20,
            interval=0.05,
            on_message=lambda meta: seen.append((meta["status"], meta["result"])),
            on_interval=lambda: ticks.append(1),
            callback=lambda task_id, value: called.append((task_id, value)),
        )
    assert value == "crunched" and called == [(result.id, "crunched")]
    progress = [r for s, r in seen if s == "PROGRESS"]
    assert progress == [{"done": i, "of": 3} for i in range(1, 4)]
    assert seen[-1] == (states.SUCCESS, "crunched") and ticks


def test_celerys_test_manager_waits_on_the_workers(app: Celery) -> None:
    """``celery.contrib.testing.manager.Manager``, as integration test suites use it."""
    gate = threading.Event()

    @app.task
    def held() -> str:
        gate.wait(20)
        return "done"

    manager = Manager(app)
    result = held.delay()
    assert manager.missing_results([result]) == [result.id]
    with worker(app, concurrency=1) as w:
        manager.inspect = lambda timeout=3.0: app.control.inspect(  # type: ignore[method-assign]
            timeout=timeout, destination=[w.hostname]
        )
        manager.assert_received([result.id], timeout=20)
        manager.assert_accepted([result.id], timeout=20)
        assert result.id in manager.query_task_states([result.id])["active"]
        manager.ensure_not_for_a_while(
            lambda: manager.true_or_raise(result.ready), (Sentinel,), max_retries=3
        )
        gate.set()
        assert manager.join(result) == ["done"]
        assert manager.wait_for(lambda: manager.true_or_raise(result.ready), (Sentinel,))
        manager.assert_result_tasks_in_progress_or_completed([result], timeout=5)
    with pytest.raises(Sentinel):
        manager.wait_for(lambda: manager.true_or_raise(lambda: False), (Sentinel,), max_retries=1)
