"""The app, configuration, task options and eager execution."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import types
import warnings
from pathlib import Path
from typing import Any

import pytest

import celeriac
from celeriac import Celeriac, Celery, Task, shared_task, states
from celeriac.config import UnknownSettingWarning
from celeriac.exceptions import ImproperlyConfigured, MaxRetriesExceededError, NotRegistered
from celeriac.message import Message
from celeriac.result import EagerResult
from celeriac.routing import _topic_match
from conftest import wait_until


def test_public_surface() -> None:
    assert Celery is Celeriac
    assert set(celeriac.__all__) >= {
        "Celery",
        "Celeriac",
        "shared_task",
        "Task",
        "states",
        "AsyncResult",
        "signature",
    }
    for name in set(celeriac.__all__) - {"current_task"}:
        assert getattr(celeriac, name) is not None


def test_settings_use_celery_names_and_report_unknown_ones() -> None:
    app = Celery("t", broker="memory://", task_default_queue="jobs")
    assert app.conf.task_default_queue == "jobs"
    assert app.conf.task_acks_late is True
    app.conf.update(worker_prefetch_multiplier=2, CELERY_TASK_ALWAYS_EAGER=True)
    assert app.conf.worker_prefetch_multiplier == 2
    assert app.conf.task_always_eager is True
    with pytest.warns(UnknownSettingWarning, match="task_defualt_queue"):
        app.conf.task_defualt_queue = "typo"


def test_a_whole_web_app_config_copied_in_warns_only_of_likely_typos() -> None:
    """Flask's old pattern, ``celery.conf.update(flask_app.config)``: the web app's own
    upper-case names are kept silently; a misspelt Celery name is still reported."""
    flask_config = {"SECRET_KEY": "s", "SESSION_COOKIE_NAME": "session", "DEBUG": False}
    app = Celery("t", broker="memory://")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        app.conf.update({**flask_config, "CELERY_TASK_ALWAYS_EAGER": True})
        Celery("u", broker="memory://").config_from_object(flask_config)
    assert app.conf.task_always_eager is True
    with pytest.warns(UnknownSettingWarning, match="CELERY_TASK_ALWAYS_EGER"):
        app.conf.update(CELERY_TASK_ALWAYS_EGER=True)


def test_config_from_object_with_namespace() -> None:
    settings = types.SimpleNamespace(
        CELERY_BROKER_URL="memory://ns",
        CELERY_BEAT_SCHEDULE={"x": {"task": "t", "schedule": 5}},
        CELERY_TASK_SERIALIZER="json",
        DATABASES={},
    )
    app = Celery("t")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        app.config_from_object(settings, namespace="CELERY")
    assert app.conf.broker_url == "memory://ns"
    assert app.conf.beat_schedule == {"x": {"task": "t", "schedule": 5}}


def test_config_from_missing_module_is_a_clear_error() -> None:
    with pytest.raises(ImproperlyConfigured, match="no_such_module"):
        Celery("t").config_from_object("no_such_module")


def test_task_names_and_registry() -> None:
    app = Celery("proj", broker="memory://names")

    @app.task
    def add(x, y):
        return x + y

    @app.task(name="custom.name")
    def other():
        return 1

    def plain(x: int) -> int:
        return -x

    registered = app.task(plain, name="by.call", bind=False)  # Celery's call form
    assert add.name.endswith(".add")
    assert app.tasks["custom.name"] is other
    assert app.tasks["by.call"] is registered and registered(2) == -2
    assert add(2, 3) == 5
    with pytest.raises(NotRegistered):
        app.tasks["missing"]
    with pytest.raises(TypeError, match="takes a function"):
        app.task("not.a.function")  # type: ignore[call-overload]


def test_other_task_options_become_attributes_as_in_celery() -> None:
    """Options celeriac does not use (Celery's ``throws``, ``trail``, ``typing``, or ones a
    custom base class reads) are kept as attributes of the task."""
    app = Celery("t", broker="memory://opts")

    @app.task(throws=(KeyError,), trail=False, audit_level="high")
    def f() -> None:
        pass

    assert f.throws == (KeyError,) and f.trail is False
    assert f.audit_level == "high"  # type: ignore[attr-defined]


def test_arguments_are_checked_when_called() -> None:
    app = Celery("t", broker="memory://typing")

    @app.task
    def add(x, y):
        return x + y

    with pytest.raises(TypeError, match="add"):
        add.delay(1, 2, 3)


def test_apply_runs_here_and_returns_an_eager_result() -> None:
    app = Celery("t", broker="memory://eager")

    @app.task
    def add(x, y):
        return x + y

    result = add.apply((2, 3))
    assert isinstance(result, EagerResult)
    assert result.get() == 5
    assert result.successful() and result.ready() and result.state == states.SUCCESS


def test_always_eager_and_failures_propagate_on_get() -> None:
    app = Celery("t", broker="memory://eager2", task_always_eager=True)

    @app.task
    def boom():
        raise KeyError("nope")

    result = boom.delay()
    assert result.failed()
    assert isinstance(result.exception, KeyError)
    with pytest.raises(KeyError):
        result.get()


def test_eager_retries_until_success_and_until_exhausted() -> None:
    app = Celery("t", broker="memory://eager3")
    attempts: list[int] = []

    @app.task(bind=True, autoretry_for=(ConnectionError,), max_retries=3)
    def flaky(self):
        attempts.append(self.request.retries)
        if self.request.retries < 2:
            raise ConnectionError("down")
        return "ok"

    assert flaky.apply().get() == "ok"
    assert attempts == [0, 1, 2]

    @app.task(bind=True, max_retries=1)
    def hopeless(self):
        raise self.retry()

    with pytest.raises(MaxRetriesExceededError):
        hopeless.apply().get()


def test_async_task_applies_eagerly() -> None:
    app = Celery("t", broker="memory://async")

    @app.task
    async def double(x):
        return x * 2

    assert double.apply((4,)).get() == 8


def test_shared_task_binds_to_the_current_app() -> None:
    @shared_task
    def mul(x, y):
        return x * y

    def div(x: int, y: int) -> float:
        return x / y

    halve = shared_task(div, name="shared.div")  # Celery's call form
    app = Celery("shared", broker="memory://shared")
    assert mul.apply((3, 4)).get() == 12
    assert mul.name in app.tasks
    assert halve.apply((3, 2)).get() == 1.5 and "shared.div" in app.tasks


def test_priority_must_be_0_to_9() -> None:
    app = Celery("t", broker="memory://prio")
    with pytest.raises(ValueError, match=r"0 \(lowest\) to 9 \(highest\)"):
        app.build_message("x", priority=10)
    assert app.build_message("x", priority=9).priority == 9


def test_routing_precedence() -> None:
    app = Celery("t", broker="memory://routes")
    app.conf.task_routes = {"feed.*": {"queue": "feeds", "priority": 3}}

    @app.task(name="feed.fetch", queue="ignored", priority=1)
    def fetch():
        pass

    msg = app.build_message("feed.fetch", task=fetch)
    assert (msg.queue, msg.priority) == ("feeds", 3)
    msg = app.build_message("feed.fetch", task=fetch, queue="urgent", priority=9)
    assert (msg.queue, msg.priority) == ("urgent", 9)
    assert app.build_message("other").queue == "celery"


def test_message_round_trip_and_bad_input() -> None:
    from celeriac.exceptions import ContentDisallowed, InvalidTaskError
    from celeriac.serialization import content_types

    msg = Message(id="1", task="t", args=[1, "a"], kwargs={"k": [1]}, priority=7, eta=5.0)
    json_only = content_types(["json"])
    back = Message.decode(msg.encode(), json_only)
    assert (back.args, back.kwargs, back.priority, back.eta) == ([1, "a"], {"k": [1]}, 7, 5.0)
    pickled = Message(id="2", task="t", content_type="application/x-python-serialize").encode()
    with pytest.raises(ContentDisallowed):
        Message.decode(pickled, json_only)
    assert Message.decode(pickled, content_types(["json", "pickle"])).id == "2"
    for bad in (b"", b"{not json", b'{"id": "x"}', b"[1, 2]", b'{"id":"1","task":"t","args":3}'):
        with pytest.raises(InvalidTaskError):
            Message.decode(bad, json_only)
    # fields of a newer revision are ignored; absent ones take their defaults
    newer = Message.decode(b'{"id":"3","task":"t","args":[2],"shiny":1,"headers":null}', json_only)
    assert (newer.id, newer.args, newer.kwargs, newer.headers) == ("3", [2], {}, {})
    assert (newer.queue, newer.priority, newer.eta, newer.retries) == ("celery", 0, None, 0)
    other = Message.decode(b'{"id":"4","task":"t"}', json_only)
    assert other.kwargs is not newer.kwargs and other.headers is not newer.headers


def test_unserialisable_argument_is_a_clear_error() -> None:
    from celeriac.exceptions import EncodeError

    msg = Message(id="1", task="t", args=[object()])
    with pytest.raises(EncodeError, match="object"):
        msg.encode()


def test_bad_broker_url_is_a_clear_error() -> None:
    app = Celery("t", broker="nosuch://host")
    with pytest.raises(ImproperlyConfigured, match="unknown broker URL") as info:
        _ = app.broker
    assert "entry-point group" not in str(info.value)
    # Celery takes a class's path for a custom result backend: the error says what to do
    app = Celery("t", broker="memory://t", backend="myproj.backends:MyBackend")
    with pytest.raises(ImproperlyConfigured, match=r"celeriac\.backends entry-point group"):
        _ = app.backend


def test_large_uniform_groups_are_spliced_into_the_same_messages() -> None:
    from celeriac import group
    from celeriac.message import Encoded

    app = Celery("t", broker="memory://")

    @app.task(name="t.add")
    def add(*args: int, **kwargs: int) -> int:
        return sum(args) + sum(kwargs.values())

    out: list[Any] = []
    group(add.s(i, z=i) for i in range(20))._build((7,), {"y": 1}, {"priority": 5}, out)
    assert all(isinstance(m, Encoded) for m in out[1:])
    built = [m.to_dict() for m in out]
    ids = [b["id"] for b in built]
    assert len(set(ids)) == 20 and [b["root_id"] for b in built] == ids
    for i, body in enumerate(built):
        assert (body["args"], body["kwargs"], body["group_index"]) == ([7, i], {"z": i, "y": 1}, i)
        expected = {k: v for k, v in built[0].items() if k not in ("id", "root_id", "args")}
        expected.update(group_index=i, kwargs={"z": i, "y": 1})
        assert {k: v for k, v in body.items() if k not in ("id", "root_id", "args")} == expected
        assert Message.decode(out[i].encode(), frozenset({"application/json"})).priority == 5


def test_inspect_needs_no_result_backend() -> None:
    app = Celery("nobackend", broker="memory://nobackend", backend="disabled")
    assert app.control.inspect(timeout=0.1).ping() is None  # asked, and no worker answered


class _DjangoLikeSettings:
    """Settings read by attribute, changed by tests after the app read them."""

    CELERY_BROKER_URL = "memory://live-settings"
    DEBUG = True


def test_settings_are_read_from_their_source_when_asked() -> None:
    """Celery reads a configuration object when a setting is asked for: a test that turns
    on eager mode afterwards (pytest-django's settings fixture, override_settings, a Flask
    config dict) is seen at once."""
    source = _DjangoLikeSettings()
    app = Celery("live", set_as_current=False)
    app.config_from_object(source, namespace="CELERY")
    assert app.conf.broker_url == "memory://live-settings"
    assert app.conf.task_always_eager is False
    source.CELERY_TASK_ALWAYS_EAGER = True  # type: ignore[attr-defined]
    assert app.conf.task_always_eager is True
    assert app.conf["task_always_eager"] is True and app.conf.get("task_always_eager") is True

    @app.task
    def double(x: int) -> int:
        return 2 * x

    assert double.delay(21).get() == 42  # eager: nothing was sent
    del source.CELERY_TASK_ALWAYS_EAGER
    assert app.conf.task_always_eager is False

    flask_config = {"task_always_eager": False}
    app.config_from_object(flask_config)
    flask_config["task_always_eager"] = True
    assert app.conf.task_always_eager is True

    app.conf.task_always_eager = False  # set on the app: wins over the sources
    assert app.conf.task_always_eager is False
    app.conf.freeze()
    flask_config["task_default_queue"] = "elsewhere"
    assert app.conf.task_default_queue == "celery"  # a worker's settings stay as they were


def test_a_newer_source_takes_over_from_what_was_set_before() -> None:
    app = Celery("live", broker="memory://first", set_as_current=False)
    app.conf.task_default_queue = "mine"
    app.config_from_object({"broker_url": "memory://second"})
    assert app.conf.broker_url == "memory://second"
    assert app.conf.task_default_queue == "mine"


def test_task_cls_and_hooks_in_eager_mode() -> None:
    """``Celery(task_cls=...)`` is the tasks' base; its ``__call__`` and hooks run in eager
    mode with the arguments as given (a tuple from ``delay``), and ``apply()`` links the
    task to the one that called it (root and parent ids)."""
    calls: list[Any] = []

    class Base(Task):
        def __call__(self, *args: Any, **kwargs: Any) -> Any:
            calls.append(("call", args))
            return super().__call__(*args, **kwargs)

        def on_success(self, retval: Any, task_id: str, args: Any, kwargs: Any) -> None:
            calls.append(("success", args))

    app = Celery("cls", broker="memory://cls", task_cls=Base, set_as_current=False)
    app.conf.task_always_eager = True

    @app.task(bind=True)
    def child(self: Any) -> tuple[str | None, str | None]:
        return self.request.root_id, self.request.parent_id

    @app.task(bind=True)
    def outer(self: Any, x: int) -> Any:
        return self.request.id, child.apply().get()

    assert app.Task is Base and isinstance(outer, Base)
    outer_id, (root_id, parent_id) = outer.delay(1).get()
    assert root_id == outer_id and parent_id == outer_id
    assert ("call", (1,)) in calls and ("success", (1,)) in calls


@shared_task
def notify(user: int) -> int:
    return user


def test_mock_patch_reaches_a_shared_task_through_its_module_name() -> None:
    from unittest import mock

    app = Celery("patching", broker="memory://patching")
    app.conf.task_always_eager = True
    with mock.patch(f"{__name__}.notify.delay") as delay:
        notify.delay(1)
        delay.assert_called_once_with(1)
    assert notify.delay(2).get() == 2  # the real method again
    assert notify is not app.tasks[notify.name] and isinstance(notify, Task)
    assert notify.request.called_directly


def test_signature_setters_on_error_and_ignored_results() -> None:
    """Celery's signature API: ``on_error`` returns the signature it was called on (the
    documented ``add.s(1, 2).on_error(h.s()).delay()`` sends ``add``), the parts can be set;
    a task sent with ``ignore_result`` gives None from ``get()`` at once."""
    app = Celery("sigs", broker="memory://sigs", backend="memory://sigs")

    @app.task
    def add(x: int, y: int) -> int:
        return x + y

    @app.task
    def handler(*args: Any) -> None:
        pass

    @app.task(ignore_result=True)
    def fire() -> None:
        pass

    sig = add.s(1, 2)
    assert sig.on_error(handler.s()) is sig
    assert sig.options["link_error"] == [handler.s()]
    sig.args = [3, 4]
    sig.kwargs = {}
    assert sig.args == (3, 4) and sig["args"] == (3, 4)
    assert fire.delay().get(timeout=1) is None


def test_a_class_based_task_is_registered_and_called() -> None:
    """Celery's class-based task: a Task subclass with ``run``, registered and sent."""
    app = Celery("classes", broker="memory://classes", set_as_current=False)
    app.conf.task_always_eager = True

    class Multiply(Task):
        name = "classes.multiply"

        def run(self, x: int, y: int = 2) -> int:
            return x * y

    task = app.register_task(Multiply())
    assert task.delay(3).get() == 6
    assert app.tasks["classes.multiply"].apply(args=(3, 3)).get() == 9
    with pytest.raises(TypeError, match=r"classes\.multiply"):
        task.delay(1, 2, 3)
    task.delay_on_commit(4)  # no Django transaction here: sent at once
    task.send_event("task-progress", current=1)  # no events: nothing is sent


def test_celerys_module_paths() -> None:
    """The paths Celery projects import from, with only the package name changed."""
    from celeriac.app import shared_task as app_shared_task
    from celeriac.app.base import Celery as BaseCelery
    from celeriac.app.task import Context
    from celeriac.app.task import Task as AppTask

    assert BaseCelery is Celery and AppTask is Task and app_shared_task is shared_task
    assert Context(id="x").id == "x"


def test_celerys_django_task_class() -> None:
    """``Celery(task_cls=DjangoTask)`` (Celery 5.4's Django task class), by class and by
    path: its tasks send on commit, as every task does."""
    from celeriac.contrib.django.task import DjangoTask

    for task_cls in (DjangoTask, "celeriac.contrib.django.task:DjangoTask"):
        app = Celery("django-task", broker="memory://", task_cls=task_cls, set_as_current=False)
        app.conf.task_always_eager = True

        @app.task
        def double(x: int) -> int:
            return 2 * x

        assert isinstance(double, DjangoTask)
        assert double.delay(2).get() == 4
        double.delay_on_commit(3)  # no Django transaction here: sent at once


def test_settings_are_shown_with_secrets_masked() -> None:
    app = Celery("shown", broker="redis://:hunter2@127.0.0.1:6379/0", set_as_current=False)
    shown = app.conf.masked()
    assert shown["broker_url"] == "redis://:***@127.0.0.1:6379/0"
    assert "task_serializer" not in shown and "task_serializer" in app.conf.masked(True)
    assert "hunter2" not in app.conf.humanize() and "broker_url: " in app.conf.humanize()


def test_celerys_task_formatter_names_the_running_task(memory_app: Celery) -> None:
    """``celery.app.log.TaskFormatter(fmt)`` as projects set it on their handlers."""
    import io
    import logging

    from celeriac.app.log import TaskFormatter
    from celeriac.utils.log import get_task_logger

    out = io.StringIO()
    handler = logging.StreamHandler(out)
    handler.setFormatter(TaskFormatter("%(task_name)s[%(task_id)s] %(message)s"))
    logger = get_task_logger("formatted")
    logger.addHandler(handler)
    logger.propagate = False
    try:

        @memory_app.task
        def work() -> None:
            logger.warning("inside")

        result = work.apply(task_id="abc")
        logging.getLogger("formatted.plain").warning("outside")
        logger.warning("outside too")
    finally:
        logger.removeHandler(handler)
    assert result.successful()
    assert out.getvalue().splitlines() == [
        f"{work.name}[abc] inside",
        "???[???] outside",
        "???[???] outside too",
    ]


def test_task_annotations_set_task_attributes() -> None:
    """Celery's First Steps: ``task_annotations = {"tasks.add": {"rate_limit": "10/m"}}``."""

    class Slow:
        def annotate(self, task: Any) -> dict[str, Any] | None:
            return {"soft_time_limit": 5} if task.name.endswith("mul") else None

    app = Celery("t", broker="memory://annotations")
    app.conf.task_annotations = [
        {"t.add": {"rate_limit": "10/m"}, "*": {"acks_late": False}},
        Slow(),
    ]

    @app.task(name="t.add")
    def add(x: int, y: int) -> int:
        return x + y

    @app.task(name="t.mul")
    def mul(x: int, y: int) -> int:
        return x * y

    tasks = app.tasks
    assert tasks["t.add"].rate_limit == "10/m"
    assert tasks["t.mul"].rate_limit is None
    assert tasks["t.mul"].soft_time_limit == 5
    assert tasks["t.add"].acks_late is False and tasks["t.mul"].acks_late is False

    @app.task
    def later() -> None:
        pass

    assert later.acks_late is False
    app.conf.task_annotations = {"t.late": {"@__call__": print}}
    with pytest.raises(ImproperlyConfigured, match="subclass Task"):

        @app.task(name="t.late")
        def late() -> None:
            pass


def test_child_tasks_inherit_the_parents_priority_when_asked() -> None:
    app = Celery("t", broker="memory://inherit")

    @app.task(bind=True)
    def parent(self: Any) -> list[int]:
        return [
            app.build_message("t.child", [], {}).priority,
            app.build_message("t.child", [], {}, priority=2).priority,
        ]

    assert parent.apply(priority=7).get() == [0, 2]
    app.conf.task_inherit_parent_priority = True
    assert parent.apply(priority=7).get() == [7, 2]


def test_on_configure_as_a_signal_or_a_subclass_method() -> None:
    """Celery's two ways of running code as the app is configured (Sentry set-ups use both):
    ``@app.on_configure.connect`` and a subclass's ``on_configure`` method; both run once,
    before ``on_after_configure``."""
    seen: list[str] = []

    class SentryCelery(Celery):
        def on_configure(self) -> None:
            seen.append(f"method:{self.main}")

    app = SentryCelery("by-method", broker="memory://", set_as_current=False)
    other = Celery("by-signal", broker="memory://", set_as_current=False)
    other.on_configure.connect(lambda sender=None, **kw: seen.append(f"signal:{sender.main}"))
    for each in (app, other):
        each.on_after_configure.connect(lambda sender=None, **kw: seen.append("after"))
        each.finalize()
        each.finalize()
    assert seen == ["method:by-method", "after", "signal:by-signal", "after"]


def test_on_after_fork_is_sent_in_a_forked_child() -> None:
    app = Celery("forks", broker="memory://", set_as_current=False)
    read, write = os.pipe()

    def tell(sender: Any = None, **kw: Any) -> None:
        os.write(write, sender.main.encode())

    app.on_after_fork.connect(tell)
    try:
        pid = os.fork()
        if pid == 0:  # pragma: no cover - the child
            os._exit(0)
        os.waitpid(pid, 0)
    finally:
        app.on_after_fork.disconnect(tell)  # later forks in this process must not write
        os.close(write)
    assert os.read(read, 100) == b"forks"
    os.close(read)


def test_a_test_pushes_a_request_of_its_own(memory_app: Celery) -> None:
    """``task.push_request(...)`` / ``pop_request()``, Celery's way for a unit test to run a
    bound task's body with a request, and ``self.MaxRetriesExceededError`` in a task."""
    from celeriac.exceptions import MaxRetriesExceededError

    @memory_app.task(bind=True)
    def seen(self: Any, x: int) -> Any:
        return (self.request.id, self.request.retries, x)

    seen.push_request(id="abc", retries=1)
    seen.push_request({"id": "def"}, retries=5)
    try:
        assert seen.run(3) == ("def", 5, 3)
        seen.pop_request()
        assert seen.run(4) == ("abc", 1, 4)
    finally:
        seen.pop_request()
    assert seen.request.id is None and seen.request.called_directly
    with pytest.raises(IndexError, match="push_request"):
        seen.pop_request()

    @memory_app.task(bind=True, max_retries=1, default_retry_delay=0)
    def flaky(self: Any) -> Any:
        try:
            raise self.retry()
        except self.MaxRetriesExceededError:
            return ("exhausted", self.request.retries)

    assert flaky.MaxRetriesExceededError is MaxRetriesExceededError
    assert flaky.apply().get() == ("exhausted", 1)


def test_store_eager_result_per_task_or_from_the_setting(memory_app: Celery) -> None:
    @memory_app.task(store_eager_result=True)
    def kept() -> int:
        return 1

    @memory_app.task
    def dropped() -> int:
        return 2

    first, second = kept.apply(), dropped.apply()
    assert memory_app.AsyncResult(first.id).state == states.SUCCESS
    assert memory_app.AsyncResult(second.id).state == states.PENDING
    memory_app.conf.task_store_eager_result = True
    assert memory_app.AsyncResult(dropped.apply().id).get(timeout=5) == 2


def test_add_defaults_fills_only_what_nothing_else_sets() -> None:
    """Flask's ``celery.add_defaults(app.config)``: old or new names, under everything else."""
    flask_config = {"BROKER_URL": "memory://flask", "CELERY_DEFAULT_QUEUE": "web", "DEBUG": True}
    app = Celery("flasky")
    app.conf.task_default_queue = "set-on-the-app"
    app.add_defaults(flask_config)
    assert app.conf.broker_url == "memory://flask"
    assert app.conf.task_default_queue == "set-on-the-app"
    app.config_from_object({"broker_url": "memory://later"})
    assert app.conf.broker_url == "memory://later"
    lazy = Celery("lazy")
    lazy.config_from_object({"result_expires": 9})
    lazy.conf.add_defaults(lambda: {"result_expires": 1, "task_default_priority": 4})
    assert (lazy.conf.result_expires, lazy.conf.task_default_priority) == (9, 4)


def test_celerys_ways_of_reading_the_configuration() -> None:
    app = Celery("conf", broker="memory://conf", backend="redis://:secret@127.0.0.1/0")
    app.config_from_object({"task_default_queue": "work", "CELERY_TASK_SERIALIZER": "json"})
    app.conf.worker_prefetch_multiplier = 1
    assert app.conf.value_set_for("task_default_queue") and app.conf.value_set_for("broker_url")
    assert not app.conf.value_set_for("result_expires")
    changes = app.conf.changes
    assert changes["task_default_queue"] == "work" and changes["worker_prefetch_multiplier"] == 1
    assert "result_expires" not in app.conf.without_defaults()
    assert "secret" not in str(app.conf.table()) and "secret" in str(app.conf.table(censored=False))
    assert "result_expires" in app.conf.table(with_defaults=True)
    assert app.conf.get_by_parts("task", "default", "queue") == "work"
    assert app.conf.first("task_default_rate_limit", "task_default_queue") == "work"
    assert app.control.discard_all == app.control.purge


def test_celerys_signature_helpers(memory_app: Celery) -> None:
    @memory_app.task
    def add(x: int, y: int) -> int:
        return x + y

    sig = add.s(1).set(queue="q", parent_id="p")
    assert sig.replace(args=(5, 6)).args == [5, 6] and sig.args == [1]
    assert sig.replace(options={"priority": 3}).options == {"priority": 3}
    assert sig.replace(kwargs={"y": 2}).kwargs == {"y": 2}
    assert sig.reprcall(2) == f"{add.name}(2, 1)"
    assert sig.parent_id == "p" and sig.root_id is None
    assert sig.AsyncResult("x").id == "x"
    sig.link(add.s(10))
    sig.append_to_list_option("link", add.s(10))  # already there: once
    sig.extend_list_option("link_error", [add.s(0)])
    assert [s.args for s in sig.flatten_links()] == [[1], [10]]
    assert len(sig.options["link_error"]) == 1
    assert sig.replace(args=(2, 2), options={}).apply().get() == 4


@pytest.mark.parametrize(
    ("binding", "key", "matches"),
    [
        ("feed.#", "feed", True),
        ("feed.#", "feed.a.b", True),
        ("feed.*", "feed.a", True),
        ("feed.*", "feed.a.b", False),
        ("*.image", "media.image", True),
        ("#.image", "image", True),
        ("#", "", True),
        ("a.#.z", "a.b.c.z", True),
        ("a.#.z", "a.b.c", False),
        ("task.default", "task.other", False),
    ],
)
def test_topic_bindings_match_as_amqp_does(binding: str, key: str, matches: bool) -> None:
    assert _topic_match(binding.split("."), key.split(".")) is matches


def test_the_current_task_seen_from_the_app(memory_app: Celery) -> None:
    seen: list[tuple[Any, Any]] = []

    @memory_app.task
    def look() -> None:
        seen.append((memory_app.current_task, memory_app.current_worker_task))

    look.apply()
    assert seen == [(look, None)]  # eagerly: no worker's task
    assert memory_app.current_task is None and memory_app.WorkController.__name__ == "Worker"
    assert memory_app.either("task_default_queue", None) == "celery"
    assert memory_app.either("task_default_queue", None, "mine") == "mine"
    memory_app.finalize()
    assert memory_app.finalized and memory_app.configured


def test_app_beat_runs_beat_in_this_process(tmp_path: Path) -> None:
    """Celery's ``app.Beat(...).run()``: beat sends what is due until SIGTERM."""
    script = tmp_path / "embedded.py"
    script.write_text(
        "from celeriac import Celery\n"
        f"app = Celery('embedded', broker='sqlite:///{tmp_path}/b.db')\n"
        "app.conf.beat_schedule = {'tick': {'task': 'proj.tick', 'schedule': 0.5}}\n"
        f"app.Beat(loglevel='INFO', schedule='{tmp_path}/beat-state', max_interval=0.5,"
        " quiet=True).run()\n"
    )
    proc = subprocess.Popen([sys.executable, str(script)], stderr=subprocess.PIPE, text=True)
    app = Celery("reader", broker=f"sqlite:///{tmp_path}/b.db")
    try:
        wait_until(lambda: app.broker.queue_length("celery") >= 2, timeout=30)
    finally:
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=30)
        app.close()
    assert proc.returncode == 0, err
    with pytest.raises(TypeError, match="does not take colour"):
        app.Beat(colour=True)


def test_celerys_constructor_arguments() -> None:
    """``strict_typing``, ``changes``, ``fixups`` and ``loader`` as Celery takes them; its
    component classes (``log=``, ``amqp=`` ...) are refused at once."""
    changes = {"timezone": "UTC"}
    loose = Celery("loose", broker="memory://ctor", strict_typing=False, changes=changes)

    @loose.task
    def one(x: int) -> int:
        return x

    class Checked(Task):
        typing = True

    @loose.task(base=Checked)
    def checked(x: int) -> int:
        return x

    one.apply_async((1, 2))  # not checked: strict_typing=False
    with pytest.raises(TypeError):
        checked.apply_async((1, 2))  # the base class says
    assert loose.conf.timezone == "UTC" and loose.autofinalize
    assert Celery("plain", fixups=[])._fixups == []
    assert Celery("dj", fixups=["celery.fixups.django:fixup"])._fixups
    Celery("loader", loader="celery.loaders.app:AppLoader")
    for component in ("log", "amqp", "events", "control"):
        with pytest.raises(ImproperlyConfigured, match=f"{component}=..."):
            options: dict[str, Any] = {component: "proj.parts:Mine"}
            Celery("custom", **options)


def test_celerys_backend_cleanup_task_deletes_expired_results(sqlite_app: Celery) -> None:
    """A ``beat_schedule`` that names ``celery.backend_cleanup`` runs celeriac's cleanup."""
    sqlite_app.conf.result_expires = 0.05
    sqlite_app.results.store("old", states.SUCCESS, 1)
    time.sleep(0.1)
    assert sqlite_app.tasks["celery.backend_cleanup"].apply().get() >= 1
    assert sqlite_app.AsyncResult("old").state == states.PENDING
    assert "celery.backend_cleanup" not in sqlite_app.tasks.regular()


def test_message_signing_is_refused_saying_what_to_do_instead() -> None:
    app = Celery("signing", broker="memory://signing")
    with pytest.raises(ImproperlyConfigured, match=r"does not sign messages.*amqps://"):
        app.setup_security(allowed_serializers=["json"], key="k.key", cert="k.pem")
    from celeriac.security import setup_security

    with pytest.raises(ImproperlyConfigured, match="does not sign messages"):
        setup_security()
    with pytest.raises(ImproperlyConfigured, match="security_key"):
        app.conf.security_key = "k.key"
