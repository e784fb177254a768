"""Hostile input and odd tasks on every broker and result backend: nothing a message, a value
in the result backend or a task's own code does stops a worker's threads, or leaves a message
unsettled. A bad message ends in the dead-letter queue with the reason."""

from __future__ import annotations

import threading
import time
import uuid
from typing import Any

import pytest

from celeriac import Celery, Task, signals, states
from celeriac.brokers.base import Outgoing
from celeriac.exceptions import TaskError
from celeriac.keys import (
    RATE_OVERRIDES_KEY,
    REVOCATIONS_KEY,
    REVOKED_KEY,
    REVOKED_SET,
)
from celeriac.serialization import json_dumps
from conftest import wait_until

from .test_worker_contract import AppError, reasons, worker

#: Workflow and other fields of the wrong type: each message is dead-lettered unrun.
MISTYPED: list[dict[str, Any]] = [
    {"chain": [42]},
    {"chain": "zzz"},
    {"chord": "zzz"},
    {"chord": {"size": 2, "body": 7}},
    {"chord": {"body": {"task": "t"}}},
    {"errbacks": [{"task": 5}]},
    {"errbacks": "x"},
    {"callbacks": [{"task": "t", "subtask_type": "spaceship"}]},
    {"callbacks": [{"task": "t", "subtask_type": "group", "kwargs": {"tasks": 3}}]},
    {"chain": [{"task": "t", "options": {"link": ["nope"]}}]},
    {"chain": [{"task": "t", "args": "abc"}]},
    {"retries": "1"},
    {"retries": -1},
    {"group_index": "3"},
    {"headers": [1]},
    {"root_id": 7},
    {"ignore_result": "yes"},
    {"eta": "soon"},
    {"queue": ["q"]},
]


@pytest.mark.parametrize("pool", ["threads", "solo"])
def test_mistyped_fields_are_dead_lettered_before_the_task_runs(app: Celery, pool: str) -> None:
    ran: list[str] = []

    @app.task
    def work(tag):
        ran.append(tag)
        return tag

    for fields in MISTYPED:
        body = {"id": str(uuid.uuid4()), "task": work.name, "args": ["bad"], "kwargs": {}}
        app.broker.publish([Outgoing(json_dumps({**body, **fields}), "celery")])
    ok = work.delay("ok")
    with worker(app, pool=pool):
        assert ok.get(timeout=15) == "ok"
        wait_until(lambda: len(reasons(app)) == len(MISTYPED), timeout=15)
    assert ran == ["ok"]
    assert all(r.startswith("invalid message: message ") for r in reasons(app)), reasons(app)


def test_a_task_called_with_the_wrong_arguments_fails_as_in_celery(app: Celery) -> None:
    @app.task
    def add(x, y):
        return x + y

    short, unknown = app.send_task(add.name, [1]), app.send_task(add.name, [1, 2], {"z": 3})
    with worker(app):
        for result in (short, unknown):
            with pytest.raises(TypeError, match="add"):
                result.get(timeout=15)
            assert result.state == states.FAILURE
    assert reasons(app) == []  # a failure, acknowledged: not a bad message


def test_an_internal_error_is_reported_dead_lettered_and_not_fatal(app: Celery) -> None:
    class Hooked(Task):
        def on_success(self, retval, task_id, args, kwargs):
            raise RuntimeError("the hook broke")

    @app.task(base=Hooked)
    def hooked():
        return 1

    @app.task
    def add(x, y):
        return x + y

    reported: list[str] = []

    def on_internal_error(sender: Any = None, task_id: Any = None, **kw: Any) -> None:
        reported.append(task_id)

    signals.task_internal_error.connect(on_internal_error)
    try:
        broken, after = hooked.delay(), add.delay(1, 2)
        with worker(app, concurrency=1):
            assert after.get(timeout=15) == 3
            with pytest.raises(RuntimeError, match="the hook broke"):
                broken.get(timeout=15)
            wait_until(lambda: reasons(app))
    finally:
        signals.task_internal_error.disconnect(on_internal_error)
    assert reported == [broken.id]
    assert reasons(app) == ["internal error: RuntimeError: the hook broke"]


class Unprintable:
    def __repr__(self) -> str:
        raise RuntimeError("no repr for you")


@pytest.mark.parametrize("pool", ["threads", "solo", "asyncio"])
def test_a_task_raising_systemexit_or_keyboardinterrupt_fails_and_the_pool_goes_on(
    app: Celery, pool: str
) -> None:
    @app.task
    def exits():
        raise SystemExit(3)

    @app.task
    def interrupted():
        raise KeyboardInterrupt

    @app.task
    async def exits_async():
        raise SystemExit("bye")

    @app.task
    def unprintable():
        raise AppError(Unprintable())

    @app.task
    def add(x, y):
        return x + y

    odd = [exits.delay(), interrupted.delay(), exits_async.delay(), unprintable.delay()]
    after = add.delay(1, 2)
    with worker(app, pool=pool, concurrency=1):
        assert after.get(timeout=15) == 3  # the pool lived through all four
        errors = []
        for result in odd:
            with pytest.raises(Exception) as info:
                result.get(timeout=15)
            errors.append(info.value)
            assert result.state == states.FAILURE
    # recorded as what they are; never raised as SystemExit or KeyboardInterrupt in get()
    assert [str(e) for e in errors[:3]] == ["SystemExit: 3", "KeyboardInterrupt", "SystemExit: bye"]
    assert all(isinstance(e, TaskError) for e in errors[:3])
    assert isinstance(errors[3], AppError) and "repr failed" in str(errors[3])


def _post(app: Celery, raw: bytes) -> None:
    app.events.control_log().append([raw])


def _heartbeats() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == "celeriac-heartbeat" and t.is_alive()]


def test_malformed_control_requests_are_dropped_and_the_next_one_is_answered(
    app: Celery,
) -> None:
    inspect = app.control.inspect(timeout=5, limit=1)
    with worker(app, hostname="target@%h") as w:
        wait_until(lambda: w.ready.is_set())  # started, and reading the control log
        for raw in [
            b"not json",
            b"[1, 2]",
            b'{"command": "ping", "destination": 5}',
            b'{"command": "ping", "destination": [5]}',
            b'{"command": 7}',
            b'{"command": "ping", "arguments": [1]}',
            b'{"command": "stats", "arguments": {"bogus": 1}}',
            b'{"command": "ping"}',  # no request id
            b'{"request": "r1", "command": "no-such-command", "reply": true}',
            b'{"request": "r2", "command": "stats", "arguments": {"bogus": 1}, "reply": true}',
            b'{"reply_to": "r1", "answer": "a reply from no one"}',
            b"\xff\xfe",
        ]:
            _post(app, raw)
        assert inspect.ping() == {w.hostname: {"ok": "pong"}}
        assert len(_heartbeats()) == 1
        assert w.remote._thread is not None and w.remote._thread.is_alive()


def test_hostile_values_in_the_result_backend_leave_leases_renewed(app: Celery) -> None:
    app.conf.broker_transport_options = {"visibility_timeout": 1.0}
    runs: list[str] = []

    @app.task
    def long(tag):
        runs.append(tag)
        time.sleep(2.5)  # well past the lease: renewed, or it would run twice
        return tag

    backend = app.results.backend
    backend.set_value(RATE_OVERRIDES_KEY, b'{"%s": "fast, please"}' % long.name.encode())
    backend.set_value(REVOKED_KEY.format("someone"), b"\xff\xfeSIGNOPE")
    backend.add_to_set(REVOKED_SET, "someone")
    backend.incr(REVOCATIONS_KEY)
    result = long.delay("once")
    with worker(app, concurrency=2):
        backend.set_value(RATE_OVERRIDES_KEY, b"{not json")
        assert result.get(timeout=20) == "once"
        time.sleep(1.5)  # a second copy would have started by now
        assert len(_heartbeats()) == 1
    assert runs == ["once"]


def test_a_stored_exception_is_rebuilt_only_from_allowed_modules(app: Celery) -> None:
    @app.task
    def noop():
        return None

    def failed(exc_module: str, exc_type: str) -> Any:
        task_id = str(uuid.uuid4())
        meta = {"exc_type": exc_type, "exc_module": exc_module, "exc_message": ["boom"]}
        app.results.store(task_id, states.FAILURE, meta, "Traceback", noop.name)
        return app.AsyncResult(task_id)

    import sys

    assert "this" not in sys.modules  # printing the Zen of Python is its import's effect
    with pytest.raises(TaskError, match=r"^this.Oops: boom$"):
        failed("this", "Oops").get(timeout=5)
    assert "this" not in sys.modules
    with pytest.raises(ValueError, match="boom"):
        failed("builtins", "ValueError").get(timeout=5)
    with pytest.raises(AppError, match="boom"):  # from the package the tasks come from
        failed(AppError.__module__, "AppError").get(timeout=5)
    with pytest.raises(TaskError, match="SystemExit"):
        failed("builtins", "SystemExit").get(timeout=5)
    with pytest.raises(TaskError, match=r"^os\.system: boom$"):
        failed("os", "system").get(timeout=5)  # loaded, but not allowed (and not a type)
    app.conf.result_exception_modules = ["subprocess"]
    import subprocess

    with pytest.raises(subprocess.SubprocessError, match="boom"):
        failed("subprocess", "SubprocessError").get(timeout=5)
