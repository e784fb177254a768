"""Process-wide state: the current app and the request of the task running in this context."""

from __future__ import annotations

import contextvars
import os
import threading
import weakref
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .app import Celeriac
    from .task import Context

_lock = threading.RLock()
_current_app: Celeriac | None = None
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
            from .app import Celeriac

            _current_app = Celeriac("default")
        return _current_app


def _after_fork_in_child() -> None:
    for app in all_apps():
        app._after_fork()


def get_current_task() -> Any:
    request = current_request.get()
    return request.task if request is not None else None


os.register_at_fork(after_in_child=_after_fork_in_child)
