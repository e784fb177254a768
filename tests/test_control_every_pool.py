"""Every remote-control command against a live worker process of each pool kind: what it
answers, and that the change it makes takes effect (the prefork children included)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from conftest import Project, wait_until

pytestmark = pytest.mark.slow

#: pool kind -> the worker's options and environment
POOLS: dict[str, tuple[list[str], dict[str, str]]] = {
    "threads": (["-P", "threads"], {}),
    "solo": (["-P", "solo"], {}),
    "asyncio": (["-P", "asyncio"], {}),
    "prefork": (["-P", "prefork"], {}),  # each child consumes (SQLite, Redis, PostgreSQL)
    "prefork-fed": (["-P", "prefork"], {"CELERIAC_TEST_PREFORK": "queue"}),  # RabbitMQ's kind
}


@pytest.mark.parametrize("pool", list(POOLS))
def test_every_control_command_on_every_pool_kind(project: Project, pool: str) -> None:
    options, env = POOLS[pool]
    project.set(
        CELERIAC_TEST_VT="3",  # a short lease: prefork children read changes every second
        CELERIAC_TEST_CONF=json.dumps({"worker_pool_restarts": True}),
        **env,
    )
    w = project.worker(*options, "-c", "1", "-n", f"{pool}@%h")
    control = project.app.control

    def ask(command: str, **arguments: Any) -> Any:
        got = control.broadcast(command, arguments, reply=True, timeout=5, limit=1)
        assert got, f"no reply to {command}"
        return next(iter(got[0].values()))

    def stats() -> dict[str, Any]:
        found = control.inspect(timeout=5, limit=1).stats() or {}
        return dict(next(iter(found.values()), {}))

    assert ask("ping") == {"ok": "pong"}
    # consumers
    assert ask("add_consumer", queue="extra") == {"ok": "add consumer extra"}
    assert project.send("add", 1, 2, queue="extra").get(timeout=20) == 3
    assert "no longer" in ask("cancel_consumer", queue="extra")["ok"]
    # time limits, by task name (soft_limited's own soft limit is half a second)
    assert ask("time_limit", task_name="proj.tasks.soft_limited", soft=5, hard=10) == {
        "ok": "time limits set successfully"
    }
    wait_until(lambda: project.send("soft_limited", 1.0).get(timeout=20) == "finished")
    # events
    assert ask("enable_events") == {"ok": "task events enabled"}
    assert ask("disable_events") == {"ok": "task events disabled"}
    # the pool's size
    if pool == "solo":
        assert "fixed size" in ask("pool_grow", n=1)["error"]
    else:
        assert ask("pool_grow", n=2) == {"ok": "pool will grow to 3"}
        wait_until(lambda: stats()["pool"]["max-concurrency"] == 3)
        assert ask("pool_shrink", n=1) == {"ok": "pool will shrink to 2"}
        assert "max=2" in ask("autoscale", max=2, min=1)["ok"]
        assert stats()["pool"]["max-concurrency"] == 2
    # a restart of the pool, then the tasks go on
    assert ask("pool_restart", modules=["proj.tasks"], reload=True) == {"ok": "reload started"}
    assert project.send("add", 2, 3).get(timeout=20) == 5
    # what the worker says of itself: the tasks run, by name (the children's included)
    # (soft_limited ran until the new limit reached the pool)
    wait_until(lambda: stats()["total"].get("proj.tasks.add") == 2)
    assert stats()["total"]["proj.tasks.soft_limited"] >= 1
    assert stats()["rusage"]["maxrss"] > 0
    conf = ask("conf")
    assert conf["worker_pool_restarts"] is True and "password" not in json.dumps(conf)
    assert "ok" in ask("report")
    assert [q["name"] for q in next(iter(control.inspect(timeout=5).active_queues().values()))]
    assert ask("shutdown") == {"ok": "shutting down"}
    assert w.wait(30) == 0
