"""celeriac: a distributed task queue that speaks Celery's API.

from celeriac import Celery

app = Celery("proj", broker="sqlite:///celeriac.db")

@app.task
def add(x, y):
    return x + y
"""

from __future__ import annotations

from typing import Any, NamedTuple

from . import states
from ._state import get_current_app, get_current_task
from .app import Celeriac, Celery, shared_task
from .canvas import (
    Signature,
    chain,
    chord,
    chunks,
    group,
    maybe_signature,
    signature,
    subtask,
    xmap,
    xstarmap,
)
from .result import AsyncResult, EagerResult, GroupResult, ResultSet
from .routing import Broadcast, Exchange, Queue
from .task import Task
from .utils.ids import new_id as uuid

__version__ = "0.1.0"


class version_info_t(NamedTuple):
    """A version as Celery gives its own: ``(major, minor, micro, releaselevel, serial)``."""

    major: int
    minor: int
    micro: int
    releaselevel: str
    serial: str


#: the Celery release whose API celeriac speaks, so that a project's
#: ``celery.VERSION >= (4, 1)`` takes its branch for current Celery; celeriac's own release
#: is ``__version__``
VERSION = version_info = version_info_t(5, 5, 0, "", "")
SERIES = "celeriac"
VERSION_BANNER = f"{__version__} (celeriac, Celery {VERSION.major}.{VERSION.minor} API)"


def maybe_patch_concurrency(
    argv: Any = None, short_opts: Any = None, long_opts: Any = None, patches: Any = None
) -> None:
    """Celery's eventlet/gevent monkey-patching hook: celeriac runs ``-P gevent`` and
    ``-P eventlet`` on its threads pool, so there is nothing to patch."""


def __getattr__(name: str) -> Any:
    if name == "current_app":
        return get_current_app()
    if name == "current_task":
        return get_current_task()
    raise AttributeError(f"module 'celeriac' has no attribute {name!r}")


__all__ = [
    "SERIES",
    "VERSION",
    "VERSION_BANNER",
    "AsyncResult",
    "Broadcast",
    "Celeriac",
    "Celery",
    "EagerResult",
    "Exchange",
    "GroupResult",
    "Queue",
    "ResultSet",
    "Signature",
    "Task",
    "__version__",
    "chain",
    "chord",
    "chunks",
    "current_app",
    "current_task",
    "group",
    "maybe_patch_concurrency",
    "maybe_signature",
    "shared_task",
    "signature",
    "states",
    "subtask",
    "uuid",
    "version_info",
    "version_info_t",
    "xmap",
    "xstarmap",
]
