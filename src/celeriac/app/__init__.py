"""The application (:mod:`.base`), and the module paths Celery projects import from:
``celeriac.app.base.Celery`` and ``celeriac.app.task.Task``."""

from __future__ import annotations

from .. import _state
from ..local import Proxy
from .base import Celeriac, Celery, shared_task

__all__ = ["Celeriac", "Celery", "app_or_default", "default_app", "shared_task"]

#: the current app, looked up on each use (the default one is made when there is none)
default_app: Celeriac = Proxy(_state.get_current_app)  # type: ignore[assignment]


def app_or_default(app: Celeriac | None = None) -> Celeriac:
    """``app``, or the current app when it is None."""
    return _state.get_current_app() if app is None else app
