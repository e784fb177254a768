"""Celery's ``celery.app.task`` path: the task class and its request context."""

from ..task import Context, Task

#: Celery's old name for the tasks' metaclass: celeriac's tasks are plain classes
TaskType = type

__all__ = ["Context", "Task", "TaskType"]
