"""Moving waiting tasks between queues and brokers (Celery's ``celery.contrib.migrate``), on
every broker."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from celeriac import Celery, Queue
from celeriac.contrib.migrate import (
    State,
    StopFiltering,
    migrate_tasks,
    move,
    move_by_taskmap,
    move_task_by_id,
    task_id_in,
)
from conftest import wait_until
from contract.test_worker_contract import worker


def waiting(app: Celery, queue: str) -> int:
    return app.broker.queue_stats(queue).waiting


def test_waiting_tasks_move_to_another_queue(app: Celery) -> None:
    @app.task
    def job(n: int) -> int:
        return n

    @app.task
    def other(n: int) -> int:
        return -n

    first, second, third = job.delay(1), job.delay(2), other.delay(3)
    later = job.apply_async((4,), countdown=60)  # not due: stays where it is
    assert move_task_by_id(first.id, "slow", app=app).filtered == 1
    state = move_by_taskmap({other.name: Queue("slow")}, app=app)
    assert (state.filtered, state.count) == (1, 2)
    wait_until(lambda: (waiting(app, "slow"), waiting(app, "celery")) == (2, 1))
    with worker(app, queues="slow"):
        assert (first.get(timeout=20), third.get(timeout=20)) == (1, -3)
    assert second.state == "PENDING" and app.broker.queue_stats("celery").delayed in (1, None)
    # a predicate, a callback that stops the pass, and what it gave back
    seen: list[str] = []

    def stop_after_one(state: State, body: Any, message: Any) -> None:
        seen.append(message.headers["task"])
        raise StopFiltering()

    more = [job.delay(n) for n in range(5, 8)]
    ids = {r.id for r in more}
    state = move(
        lambda body, message: task_id_in(ids, body, message) and "slow",
        app=app,
        callback=stop_after_one,
    )
    assert state.filtered == 1 and seen == [job.name]
    wait_until(lambda: (waiting(app, "slow"), waiting(app, "celery")) == (1, 3))
    with worker(app, queues="celery,slow"):
        assert [r.get(timeout=20) for r in [second, *more]] == [2, 5, 6, 7]
    later.revoke()


def _add(x: int, y: int) -> int:
    return x + y


def test_migrate_tasks_to_another_broker(app: Celery, tmp_path: Path) -> None:
    add = app.task(_add, name="moved.add")
    sent = [add.delay(i, i) for i in range(3)]
    dest_url = f"sqlite:///{tmp_path}/dest.db"
    state = migrate_tasks(app, dest_url, app=app, queues={"celery": "renamed"})
    assert state.filtered == 3
    wait_until(lambda: waiting(app, "celery") == 0)
    other = Celery("dest", broker=dest_url, backend=app.conf.result_backend)
    other.task(_add, name="moved.add")
    try:
        with worker(other, queues="renamed"):
            assert [app.AsyncResult(r.id).get(timeout=20) for r in sent] == [0, 2, 4]
    finally:
        other.close()
    with pytest.raises(NotImplementedError, match="move"):
        migrate_tasks(app, dest_url, migrate=lambda *a: None, app=app)
