"""What Celery's own integration suite (``python3 dev.py celery-suite``) checks that the other
contract suites did not, on every broker and result backend, so CI checks it without
downloading Celery."""

from __future__ import annotations

import os
import sys
import threading
import time
from typing import Any

import pytest

from celeriac import Celery, states
from conftest import wait_until
from contract.test_worker_contract import worker

try:
    from pydantic import BaseModel
except ImportError:  # pragma: no cover - pydantic is in the test extras
    BaseModel = None  # type: ignore[assignment,misc]

if BaseModel is not None:

    class Numbers(BaseModel):
        x: int
        y: int

    class Total(BaseModel):
        result: int


def test_soft_time_limit_above_time_limit_is_refused_when_sent(app: Celery) -> None:
    @app.task(soft_time_limit=2, time_limit=1)
    def limited() -> None:
        pass

    with pytest.raises(ValueError, match="soft_time_limit must be less than or equal"):
        limited.delay()
    app.conf.task_always_eager = True
    with pytest.raises(ValueError, match="soft_time_limit must be less than or equal"):
        limited.delay()


def test_pydantic_task_validates_models_and_dumps_its_result(app: Celery) -> None:
    pytest.importorskip("pydantic")

    @app.task(pydantic=True)
    def add(data: Numbers, scale: int = 1) -> Total:
        assert isinstance(data, Numbers)
        return Total(result=(data.x + data.y) * scale)

    @app.task(bind=True, pydantic=True)
    def maybe(self, data: Numbers | None = None) -> Total | None:
        assert self.request.id
        return None if data is None else Total(result=data.x)

    sent = add.delay({"x": 2, "y": 3}, scale=2)
    with pytest.raises(TypeError):
        add.delay()
    nothing, some = maybe.delay(), maybe.delay({"x": 7, "y": 0})
    bad = add.delay({"x": "two", "y": 3})
    with worker(app):
        assert sent.get(timeout=15) == {"result": 10}
        assert nothing.get(timeout=15) is None
        assert some.get(timeout=15) == {"result": 7}
        with pytest.raises(Exception, match="ValidationError"):
            bad.get(timeout=15)
    assert add(Numbers(x=1, y=1)) == {"result": 2}


class NeedsTwo(Exception):
    """Stored with its message only, so it cannot be made again from what was stored."""

    def __init__(self, foo: str, bar: str | None = None) -> None:
        if bar is None:
            raise TypeError("bar must be provided")
        super().__init__(foo)
        self.bar = bar


def test_an_exception_that_cannot_be_made_again_is_an_unpickleable_wrapper(app: Celery) -> None:
    from celeriac.exceptions import TaskError
    from celeriac.utils.serialization import UnpickleableExceptionWrapper

    @app.task
    def fails() -> None:
        raise NeedsTwo("foo", "bar")

    @app.task(bind=True)
    def retries(self: Any) -> None:
        raise self.retry(exc=NeedsTwo("foo", "bar"), countdown=30, max_retries=1)

    failed, retried = fails.delay(), retries.delay()
    with worker(app):
        with pytest.raises(UnpickleableExceptionWrapper) as info:
            failed.get(timeout=15)
        wait_until(lambda: retried.state == states.RETRY, timeout=15)
    assert isinstance(info.value, TaskError)
    assert info.value.exc_cls_name == "NeedsTwo"
    assert info.value.exc_module == __name__
    assert info.value.exc_args == ("foo",)
    assert str(info.value) == f"{__name__}.NeedsTwo: foo"
    wrapped = retried.result
    assert isinstance(wrapped, UnpickleableExceptionWrapper)
    assert (wrapped.exc_cls_name, wrapped.exc_args) == ("NeedsTwo", ("foo",))
    retried.revoke()


def test_message_properties_given_to_apply_async_reach_the_request(app: Celery) -> None:
    @app.task(bind=True)
    def properties(self: Any) -> dict[str, Any]:
        assert self.request.correlation_id == self.request.id
        return dict(self.request.properties)

    sent = properties.apply_async(app_id="1234", type="report", priority=3)
    plain = properties.delay()
    with worker(app):
        got = sent.get(timeout=15)
        assert plain.get(timeout=15)["correlation_id"] == plain.id
    assert got["app_id"] == "1234"
    assert got["type"] == "report"
    assert got["correlation_id"] == sent.id
    assert got["priority"] == 3
    assert "app_id" not in plain.get(timeout=15)


def test_backends_say_whether_chords_are_allowed(backend: Any) -> None:
    if getattr(backend, "keeps_values", True):
        assert backend.ensure_chords_allowed() is None
    else:  # rpc://, as in Celery
        with pytest.raises(NotImplementedError, match="chords"):
            backend.ensure_chords_allowed()


def test_inspect_active_says_when_and_in_which_process_a_task_runs(app: Celery) -> None:
    gate = threading.Event()

    @app.task
    def waits() -> None:
        gate.wait(30)

    sent = waits.delay()
    inspect = app.control.inspect(timeout=5, limit=1)
    try:
        with worker(app, concurrency=1, hostname="timed@%h") as w:
            seen: list[dict[str, Any]] = []

            def running() -> bool:
                seen[:] = (inspect.active() or {}).get(w.hostname, [])
                return bool(seen)

            wait_until(running)
            [entry] = seen
            assert entry["id"] == sent.id and entry["worker_pid"] == os.getpid()
            assert time.time() - 30 < entry["time_start"] <= time.time()
            gate.set()
            sent.get(timeout=15)
    finally:
        gate.set()


def test_autodiscovery_takes_a_class_path_and_skips_what_has_no_tasks_module(
    tmp_path: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    package = tmp_path / "discovered_pkg"
    package.mkdir()
    (package / "__init__.py").write_text("class Config:\n    pass\n")
    (package / "jobs.py").write_text("FOUND = True\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    app = Celery("discovery", broker="memory://celery-suite-discovery")
    try:
        # INSTALLED_APPS may name an AppConfig class; datetime has no jobs module
        app.autodiscover_tasks(["discovered_pkg.Config", "datetime.datetime"], "jobs", True)
        assert sys.modules["discovered_pkg.jobs"].FOUND
        with pytest.raises(ModuleNotFoundError) as info:
            app.autodiscover_tasks(["nonexistent_pkg.package.name"], "jobs", force=True)
        assert info.value.name == "nonexistent_pkg"
    finally:
        app.close()
        for name in [m for m in sys.modules if m.startswith("discovered_pkg")]:
            del sys.modules[name]


def test_revoke_by_stamped_headers(app: Celery) -> None:
    """Celery's test_revoked_by_headers_simple_canvas, _complex_canvas and
    test_revoke_by_stamped_headers_no_match: a task whose stamp was revoked does not run
    (REVOKED, in a chord too), on a worker started later as well, until the revocations are
    forgotten."""
    from celeriac import chord
    from celeriac.canvas import StampingVisitor
    from celeriac.exceptions import ChordError, TaskRevokedError
    from celeriac.worker.state import revoked_stamps

    @app.task
    def add(x: int, y: int) -> int:
        return x + y

    @app.task
    def tsum(values: list[int]) -> int:
        return sum(values)

    class Monitoring(StampingVisitor):
        def __init__(self, value: Any) -> None:
            self.value = value

        def on_signature(self, sig: Any, **headers: Any) -> dict[str, Any]:
            return {"monitoring_id": self.value, "stamped_headers": ["monitoring_id"]}

    def stamped(value: Any, *args: int) -> Any:
        sig = add.si(*(args or (1, 1)))
        sig.stamp(visitor=Monitoring(value))
        return sig

    assert stamped("x").options["stamped_headers"] == ["monitoring_id"]  # names, not a stamp
    app.set_current()  # worker.state reads the current app's revocations
    doomed = stamped("target").freeze()
    doomed.revoke_by_stamped_headers(headers={"monitoring_id": ["target"]})
    app.control.revoke_by_stamped_headers({"monitoring_id": 4242})
    assert revoked_stamps == {"monitoring_id": ["target", 4242]}
    sent = {
        "target": stamped("target").apply_async(task_id=doomed.id),
        "one of a list": stamped(["other", 4242]).apply_async(),
        "a string is not a number": stamped("4242").apply_async(),
        "another": stamped("other").apply_async(),
    }
    in_chord = chord([stamped("target", 2, 2), add.si(3, 3)], tsum.s()).apply_async()
    with worker(app, hostname="stamps@%h") as w:
        for name in ("target", "one of a list"):
            with pytest.raises(TaskRevokedError):
                sent[name].get(timeout=15)
            assert sent[name].state == states.REVOKED, name
        assert sent["a string is not a number"].get(timeout=15) == 2
        assert sent["another"].get(timeout=15) == 2
        with pytest.raises(TaskRevokedError):  # the header member's own exception
            in_chord.get(timeout=15)
        with pytest.raises(ChordError):  # the chord completed: its body failed
            app.AsyncResult(in_chord.id).get(timeout=15)
        replies = app.control.revoke_by_stamped_headers(
            {"myheader": ["myvalue"]}, reply=True, timeout=5, destination=[w.hostname]
        )
        expected = "headers {'myheader': ['myvalue']} flagged as revoked, but not terminated"
        assert replies == [{w.hostname: {"ok": expected}}]
        revoked_stamps.clear()
        assert dict(revoked_stamps) == {}
        assert stamped("target").apply_async().get(timeout=15) == 2


def test_revoke_by_stamped_headers_terminates_a_running_task(app: Celery) -> None:
    from celeriac.exceptions import TaskRevokedError

    started = threading.Event()

    @app.task
    def long() -> str:
        started.set()
        for _ in range(600):
            time.sleep(0.05)
        return "finished"

    sig = long.si()
    sig.stamp(batch="b-1")
    with worker(app, hostname="terminate@%h") as w:
        result = sig.apply_async()
        assert started.wait(15)
        replies = app.control.revoke_by_stamped_headers(
            {"batch": "b-1"}, terminate=True, reply=True, timeout=5, destination=[w.hostname]
        )
        assert replies == [{w.hostname: {"ok": "headers {'batch': ['b-1']} revoked"}}]
        with pytest.raises(TaskRevokedError):
            result.get(timeout=15)
        assert result.state == states.REVOKED
    assert app.control.revoke_by_stamped_headers({"batch": "b-2"}, terminate=True) is None


def test_a_terminated_chord_header_member_completes_the_chord(app: Celery) -> None:
    """Celery's test_chord_on_error shape: a header member stopped by
    ``revoke(terminate=True)`` is counted, so the chord's body fails instead of waiting."""
    from celeriac import chord
    from celeriac.exceptions import ChordError, TaskRevokedError

    started = threading.Event()

    @app.task
    def long() -> str:
        started.set()
        for _ in range(600):
            time.sleep(0.05)
        return "finished"

    @app.task
    def quick() -> int:
        return 1

    @app.task
    def collect(values: list[Any]) -> int:
        return len(values)

    with worker(app, hostname="chordterm@%h"):
        header = [long.si(), quick.si()]
        result = chord(header, collect.s()).apply_async()
        assert started.wait(15)
        running = result.parent.results[0]
        running.revoke(terminate=True)
        with pytest.raises(TaskRevokedError):
            running.get(timeout=15)
        with pytest.raises(TaskRevokedError):  # get() raises a parent's failure first
            result.get(timeout=15)
        with pytest.raises(ChordError):  # the body itself: it failed, it is not waiting
            app.AsyncResult(result.id).get(timeout=15)
