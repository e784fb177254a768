"""``DjangoTask``, the name Celery's Django integration gives its task class.

Every celeriac task already has :meth:`~celeriac.Task.delay_on_commit` and
:meth:`~celeriac.Task.apply_async_on_commit`, so this class adds nothing; it is here so that
``Celery(task_cls=DjangoTask)``, ``task_cls="celeriac.contrib.django.task:DjangoTask"``
and ``class MyTask(DjangoTask)`` keep working after the import changes.
"""

from __future__ import annotations

from ...task import Task

__all__ = ["DjangoTask"]


class DjangoTask(Task):
    """A task whose ``delay_on_commit`` publishes once Django's transaction commits (as
    every celeriac task's does)."""
