"""``worker.timer``: calls scheduled in a thread of the worker, for start-up steps
(:mod:`celeriac.bootsteps`) that touch a liveness file or poll something now and then."""

from __future__ import annotations

import heapq
import itertools
import logging
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

logger = logging.getLogger("celeriac.worker")


class Entry:
    """One scheduled call; ``cancel()`` stops it (and its repetitions)."""

    def __init__(
        self, fun: Callable[..., Any], args: Sequence[Any], kwargs: dict[str, Any]
    ) -> None:
        self.fun, self.args, self.kwargs = fun, tuple(args), kwargs
        self.canceled = False

    def cancel(self) -> None:
        self.canceled = True

    def __call__(self) -> None:
        self.fun(*self.args, **self.kwargs)


class Timer:
    """A thread that makes the calls at their times, started by the first call scheduled
    and stopped with the worker. A call that raises is logged; the timer goes on."""

    def __init__(self) -> None:
        self._heap: list[tuple[float, int, Entry, float | None]] = []
        self._order = itertools.count()
        self._cond = threading.Condition()
        self._thread: threading.Thread | None = None
        self._stopped = False

    def call_after(
        self,
        secs: float,
        fun: Callable[..., Any],
        args: Sequence[Any] = (),
        kwargs: dict[str, Any] | None = None,
        priority: int = 0,
    ) -> Entry:
        """Call ``fun(*args, **kwargs)`` once, ``secs`` seconds from now."""
        return self._add(time.monotonic() + secs, Entry(fun, args, kwargs or {}), None)

    def call_at(
        self,
        eta: float,
        fun: Callable[..., Any],
        args: Sequence[Any] = (),
        kwargs: dict[str, Any] | None = None,
        priority: int = 0,
    ) -> Entry:
        """Call ``fun`` once at ``eta`` (a ``time.time()`` timestamp)."""
        return self.call_after(max(0.0, eta - time.time()), fun, args, kwargs)

    def call_repeatedly(
        self,
        secs: float,
        fun: Callable[..., Any],
        args: Sequence[Any] = (),
        kwargs: dict[str, Any] | None = None,
        priority: int = 0,
    ) -> Entry:
        """Call ``fun`` every ``secs`` seconds, the first time ``secs`` from now."""
        return self._add(time.monotonic() + secs, Entry(fun, args, kwargs or {}), secs)

    def _add(self, due: float, entry: Entry, every: float | None) -> Entry:
        with self._cond:
            heapq.heappush(self._heap, (due, next(self._order), entry, every))
            if self._thread is None and not self._stopped:
                self._thread = threading.Thread(
                    target=self._run, name="celeriac-timer", daemon=True
                )
                self._thread.start()
            self._cond.notify()
        return entry

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._stopped and (not self._heap or self._heap[0][0] > time.monotonic()):
                    wait = self._heap[0][0] - time.monotonic() if self._heap else None
                    self._cond.wait(wait)
                if self._stopped:
                    return
                due, _, entry, every = heapq.heappop(self._heap)
            if entry.canceled:
                continue
            try:
                entry()
            except Exception:
                logger.exception("timer: %r raised", entry.fun)
            if every is not None and not entry.canceled:
                self._add(max(due + every, time.monotonic()), entry, every)

    def stop(self) -> None:
        """Stop making calls (the one running, if any, finishes)."""
        with self._cond:
            self._stopped = True
            self._cond.notify()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(5)
