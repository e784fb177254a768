"""Signals: Celery's names, sender filtering, and receivers that raise."""

from __future__ import annotations

from typing import Any

from celeriac import Celery, signals


def test_task_signals_fire_in_order_and_a_raising_receiver_is_harmless() -> None:
    app = Celery("sig", broker="memory://signals")
    seen: list[str] = []

    @app.task
    def add(x, y):
        return x + y

    def broken(**kwargs: Any) -> None:
        raise RuntimeError("receiver bug")

    handlers = {
        signals.task_prerun: lambda **kw: seen.append("prerun"),
        signals.task_success: lambda **kw: seen.append(f"success:{kw['result']}"),
        signals.task_postrun: lambda **kw: seen.append(f"postrun:{kw['state']}"),
    }
    for sig, fn in handlers.items():
        sig.connect(fn)
    signals.task_prerun.connect(broken)
    try:
        assert add.apply((1, 2)).get() == 3
    finally:
        for sig, fn in handlers.items():
            sig.disconnect(fn)
        signals.task_prerun.disconnect(broken)
    assert seen == ["prerun", "success:3", "postrun:SUCCESS"]


def test_sender_filter_by_task_name() -> None:
    app = Celery("sig2", broker="memory://signals2")
    got: list[Any] = []

    @app.task(name="a.one")
    def one():
        return 1

    @app.task(name="a.two")
    def two():
        raise ValueError("x")

    @signals.task_failure.connect(sender="a.two")
    def on_failure(sender: Any = None, exception: Any = None, **kw: Any) -> None:
        got.append((sender.name, type(exception).__name__))

    try:
        one.apply()
        two.apply()
    finally:
        signals.task_failure.disconnect(on_failure)
    assert got == [("a.two", "ValueError")]


def test_publish_signals_carry_celerys_headers_and_body() -> None:
    app = Celery("sig3", broker="memory://signals3")
    before: list[dict[str, Any]] = []
    after: list[dict[str, Any]] = []

    @app.task(name="p.add")
    def add(x, y=0):
        return x + y

    # the receivers of Celery's documentation: the id is read from the headers
    @signals.before_task_publish.connect(sender="p.add")
    def on_before(sender=None, headers=None, body=None, routing_key=None, **kw: Any) -> None:
        before.append({"id": headers["id"], "task": headers["task"], "body": body,
                       "queue": routing_key, "eta": headers["eta"], "mine": headers.get("mine"),
                       "priority": kw["properties"]["priority"]})  # fmt: skip

    @signals.after_task_publish.connect
    def on_after(sender=None, headers=None, body=None, **kw: Any) -> None:
        info = headers if "task" in headers else body
        after.append({"id": info["id"], "sender": sender, "group": headers["group"]})

    from celeriac import group

    try:
        one = add.apply_async((1,), {"y": 2}, countdown=60, headers={"mine": "x"}, priority=7)
        members = group(add.s(i) for i in range(20)).apply_async()
    finally:
        signals.before_task_publish.disconnect(on_before)
        signals.after_task_publish.disconnect(on_after)
    first = before[0]
    assert first["id"] == one.id and first["task"] == "p.add" and first["queue"] == "celery"
    assert first["body"][:2] == ([1], {"y": 2}) and first["mine"] == "x"
    assert first["eta"] is not None and first["priority"] == 7
    ids = [r.id for r in members.results]
    assert [b["id"] for b in before[1:]] == ids  # every member of a large group
    assert [b["body"][0] for b in before[1:]] == [[i] for i in range(20)]
    assert [a["id"] for a in after] == [one.id, *ids]
    assert {a["group"] for a in after[1:]} == {members.id} and after[0]["group"] is None


def test_logging_signals_as_in_celery(monkeypatch: Any) -> None:
    import logging

    from celeriac.utils import log

    root = logging.getLogger()
    monkeypatch.setattr(root, "handlers", list(root.handlers))
    monkeypatch.setattr(log, "_configured", False)
    seen: list[tuple[Any, ...]] = []

    def after(logger: Any = None, loglevel: Any = None, **kw: Any) -> None:
        seen.append(("after", logger.name, loglevel))

    def after_task(logger: Any = None, format: str = "", **kw: Any) -> None:
        seen.append(("after_task", "task_id" in format))

    signals.after_setup_logger.connect(after)
    signals.after_setup_task_logger.connect(after_task)
    try:
        log.setup_logging("INFO")
    finally:
        signals.after_setup_logger.disconnect(after)
        signals.after_setup_task_logger.disconnect(after_task)
    assert seen == [("after", "root", logging.INFO), ("after_task", True)]

    # a setup_logging receiver takes the configuration over: nothing is configured here
    monkeypatch.setattr(log, "_configured", False)
    before = list(root.handlers)
    calls: list[Any] = []

    def mine(loglevel: Any = None, logfile: Any = None, **kw: Any) -> None:
        calls.append((loglevel, logfile))

    signals.setup_logging.connect(mine)
    try:
        log.setup_logging("DEBUG", "/tmp/never-written.log")
    finally:
        signals.setup_logging.disconnect(mine)
    assert calls == [(logging.DEBUG, "/tmp/never-written.log")] and root.handlers == before


def test_worker_and_beat_start_up_signals() -> None:
    import threading

    app = Celery("sig4", broker="memory://signals4", backend="memory://signals4")
    app.conf.beat_schedule = {}
    seen: list[str] = []
    receivers = {
        signals.celeryd_init: lambda sender=None, instance=None, conf=None, **kw: seen.append(
            f"celeryd_init:{sender == instance.hostname}:{conf is app.conf}"
        ),
        signals.import_modules: lambda sender=None, **kw: seen.append("import_modules"),
        signals.worker_init: lambda **kw: seen.append("worker_init"),
        signals.celeryd_after_setup: lambda sender=None, **kw: seen.append("after_setup"),
        signals.beat_embedded_init: lambda **kw: seen.append("beat_embedded_init"),
        signals.beat_init: lambda **kw: seen.append("beat_init"),
        signals.worker_ready: lambda **kw: seen.append("ready"),
    }
    for sig, fn in receivers.items():
        sig.connect(fn)
    worker = app.Worker(install_signal_handlers=False, pool="threads", concurrency=1, beat=True)
    thread = threading.Thread(target=worker.start)
    thread.start()
    try:
        from conftest import wait_until

        wait_until(lambda: "ready" in seen and "beat_init" in seen)
    finally:
        worker.stop()
        thread.join(30)
        for sig, fn in receivers.items():
            sig.disconnect(fn)
    order = [s for s in seen if s != "beat_init"]
    assert order[:4] == ["celeryd_init:True:True", "import_modules", "worker_init", "after_setup"]
    assert "beat_embedded_init" in order and order.index("after_setup") < order.index("ready")


def test_small_celery_names() -> None:
    import uuid as std_uuid

    from celeriac import uuid
    from celeriac.result import allow_join_result

    app = Celery("sig5", broker="memory://signals5", backend="memory://signals5")
    assert std_uuid.UUID(uuid()).version == 4

    @app.task
    def add(x, y):
        return x + y

    @app.task
    def outer():
        inner = app.AsyncResult("done-id")
        assert app.backend is not None
        app.backend.mark_as_done("done-id", 7)
        first = inner.get(timeout=1)  # run eagerly, as in Celery: a join does not block
        with allow_join_result():
            return first + inner.get(timeout=1)

    assert outer.apply().get() == 14
    add.delay(1, 2), add.delay(3, 4)
    assert app.control.purge() == 2 and app.control.purge() == 0
    sig = app.signature("sig5.add", (1,), {"y": 2}, countdown=1)
    assert sig.task == "sig5.add" and sig.options["countdown"] == 1 and sig.kwargs == {"y": 2}
    group_result = app.GroupResult("g1", [app.AsyncResult("a"), app.AsyncResult("b")])
    assert group_result.id == "g1" and [r.id for r in group_result.results] == ["a", "b"]


def test_a_join_inside_a_task_on_a_worker_is_refused() -> None:
    from celeriac.contrib.testing.app import TestApp
    from celeriac.contrib.testing.worker import start_worker
    from celeriac.result import allow_join_result

    app = TestApp()

    @app.task
    def inner() -> int:
        return 7

    @app.task
    def outer(allow: bool) -> Any:
        result = inner.delay()
        if allow:
            with allow_join_result():
                return result.get(timeout=5)
        try:
            result.get(timeout=5)
        except RuntimeError as exc:
            return str(exc)
        return "not refused"

    with start_worker(app, pool="threads", concurrency=2, perform_ping_check=False):
        assert "Never call result.get() within a task" in outer.delay(False).get(timeout=10)
        assert outer.delay(True).get(timeout=10) == 7


def test_a_projects_own_signals_made_as_in_celery() -> None:
    from celeriac.utils.dispatch import Signal as FromDispatch
    from celeriac.utils.dispatch.signal import Signal as FromModule

    assert FromDispatch is FromModule
    got: list[tuple[Any, Any]] = []
    plain = FromDispatch()
    named = FromDispatch(name="order_paid", providing_args=["order"], use_caching=True)
    old_style = FromDispatch(["order"])  # Celery 4: the first argument is providing_args
    assert old_style.providing_args == ("order",) and named.name == "order_paid"

    @named.connect
    def on_paid(sender: Any = None, order: Any = None, **kwargs: Any) -> None:
        got.append((sender, order))

    plain.connect(lambda sender=None, **kwargs: got.append((sender, "plain")))
    named.send(sender="shop", order=7)
    plain.send(sender="x")
    assert got == [("shop", 7), ("x", "plain")]
