"""Time limits for code running in a thread or process we cannot simply kill."""

from __future__ import annotations

import contextlib
import ctypes
import signal
import threading
from collections.abc import Iterator
from contextlib import AbstractContextManager
from types import FrameType

from ..exceptions import SoftTimeLimitExceeded, TimeLimitExceeded

_NO_LIMITS = contextlib.nullcontext()


def alarm_limits(soft: float | None, hard: float | None) -> AbstractContextManager[None]:
    """Raise SoftTimeLimitExceeded after ``soft`` s, TimeLimitExceeded after ``hard`` s.

    Uses SIGALRM, so only in a process's main thread (prefork children, the solo pool)."""
    if not (soft or hard) or threading.current_thread() is not threading.main_thread():
        return _NO_LIMITS
    return _alarm_limits(soft, hard)


@contextlib.contextmanager
def _alarm_limits(soft: float | None, hard: float | None) -> Iterator[None]:
    first = soft or hard
    assert first is not None

    def on_alarm(signum: int, frame: FrameType | None) -> None:
        if soft and hard and hard > soft and on_alarm.stage == 0:  # type: ignore[attr-defined]
            on_alarm.stage = 1  # type: ignore[attr-defined]
            signal.setitimer(signal.ITIMER_REAL, hard - soft)
            raise SoftTimeLimitExceeded(f"soft time limit ({soft}s) exceeded")
        if soft and on_alarm.stage == 0:  # type: ignore[attr-defined]
            on_alarm.stage = 1  # type: ignore[attr-defined]
            raise SoftTimeLimitExceeded(f"soft time limit ({soft}s) exceeded")
        raise TimeLimitExceeded(f"time limit ({hard}s) exceeded")

    on_alarm.stage = 0  # type: ignore[attr-defined]
    previous = signal.signal(signal.SIGALRM, on_alarm)
    signal.setitimer(signal.ITIMER_REAL, first)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def raise_in_thread(thread_id: int, exc_type: type[BaseException] | None) -> None:
    """Raise ``exc_type`` asynchronously in another thread (None clears a pending one).

    The exception arrives when that thread next runs Python code, not inside a blocking call."""
    ctypes.pythonapi.PyThreadState_SetAsyncExc(
        ctypes.c_ulong(thread_id), ctypes.py_object(exc_type) if exc_type else ctypes.c_void_p(0)
    )
