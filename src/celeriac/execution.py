"""Running one task: signals, hooks, retries, results, callbacks.

:func:`execute` runs a message's task in whatever thread or process the pool chose and returns
an :class:`Outcome` saying what to do with the message (ack, requeue, dead-letter). The same
:class:`TaskRun` steps serve sync functions, ``async def`` tasks and ``task.apply()``.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import threading
import time
import traceback as tb
import uuid
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from . import signals, states, workflow
from ._state import Context, current_request
from .exceptions import (
    EncodeError,
    Ignore,
    ImproperlyConfigured,
    MaxRetriesExceededError,
    OperationalError,
    Reject,
    Retry,
    SoftTimeLimitExceeded,
    Terminated,
    TimeLimitExceeded,
)
from .message import Message, shown_name
from .plugins import import_path
from .result import EagerResult
from .utils import safe_repr, safe_str

if TYPE_CHECKING:
    from .app import Celeriac
    from .events import EventDispatcher
    from .task import Task

logger = logging.getLogger("celeriac.worker")
#: The line each task's outcome is logged with (Celery's ``celery.app.trace``).
trace = logging.getLogger("celeriac.app.trace")

ACK, REQUEUE, DEAD_LETTER = "ack", "requeue", "dead_letter"
#: What a task may raise and have recorded as its failure. ``SystemExit`` and
#: ``KeyboardInterrupt`` raised by a task's own code are its errors, not the pool's: they
#: must not end a pool thread or process. (A cold shutdown and a cancelled coroutine are
#: neither, and pass through.)
TASK_ERRORS = (Exception, KeyboardInterrupt, SystemExit)


@dataclass(slots=True)
class Outcome:
    """What became of a task, and what the consumer should do with its message."""

    action: str
    state: str
    reason: str | None = None
    runtime: float = 0.0
    requeue_delay: float | None = None

    def __reduce__(self) -> tuple[Any, tuple[Any, ...]]:
        return Outcome, (self.action, self.state, self.reason, self.runtime, self.requeue_delay)


class ExceptionInfo:
    """``einfo`` passed to hooks and signals: the exception and its formatted traceback."""

    def __init__(self, exc: BaseException) -> None:
        self.exception = exc
        self.type = type(exc)
        self.tb = exc.__traceback__
        self.traceback = "".join(tb.format_exception(type(exc), exc, exc.__traceback__))

    def __str__(self) -> str:
        return self.traceback


def stores_results(app: Celeriac, request: Context) -> bool:
    """Is ``request``'s outcome stored? (A chord's header members always store: the join
    reads their results; an eager run stores only with ``store_eager_result``.)"""
    if not app.results.enabled:
        return False
    if request.is_eager:
        return not request.ignore_result
    return not request.ignore_result or bool(request.chord)


def store_retry(app: Celeriac, task: Task, request: Context, retry: Retry) -> None:
    """Record that ``request`` will run again. :meth:`Task.retry` does it before it sends
    the new message, so a fast run of that message cannot be overwritten by it."""
    if stores_results(app, request):
        reason = retry.exc if retry.exc is not None else retry
        app.results.store(
            str(request.id),
            states.RETRY,
            reason,
            ExceptionInfo(reason).traceback,
            task.name,
            request,
            retry=True,
        )
    retry.stored = True


def make_request(
    task: Task,
    message: Message,
    hostname: str | None,
    delivery_info: dict[str, Any],
    is_eager: bool = False,
) -> Context:
    return Context(
        task=task,
        id=message.id,
        args=message.args,
        kwargs=message.kwargs,
        retries=message.retries,
        eta=message.eta,
        expires=message.expires,
        is_eager=is_eager,
        called_directly=False,
        hostname=hostname,
        delivery_info=delivery_info,
        priority=message.priority,
        root_id=message.root_id,
        parent_id=message.parent_id,
        group=message.group_id,
        group_index=message.group_index,
        callbacks=message.callbacks,
        errbacks=message.errbacks,
        chain=message.chain,
        chord=message.chord,
        headers=message.headers,
        stamped_headers=(message.headers or {}).get("stamped_headers"),
        stamps=(message.headers or {}).get("stamps"),
        argsrepr=(message.headers or {}).get("argsrepr"),
        kwargsrepr=(message.headers or {}).get("kwargsrepr"),
        reply_to=message.headers.get("reply_to"),  # rpc://: the sender's reply queue
        origin=message.origin,
        ignore_result=message.ignore_result,
        timelimit=(message.soft_time_limit, message.time_limit),
        correlation_id=message.id,
        properties={
            "correlation_id": message.id,
            "priority": message.priority,
            "content_type": message.content_type,
            **(message.properties or {}),
        },
    )


class Request:
    """Celery's worker request (``celeriac.worker.request.Request``), for the subclasses a
    task names as ``Request`` (a class or ``"module:Class"``), as Celery's custom requests.

    Its hooks are called in the process that ran the task, after celeriac's own handling
    (the result stored, signals sent): :meth:`on_success`, :meth:`on_retry`,
    :meth:`on_failure`, and :meth:`on_timeout` before ``on_failure`` when a soft or hard time
    limit ended the task. The request's fields (``id``, ``name``, ``args``, ``kwargs``,
    ``hostname``, ``delivery_info`` ...) are the task's ``self.request``'s."""

    def __init__(self, context: Context, task: Task) -> None:
        self._context = context
        self.task = task

    def __getattr__(self, name: str) -> Any:
        return getattr(self._context, name)

    @property
    def task_id(self) -> str | None:
        return self._context.id

    @property
    def name(self) -> str:
        return self.task.name

    task_name = name

    @property
    def request_dict(self) -> dict[str, Any]:
        return self._context.as_dict()

    def on_success(self, failed__retval__runtime: tuple[bool, Any, float], **kwargs: Any) -> None:
        """The task returned: ``(False, return value, seconds it ran)``."""

    def on_retry(self, exc_info: ExceptionInfo) -> None:
        """The task will run again."""

    def on_failure(
        self, exc_info: ExceptionInfo, send_failed_event: bool = True, return_ok: bool = False
    ) -> None:
        """The task failed (its failure is already stored)."""

    def on_timeout(self, soft: bool, timeout: float | None) -> None:
        """A soft (``soft=True``) or hard time limit of ``timeout`` seconds ended the task."""


_request_classes: dict[type, type[Request] | None] = {}


def _request_class(task: Task) -> type[Request] | None:
    """The task's own ``Request`` class, or None when it has none."""
    kind = type(task)
    if kind not in _request_classes:
        cls = getattr(kind, "Request", None)
        if isinstance(cls, str):
            cls = import_path(cls, f"{task.name}'s Request class")
        if cls is not None and not (isinstance(cls, type) and issubclass(cls, Request)):
            raise ImproperlyConfigured(
                f"{task.name}.Request must subclass celeriac.worker.request.Request: {cls!r}"
            )
        _request_classes[kind] = None if cls is Request else cls
    return _request_classes[kind]


def _plain_on_success(task: Task) -> bool:
    """Has the task neither an ``on_success`` hook of its own nor its own ``Request``? (The
    base hook is known by name: task.py imports this module, not the other way round.)"""
    hook = getattr(task.on_success, "__func__", None)
    return (
        getattr(hook, "__qualname__", None) == "Task.on_success"
        and getattr(hook, "__module__", None) == _TASK_MODULE
        and _request_class(task) is None
    )


_TASK_MODULE = __name__.rpartition(".")[0] + ".task"


def _custom_request(task: Task, context: Context) -> Request | None:
    """The task's own ``Request`` for this run, or None when it has none."""
    cls = _request_class(task)
    return None if cls is None else cls(context, task)


def _request_hook(task: Task, context: Context, hook: str, *args: Any) -> None:
    try:
        request = _custom_request(task, context)
        if request is not None:
            getattr(request, hook)(*args)
    except Exception:
        logger.exception("Request.%s of %s raised", hook, task.name)


class TaskRun:
    """The steps around one call of a task function."""

    def __init__(self, app: Celeriac, task: Task, request: Context) -> None:
        self.app = app
        self.task = task
        self.request = request
        self.started = 0.0
        self._token: Any = None
        # this process's task-event dispatcher, looked up once per run (None: task events
        # are off, or the run is eager); whether it is enabled is asked at each event
        self._events = None if request.is_eager else app.events.tasks

    @property
    def stores_results(self) -> bool:
        return stores_results(self.app, self.request)

    def begin(self) -> None:
        self._token = current_request.set(self.request)
        self.started = time.monotonic()
        req, task = self.request, self.task
        if signals.task_prerun.has_receivers():
            signals.task_prerun.send(
                sender=task, task_id=req.id, task=task, args=req.args, kwargs=req.kwargs
            )
        task.before_start(str(req.id), req.args, req.kwargs)
        self.event("task-started")
        track = (
            task.track_started
            if task.track_started is not None
            else self.app.conf.task_track_started
        )
        if track and self.stores_results:
            self.app.results.store(
                str(req.id),
                states.STARTED,
                {"pid": _pid(), "hostname": req.hostname},
                task_name=task.name,
                request=req,
            )

    def _dispatcher(self) -> EventDispatcher | None:
        """Where this run's task events go now (None: they are not sent)."""
        events = self._events
        return events if events is not None and events.enabled else None

    def event(self, type: str, **fields: Any) -> None:
        """Send a task event about this run when the worker sends task events."""
        events = self._dispatcher()
        if events is not None:
            fields["uuid"] = self.request.id
            events.put(type, fields)

    def call(self) -> Any:
        """Run the task's function; through the task's class's ``__call__`` when it has its
        own (a Flask app context, a custom base class), as Celery does."""
        task = self.task
        fun = task.run if task.calls_run else task
        return fun(*self.request.args, **self.request.kwargs)

    def end(self, outcome: Outcome, retval: Any) -> Outcome:
        req = self.request
        outcome.runtime = time.monotonic() - self.started
        try:
            self.task.after_return(outcome.state, retval, str(req.id), req.args, req.kwargs, None)
        except Exception:
            logger.exception("after_return of %s raised", self.task.name)
        if signals.task_postrun.has_receivers():
            signals.task_postrun.send(
                sender=self.task,
                task_id=req.id,
                task=self.task,
                args=req.args,
                kwargs=req.kwargs,
                retval=retval,
                state=outcome.state,
            )
        if self._token is not None:
            current_request.reset(self._token)
        return outcome

    # -- outcomes -------------------------------------------------------------------------

    def succeeds_quietly(self) -> bool:
        """Would :meth:`succeeded` call no code but celeriac's own and make no round trip
        (no result to store, no continuation to send, no ``on_success`` hook, ``task_success``
        receiver or custom ``Request``)? Then an event loop can run it in place."""
        req = self.request
        return not (req.callbacks or req.chain or req.chord or self.stores_results) and (
            _plain_on_success(self.task) and not signals.task_success.has_receivers()
        )

    def succeeded(self, retval: Any) -> Outcome:
        req, task = self.request, self.task
        workflow.name_continuation(self.app, req)
        if self.stores_results:
            try:
                self.app.results.store(
                    str(req.id), states.SUCCESS, retval, None, task.name, req, retry=True
                )
            except EncodeError as exc:
                return self.failed(exc)
        task.on_success(retval, str(req.id), req.args, req.kwargs)
        signals.task_success.send(sender=task, result=retval)
        events = self._dispatcher()
        if events is not None:  # the result's repr only when it is sent
            events.put(
                "task-succeeded",
                {
                    "uuid": req.id,
                    "result": "None" if retval is None else safe_repr(retval, 1024),
                    "runtime": time.monotonic() - self.started,
                },
            )
        _request_hook(task, req, "on_success", (False, retval, time.monotonic() - self.started))
        workflow.send_continuation(self.app, req, retval)
        if req.chord and not req.is_eager:
            workflow.on_chord_part_return(self.app, req)
        if trace.isEnabledFor(logging.INFO):  # the repr can cost more than the task
            trace.info(
                "Task %s[%s] succeeded in %.4fs: %s",
                shown_name(task.name, req.headers),
                req.id,
                time.monotonic() - self.started,
                safe_repr(retval, 200),
            )
        return Outcome(ACK, states.SUCCESS)

    def failed(self, exc: BaseException) -> Outcome:
        if isinstance(exc, Retry):
            return self._retried(exc)
        if isinstance(exc, Terminated):
            return self.terminated(exc)
        if isinstance(exc, Ignore):
            return Outcome(ACK, states.IGNORED)
        if isinstance(exc, Reject):
            reason = f"rejected: {exc.reason}" if exc.reason else "rejected by the task"
            signals.task_rejected.send(sender=self.task, message=self.request, exc=exc)
            self.event("task-rejected", requeue=exc.requeue, reason=reason)
            if not exc.requeue:  # it will never run again: FAILURE, as Celery records
                self._record_failure(exc, ExceptionInfo(exc), hook=False)
            return Outcome(REQUEUE if exc.requeue else DEAD_LETTER, states.REJECTED, reason)
        if self.task.should_autoretry(exc):
            try:
                opts = dict(self.task.retry_kwargs)
                countdown = self.task.autoretry_countdown(self.request.retries)
                if countdown is not None:
                    opts.setdefault("countdown", countdown)
                self.task.retry(exc=exc, **opts)
            except Retry as retry:
                return self._retried(retry)
            except BaseException as final:
                exc = final
        return self._failure(exc)

    def terminated(self, exc: Terminated, signum: int | None = None) -> Outcome:
        """Stopped by ``revoke(terminate=True)``: REVOKED, and the message is done with."""
        req, task = self.request, self.task
        if self.app.results.enabled and not req.is_eager:
            self.app.results.store(str(req.id), states.REVOKED, exc, None, task.name, req, True)
        signals.task_revoked.send(
            sender=task, request=req, terminated=True, signum=signum, expired=False
        )
        self.event("task-revoked", terminated=True, signum=signum, expired=False)
        trace.warning("Task %s[%s] terminated: %s", task.name, req.id, exc)
        if req.chord and not req.is_eager:  # counted, so the chord's body fails, not hangs
            workflow.on_chord_part_return(self.app, req)
        return Outcome(ACK, states.REVOKED)

    def guarded(self, step: Callable[[Any], Outcome], value: Any) -> Outcome:
        """``step(value)`` (recording an outcome), never raising: an unreachable result
        backend puts the message back; anything else is an internal error."""
        try:
            return step(value)
        except OperationalError as exc:
            return Outcome(
                REQUEUE,
                states.PENDING,
                f"result backend unavailable: {safe_str(exc)}",
                requeue_delay=1.0,
            )
        except Exception as exc:
            return self.internal_error(exc)

    def internal_error(self, exc: Exception) -> Outcome:
        """celeriac's own steps around the task failed: log it, tell ``task_internal_error``
        receivers, record FAILURE if the backend takes it, and dead-letter the message with
        the reason. The worker goes on."""
        req, task = self.request, self.task
        logger.error(
            "Internal error handling %s[%s]: %s", task.name, req.id, safe_repr(exc), exc_info=exc
        )
        einfo = ExceptionInfo(exc)
        signals.task_internal_error.send(
            sender=task,
            task_id=req.id,
            args=req.args,
            kwargs=req.kwargs,
            request=req,
            exception=exc,
            traceback=exc.__traceback__,
            einfo=einfo,
        )
        if self.app.results.enabled and not req.is_eager:
            try:
                self.app.results.store_failure(str(req.id), exc, task.name, None, einfo.traceback)
            except Exception as store_exc:
                logger.warning("could not store %s's failure: %s", req.id, safe_repr(store_exc))
        return Outcome(
            DEAD_LETTER, states.FAILURE, f"internal error: {type(exc).__name__}: {safe_str(exc)}"
        )

    def _retried(self, retry: Retry) -> Outcome:
        req, task = self.request, self.task
        reason = retry.exc if retry.exc is not None else retry
        einfo = ExceptionInfo(reason)
        if not retry.stored:  # raised by the task itself, not by Task.retry()
            store_retry(self.app, task, req, retry)
        task.on_retry(reason, str(req.id), req.args, req.kwargs, einfo)
        signals.task_retry.send(sender=task, request=req, reason=reason, einfo=einfo)
        self.event("task-retried", exception=safe_repr(reason, 1024), traceback=einfo.traceback)
        _request_hook(task, req, "on_retry", einfo)
        trace.info(
            "Task %s[%s] retry: Retry %s: %s",
            shown_name(task.name, req.headers),
            req.id,
            retry.humanize(),
            safe_repr(reason),
        )
        return Outcome(ACK, states.RETRY)

    def _failure(self, exc: BaseException) -> Outcome:
        req, task = self.request, self.task
        einfo = ExceptionInfo(exc)
        self._record_failure(exc, einfo)
        name = shown_name(task.name, req.headers)
        if isinstance(exc, task.throws):  # expected: one line, no traceback
            trace.info("Task %s[%s] raised expected: %s", name, req.id, safe_repr(exc))
        else:
            trace.error(
                "Task %s[%s] raised unexpected: %s\n%s",
                name,
                req.id,
                safe_repr(exc),
                einfo.traceback,
            )
        exhausted = req.retries_exhausted or isinstance(exc, MaxRetriesExceededError)
        if exhausted:
            return Outcome(
                DEAD_LETTER,
                states.FAILURE,
                f"max retries ({req.retries}) exceeded: {type(exc).__name__}: {safe_str(exc)}",
            )
        acks = task.acks_on_failure_or_timeout
        if acks is None:
            acks = self.app.conf.task_acks_on_failure_or_timeout
        if not acks:
            reason = f"failed: {type(exc).__name__}: {safe_str(exc)}"
            return Outcome(DEAD_LETTER, states.FAILURE, reason)
        return Outcome(ACK, states.FAILURE)

    def _record_failure(self, exc: BaseException, einfo: ExceptionInfo, hook: bool = True) -> None:
        """Store the failure, call ``on_failure`` (with ``hook``), ``task_failure`` receivers
        and errbacks, and fail what can no longer run after it."""
        req, task = self.request, self.task
        even_if_ignored = (
            task.store_errors_even_if_ignored or self.app.conf.task_store_errors_even_if_ignored
        )
        store = self.stores_results or (
            even_if_ignored and not req.is_eager and self.app.results.enabled
        )
        if store:
            self.app.results.store_failure(
                str(req.id), exc, task.name, req, einfo.traceback, retry=True
            )
        if hook:
            try:
                task.on_failure(exc, str(req.id), req.args, req.kwargs, einfo)
            except Exception:
                logger.exception("on_failure of %s raised", task.name)
        signals.task_failure.send(
            sender=task,
            task_id=req.id,
            exception=exc,
            args=req.args,
            kwargs=req.kwargs,
            traceback=exc.__traceback__,
            einfo=einfo,
        )
        self.event("task-failed", exception=safe_repr(exc, 1024), traceback=einfo.traceback)
        if hook:
            if isinstance(exc, SoftTimeLimitExceeded | TimeLimitExceeded):
                soft = isinstance(exc, SoftTimeLimitExceeded)
                limit = req.timelimit[0 if soft else 1] or (
                    task.soft_time_limit if soft else task.time_limit
                )
                _request_hook(task, req, "on_timeout", soft, limit)
            _request_hook(task, req, "on_failure", einfo)
        workflow.call_errbacks(self.app, req, exc, einfo.traceback)
        if not req.is_eager:
            workflow.fail_downstream(self.app, req, exc, einfo.traceback)
            if req.chord:
                workflow.on_chord_part_return(self.app, req)


def _pid() -> int:
    import os

    return os.getpid()


# -- drivers ----------------------------------------------------------------------------------

_loops = threading.local()


def run_coroutine(coro: Coroutine[Any, Any, Any]) -> Any:
    """Run an ``async def`` task's coroutine to completion from synchronous code."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        loop = getattr(_loops, "loop", None)
        if loop is None or loop.is_closed():
            loop = _loops.loop = asyncio.new_event_loop()
        return loop.run_until_complete(coro)
    # Called from inside a running loop (apply() in async code): use a private thread.
    box: dict[str, Any] = {}
    thread = threading.Thread(target=lambda: box.update(v=asyncio.run(coro)))
    thread.start()
    thread.join()
    return box.get("v")


def close_loop() -> None:
    """Close the event loop :func:`run_coroutine` kept for this thread (a pool thread that
    ends, a pool that stops)."""
    loop = getattr(_loops, "loop", None)
    _loops.loop = None
    if loop is not None and not loop.is_closed() and not loop.is_running():
        loop.close()


def execute(
    app: Celeriac, task: Task, message: Message, hostname: str | None, delivery_info: dict[str, Any]
) -> Outcome:
    """Run ``message`` synchronously here (pool thread, child process or main thread)."""
    run = TaskRun(app, task, make_request(task, message, hostname, delivery_info))
    retval: Any = None
    try:
        run.begin()
        retval = run.call()
        if inspect.isawaitable(retval):
            retval = run_coroutine(retval)  # type: ignore[arg-type]
    except OperationalError as exc:
        outcome = _backend_trouble(run, exc)
    except TASK_ERRORS as exc:
        outcome = run.guarded(run.failed, exc)
    else:
        outcome = run.guarded(run.succeeded, retval)
    return run.guarded(lambda o: run.end(o, retval), outcome)


async def execute_async(
    app: Celeriac,
    task: Task,
    message: Message,
    hostname: str | None,
    delivery_info: dict[str, Any],
    limits: tuple[float | None, float | None] = (None, None),
) -> Outcome:
    """Run ``message`` on the running event loop; sync tasks go to a thread.

    A time limit cancels an ``async def`` task's coroutine (it sees CancelledError) and is
    recorded as SoftTimeLimitExceeded / TimeLimitExceeded."""
    run = TaskRun(app, task, make_request(task, message, hostname, delivery_info))
    retval: Any = None
    try:
        run.begin()  # in the loop's context, so end() can reset the request there
        if task.is_async:
            retval = await _limited(run.call(), *limits)
        else:
            retval = await asyncio.to_thread(run.call)
            if inspect.isawaitable(retval):
                retval = await retval
    except OperationalError as exc:
        outcome = _backend_trouble(run, exc)
    except TASK_ERRORS as exc:
        outcome = await asyncio.to_thread(run.guarded, run.failed, exc)
    else:
        if run.succeeds_quietly():  # nothing that could block the loop: no thread hop
            outcome = run.guarded(run.succeeded, retval)
        else:
            outcome = await asyncio.to_thread(run.guarded, run.succeeded, retval)
    return run.guarded(lambda o: run.end(o, retval), outcome)


async def _limited(coro: Any, soft: float | None, hard: float | None) -> Any:
    if not soft and not hard:  # the usual case
        return await coro
    limit = min(x for x in (soft, hard) if x)
    try:
        return await asyncio.wait_for(coro, limit)
    except TimeoutError:
        if soft and limit == soft:
            raise SoftTimeLimitExceeded(f"soft time limit ({soft}s) exceeded") from None
        raise TimeLimitExceeded(f"time limit ({hard}s) exceeded") from None


def _backend_trouble(run: TaskRun, exc: OperationalError) -> Outcome:
    logger.error(
        "Task %s[%s]: broker or backend unavailable (%s); it will run again",
        run.task.name,
        run.request.id,
        safe_str(exc),
    )
    return Outcome(REQUEUE, states.PENDING, safe_str(exc), requeue_delay=1.0)


def execute_eagerly(
    task: Task,
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
    task_id: str | None = None,
    link: Any = None,
    link_error: Any = None,
    throw: bool | None = None,
    retries: int = 0,
    options: dict[str, Any] | None = None,
) -> EagerResult:
    """``task.apply()``: run here, retrying at once when the task asks to, like Celery."""
    app = task.app
    options = options or {}
    parent = current_request.get()
    task_id = task_id or str(uuid.uuid4())
    message = Message(
        id=task_id,
        task=task.name,
        args=list(args),
        kwargs=dict(kwargs),
        root_id=(parent.root_id or parent.id) if parent is not None else task_id,
        parent_id=parent.id if parent is not None else None,
        retries=retries,
        priority=options.get("priority") or 0,
        callbacks=[dict(s) for s in _as_list(link)] or None,
        errbacks=[dict(s) for s in _as_list(link_error)] or None,
    )
    if throw is None:
        throw = app.conf.task_eager_propagates
    store = task.store_eager_result
    if store is None:
        store = app.conf.task_store_eager_result
    ignored = task.ignore_result
    if ignored is None:
        ignored = app.conf.task_ignore_result
    while True:
        request = make_request(task, message, "eager", {"is_eager": True}, is_eager=True)
        request.args = args  # as given, as Celery's hooks and signals see them
        request.ignore_result = bool(ignored) or not store
        run = TaskRun(app, task, request)
        retval: Any = None
        error: BaseException | None = None
        try:
            run.begin()
            retval = run.call()
            if inspect.isawaitable(retval):
                retval = run_coroutine(retval)  # type: ignore[arg-type]
        except Exception as exc:
            error = exc
            outcome = run.failed(exc)
        else:
            outcome = run.succeeded(retval)
        run.end(outcome, retval)
        if outcome.state != states.RETRY:
            break
        message.retries += 1
    if error is not None and outcome.state == states.FAILURE:
        if throw:
            raise error
        return EagerResult(
            message.id,
            error,
            states.FAILURE,
            ExceptionInfo(error).traceback,
            task.name,
            app,
            message.retries,
        )
    return EagerResult(message.id, retval, outcome.state, None, task.name, app, message.retries)


def _as_list(value: Any) -> list[Any]:
    if not value:
        return []
    return list(value) if isinstance(value, list | tuple) else [value]
