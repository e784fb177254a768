"""Results: :class:`AsyncResult` for sent tasks, :class:`EagerResult` for ``apply()``,
:class:`GroupResult` for groups. What they read is result meta (see
:mod:`celeriac.resultstore`)."""

from __future__ import annotations

import concurrent.futures
import contextlib
import contextvars
import datetime as dt
import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import TYPE_CHECKING, Any

from . import states
from ._state import current_request, get_current_app
from .exceptions import IncompleteStream, TaskRevokedError, TimeoutError
from .keys import GROUP_KEY
from .resultstore import exception_from_meta
from .serialization import json_dumps, json_loads

if TYPE_CHECKING:
    from .app import Celeriac

logger = logging.getLogger("celeriac.result")


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


def _refuse_join_in_task() -> None:
    """Refuse a wait in a task run by a worker (a task run eagerly may wait, as in Celery),
    outside :func:`allow_join_result`: it can deadlock the worker."""
    request = current_request.get()
    if request is not None and not request.is_eager and not _join_allowed.get():
        raise RuntimeError(
            "Never call result.get() within a task: it can deadlock the worker. "
            "Use a chain or chord, or pass disable_sync_subtasks=False."
        )


class ResultBase:
    """Base class of every result (Celery's ``celery.result.ResultBase``)."""

    #: the result of the task before this one in a chain
    parent: Any = None

    def _ready_now(self) -> bool:
        raise NotImplementedError

    def _wait_ready(self) -> None:
        raise NotImplementedError

    def then(
        self,
        callback: Callable[[Any], Any],
        on_error: Callable[[BaseException], Any] | None = None,
        weak: bool = False,
    ) -> concurrent.futures.Future[Any]:
        """Celery's promise hook: call ``callback(self)`` once the result is ready
        (succeeded, failed or revoked; a group's once all its members are): at once if it
        is, else from a thread that waits for it. Returns a Future of what ``callback``
        returns; when it raises, the Future holds the exception and ``on_error(exc)`` is
        called (else it is logged). ``weak`` is accepted."""
        future: concurrent.futures.Future[Any] = concurrent.futures.Future()
        name = getattr(self, "id", None)

        def fire() -> None:
            try:
                self._wait_ready()
                future.set_result(callback(self))
            except BaseException as exc:
                future.set_exception(exc)
                if on_error is not None:
                    on_error(exc)
                else:
                    logger.exception("callback given to then() of %s raised", name)

        if self._ready_now():
            fire()
        else:
            threading.Thread(target=fire, name=f"then-{name}", daemon=True).start()
        return future


class AsyncResult(ResultBase):
    """The result of a sent task, read from the result backend.

    ``isComplete``/``isSuccessful``/``getResult``/``getException`` in the course outline are
    ``ready()``, ``successful()``, ``get()``/``result`` and ``exception``."""

    #: the task was sent with ``ignore_result``: ``get()`` returns None at once, as in Celery
    ignored: bool = False

    def __init__(
        self,
        id: str,
        backend: Any = None,
        task_name: str | None = None,
        app: Celeriac | None = None,
        parent: AsyncResult | GroupResult | None = None,
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
        follow_parents: bool = True,
        **kwargs: Any,
    ) -> Any:
        """Wait for the task to finish and return its result.

        Raises the task's exception if it failed and ``propagate`` is true, and
        :class:`~celeriac.exceptions.TimeoutError` after ``timeout`` seconds. Waiting wakes on
        the backend's notifications. As in Celery, ``on_message(meta)`` is called with each
        state the task reports while it runs (``update_state``, read every ``interval``
        seconds) and the final one, ``on_interval()`` every ``interval`` seconds of the wait,
        and ``callback(task_id, result)`` once it is ready.

        With ``follow_parents`` (and ``propagate``), a failed parent's exception is raised
        instead, as in Celery: the result of a chain or chord whose earlier step or header
        task failed raises that task's own exception."""
        if disable_sync_subtasks:
            _refuse_join_in_task()
        if self.ignored:
            return None  # sent with ignore_result: nothing will be stored to wait for
        follow = propagate and follow_parents and self.parent is not None
        if follow:
            self._raise_parent_failure()
        on_message, on_interval = kwargs.get("on_message"), kwargs.get("on_interval")
        meta = self._cache
        if meta is None:
            meta = self._set_cache(self._wait(timeout, follow, on_message, on_interval, interval))
        elif on_message is not None:
            on_message(meta)
        if follow and meta["status"] in states.PROPAGATE_STATES:
            self._raise_parent_failure()
        callback = kwargs.get("callback")
        if callback is not None:
            callback(self.id, meta["result"])
        return self._value(meta, propagate)

    def _ready_now(self) -> bool:
        return self._cache is not None or self.ignored

    def _wait_ready(self) -> None:
        if not self.ignored:
            self.get(propagate=False, disable_sync_subtasks=False, follow_parents=False)

    def _wait(
        self,
        timeout: float | None,
        follow_parents: bool,
        on_message: Callable[[dict[str, Any]], Any] | None = None,
        on_interval: Callable[[], Any] | None = None,
        interval: float = 0.5,
    ) -> dict[str, Any]:
        """Wait for the meta of a finished task; with ``follow_parents``, looking at the
        parents every second meanwhile (a parent revoked or failed stops the wait). With
        ``on_message``, the task's state is read every ``interval`` seconds and each new
        one passed to it; ``on_interval`` is called every ``interval`` seconds."""
        watching = on_message is not None or on_interval is not None
        if not (follow_parents or watching):
            return self.app.results.wait(self.id, timeout)
        step = max(0.01, float(interval)) if watching else 1.0
        deadline = None if timeout is None else time.monotonic() + timeout
        seen: Any = None

        def report(meta: dict[str, Any]) -> None:
            nonlocal seen
            if on_message is not None and (meta["status"], meta.get("result")) != seen:
                seen = (meta["status"], meta.get("result"))
                on_message(meta)

        while True:
            if on_message is not None:
                meta = self.app.results.meta(self.id)
                report(meta)
                if meta["status"] in states.READY_STATES:
                    return meta
            left = None if deadline is None else max(0.0, deadline - time.monotonic())
            try:
                meta = self.app.results.wait(self.id, step if left is None else min(left, step))
            except TimeoutError:
                if left is not None and left <= step:
                    raise
            else:
                report(meta)
                return meta
            if on_interval is not None:
                on_interval()
            if follow_parents:
                self._raise_parent_failure()

    def _raise_parent_failure(self) -> None:
        """Raise the exception of the first parent (the furthest back first) that failed or
        was revoked."""
        parents = []
        node = self.parent
        while node is not None:
            parents.append(node)
            node = getattr(node, "parent", None)
        for node in reversed(parents):
            node.maybe_throw()

    def maybe_throw(self, propagate: bool = True, callback: Any = None) -> Any:
        """Raise the task's exception if it has failed or was revoked (with
        ``propagate``); return its result (None while it has not finished)."""
        meta = self._get_meta()
        if propagate and meta["status"] in states.PROPAGATE_STATES:
            self._value(meta, True)
        if callback is not None:
            callback(self.id, meta["result"])
        return meta["result"]

    maybe_reraise = maybe_throw

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

    def revoke_by_stamped_headers(
        self,
        headers: Any,
        connection: Any = None,
        terminate: bool = False,
        signal: str | None = None,
        wait: bool = False,
        timeout: float | None = None,
    ) -> None:
        """Revoke every task stamped with one of ``headers`` (not only this one), as
        :meth:`Control.revoke_by_stamped_headers` does; with ``wait``, the workers' replies
        are waited for up to ``timeout`` seconds."""
        self.app.control.revoke_by_stamped_headers(
            headers,
            terminate=terminate,
            signal=signal or "SIGTERM",
            reply=wait,
            timeout=1.0 if timeout is None else timeout,
        )

    def exists(self) -> bool:
        """Has the result backend anything for this task? (A PENDING state cannot tell a
        task waiting to run from an id never sent or a result forgotten or expired.)"""
        return bool(self.app.results.metas([self.id]))

    def as_list(self) -> list[str]:
        """This task's id, then its parents' up the chain."""
        return [self.id, *(self.parent.as_list() if self.parent is not None else ())]

    def iterdeps(self, intermediate: bool = False) -> Iterator[tuple[Any, AsyncResult]]:
        """Yield ``(parent, result)`` for this result and its children, breadth first.
        A result with children to follow that has not finished raises
        :class:`~celeriac.exceptions.IncompleteStream`, unless ``intermediate``."""
        queue: deque[tuple[Any, AsyncResult]] = deque([(None, self)])
        while queue:
            parent, node = queue.popleft()
            yield parent, node
            if node.ready():
                queue.extend((node, child) for child in node.children)
            elif not intermediate:
                raise IncompleteStream()

    def get_leaf(self) -> Any:
        """The value of the last result reached by :meth:`iterdeps`."""
        value = None
        for _, node in self.iterdeps():
            value = node.get()
        return value

    def collect(self, **kwargs: Any) -> Any:
        """Yield ``(result, value)`` for this result and its children, depth first."""
        yield self, self.get(**kwargs)
        for child in self.children:
            yield from child.collect(**kwargs)

    def as_tuple(self) -> tuple[Any, ...]:
        """``((id, parent's tuple), None)``, Celery's form (a group's has its members'
        tuples in place of None); :func:`result_from_tuple` makes the result again."""
        return (self.id, self.parent.as_tuple() if self.parent else None), None


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
        follow_parents: bool = True,
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

    def maybe_throw(self, propagate: bool = True, callback: Any = None) -> Any:
        meta = self._get_meta()
        if propagate and meta["status"] in states.PROPAGATE_STATES:
            self.get()
        if callback is not None:
            callback(self.id, meta["result"])
        return meta["result"]

    maybe_reraise = maybe_throw

    def forget(self) -> None:
        pass

    def revoke(self, *args: Any, **kwargs: Any) -> None:
        self._cache = {**self._get_meta(), "status": states.REVOKED}


class ResultSet(ResultBase):
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

    @property
    def backend(self) -> Any:
        """The app's result backend."""
        return self.app.backend

    def _ready_now(self) -> bool:
        return self.ready()

    def _wait_ready(self) -> None:
        self.join(propagate=False, disable_sync_subtasks=False)

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

    def maybe_throw(self, propagate: bool = True, callback: Any = None) -> None:
        """Raise the exception of the first member that failed or was revoked."""
        self._prefetch()
        for r in self.results:
            r.maybe_throw(propagate=propagate, callback=callback)

    maybe_reraise = maybe_throw

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
        if disable_sync_subtasks:
            _refuse_join_in_task()
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
        results = self.app.results
        body = json_dumps({"results": encode_members(self.results)})
        results.backend.set_value(GROUP_KEY.format(self.id), body, results.expires_in)
        return self

    def delete(self, backend: Any = None) -> None:
        self.app.results.backend.delete_value(GROUP_KEY.format(self.id))

    @classmethod
    def restore(
        cls, id: str, backend: Any = None, app: Celeriac | None = None
    ) -> GroupResult | None:
        """The saved group ``id`` (None if it was never saved or has expired)."""
        if app is None:
            app = get_current_app()
        body = app.results.backend.get_value(GROUP_KEY.format(id))
        if body is None:
            return None
        return cls(id, decode_members(json_loads(body)["results"], app), app=app)

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


def result_from_tuple(r: Any, app: Celeriac | None = None) -> AsyncResult | GroupResult:
    """The result :meth:`AsyncResult.as_tuple` or :meth:`GroupResult.as_tuple` described."""
    app = app or get_current_app()
    if isinstance(r, AsyncResult | GroupResult):
        return r
    head, members = r
    id, parent = head if isinstance(head, list | tuple) else (head, None)
    parent_result = result_from_tuple(parent, app) if parent else None
    if members is not None:
        results = [result_from_tuple(m, app) for m in members]
        return GroupResult(id, results, app=app, parent=parent_result)
    return AsyncResult(id, app=app, parent=parent_result)
