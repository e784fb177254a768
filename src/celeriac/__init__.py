"""celeriac: a distributed task queue that speaks Celery's API.

from celeriac import Celery

app = Celery("proj", broker="sqlite:///celeriac.db")

@app.task
def add(x, y):
    return x + y
"""

from __future__ import annotations

from typing import Any

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


def __getattr__(name: str) -> Any:
    if name == "current_app":
        return get_current_app()
    if name == "current_task":
        return get_current_task()
    raise AttributeError(f"module 'celeriac' has no attribute {name!r}")


__all__ = [
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
    "maybe_signature",
    "shared_task",
    "signature",
    "states",
    "subtask",
    "uuid",
    "xmap",
    "xstarmap",
]
