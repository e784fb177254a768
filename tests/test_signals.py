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
