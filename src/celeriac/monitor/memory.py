"""An event store in this process's memory, shared by every store of one ``memory://`` URL:
for tests and one-process monitors (nothing survives the process)."""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from typing import Any

from ..connections.memory import PerURL
from .rows import is_lost, task_out, worker_out
from .store import DEFAULT_SOURCE, Batch, Retention


class _Data:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.tasks: dict[str, dict[str, Any]] = {}
        self.workers: dict[str, dict[str, Any]] = {}
        self.cursors: dict[str, str] = {}


_data: PerURL[_Data] = PerURL(_Data)


class MemoryEventStore:
    """Tasks and workers in a dict of this process."""

    def __init__(self, url: str = "memory://", options: dict[str, Any] | None = None) -> None:
        self.url = url
        self.retention = Retention(dict(options or {}))
        self.max_age = self.retention.max_age
        self.max_tasks = self.retention.max_tasks
        self._data = _data.get(url)

    @classmethod
    def reset(cls, url: str | None = None) -> None:
        """Forget what ``url`` holds (every URL's when None). For tests."""
        _data.reset(url)

    def apply(
        self,
        events: Sequence[dict[str, Any]],
        cursor: str | None = None,
        source: str = DEFAULT_SOURCE,
    ) -> None:
        batch = Batch.of(events)
        data = self._data
        with data.lock:
            tasks = {u: dict(data.tasks[u]) for u in batch.tasks if u in data.tasks}
            workers = {h: dict(data.workers[h]) for h in batch.workers if h in data.workers}
            task_rows, worker_rows, created = batch.merge(tasks, workers)
            data.tasks.update(task_rows)
            data.workers.update(worker_rows)
            if cursor is not None:
                data.cursors[source] = cursor
            if self.retention.due(created):
                self._prune(None)

    def cursor(self, source: str = DEFAULT_SOURCE) -> str | None:
        with self._data.lock:
            return self._data.cursors.get(source)

    def prune(self, now: float | None = None) -> None:
        with self._data.lock:
            self._prune(now)

    def _prune(self, now: float | None) -> None:
        data, retention = self._data, self.retention
        cutoff = retention.cutoff(now)
        if cutoff is not None:
            for uuid in [u for u, row in data.tasks.items() if row["updated"] < cutoff]:
                del data.tasks[uuid]
            for host in [h for h, row in data.workers.items() if row["updated"] < cutoff]:
                del data.workers[host]
        excess = len(data.tasks) - (retention.max_tasks or 0)
        if retention.max_tasks is not None and excess > 0:
            oldest = sorted(data.tasks.values(), key=_order)[:excess]
            for row in oldest:
                del data.tasks[row["uuid"]]
        retention.done()

    def task(self, uuid: str) -> dict[str, Any] | None:
        with self._data.lock:
            row = self._data.tasks.get(uuid)
            return None if row is None else task_out(row)

    def tasks(
        self,
        state: str | None = None,
        name: str | None = None,
        worker: str | None = None,
        since: float | None = None,
        until: float | None = None,
        limit: int = 100,
        offset: int = 0,
    ) -> list[dict[str, Any]]:
        with self._data.lock:
            rows = [
                row
                for row in self._data.tasks.values()
                if (state is None or row["state"] == state)
                and (name is None or row["name"] == name)
                and (worker is None or row["worker"] == worker)
                and (since is None or row["updated"] >= since)
                and (until is None or row["updated"] <= until)
            ]
        rows.sort(key=_order, reverse=True)
        return [task_out(row) for row in rows[offset : offset + limit]]

    def workers(self, now: float | None = None) -> list[dict[str, Any]]:
        now = time.time() if now is None else now
        with self._data.lock:
            rows = sorted(self._data.workers.values(), key=lambda row: row["hostname"])
            return [worker_out(row, now) for row in rows]

    def counts(self) -> dict[str, Any]:
        by_state: dict[str, int] = {}
        by_name: dict[str, dict[str, int]] = {}
        with self._data.lock:
            for row in self._data.tasks.values():
                state = row["state"]
                by_state[state] = by_state.get(state, 0) + 1
                named = by_name.setdefault(row["name"] or "", {})
                named[state] = named.get(state, 0) + 1
        return {"states": by_state, "names": by_name}

    def lost_tasks(self, now: float | None = None) -> list[dict[str, Any]]:
        now = time.time() if now is None else now
        with self._data.lock:
            workers = self._data.workers
            rows = [
                row
                for row in self._data.tasks.values()
                if is_lost(row, workers.get(row["worker"] or ""), now)
            ]
        rows.sort(key=_order, reverse=True)
        return [task_out(row) for row in rows]

    def task_names(self) -> list[str]:
        with self._data.lock:
            return sorted({row["name"] for row in self._data.tasks.values() if row["name"]})

    def stats(self) -> dict[str, Any]:
        with self._data.lock:
            times = [row["updated"] for row in self._data.tasks.values()]
            return {
                "tasks": len(times),
                "workers": len(self._data.workers),
                "oldest": min(times, default=None),
                "newest": max(times, default=None),
            }

    def close(self) -> None:
        pass


def _order(row: dict[str, Any]) -> tuple[float, str]:
    """Oldest first: by ``updated``, then by uuid (the order of every store)."""
    return (row["updated"], row["uuid"])
