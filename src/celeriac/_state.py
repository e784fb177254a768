"""Process-wide state: the current app, and the request of the task running in this context
(:class:`Context`, which tasks show as ``self.request``; also importable from
:mod:`celeriac.task`)."""

from __future__ import annotations

import contextvars
import os
import threading
import weakref
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .app import Celeriac
    from .task import Task


class Context:
    """``task.request``: what the worker knows about the invocation being executed."""

    id: str | None = None
    task: Task | None = None
    args: list[Any] | tuple[Any, ...] = ()
    kwargs: dict[str, Any] = {}
    retries: int = 0
    eta: float | None = None
    expires: float | None = None
    is_eager: bool = False
    called_directly: bool = True
    hostname: str | None = None
    delivery_info: dict[str, Any] = {}
    priority: int | None = None
    root_id: str | None = None
    parent_id: str | None = None
    group: str | None = None
    group_index: int | None = None
    callbacks: list[Any] | None = None
    errbacks: list[Any] | None = None
    chain: list[Any] | None = None
    chord: Any = None
    headers: dict[str, Any] | None = None
    stamped_headers: list[str] | None = None  # the names of the stamps (Signature.stamp)
    stamps: dict[str, Any] | None = None
    #: what ``apply_async(argsrepr=..., kwargsrepr=...)`` shows of the arguments (None: not
    #: given)
    argsrepr: str | None = None
    kwargsrepr: str | None = None
    origin: str | None = None
    ignore_result: bool = False
    timelimit: tuple[float | None, float | None] = (None, None)
    reply_to: str | None = None
    correlation_id: str | None = None
    properties: dict[str, Any] = {}
    retries_exhausted: bool = False

    def __init__(self, **kwargs: Any) -> None:
        self.children: list[Any] = []
        self.__dict__.update(kwargs)

    def get(self, key: str, default: Any = None) -> Any:
        return getattr(self, key, default)

    def as_dict(self) -> dict[str, Any]:
        return {k: v for k, v in vars(self).items() if k != "task"}

    def as_execution_options(self) -> dict[str, Any]:
        """This invocation's ``apply_async`` options: its id, place in its workflow, links,
        limits and headers (Celery's ``request.as_execution_options()``)."""
        soft, hard = self.timelimit or (None, None)
        return {
            "task_id": self.id,
            "root_id": self.root_id,
            "parent_id": self.parent_id,
            "group_id": self.group,
            "group_index": self.group_index,
            "chord": self.chord,
            "chain": self.chain,
            "link": self.callbacks,
            "link_error": self.errbacks,
            "expires": self.expires,
            "soft_time_limit": soft,
            "time_limit": hard,
            "headers": self.headers,
            "ignore_result": self.ignore_result,
        }

    def __repr__(self) -> str:
        return f"<Context {self.as_dict()!r}>"


_lock = threading.RLock()
_current_app: Celeriac | None = None
_make_default_app: Callable[[], Celeriac] | None = None  # set by celeriac.app
_all_apps: weakref.WeakSet[Celeriac] = weakref.WeakSet()

#: The request of the task executing in this thread / asyncio task (None outside tasks).
current_request: contextvars.ContextVar[Context | None] = contextvars.ContextVar(
    "celeriac_current_request", default=None
)


def set_current_app(app: Celeriac) -> None:
    global _current_app
    with _lock:
        _current_app = app


def register_app(app: Celeriac) -> None:
    with _lock:
        _all_apps.add(app)


def all_apps() -> list[Celeriac]:
    with _lock:
        return list(_all_apps)


def get_current_app() -> Celeriac:
    """The app made most recently (a default one is made if there is none)."""
    global _current_app
    with _lock:
        if _current_app is None:
            assert _make_default_app is not None  # importing celeriac imports celeriac.app
            _current_app = _make_default_app()
        return _current_app


def set_default_app_factory(factory: Callable[[], Celeriac]) -> None:
    """How :func:`get_current_app` makes an app when none was made (celeriac.app's)."""
    global _make_default_app
    _make_default_app = factory


def _after_fork_in_child() -> None:
    for app in all_apps():
        app._after_fork()


def get_current_task() -> Any:
    request = current_request.get()
    return request.task if request is not None else None


os.register_at_fork(after_in_child=_after_fork_in_child)
