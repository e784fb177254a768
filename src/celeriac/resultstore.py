"""Result meta: how a task's state and result are encoded and stored (:class:`ResultStore`,
the app's ``app.results``), and how a stored exception is rebuilt.

Result meta is a dict encoded with ``result_serializer`` and stored by the result backend::

    {"task_id", "status", "result", "traceback", "children", "date_done", "name",
     "args", "kwargs", "retries", "worker", "queue", "parent_id", "root_id"}

A failure's ``result`` is ``{"exc_type", "exc_module", "exc_message"}``; ``get()`` rebuilds the
exception when its type is one this process may rebuild (builtins, celeriac's, the packages of
its registered tasks, ``result_exception_modules``), else raises :class:`TaskError` naming it.
"""

from __future__ import annotations

import builtins
import datetime as dt
import logging
import sys
import time
import traceback as tb
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from . import states
from .exceptions import (
    ImproperlyConfigured,
    OperationalError,
    TaskError,
    TimeoutError,
    UnpickleableExceptionWrapper,
)
from .serialization import content_types, get_serializer, loads_checked
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
            return UnpickleableExceptionWrapper(module, name, args)
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

    @property
    def keeps_values(self) -> bool:
        """Does the result backend keep shared values (every backend but rpc://)?"""
        backend = self.app.backend
        return backend is not None and getattr(backend, "keeps_values", True)

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
        elif _is_result(result) and self.app.conf.result_serializer != "pickle":
            result = result.as_tuple()  # a task returned a result: stored as Celery does
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
            periodic = (request.headers or {}).get("periodic_task_name")
            if periodic:  # sent by a beat (django-celery-beat's header)
                meta["periodic_task_name"] = periodic
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
        backend = self.backend
        reply_to = getattr(request, "reply_to", None)
        store_for = getattr(backend, "store_for", None) if reply_to else None
        while True:
            try:
                if store_for is not None:  # rpc://: sent to the task's sender
                    store_for(reply_to, task_id, state, payload, expires_in or None)
                else:
                    backend.store(task_id, state, payload, expires_in or None)
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


def _is_result(value: Any) -> bool:
    """Is ``value`` an AsyncResult or GroupResult (which :mod:`celeriac.result` defines, on
    top of this module)?"""
    return callable(getattr(value, "as_tuple", None)) and hasattr(value, "id")


def _child_ref(child: Any) -> Any:
    return getattr(child, "id", child)
