"""The exceptions celeriac raises, under Celery's names.

Everything celeriac raises on its own account derives from :class:`CeleriacError`; driver
errors (sqlite3, redis, pika, psycopg) are translated at the broker boundary into
:class:`OperationalError`.
"""

from __future__ import annotations

import builtins
from typing import Any


class CeleriacError(Exception):
    """Base class of celeriac's own errors."""


#: Celery's name for the base of its exceptions.
CeleryError = CeleriacError


class BackendError(CeleriacError):
    """The result backend could not be read or written (Celery's name; celeriac raises
    :class:`OperationalError`, a subclass, for driver errors)."""


class BackendGetMetaError(BackendError):
    """A task's state could not be read (Celery's name); ``task_id`` names the task."""

    def __init__(self, *args: Any, task_id: str = "", **kwargs: Any) -> None:
        super().__init__(*args)
        self.task_id = task_id


class BackendStoreError(BackendError):
    """A task's state could not be stored (Celery's name); ``state`` and ``task_id`` say
    which."""

    def __init__(self, *args: Any, state: str = "", task_id: str = "", **kwargs: Any) -> None:
        super().__init__(*args)
        self.state = state
        self.task_id = task_id


class ImproperlyConfigured(CeleriacError):
    """A setting, URL or app path is wrong."""


class OperationalError(BackendError):
    """The broker or result backend could not be reached or refused an operation."""


class NotRegistered(CeleriacError, KeyError):
    """No task of that name is registered."""

    def __str__(self) -> str:
        return f"task {self.args[0]!r} is not registered" if self.args else "task not registered"


class AlreadyRegistered(CeleriacError):
    """A task of that name is already registered (Celery's name; registering again
    replaces the task, as in Celery)."""


class TimeoutError(CeleriacError, builtins.TimeoutError):
    """``AsyncResult.get()`` gave up waiting."""


class TaskError(CeleriacError):
    """A task failed with an exception that cannot be rebuilt here.

    ``exc_type`` names the remote type (``module.Name``); the message is the remote message.
    """

    def __init__(self, exc_type: str, message: str = "") -> None:
        super().__init__(exc_type, message)
        self.exc_type = exc_type
        self.message = message

    def __str__(self) -> str:
        return f"{self.exc_type}: {self.message}" if self.message else self.exc_type


class UnpickleableExceptionWrapper(TaskError):
    """A task failed with an exception whose type is known here but cannot be made again
    from what was stored (its constructor refuses the stored arguments). Celery's name (from
    ``celery.utils.serialization``) and attributes: ``exc_module``, ``exc_cls_name``,
    ``exc_args`` and ``text``."""

    def __init__(
        self, exc_module: str, exc_cls_name: str, exc_args: Any = (), text: str | None = None
    ) -> None:
        self.exc_module = exc_module
        self.exc_cls_name = exc_cls_name
        self.exc_args = tuple(exc_args)
        self.text = " ".join(str(a) for a in self.exc_args) if text is None else text
        super().__init__(f"{exc_module}.{exc_cls_name}", self.text)
        self.args = (exc_module, exc_cls_name, self.exc_args, self.text)


class TaskPredicate(CeleriacError):
    """Base of the exceptions a task raises to steer the worker."""


class Retry(TaskPredicate):
    """Raised by ``Task.retry()``: the task is published again to run later."""

    #: the RETRY state was recorded already (by ``Task.retry()``, before it sent the message)
    stored = False

    def __init__(
        self,
        message: str | None = None,
        exc: BaseException | None = None,
        when: float | None = None,
        **kwargs: Any,
    ) -> None:
        self.message = message
        self.exc = exc
        self.when = when
        super().__init__(message or (_describe(exc) if exc is not None else "retry"))

    def humanize(self) -> str:
        return f"in {self.when:.3g}s" if self.when is not None else "now"


class Reject(TaskPredicate):
    """Reject the message: dead-letter it, or put it back when ``requeue=True``."""

    def __init__(self, reason: Any = None, requeue: bool = False) -> None:
        self.reason = reason
        self.requeue = requeue
        super().__init__(reason, requeue)


class Ignore(TaskPredicate):
    """Acknowledge the message without recording a state."""


class MaxRetriesExceededError(CeleriacError):
    """The task asked to retry more often than ``max_retries`` allows."""


class SoftTimeLimitExceeded(CeleriacError):
    """Raised inside a task when its ``soft_time_limit`` passes."""


class TimeLimitExceeded(CeleriacError):
    """Recorded when a task is stopped at its hard ``time_limit``."""


class WorkerLostError(CeleriacError):
    """The process running the task died before it finished."""


class TaskRevokedError(CeleriacError):
    """The task was revoked (or expired) before it could run."""


class Terminated(TaskRevokedError):
    """Raised in (or recorded for) a running task stopped by ``revoke(terminate=True)``."""


class ChordError(CeleriacError):
    """A task in a chord's header failed."""


class InvalidTaskError(CeleriacError):
    """A message could not be decoded or does not describe a task."""


class ContentDisallowed(InvalidTaskError):
    """A message used a serializer that is not in ``accept_content``."""


class QueueNotFound(ImproperlyConfigured):
    """A task was routed to a queue that is not declared (``task_create_missing_queues=False``)."""


class EncodeError(CeleriacError, TypeError):
    """A value could not be serialised with the chosen serializer."""


class DecodeError(InvalidTaskError):
    """Bytes could not be decoded with the serializer they claim to use."""


class SecurityError(CeleriacError):
    """A message failed a security check (Celery's name)."""


class IncompleteStream(CeleriacError):
    """Data ended before it was whole (Celery's name)."""


class WorkerShutdown(SystemExit):
    """Raised to stop a worker warm. In celeriac a task that raises it fails like any task
    raising ``SystemExit``, and the worker goes on: stop it with ``control.shutdown``."""


class WorkerTerminate(SystemExit):
    """Raised to stop a worker cold (see :class:`WorkerShutdown`)."""


class CeleryCommandException(CeleriacError):
    """A command failed; ``exit_code`` is the status to exit with."""

    def __init__(self, message: str, exit_code: int) -> None:
        super().__init__(message)
        self.message = message
        self.exit_code = exit_code


class CeleryWarning(UserWarning):
    """Base of the warnings with Celery's names."""


class DuplicateTaskNameWarning(CeleryWarning):
    """Two callables were registered under one task name."""


class FixupWarning(CeleryWarning):
    """A framework integration could not be set up."""


class NotConfigured(CeleryWarning):
    """No configuration was found."""


class SecurityWarning(CeleryWarning):
    """A setting weakens security."""


class AlwaysEagerIgnored(CeleryWarning):
    """Eager mode asked for where it does not apply."""


class DuplicateNodenameWarning(CeleryWarning):
    """Two workers answer with the same node name."""


class CPendingDeprecationWarning(PendingDeprecationWarning):
    """A Celery feature that will go away."""


class CDeprecationWarning(DeprecationWarning):
    """A Celery feature that is going away."""


def reraise(tp: type[BaseException] | None, value: BaseException, tb: Any = None) -> None:
    """Raise ``value`` again, with the traceback ``tb`` when one is given."""
    if tb is not None and value.__traceback__ is not tb:
        raise value.with_traceback(tb)
    raise value


def _describe(exc: BaseException) -> str:
    try:
        return repr(exc)
    except Exception:  # a user's exception whose __repr__ fails
        return type(exc).__name__
