"""A project's own remote-control commands (``celeriac.worker.control``), answered by a
running worker."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from celeriac.contrib.testing.app import TestApp
from celeriac.contrib.testing.worker import start_worker
from celeriac.worker.control import Panel, control_command, inspect_command

BUMPS: list[int] = []


@pytest.fixture
def commands() -> Iterator[None]:
    before = dict(Panel.data), dict(Panel.meta)

    @inspect_command()
    def queue_names(state: Any) -> dict[str, Any]:
        return {"queues": state.worker.queues, "host": state.hostname}

    @control_command(args=[("n", int)], signature="[N=1]")
    def bump(state: Any, n: int = 1) -> dict[str, Any]:
        BUMPS.append(n)
        return {"ok": f"bumped by {n}"}

    @Panel.register
    def broken(state: Any) -> None:
        raise RuntimeError("a bug in the command")

    yield
    Panel.data.clear()
    Panel.data.update(before[0])
    Panel.meta.clear()
    Panel.meta.update(before[1])


def test_a_projects_commands_are_answered(commands: None) -> None:
    app = TestApp()
    with start_worker(app, perform_ping_check=False, queues=["jobs"]) as worker:
        inspect = app.control.inspect(timeout=1)
        assert inspect._request("queue_names") == {
            worker.hostname: {"queues": ["jobs"], "host": worker.hostname}
        }
        replies = app.control.broadcast("bump", arguments={"n": 2}, reply=True, timeout=1)
        assert replies == [{worker.hostname: {"ok": "bumped by 2"}}]
        assert BUMPS == [2]
        replies = app.control.broadcast("broken", reply=True, timeout=1)
        assert replies == [{worker.hostname: {"error": "RuntimeError: a bug in the command"}}]
        assert Panel.meta["bump"].type == "control" and Panel.meta["bump"].args == (("n", int),)
        assert Panel.meta["queue_names"].type == "inspect"
