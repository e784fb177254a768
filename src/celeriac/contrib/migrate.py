"""Celery's ``celery.contrib.migrate``: moving waiting tasks between queues and brokers
(see :mod:`celeriac.app.migrate`)."""

from ..app.migrate import (
    State,
    StopFiltering,
    TaskMessage,
    migrate_tasks,
    move,
    move_by_idmap,
    move_by_taskmap,
    move_task_by_id,
    task_id_eq,
    task_id_in,
)

__all__ = [
    "State",
    "StopFiltering",
    "TaskMessage",
    "migrate_tasks",
    "move",
    "move_by_idmap",
    "move_by_taskmap",
    "move_task_by_id",
    "task_id_eq",
    "task_id_in",
]
