"""Memory samples for Celery's ``inspect memsample`` and ``memdump``: the resident memory
(RSS) of the worker's process and of its pool's processes, read from ``/proc`` (Linux).
Where there is no ``/proc``, the worker's own figure is the largest RSS it has had
(``resource``), and its children's are unknown."""

from __future__ import annotations

import gc
import os
import resource
import sys
import time
from collections import deque
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .worker import Worker

#: How many samples ``memsample`` keeps for ``memdump`` (the oldest are dropped first).
KEPT = 100


def rss(pid: int) -> int | None:
    """The resident memory of process ``pid`` in bytes, or None when it cannot be read."""
    try:
        with open(f"/proc/{pid}/statm", "rb") as f:
            return int(f.read().split()[1]) * resource.getpagesize()
    except (OSError, ValueError, IndexError):
        if pid != os.getpid():
            return None
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak if sys.platform == "darwin" else peak * 1024  # macOS counts bytes, Linux KiB


def human(size: int | None) -> str:
    """``48.3MB``, as Celery writes sizes (``?`` when unknown)."""
    if size is None:
        return "?"
    value = float(size)
    for unit in ("B", "kB", "MB", "GB"):
        if value < 1024 or unit == "GB":
            return f"{value:.0f}{unit}" if unit == "B" else f"{value:.1f}{unit}"
        value /= 1024
    return f"{value:.1f}GB"  # pragma: no cover


class MemorySamples:
    """The samples ``memsample`` took in one worker, for ``memdump``."""

    def __init__(self, worker: Worker) -> None:
        self.worker = worker
        self.samples: deque[tuple[float, str]] = deque(maxlen=KEPT)

    def _pool_pids(self) -> list[int]:
        pool = self.worker.pool
        own = os.getpid()
        return [pid for pid in (pool.pids() if pool is not None else []) if pid != own]

    def _text(self) -> str:
        """``worker 4242 48.3MB; pool 4243 31.0MB, 4244 30.8MB``."""
        text = f"worker {os.getpid()} {human(rss(os.getpid()))}"
        children = [f"{pid} {human(rss(pid))}" for pid in self._pool_pids()]
        return f"{text}; pool {', '.join(children)}" if children else text

    def sample(self, **_: Any) -> str:
        """Celery's ``memsample``: the RSS of the worker and of its pool's processes now
        (kept for ``memdump``)."""
        text = self._text()
        self.samples.append((time.time(), text))
        return text

    def dump(self, samples: int = 10, **_: Any) -> str:
        """Celery's ``memdump``: up to ``samples`` of the samples ``memsample`` took
        (spread over them, the last included), then the RSS now, once the worker's process
        has collected its garbage."""
        kept = list(self.samples)
        count = max(0, min(int(samples), len(kept)))
        last, gap = len(kept) - 1, (len(kept) - 1) / max(count - 1, 1)
        kept = [kept[last - round(i * gap)] for i in reversed(range(count))]
        lines = []
        if kept:
            lines.append("- rss (sample):")
            lines += [
                f"-    > {time.strftime('%H:%M:%S', time.localtime(t))} {text}," for t, text in kept
            ]
        gc.collect()
        lines.append(f"- rss (end): {self._text()}.")
        lines.append(
            "(samples are taken by inspect memsample; only the worker's own process collects "
            "its garbage before the last figure; the pool's processes are read as they are)"
        )
        return "\n".join(lines)
