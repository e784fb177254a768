"""Celery's ``celery.app.task`` path: the task class and its request context."""

from ..task import Context, Task

__all__ = ["Context", "Task"]
