"""Small utilities with Celery's module names (``celeriac.utils.log.get_task_logger``)."""

from __future__ import annotations

import gc


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
