"""Tasks that can be asked to stop: Celery's ``celery.contrib.abortable``.

The caller marks the task ABORTED in the result backend
(``AbortableAsyncResult(task_id).abort()``); the task looks now and then
(``self.is_aborted()``) and stops cleanly when it is set. Nothing is interrupted: a task that
never looks runs to its end, and its own result then replaces the ABORTED state::

    from celeriac.contrib.abortable import AbortableTask

    @app.task(bind=True, base=AbortableTask)
    def long_task(self):
        for item in work():
            if self.is_aborted():
                return "aborted"
            process(item)

    result = long_task.delay()
    result.abort()

The mark is kept in the result backend, so it reaches the worker from any process on every
backend that keeps values (``rpc://`` keeps none: :meth:`AbortableAsyncResult.abort` says so).
"""

from __future__ import annotations

from typing import Any

from ..result import AsyncResult
from ..task import Task

__all__ = ["ABORTED", "AbortableAsyncResult", "AbortableTask"]

#: the state of a task asked to stop
ABORTED = "ABORTED"


class AbortableAsyncResult(AsyncResult):
    """An :class:`~celeriac.result.AsyncResult` that can ask its task to stop."""

    def is_aborted(self) -> bool:
        """Was the task asked to stop (and has not finished since)?"""
        return self.state == ABORTED

    def abort(self) -> None:
        """Ask the task to stop: its state becomes ABORTED, which the task sees when it calls
        :meth:`AbortableTask.is_aborted`. A task that finished first keeps its result."""
        if self.ready():
            return
        if not self.app.results.keeps_values:
            raise NotImplementedError(
                "abort() needs a result backend the worker reads too; the rpc:// backend "
                "only sends results back to the caller: use redis://, sqlite:// or "
                "postgresql://"
            )
        self.app.results.store(self.id, ABORTED, None, task_name=self._name)


class AbortableTask(Task):
    """A task that checks :meth:`is_aborted` and stops when asked to (use it as ``base``)."""

    abstract = True

    def AsyncResult(self, task_id: str, **kwargs: Any) -> AbortableAsyncResult:
        """The result of an invocation of this task, which can abort it."""
        return AbortableAsyncResult(task_id, app=self.app, task_name=self.name, **kwargs)

    def apply_async(self, *args: Any, **kwargs: Any) -> Any:
        """Send the task; its result can abort it (as Celery's ``delay()`` result can)."""
        result = super().apply_async(*args, **kwargs)
        if type(result) is not AsyncResult:
            return result  # eager mode's result: the run is over
        abortable = self.AsyncResult(result.id, parent=result.parent)
        abortable.ignored = result.ignored
        return abortable

    def is_aborted(self, **kwargs: Any) -> bool:
        """Was this run (or the one with ``task_id=``) asked to stop? One read of the result
        backend: call it between steps of work, not in a tight loop."""
        task_id = kwargs.get("task_id", self.request.id)
        if task_id is None:
            return False
        return self.AsyncResult(task_id).is_aborted()
