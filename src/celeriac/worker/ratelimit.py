"""Rate limits: ``rate_limit="10/s" | "100/m" | "1000/h"`` per task.

Per worker (Celery's meaning): a token bucket per task type in each worker, holding one token,
refilled at the rate, so executions are spaced evenly. The processes of one prefork worker
share their buckets through shared memory (:class:`SharedClocks`).

Global (``rate_limit_scope="global"`` or ``global_rate_limit=``): one budget shared by every
worker through the result backend's atomic counters. The period is cut into (at most ten)
windows, each with its share of the limit, and a task takes a place in the current window's
counter; so a limit of 100/m holds however many workers run (within one window's share: any
sliding minute sees at most 110).

A task that has to wait is held by the worker (its lease kept) and started when its turn
comes; other tasks on the worker keep running meanwhile.
"""

from __future__ import annotations

import fcntl
import logging
import math
import mmap
import struct
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from ..exceptions import OperationalError
from ..keys import RATE_OVERRIDES_KEY, RATE_WINDOW_KEY
from ..rates import Rate, parse_rate, read_overrides

if TYPE_CHECKING:
    from ..app import Celeriac
    from ..task import Task

logger = logging.getLogger("celeriac.worker")


def _take(due: float, now: float, interval: float) -> tuple[float, float]:
    """A bucket whose token is back at ``due``, asked at ``now``: (seconds to wait, when the
    token is back next). A little lateness is forgiven so the rate holds; idleness does not
    bank tokens."""
    if now >= due:
        return 0.0, max(due, now - interval / 2) + interval
    return due - now, due


class TokenBucket:
    """One token, refilled at ``rate``: executions are spaced by ``1 / rate`` seconds."""

    def __init__(self, rate: Rate, clock: Callable[[], float] = time.monotonic) -> None:
        self.rate = rate
        self._clock = clock
        self._next = clock()

    def wait(self) -> float:
        """Take the token if it is there (0.0); else the seconds until it will be."""
        wait, self._next = _take(self._next, self._clock(), 1.0 / self.rate.per_second)
        return wait


_CLOCK = struct.Struct("d")


class SharedClocks:
    """The buckets of the task types a worker knows, in shared memory, so that the processes
    of one prefork worker (which inherit it) take from the same bucket; each is read and
    written under a lock (``lockf`` on its byte of an anonymous file)."""

    def __init__(self, names: list[str], lock_fd: int) -> None:
        self.index = {name: i for i, name in enumerate(sorted(names))}
        self._mem = mmap.mmap(-1, _CLOCK.size * max(1, len(self.index)))
        self._fd = lock_fd
        now = time.monotonic()  # the whole system's clock, the same in every process
        for i in range(len(self.index)):
            _CLOCK.pack_into(self._mem, i * _CLOCK.size, now)

    def bucket(self, name: str, rate: Rate) -> SharedBucket | None:
        i = self.index.get(name)
        return None if i is None else SharedBucket(self, i, rate)

    def take(self, i: int, interval: float) -> float:
        fcntl.lockf(self._fd, fcntl.LOCK_EX, 1, i)
        try:
            (due,) = _CLOCK.unpack_from(self._mem, i * _CLOCK.size)
            wait, due = _take(due, time.monotonic(), interval)
            _CLOCK.pack_into(self._mem, i * _CLOCK.size, due)
            return wait
        finally:
            fcntl.lockf(self._fd, fcntl.LOCK_UN, 1, i)


class SharedBucket:
    """A :class:`TokenBucket` kept in :class:`SharedClocks`."""

    def __init__(self, clocks: SharedClocks, index: int, rate: Rate) -> None:
        self.rate = rate
        self._clocks = clocks
        self._index = index

    def wait(self) -> float:
        return self._clocks.take(self._index, 1.0 / self.rate.per_second)


class GlobalWindow:
    """A share of ``rate`` per window, counted in the result backend for every worker."""

    def __init__(
        self, app: Celeriac, name: str, rate: Rate, clock: Callable[[], float] = time.time
    ) -> None:
        self.app = app
        self.name = name
        self.rate = rate
        self._clock = clock
        windows = max(1, min(10, math.floor(rate.count)))
        self.window = rate.period / windows
        self.share = math.ceil(rate.count / windows)

    def wait(self) -> float:
        now = self._clock()
        number = int(now // self.window)
        key = RATE_WINDOW_KEY.format(self.name, number)
        taken = self.app.results.backend.incr(key, 1, expires_in=self.window * 2 + 1)
        if taken <= self.share:
            return 0.0
        return (number + 1) * self.window - now + 0.001


Limiter = TokenBucket | SharedBucket | GlobalWindow


class RateLimits:
    """The limiters of one worker, by task name, with run-time overrides."""

    def __init__(
        self, app: Celeriac, disabled: bool = False, shared: SharedClocks | None = None
    ) -> None:
        self.app = app
        self.disabled = disabled
        self.shared = shared
        self._overrides: dict[str, str | None] = {}
        self._limiters: dict[str, tuple[Any, Limiter | None]] = {}
        self._lock = threading.Lock()

    def sharing(self, clocks: SharedClocks) -> RateLimits:
        """These limits, with their buckets in ``clocks`` (a prefork child's, after fork)."""
        limits = RateLimits(self.app, self.disabled, clocks)
        limits._overrides = dict(self._overrides)
        return limits

    def wait(self, task: Task) -> float:
        """Seconds ``task`` must wait before it may start (0.0: start now, token taken)."""
        if self.disabled or (
            not self._overrides
            and task.rate_limit is None
            and task.global_rate_limit is None
            and self.app.conf.task_default_rate_limit is None
        ):
            return 0.0  # the common case, without a lock
        limiter = self._limiter(task)
        if limiter is None:
            return 0.0
        try:
            return limiter.wait()
        except OperationalError:
            return 1.0  # the shared budget cannot be read: try again shortly

    def set(self, name: str, rate: str | None) -> None:
        """Change ``name``'s rate limit in this worker (None: back to the task's own)."""
        parse_rate(rate)
        with self._lock:
            if rate is None:
                self._overrides.pop(name, None)
            else:
                self._overrides[name] = rate

    def refresh(self) -> None:
        """Read the rate limits changed at run time for every worker (see :func:`publish`)."""
        if not self.app.results.enabled:
            return
        raw = self.app.results.backend.get_value(RATE_OVERRIDES_KEY)
        overrides = read_overrides(raw)
        with self._lock:
            self._overrides = overrides

    def _limiter(self, task: Task) -> Limiter | None:
        with self._lock:
            spec = self._overrides.get(task.name)
        is_global = bool(task.global_rate_limit) or task.rate_limit_scope == "global"
        if spec is None:
            spec = task.global_rate_limit or task.rate_limit
        if spec is None:
            spec = self.app.conf.task_default_rate_limit
        key = (spec, is_global)
        cached = self._limiters.get(task.name)
        if cached is not None and cached[0] == key:
            return cached[1]
        rate = parse_rate(spec)
        limiter: Limiter | None = None
        if rate is not None and is_global:
            limiter = GlobalWindow(self.app, task.name, rate)
        elif rate is not None:
            shared = self.shared.bucket(task.name, rate) if self.shared is not None else None
            limiter = shared or TokenBucket(rate)
        self._limiters[task.name] = (key, limiter)
        return limiter
