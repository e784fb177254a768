"""Results: :class:`AsyncResult` for sent tasks, :class:`EagerResult` for ``apply()``.

Result meta is a dict encoded with ``result_serializer`` and stored by the result backend::

    {"task_id", "status", "result", "traceback", "children", "date_done", "name",
     "args", "kwargs", "retries", "worker", "queue", "parent_id", "root_id"}

A failure's ``result`` is ``{"exc_type", "exc_module", "exc_message"}``; ``get()`` rebuilds the
exception when its type is one this process may rebuild (builtins, celeriac's, the packages of
its registered tasks, ``result_exception_modules``), else raises :class:`TaskError` naming it.
"""

from __future__ import annotations

import builtins
import contextlib
import contextvars
import datetime as dt
import logging
import sys
import time
import traceback as tb
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import TYPE_CHECKING, Any

from . import states
from ._state import current_request, get_current_app
from .exceptions import (
    ImproperlyConfigured,
    OperationalError,
    TaskError,
    TaskRevokedError,
    TimeoutError,
)
from .keys import GROUP_KEY
from .serialization import content_types, get_serializer, json_dumps, json_loads, loads_checked
from .utils import safe_repr, safe_str

if TYPE_CHECKING:
    from ._state import Context
    from .app import Celeriac
    from .backends.base import ResultBackend

logger = logging.getLogger("celeriac.result")


def exception_to_meta(exc: BaseException) -> dict[str, Any]:
    cls = type(exc)
    args: list[Any] = []
    for a in exc.args:
        args.append(a if isinstance(a, str | int | float | bool | type(None)) else safe_repr(a))
    return {"exc_type": cls.__qualname__, "exc_module": cls.__module__, "exc_message": args}


def exception_from_meta(meta: Any, app: Celeriac | None = None) -> BaseException:
    """Rebuild an exception from its meta, or give a :class:`TaskError` naming it.

    A stored result may have been written by anyone who can write to the result backend, so
    nothing is imported for it: the type is looked up in builtins, celeriac's exceptions,
    the modules listed in ``result_exception_modules``, and the loaded modules of the
    packages ``app``'s tasks come from; it must be an ``Exception`` (never ``SystemExit``)."""
    if isinstance(meta, BaseException):
        return meta
    if not isinstance(meta, Mapping) or "exc_type" not in meta:
        return TaskError("UnknownError", safe_repr(meta))
    name, module = str(meta["exc_type"]), str(meta.get("exc_module") or "builtins")
    args = meta.get("exc_message") or []
    if not isinstance(args, list | tuple):
        args = [args]
    cls: Any = None
    if _may_rebuild_from(module, app):
        cls = builtins if module == "builtins" else sys.modules.get(module)
        for part in name.split("."):
            cls = getattr(cls, part, None)
    if isinstance(cls, type) and issubclass(cls, Exception):
        try:
            return cls(*args)
        except Exception:
            pass
    full = name if module == "builtins" else f"{module}.{name}"
    return TaskError(full, " ".join(safe_str(a) for a in args))


def _may_rebuild_from(module: str, app: Celeriac | None) -> bool:
    """May a stored exception's type be looked up in ``module`` (see exception_from_meta)?"""
    if module in ("builtins", "celeriac.exceptions"):
        return True
    if app is None or module not in sys.modules:
        return False
    if module in (app.conf.result_exception_modules or ()):
        return True
    package = module.partition(".")[0]
    return any(type(t).__module__.partition(".")[0] == package for t in list(app.tasks.values()))


_join_allowed: contextvars.ContextVar[bool] = contextvars.ContextVar("join_allowed", default=False)


@contextlib.contextmanager
def allow_join_result() -> Iterator[None]:
    """Allow ``result.get()`` inside a task for the duration of the block (as Celery's:
    the caller accepts the risk of a worker waiting on itself)."""
    token = _join_allowed.set(True)
    try:
        yield
    finally:
        _join_allowed.reset(token)


def _joining_forbidden() -> bool:
    return current_request.get() is not None and not _join_allowed.get()


class ResultStore:
    """Encodes result meta and talks to the app's result backend (``app.results``)."""

    def __init__(self, app: Celeriac, backend: ResultBackend | None = None) -> None:
        self.app = app
        self._backend = backend  # None: the app's, whatever it is when used

    def using(self, backend: ResultBackend) -> ResultStore:
        """This store's encoding with ``backend`` in place of the app's."""
        return self if backend is self._backend else ResultStore(self.app, backend)

    @property
    def backend(self) -> ResultBackend:
        backend = self._backend or self.app.backend
        if backend is None:
            raise ImproperlyConfigured(
                "no result backend is configured: set result_backend (for example "
                "'sqlite:///celeriac.db' or 'redis://localhost:6379/0')"
            )
        return backend

    @property
    def enabled(self) -> bool:
        return self.app.backend is not None

    def encode(self, meta: dict[str, Any]) -> bytes:
        return get_serializer(self.app.conf.result_serializer).dumps(meta)

    def decode(self, payload: bytes) -> dict[str, Any]:
        ser = get_serializer(self.app.conf.result_serializer)
        accept = self.app.conf.result_accept_content or self.app.conf.accept_content
        allowed = content_types(accept) | {ser.content_type}
        # A JSON object starts with "{"; anything else was written with result_serializer.
        ctype = "application/json" if payload[:1] == b"{" else ser.content_type
        return loads_checked(payload, ctype, allowed)

    def store(
        self,
        task_id: str,
        state: str,
        result: Any = None,
        traceback: str | None = None,
        task_name: str | None = None,
        request: Context | None = None,
        retry: bool = False,
    ) -> None:
        """Record ``state`` for ``task_id``; exceptions are stored as exception meta.

        With ``retry`` (the worker storing an outcome) an unreachable backend is retried with
        capped exponential back-off, per the ``result_backend_*retr*`` settings, so a task
        that finished is not run again only because its result could not be written."""
        if isinstance(result, BaseException):
            result = exception_to_meta(result)
        meta: dict[str, Any] = {
            "task_id": task_id,
            "status": state,
            "result": result,
            "traceback": traceback,
            "children": [],
            "date_done": time.time() if state in states.READY_STATES else None,
            "name": task_name,
        }
        if request is not None:
            meta["children"] = [_child_ref(c) for c in request.children]
            meta["retries"] = request.retries
            meta["worker"] = request.hostname
            meta["queue"] = request.delivery_info.get("routing_key")
            meta["parent_id"] = request.parent_id
            meta["root_id"] = request.root_id
            if self.app.conf.result_extended:
                meta["args"], meta["kwargs"] = list(request.args), dict(request.kwargs)
        expires_in = self.expires_in
        payload = self.encode(meta)
        conf = self.app.conf
        retries = conf.result_backend_max_retries if retry else 0
        if not conf.result_backend_always_retry:
            retries = 0
        delay = conf.result_backend_base_sleep_between_retries_ms / 1000.0
        cap = conf.result_backend_max_sleep_between_retries_ms / 1000.0
        attempt = 0
        while True:
            try:
                self.backend.store(task_id, state, payload, expires_in or None)
            except OperationalError as exc:
                attempt += 1
                if retries is not None and attempt > retries:
                    raise
                if attempt == 1:
                    logger.warning(
                        "result backend unavailable (%s); retrying to store %s", exc, task_id
                    )
                time.sleep(delay)
                delay = min(delay * 2, cap)
                continue
            if attempt:
                logger.warning("result backend reachable again; stored %s", task_id)
            return

    def store_failure(
        self,
        task_id: str,
        exc: BaseException,
        task_name: str | None,
        request: Context | None,
        traceback: str | None = None,
        retry: bool = False,
    ) -> None:
        if traceback is None:
            traceback = "".join(tb.format_exception(type(exc), exc, exc.__traceback__))
        self.store(task_id, states.FAILURE, exc, traceback, task_name, request, retry)

    def meta(self, task_id: str) -> dict[str, Any]:
        payload = self.backend.load(task_id)
        return self.decode(payload) if payload else _pending(task_id)

    def metas(self, task_ids: list[str]) -> dict[str, dict[str, Any]]:
        found = self.backend.load_many(task_ids)
        return {tid: self.decode(p) for tid, p in found.items()}

    def wait(self, task_id: str, timeout: float | None) -> dict[str, Any]:
        payload = self.backend.wait_for(task_id, timeout)
        if payload is None:
            raise TimeoutError("The operation timed out.")
        return self.decode(payload)

    def forget(self, task_id: str) -> None:
        self.backend.forget(task_id)

    @property
    def expires_in(self) -> float | None:
        """Seconds results (and workflow keys) are kept, from ``result_expires``."""
        expires = self.app.conf.result_expires
        seconds = expires.total_seconds() if isinstance(expires, dt.timedelta) else expires
        return float(seconds) if seconds else None

    def save_group(self, group_id: str, group: GroupResult) -> None:
        body = json_dumps({"results": encode_members(group.results)})
        self.backend.set_value(GROUP_KEY.format(group_id), body, self.expires_in)

    def restore_group(self, group_id: str) -> GroupResult | None:
        body = self.backend.get_value(GROUP_KEY.format(group_id))
        if body is None:
            return None
        return GroupResult(
            group_id, decode_members(json_loads(body)["results"], self.app), app=self.app
        )

    def delete_group(self, group_id: str) -> None:
        self.backend.delete_value(GROUP_KEY.format(group_id))


def _pending(task_id: str) -> dict[str, Any]:
    return {
        "task_id": task_id,
        "status": states.PENDING,
        "result": None,
        "traceback": None,
        "children": [],
        "date_done": None,
        "name": None,
    }


def _child_ref(child: Any) -> Any:
    return getattr(child, "id", child)


class AsyncResult:
    """The result of a sent task, read from the result backend.

    ``isComplete``/``isSuccessful``/``getResult``/``getException`` in the course outline are
    ``ready()``, ``successful()``, ``get()``/``result`` and ``exception``."""

    def __init__(
        self,
        id: str,
        backend: Any = None,
        task_name: str | None = None,
        app: Celeriac | None = None,
        parent: AsyncResult | None = None,
    ) -> None:
        if app is None:
            app = get_current_app()
        self.app = app
        self.id = id
        self.task_id = id
        self.parent = parent
        self._name = task_name
        self._cache: dict[str, Any] | None = None

    @property
    def backend(self) -> Any:
        """The app's result backend, with Celery's methods (``get_task_meta``, ...)."""
        return self.app.backend

    def __repr__(self) -> str:
        return f"<{type(self).__name__}: {self.id}>"

    def __eq__(self, other: object) -> bool:
        if isinstance(other, AsyncResult):
            return other.id == self.id
        return other == self.id if isinstance(other, str) else NotImplemented

    def __hash__(self) -> int:
        return hash(self.id)

    def __reduce__(self) -> Any:
        return (type(self), (self.id, None, self._name, None, self.parent))

    # -- reading ------------------------------------------------------------------------

    def _get_meta(self) -> dict[str, Any]:
        if self._cache is not None:
            return self._cache
        meta = self.app.results.meta(self.id)
        if meta["status"] in states.READY_STATES:
            self._cache = meta
        return meta

    def _set_cache(self, meta: dict[str, Any]) -> dict[str, Any]:
        if meta["status"] in states.READY_STATES:
            self._cache = meta
        return meta

    @property
    def state(self) -> str:
        """PENDING, RECEIVED, STARTED, RETRY, SUCCESS, FAILURE, REVOKED, or a custom state."""
        return str(self._get_meta()["status"])

    status = state

    @property
    def result(self) -> Any:
        """The return value, the exception of a failure, or the meta of a custom state."""
        meta = self._get_meta()
        if (
            meta["status"] in states.EXCEPTION_STATES
            and isinstance(meta["result"], Mapping)
            and "exc_type" in meta["result"]
        ):
            return exception_from_meta(meta["result"], self.app)
        return meta["result"]

    info = result

    @property
    def exception(self) -> BaseException | None:
        """The task's exception if it failed (or was revoked), else None."""
        meta = self._get_meta()
        if meta["status"] == states.REVOKED:
            return TaskRevokedError(self.id)
        if meta["status"] in states.EXCEPTION_STATES:
            value = self.result
            return value if isinstance(value, BaseException) else None
        return None

    @property
    def traceback(self) -> str | None:
        return self._get_meta().get("traceback")

    @property
    def date_done(self) -> dt.datetime | None:
        ts = self._get_meta().get("date_done")
        return dt.datetime.fromtimestamp(ts, dt.UTC) if ts else None

    @property
    def name(self) -> str | None:
        return self._get_meta().get("name") or self._name

    @property
    def retries(self) -> int | None:
        return self._get_meta().get("retries")

    @property
    def worker(self) -> str | None:
        return self._get_meta().get("worker")

    @property
    def queue(self) -> str | None:
        return self._get_meta().get("queue")

    @property
    def args(self) -> list[Any] | None:
        return self._get_meta().get("args")

    @property
    def kwargs(self) -> dict[str, Any] | None:
        return self._get_meta().get("kwargs")

    @property
    def children(self) -> list[AsyncResult]:
        return [AsyncResult(c, app=self.app) for c in self._get_meta().get("children") or []]

    def ready(self) -> bool:
        """Has the task finished (SUCCESS, FAILURE or REVOKED)?"""
        return self.state in states.READY_STATES

    def successful(self) -> bool:
        return self.state == states.SUCCESS

    def failed(self) -> bool:
        return self.state == states.FAILURE

    isComplete = ready
    isSuccessful = successful

    def getResult(self) -> Any:
        return self.get()

    def getException(self) -> BaseException | None:
        return self.exception

    # -- waiting ------------------------------------------------------------------------

    def get(
        self,
        timeout: float | None = None,
        propagate: bool = True,
        interval: float = 0.5,
        disable_sync_subtasks: bool = True,
        **kwargs: Any,
    ) -> Any:
        """Wait for the task to finish and return its result.

        Raises the task's exception if it failed and ``propagate`` is true, and
        :class:`~celeriac.exceptions.TimeoutError` after ``timeout`` seconds. Waiting wakes on
        the backend's notifications (``interval`` is accepted for compatibility)."""
        if disable_sync_subtasks and _joining_forbidden():
            raise RuntimeError(
                "Never call result.get() within a task: it can deadlock the worker. "
                "Use a chain or chord, or pass disable_sync_subtasks=False."
            )
        meta = self._cache or self._set_cache(self.app.results.wait(self.id, timeout))
        return self._value(meta, propagate)

    wait = get

    def _value(self, meta: dict[str, Any], propagate: bool) -> Any:
        status = meta["status"]
        if status == states.REVOKED:
            if propagate:
                raise TaskRevokedError(f"task {self.id} was revoked")
            return TaskRevokedError(self.id)
        if status == states.FAILURE:
            exc = exception_from_meta(meta["result"], self.app)
            if propagate:
                raise exc
            return exc
        return meta["result"]

    def forget(self) -> None:
        """Delete the stored result."""
        self._cache = None
        self.app.results.forget(self.id)

    def revoke(self, terminate: bool = False, signal: str = "SIGTERM", **kwargs: Any) -> None:
        """Stop the task from running (and, with ``terminate``, stop it if it runs)."""
        self.app.control.revoke(self.id, terminate=terminate, signal=signal, **kwargs)

    def collect(self, **kwargs: Any) -> Any:
        """Yield ``(result, value)`` for this result and its children, depth first."""
        yield self, self.get(**kwargs)
        for child in self.children:
            yield from child.collect(**kwargs)

    def as_tuple(self) -> tuple[Any, ...]:
        return (self.id, self.parent.as_tuple() if self.parent else None)


class EagerResult(AsyncResult):
    """The result of ``task.apply()``: already computed, no backend involved."""

    def __init__(
        self,
        id: str,
        ret_value: Any,
        state: str,
        traceback: str | None = None,
        name: str | None = None,
        app: Celeriac | None = None,
        retries: int = 0,
    ) -> None:
        super().__init__(id, task_name=name, app=app)
        self._cache = {
            "task_id": id,
            "status": state,
            "result": ret_value,
            "traceback": traceback,
            "children": [],
            "date_done": time.time(),
            "name": name,
            "retries": retries,
        }

    def _get_meta(self) -> dict[str, Any]:
        assert self._cache is not None
        return self._cache

    @property
    def result(self) -> Any:
        return self._cache["result"] if self._cache else None

    info = result

    @property
    def exception(self) -> BaseException | None:
        value = self.result
        return value if isinstance(value, BaseException) else None

    def get(
        self,
        timeout: float | None = None,
        propagate: bool = True,
        interval: float = 0.5,
        disable_sync_subtasks: bool = True,
        **kwargs: Any,
    ) -> Any:
        meta = self._get_meta()
        if meta["status"] in states.PROPAGATE_STATES:
            exc = meta["result"]
            if propagate:
                raise exc
            return exc
        return meta["result"]

    wait = get

    def forget(self) -> None:
        pass

    def revoke(self, *args: Any, **kwargs: Any) -> None:
        self._cache = {**self._get_meta(), "status": states.REVOKED}


class ResultSet:
    """Several results handled as one: ``get()``/``join()`` return their values in order."""

    def __init__(self, results: Iterable[Any], app: Celeriac | None = None, **kwargs: Any) -> None:
        self.results: list[Any] = list(results)
        if app is None:
            app = next((r.app for r in self.results if getattr(r, "app", None)), None)
        if app is None:
            app = get_current_app()
        self.app = app

    def __repr__(self) -> str:
        return f"<{type(self).__name__}: [{', '.join(r.id for r in self.results)}]>"

    def __iter__(self) -> Iterator[Any]:
        return iter(self.results)

    def __len__(self) -> int:
        return len(self.results)

    def __getitem__(self, index: int) -> Any:
        return self.results[index]

    def add(self, result: Any) -> None:
        if result not in self.results:
            self.results.append(result)

    def update(self, results: Iterable[Any]) -> None:
        for r in results:
            self.add(r)

    def discard(self, result: Any) -> None:
        if result in self.results:
            self.results.remove(result)

    remove = discard

    def clear(self) -> None:
        self.results.clear()

    @property
    def children(self) -> list[Any]:
        return self.results

    # -- state ----------------------------------------------------------------------------

    def _prefetch(self) -> None:
        """Read every plain member's state in one backend round trip (cached when ready)."""
        pending = [r for r in self.results if type(r) is AsyncResult and r._cache is None]
        if not pending or not self.app.results.enabled:
            return
        metas = self.app.results.metas([r.id for r in pending])
        for r in pending:
            meta = metas.get(r.id)
            if meta is not None:
                r._set_cache(meta)

    def ready(self) -> bool:
        """Have all members finished?"""
        self._prefetch()
        return all(r.ready() for r in self.results)

    def successful(self) -> bool:
        """Did every member succeed?"""
        self._prefetch()
        return all(r.successful() for r in self.results)

    def failed(self) -> bool:
        """Did any member fail?"""
        self._prefetch()
        return any(r.failed() for r in self.results)

    def waiting(self) -> bool:
        """Is any member still to finish?"""
        return not self.ready()

    def completed_count(self) -> int:
        """How many members succeeded."""
        self._prefetch()
        return sum(1 for r in self.results if r.successful())

    def forget(self) -> None:
        for r in self.results:
            r.forget()

    def revoke(self, terminate: bool = False, signal: str = "SIGTERM", **kwargs: Any) -> None:
        """Revoke every member."""
        ids: list[str] = []
        for r in self.results:
            if isinstance(r, ResultSet):
                r.revoke(terminate, signal)
            else:
                ids.append(r.id)
        if ids:
            self.app.control.revoke(ids, terminate=terminate, signal=signal)

    # -- waiting --------------------------------------------------------------------------

    def join(
        self,
        timeout: float | None = None,
        propagate: bool = True,
        interval: float = 0.5,
        callback: Callable[[str, Any], None] | None = None,
        disable_sync_subtasks: bool = True,
        **kwargs: Any,
    ) -> list[Any]:
        """Wait for every member and return their values in member order.

        ``timeout`` bounds the whole wait. A failed member's exception is raised when
        ``propagate`` is true. Finished members are read in batches; the wait for an
        unfinished one wakes on the backend's notification."""
        if disable_sync_subtasks and _joining_forbidden():
            raise RuntimeError("Never call result.get() within a task: use a chord instead.")
        deadline = None if timeout is None else time.monotonic() + timeout
        self._prefetch()
        last_prefetch = time.monotonic()
        values: list[Any] = []
        for r in self.results:
            if deadline is not None and time.monotonic() >= deadline and not r.ready():
                raise TimeoutError("The operation timed out.")
            if time.monotonic() - last_prefetch > 0.05:
                self._prefetch()
                last_prefetch = time.monotonic()
            left = None if deadline is None else max(0.0, deadline - time.monotonic())
            value = r.get(timeout=left, propagate=propagate, disable_sync_subtasks=False)
            if callback is not None:
                callback(r.id, value)
            else:
                values.append(value)
        return values

    get = join_native = join
    supports_native_join = True


class GroupResult(ResultSet):
    """The result of a group: an id and the members' results, in member order.

    ``save()`` keeps the member ids in the result backend so ``GroupResult.restore(id)`` can
    rebuild it elsewhere (a chord's header is saved this way automatically)."""

    def __init__(
        self,
        id: str | None = None,
        results: Iterable[Any] | None = None,
        parent: Any = None,
        app: Celeriac | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(results or [], app=app)
        self.id = id or ""
        self.parent = parent

    def __repr__(self) -> str:
        return f"<GroupResult: {self.id} [{', '.join(r.id for r in self.results)}]>"

    def __eq__(self, other: object) -> bool:
        if isinstance(other, GroupResult):
            return other.id == self.id and other.results == self.results
        return NotImplemented

    def __hash__(self) -> int:
        return hash(self.id)

    def __reduce__(self) -> Any:
        return (GroupResult, (self.id, self.results, self.parent))

    def save(self, backend: Any = None) -> GroupResult:
        """Store the member ids under the group id."""
        self.app.results.save_group(self.id, self)
        return self

    def delete(self, backend: Any = None) -> None:
        self.app.results.delete_group(self.id)

    @classmethod
    def restore(
        cls, id: str, backend: Any = None, app: Celeriac | None = None
    ) -> GroupResult | None:
        """The saved group ``id`` (None if it was never saved or has expired)."""
        if app is None:
            app = get_current_app()
        return app.results.restore_group(id)

    def as_tuple(self) -> tuple[Any, ...]:
        return (
            (self.id, self.parent.as_tuple() if self.parent else None),
            [r.as_tuple() for r in self.results],
        )


def encode_members(results: Iterable[Any]) -> list[Any]:
    """Member ids of a group, nested groups as ``{"group": id, "results": [...]}``."""
    return [
        {"group": r.id, "results": encode_members(r.results)}
        if isinstance(r, GroupResult)
        else r.id
        for r in results
    ]


def decode_members(items: Iterable[Any], app: Celeriac) -> list[Any]:
    return [
        GroupResult(i["group"], decode_members(i["results"], app), app=app)
        if isinstance(i, Mapping)
        else AsyncResult(str(i), app=app)
        for i in items
    ]
