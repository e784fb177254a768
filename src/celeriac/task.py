"""Tasks: ``@app.task`` turns a function into a :class:`Task`, Celery-style."""

from __future__ import annotations

import contextvars
import datetime as dt
import functools
import inspect
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, ClassVar

from . import states
from ._state import Context, current_request, get_current_app
from .canvas import Signature, chain, chunks, group, maybe_signature, tail, xmap, xstarmap
from .exceptions import (
    Ignore,
    ImproperlyConfigured,
    MaxRetriesExceededError,
    OperationalError,
    Retry,
)
from .execution import execute_eagerly, store_retry
from .keys import CHORD_ADDED_COUNT, CHORD_ADDED_KEY
from .rates import parse_rate
from .result import AsyncResult, allow_join_result
from .utils.pydantic_args import pydantic_task
from .utils.time import get_exponential_backoff_interval, to_unix

if TYPE_CHECKING:
    from .app import Celeriac
    from .result import AsyncResult, EagerResult


#: the requests :meth:`Task.push_request` set, to be reset by ``pop_request`` in turn
_pushed: contextvars.ContextVar[tuple[contextvars.Token[Context | None], ...]] = (
    contextvars.ContextVar("celeriac_pushed_requests", default=())
)


class Task:
    """A task type. ``@app.task`` makes a subclass whose ``run`` is the decorated function,
    and registers one instance of it. Class attributes are the task's options."""

    #: Celery's names for these errors on the task (``except self.MaxRetriesExceededError:``)
    MaxRetriesExceededError = MaxRetriesExceededError
    OperationalError = OperationalError

    name: ClassVar[str] = ""
    app: ClassVar[Celeriac]
    typing: ClassVar[bool] = True
    #: expected exceptions: logged without a traceback when they fail the task
    throws: ClassVar[tuple[type[BaseException], ...]] = ()
    trail: ClassVar[bool] = True
    send_events: ClassVar[bool] = True
    max_retries: ClassVar[int | None] = 3
    default_retry_delay: ClassVar[float] = 180
    autoretry_for: ClassVar[tuple[type[BaseException], ...]] = ()
    dont_autoretry_for: ClassVar[tuple[type[BaseException], ...]] = ()
    retry_kwargs: ClassVar[dict[str, Any]] = {}
    retry_backoff: ClassVar[bool | float] = False
    retry_backoff_max: ClassVar[float] = 600
    retry_jitter: ClassVar[bool] = True
    #: Extra condition for automatic retries: ``retry_when(exc) -> bool``.
    retry_when: ClassVar[Any] = None
    ignore_result: ClassVar[bool | None] = None
    store_errors_even_if_ignored: ClassVar[bool] = False
    #: store the results of ``apply()`` and eager calls (None: ``task_store_eager_result``)
    store_eager_result: ClassVar[bool | None] = None
    acks_late: ClassVar[bool | None] = None
    acks_on_failure_or_timeout: ClassVar[bool | None] = None
    reject_on_worker_lost: ClassVar[bool | None] = None
    queue: ClassVar[str | None] = None
    priority: ClassVar[int | None] = None
    serializer: ClassVar[str | None] = None
    expires: ClassVar[float | dt.datetime | None] = None
    time_limit: ClassVar[float | None] = None
    soft_time_limit: ClassVar[float | None] = None
    track_started: ClassVar[bool | None] = None
    rate_limit: ClassVar[str | None] = None
    #: "worker" (Celery's meaning: per worker) or "global" (one budget for all workers).
    rate_limit_scope: ClassVar[str] = "worker"
    #: Shortcut for ``rate_limit=... , rate_limit_scope="global"``.
    global_rate_limit: ClassVar[str | None] = None
    bind: ClassVar[bool] = False
    is_async: ClassVar[bool] = False
    #: calling the task is calling ``run``: its class has no ``__call__`` of its own
    calls_run: ClassVar[bool] = True

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        cls.calls_run = cls.__call__ is Task.__call__

    @classmethod
    def on_bound(cls, app: Celeriac) -> None:
        """Called with the app once a task of this class is registered with it and the app
        is configured (at its finalize, or at once after): a custom Task class's hook."""

    def run(self, *args: Any, **kwargs: Any) -> Any:
        raise NotImplementedError("tasks must define run()")

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        """Call the task's function directly, in this process."""
        return self.run(*args, **kwargs)

    @property
    def backend(self) -> Any:
        """The app's result backend, with Celery's methods (``store_result``, ...)."""
        return self.app.backend

    # -- the request --------------------------------------------------------------------

    @property
    def request(self) -> Context:
        req = current_request.get()
        if req is not None and req.task is self:
            return req
        return Context(task=self, called_directly=True)

    def push_request(self, *args: Any, **fields: Any) -> None:
        """Make :attr:`request` a request with these fields (a dict, keywords or both) until
        :meth:`pop_request`, in this thread: Celery's way for a test to run a bound task's
        body with a request of its own (``task.push_request(retries=2); task.run(...)``)."""
        context = Context(**{**dict(*args), **fields, "task": self})
        _pushed.set((*_pushed.get(), current_request.set(context)))

    def pop_request(self) -> None:
        """Undo the last :meth:`push_request`."""
        pushed = _pushed.get()
        if not pushed:
            raise IndexError("pop_request() without a push_request() before it")
        current_request.reset(pushed[-1])
        _pushed.set(pushed[:-1])

    # -- calling ------------------------------------------------------------------------

    def delay(self, *args: Any, **kwargs: Any) -> AsyncResult:
        """Send the task with these arguments; shortcut for ``apply_async(args, kwargs)``."""
        return self.apply_async(args, kwargs)

    def apply_async(
        self,
        args: Any = None,
        kwargs: dict[str, Any] | None = None,
        task_id: str | None = None,
        link: Any = None,
        link_error: Any = None,
        **options: Any,
    ) -> AsyncResult:
        """Send the task to a worker. Options as Celery: countdown, eta, expires, priority
        (0-9, 9 highest), queue, headers, ignore_result, retry, retry_policy, serializer..."""
        if self.soft_time_limit and self.time_limit and self.soft_time_limit > self.time_limit:
            raise ValueError("soft_time_limit must be less than or equal to time_limit")
        args = tuple(args or ())
        kwargs = dict(kwargs or {})
        if self.typing:
            self._check_arguments(args, kwargs)
        if self.app.conf.task_always_eager:
            return self.apply(
                args, kwargs, task_id=task_id, link=link, link_error=link_error, **options
            )
        if "shadow" not in options and type(self).shadow_name is not Task.shadow_name:
            options["shadow"] = self.shadow_name(args, kwargs, options)
        return self.app.send_task(
            self.name,
            args,
            kwargs,
            task_id=task_id,
            link=link,
            link_error=link_error,
            task=self,
            **options,
        )

    def shadow_name(self, args: Any, kwargs: Any, options: dict[str, Any]) -> str | None:
        """The name the worker's log lines give this invocation (None: the task's own), when
        ``apply_async`` is given no ``shadow``; override it for names of your own."""
        return None

    def apply(
        self,
        args: Any = None,
        kwargs: dict[str, Any] | None = None,
        task_id: str | None = None,
        link: Any = None,
        link_error: Any = None,
        throw: bool | None = None,
        retries: int = 0,
        **options: Any,
    ) -> EagerResult:
        """Run the task here and now; returns an :class:`~celeriac.result.EagerResult`."""
        return execute_eagerly(
            self,
            tuple(args or ()),
            dict(kwargs or {}),
            task_id=task_id,
            link=link,
            link_error=link_error,
            throw=throw,
            retries=retries,
            options=options,
        )

    def _check_arguments(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
        try:
            sig, positional = _call_signature(type(self))  # type: ignore[arg-type]
        except (TypeError, ValueError):
            return
        if positional is not None and not kwargs and positional[0] <= len(args) <= positional[1]:
            return  # the common call, decided without binding
        try:
            sig.bind(*args, **kwargs)
        except TypeError as exc:
            raise TypeError(f"{self.name}(): {exc}") from None

    def AsyncResult(self, task_id: str, **kwargs: Any) -> AsyncResult:
        """The result of an invocation of this task."""
        return AsyncResult(task_id, app=self.app, task_name=self.name, **kwargs)

    # -- signatures ---------------------------------------------------------------------

    def signature(self, args: Any = None, *starargs: Any, **kwargs: Any) -> Signature:
        """A :class:`~celeriac.canvas.Signature` of this task."""
        return Signature(self, args, *starargs, **kwargs)

    subtask = signature

    def s(self, *args: Any, **kwargs: Any) -> Signature:
        """Signature shortcut: ``task.s(1, 2)``."""
        return self.signature(args, kwargs)

    def si(self, *args: Any, **kwargs: Any) -> Signature:
        """Immutable signature: ignores the result of a parent in a chain."""
        return self.signature(args, kwargs, immutable=True)

    def signature_from_request(
        self,
        request: Context | None = None,
        args: Any = None,
        kwargs: dict[str, Any] | None = None,
        queue: str | None = None,
        **extra_options: Any,
    ) -> Signature:
        """A signature that sends the running invocation (or ``request``) again as it was
        sent: the same id, workflow, links, limits, priority and queue, with ``args``,
        ``kwargs``, ``queue`` and ``extra_options`` in place of its own where given."""
        request = self.request if request is None else request
        options = {**request.as_execution_options(), **extra_options}
        if request.priority is not None:
            options.setdefault("priority", request.priority)
        queue = queue or (request.delivery_info or {}).get("routing_key")
        if queue:
            options["queue"] = queue
        return self.signature(
            request.args if args is None else args,
            request.kwargs if kwargs is None else kwargs,
            **{k: v for k, v in options.items() if v is not None},
        )

    subtask_from_request = signature_from_request

    def map(self, it: Any) -> Signature:
        """One task calling this one on each item: ``[task(x) for x in it]``."""
        return xmap(self.s(), it, app=self.app)

    def starmap(self, it: Any) -> Signature:
        """One task calling this one on each argument tuple: ``[task(*x) for x in it]``."""
        return xstarmap(self.s(), it, app=self.app)

    def chunks(self, it: Any, n: int) -> Signature:
        """Argument tuples split into chunks of ``n``, each chunk one task, run as a group."""
        return chunks(self.s(), it, n, app=self.app)

    # -- inside a running task ----------------------------------------------------------

    def retry(
        self,
        args: Any = None,
        kwargs: dict[str, Any] | None = None,
        exc: BaseException | None = None,
        throw: bool = True,
        eta: dt.datetime | None = None,
        countdown: float | None = None,
        max_retries: int | None = None,
        **options: Any,
    ) -> Retry:
        """Send this invocation again to run later, and raise :class:`Retry`.

        Past ``max_retries`` it raises ``exc`` (or MaxRetriesExceededError) instead."""
        request = self.request
        if request.called_directly:
            if exc is not None:
                raise exc
            raise RuntimeError(f"{self.name}.retry() called outside a worker or apply()")
        limit = self.max_retries if max_retries is None else max_retries
        if limit is not None and request.retries >= limit:
            request.retries_exhausted = True
            if exc is not None:
                raise exc
            raise MaxRetriesExceededError(
                f"Can't retry {self.name}[{request.id}] args:{request.args} "
                f"kwargs:{request.kwargs}: max retries ({limit}) exceeded"
            )
        if eta is None and countdown is None:
            countdown = self.default_retry_delay
        when = countdown
        if eta is not None:
            when = max(0.0, to_unix(eta, self.app.timezone) - time.time())
        ret = Retry(exc=exc, when=when)
        new_args = request.args if args is None else args
        new_kwargs = request.kwargs if kwargs is None else kwargs
        if not request.is_eager:  # eagerly, apply() itself runs the task again
            store_retry(self.app, self, request, ret)
            self.app.send_task(
                self.name,
                new_args,
                new_kwargs,
                task_id=request.id,
                retries=request.retries + 1,
                countdown=when,
                queue=options.pop("queue", None) or request.delivery_info.get("routing_key"),
                priority=options.pop("priority", request.priority),
                root_id=request.root_id,
                parent_id=request.parent_id,
                group_id=request.group,
                group_index=request.group_index,
                callbacks=request.callbacks,
                errbacks=request.errbacks,
                chain=request.chain,
                chord=request.chord,
                headers=request.headers,
                time_limit=request.timelimit[1],
                soft_time_limit=request.timelimit[0],
                add_to_parent=False,
                task=self,
                **options,
            )
        if throw:
            raise ret
        return ret

    def replace(self, sig: Any) -> Any:
        """Replace this running task with ``sig``, which takes over its id, callbacks,
        errbacks, the rest of its chain and its place in a group or chord: whoever waits
        on this task's result gets the replacement's. A group is replaced by a chord that
        gives the list of its results.

        In a worker it sends ``sig`` and raises :class:`~celeriac.exceptions.Ignore`
        (write ``return self.replace(sig)``); run eagerly, it runs ``sig`` and returns its
        result."""
        request = self.request
        new = maybe_signature(sig, self.app)
        if new is None:
            raise TypeError("replace() needs a signature")
        new = new.clone()
        if "chord" in new.options:
            raise ImproperlyConfigured("A signature replacing a task must not be part of a chord")
        if isinstance(new, chain) and not new.tasks:
            raise ImproperlyConfigured("Cannot replace with an empty chain")
        if isinstance(tail(new), group):  # its result must be one task's, under this id
            new = new | self.app.tasks["celeriac.accumulate"].s(index=0)
        if request.is_eager:
            return self.on_replace(new)
        for callback in request.callbacks or ():
            new.link(Signature.from_dict(callback, app=self.app))
        for errback in request.errbacks or ():
            new.link_error(Signature.from_dict(errback, app=self.app))
        new.freeze(request.id)
        place = {"group_id": request.group, "group_index": request.group_index}
        if request.chord:
            place["chord"] = request.chord
        new._set_tail({k: v for k, v in place.items() if v is not None})
        if request.chain:
            after = [Signature.from_dict(d, app=self.app) for d in reversed(request.chain)]
            new = chain(new, *after, app=self.app)
        return self.on_replace(new)

    def on_replace(self, sig: Signature) -> Any:
        """Called by :meth:`replace` with the replacement, ready to send; an override must
        return ``super().on_replace(sig)``."""
        request = self.request
        if request.is_eager:
            with allow_join_result():
                return sig.apply().get()
        sig.apply_async(root_id=request.root_id, parent_id=request.parent_id, add_to_parent=False)
        raise Ignore("Replaced by new task")

    def add_to_chord(self, sig: Any, lazy: bool = False) -> Any:
        """Add ``sig`` to the chord this task is a header member of: the chord's body waits
        for it too and gets its result after the others'. Returns its result, or with
        ``lazy`` the signature, for the caller to send."""
        request = self.request
        join, group_id = request.chord, request.group
        if not join or not group_id:
            raise ValueError("the current task is not a member of any chord")
        new = maybe_signature(sig, self.app)
        if new is None:
            raise TypeError("add_to_chord() needs a signature")
        if isinstance(tail(new), group):  # it must count as one member
            new = new | self.app.tasks["celeriac.accumulate"].s(index=0)
        result = new.freeze()
        results = self.app.results
        backend, expires = results.backend, results.expires_in
        n = backend.incr(CHORD_ADDED_COUNT.format(group_id), 1, expires)
        backend.add_to_set(CHORD_ADDED_KEY.format(group_id), f"{n}:{result.id}", expires)
        # an added member counts under an index of its own, below the header's
        new._set_tail({"group_id": group_id, "group_index": -n, "chord": join})
        return new if lazy else new.apply_async()

    def send_event(self, type_: str, retry: bool = True, **fields: Any) -> None:
        """Send a custom event about the task running now (``uuid`` is its id), such as
        ``self.send_event("task-progress", current=3, total=10)``: monitors see it in the
        event stream, whether task events are on or not, as Celery's."""
        req, events = self.request, self.app.events
        fields.pop("retry_policy", None)
        if events.tasks is not None and events.tasks.enabled:  # in order with the task's own
            events.tasks.send(type_, uuid=req.id, **fields)
            return
        events.shared_dispatcher(hostname=req.hostname).send(type_, uuid=req.id, **fields)

    def delay_on_commit(self, *args: Any, **kwargs: Any) -> None:
        """:meth:`delay` once the current Django database transaction commits (at once
        outside a transaction or without Django), as Celery's Django task class does."""
        self.apply_async_on_commit(args, kwargs)

    def apply_async_on_commit(self, args: Any = None, kwargs: Any = None, **options: Any) -> None:
        """:meth:`apply_async` once the current Django database transaction commits."""
        send = functools.partial(self.apply_async, args, kwargs, **options)
        try:
            from django.conf import settings
            from django.db import transaction
        except ImportError:
            send()
            return
        if settings.configured:
            transaction.on_commit(send)
        else:
            send()

    def autoretry_countdown(self, retries: int) -> float | None:
        """The countdown ``autoretry_for`` uses, from retry_backoff* (None: default delay)."""
        if not self.retry_backoff:
            return None
        factor = 1.0 if self.retry_backoff is True else float(self.retry_backoff)
        return get_exponential_backoff_interval(
            factor, retries, self.retry_backoff_max, self.retry_jitter
        )

    def should_autoretry(self, exc: BaseException) -> bool:
        if not self.autoretry_for or not isinstance(exc, self.autoretry_for):
            return False
        if self.dont_autoretry_for and isinstance(exc, self.dont_autoretry_for):
            return False
        predicate: Any = self.retry_when
        return predicate is None or bool(predicate(exc))

    def update_state(
        self, task_id: str | None = None, state: str | None = None, meta: Any = None, **kwargs: Any
    ) -> None:
        """Record a custom state (progress) for this or another invocation."""
        task_id = task_id or self.request.id
        if not task_id:
            raise RuntimeError("update_state() needs a task_id outside a running task")
        self.app.results.store(
            task_id,
            state or states.STARTED,
            meta,
            task_name=self.name,
            request=self.request if task_id == self.request.id else None,
        )
        self.app.events.send_task_event(
            "task-state", uuid=task_id, state=state or states.STARTED, meta=meta
        )

    # -- hooks a Task subclass may override ----------------------------------------------

    def before_start(self, task_id: str, args: Any, kwargs: Any) -> None:
        """Called before the task runs."""

    def on_success(self, retval: Any, task_id: str, args: Any, kwargs: Any) -> None:
        """Called when the task succeeded."""

    def on_failure(
        self, exc: BaseException, task_id: str, args: Any, kwargs: Any, einfo: Any
    ) -> None:
        """Called when the task failed."""

    def on_retry(
        self, exc: BaseException, task_id: str, args: Any, kwargs: Any, einfo: Any
    ) -> None:
        """Called when the task is to be retried."""

    def after_return(
        self, status: str, retval: Any, task_id: str, args: Any, kwargs: Any, einfo: Any
    ) -> None:
        """Called after the task returned, whatever the outcome."""

    def __repr__(self) -> str:
        return f"<@task: {self.name}>"

    def __reduce__(self) -> Any:
        # Tasks travel (to pool processes, in signatures) by name.
        return (_task_by_name, (self.name,))


def _task_by_name(name: str) -> Task:
    return get_current_app().tasks[name]


@functools.cache
def _call_signature(cls: type[Task]) -> tuple[inspect.Signature, tuple[int, int] | None]:
    """The arguments a task's function takes (without ``self`` when bound), and when they
    are all plain positional-or-keyword ones, how many positional arguments it accepts."""
    run = inspect.getattr_static(cls, "run")
    static = isinstance(run, staticmethod)
    sig = inspect.signature(run.__func__ if static else run)
    params = list(sig.parameters.values())
    if not static:  # bound: a bind=True function, or a class-based task's method
        params = params[1:]
        sig = sig.replace(parameters=params)
    if any(p.kind is not p.POSITIONAL_OR_KEYWORD for p in params):
        return sig, None
    required = sum(1 for p in params if p.default is p.empty)
    return sig, (required, len(params))


def build_task_class(
    fun: Callable[..., Any], app: Celeriac, name: str, base: type[Task], options: dict[str, Any]
) -> type[Task]:
    """Make the Task subclass for ``fun`` with ``options`` as class attributes (options
    celeriac does not know become attributes too, for a custom base class, as in Celery)."""
    if options.get("rate_limit_scope", "worker") not in ("worker", "global"):
        raise ValueError(f"{name}: rate_limit_scope must be 'worker' or 'global'")
    for key in ("rate_limit", "global_rate_limit"):
        parse_rate(options.get(key))  # a bad rate is an error where the task is defined
    bind = bool(options.pop("bind", False))
    for key in ("shared", "base", "name", "options", "routing_key", "exchange"):
        options.pop(key, None)
    if options.get("retry_when") is not None:
        options["retry_when"] = staticmethod(options["retry_when"])
    for key in ("autoretry_for", "dont_autoretry_for"):
        if key in options:
            options[key] = tuple(options[key])
    runs = fun
    if options.pop("pydantic", False):
        runs = pydantic_task(
            fun,
            app,
            name,
            strict=options.pop("pydantic_strict", False),
            context=options.pop("pydantic_context", None),
            dump_kwargs=options.pop("pydantic_dump_kwargs", None),
        )
    run = runs if bind else staticmethod(runs)
    attrs = {
        "name": name,
        "app": app,
        "bind": bind,
        "run": run,
        "_fun": staticmethod(fun),
        "is_async": inspect.iscoroutinefunction(fun),
        "__doc__": fun.__doc__,
        "__module__": fun.__module__,
        "__qualname__": getattr(fun, "__qualname__", name),
        "__name__": getattr(fun, "__name__", name),
        "__wrapped__": fun,
        **options,
    }
    return type(fun.__name__, (base,), attrs)
