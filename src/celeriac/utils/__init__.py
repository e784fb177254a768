"""Small utilities with Celery's module names (``celeriac.utils.log.get_task_logger``), and
the names Celery keeps at ``celery.utils`` for old code (``gen_unique_id``, ``chunks`` ...)."""

from __future__ import annotations

import gc
import logging
from collections.abc import Callable
from functools import cached_property as cached_property
from time import monotonic, sleep  # (the name ``time`` here is the submodule utils.time)

from .functional import chunks as chunks
from .functional import memoize as memoize
from .functional import noop as noop
from .ids import uuid as uuid  # Celery's celery.utils.uuid
from .imports import gen_task_name as gen_task_name
from .imports import import_from_cwd as import_from_cwd
from .imports import instantiate as instantiate
from .imports import qualname, symbol_by_name
from .nodenames import nodename as nodename
from .nodenames import nodesplit as nodesplit
from .nodenames import worker_direct as worker_direct

logger = logging.getLogger("celeriac.worker")

# Celery's old names
gen_unique_id = uuid
get_cls_by_name = symbol_by_name
get_full_cls_name = qualname

#: level name -> number and number -> name, as Celery's (``FATAL`` and ``WARN`` included)
LOG_LEVELS: dict[str | int, str | int] = {
    key: value
    for name, level in logging.getLevelNamesMapping().items()
    for key, value in ((name, level), (level, logging.getLevelName(level)))
}


class gc_paused:
    """Hold the cyclic garbage collector while many objects that are not garbage are made
    (a large group's messages): it would otherwise scan them again and again as they pile
    up. Reference counting still frees everything; cycles wait until the block ends."""

    __slots__ = ("_was_enabled",)

    def __enter__(self) -> None:
        self._was_enabled = gc.isenabled()
        gc.disable()

    def __exit__(self, *exc: object) -> None:
        if self._was_enabled:
            gc.enable()


def yes_or_no(value: object) -> bool | None:
    """A yes/no value: a bool, or one of the usual words (``1``, ``true``, ``yes``, ``on``
    and their opposites, any case); None when it is neither."""
    if isinstance(value, bool):
        return value
    word = str(value).strip().lower()
    if word in ("1", "true", "yes", "on"):
        return True
    if word in ("0", "false", "no", "off"):
        return False
    return None


def safe_repr(value: object, limit: int | None = None) -> str:
    """``repr(value)``, cut to ``limit`` characters; never raises (a value whose
    ``__repr__`` fails is shown by its type)."""
    try:
        text = repr(value)
    except Exception as exc:
        text = f"<{type(value).__name__} object (repr failed: {type(exc).__name__})>"
    if limit is not None and len(text) > limit:
        text = text[: limit - 3] + "..."
    return text


def safe_str(value: object) -> str:
    """``str(value)`` that never raises (see :func:`safe_repr`)."""
    try:
        return str(value)
    except Exception:
        return safe_repr(value)


def keep_running(
    loop: Callable[[], object], name: str, stopping: Callable[[], bool] = lambda: False
) -> None:
    """Run ``loop`` in this thread until it returns; if it raises, log the error and run it
    again, after a pause that grows while it keeps failing, unless ``stopping()``.

    For the background threads a worker depends on: a dead heartbeat would leave leases
    unrenewed, and a dead pool supervisor takes its children with it (they die with the
    thread that forked them). The loop starts again in the same thread."""
    pause = 0.1
    while True:
        started = monotonic()
        try:
            loop()
            return
        except Exception:
            logger.exception("%s failed; starting it again", name)
        if stopping():
            return
        if monotonic() - started > 60.0:  # it had been running well
            pause = 0.1
        sleep(pause)
        pause = min(pause * 2, 5.0)
