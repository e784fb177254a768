"""Celery's ``celery.worker.request``: the :class:`Request` class that tasks subclass for
their own ``on_success``, ``on_retry``, ``on_failure`` and ``on_timeout`` hooks
(``class MyTask(Task): Request = "proj.requests:MyRequest"``)."""

from ..execution import Request

__all__ = ["Request"]
