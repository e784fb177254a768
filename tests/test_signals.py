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
