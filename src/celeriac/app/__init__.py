"""The application (:mod:`.base`), and the module paths Celery projects import from:
``celeriac.app.base.Celery`` and ``celeriac.app.task.Task``."""

from .base import Celeriac, Celery, shared_task

__all__ = ["Celeriac", "Celery", "shared_task"]
