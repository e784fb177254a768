"""An event store in this process's memory, shared by every store of one ``memory://`` URL:
for tests and one-process monitors (nothing survives the process)."""

from __future__ import annotations

import bisect
import copy
import threading
import time
from collections.abc import Mapping, Sequence
from typing import Any

from ..connections.memory import PerURL
from .queries import (
    check_sort,
    clean_samples,
    count_finished,
    finished_in,
    matches,
    runtime_of,
    runtime_rows,
    sample_out,
    sort_rows,
    throughput_rows,
)
from .rows import is_lost, task_out, worker_out
from .store import DEFAULT_SOURCE, Batch, Retention


class _Data:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.tasks: dict[str, dict[str, Any]] = {}
        self.workers: dict[str, dict[str, Any]] = {}
        self.cursors: dict[str, str] = {}
        # kind -> key -> [(t, fields)], oldest first
        self.samples: dict[str, dict[str, list[tuple[float, dict[str, float | None]]]]] = {}
        self.alerts: dict[str, dict[str, Any]] = {}


_data: PerURL[_Data] = PerURL(_Data)


class MemoryEventStore:
    """Tasks and workers in a dict of this process."""

    def __init__(self, url: str = "memory://", options: dict[str, Any] | None = None) -> None:
        self.url = url
        self.retention = Retention(dict(options or {}))
        self.max_age = self.retention.max_age
        self.max_tasks = self.retention.max_tasks
        self.max_samples = self.retention.max_samples
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
            for series in data.samples.values():
                for key in list(series):
                    self._trim(series, key, cutoff)
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
        *,
        search: str | None = None,
        sort: str = "updated",
        order: str = "desc",
    ) -> list[dict[str, Any]]:
        descending = check_sort(sort, order)
        rows = self._matching(state, name, worker, since, until, search)
        rows = sort_rows(rows, sort, descending)
        start = max(int(offset), 0)
        return [task_out(row) for row in rows[start : start + max(int(limit), 0)]]

    def count_tasks(
        self,
        state: str | None = None,
        name: str | None = None,
        worker: str | None = None,
        since: float | None = None,
        until: float | None = None,
        *,
        search: str | None = None,
    ) -> int:
        return len(self._matching(state, name, worker, since, until, search))

    def _matching(
        self,
        state: str | None,
        name: str | None,
        worker: str | None,
        since: float | None,
        until: float | None,
        search: str | None,
    ) -> list[dict[str, Any]]:
        with self._data.lock:
            return [
                row
                for row in self._data.tasks.values()
                if matches(row, state, name, worker, since, until, search)
            ]

    def throughput(self, since: float, until: float, bucket: float = 60.0) -> list[dict[str, Any]]:
        with self._data.lock:
            counts = count_finished(self._data.tasks.values(), since, until, bucket)
        return throughput_rows(since, until, bucket, counts)

    def runtimes(
        self, since: float, until: float, names: Sequence[str] | None = None
    ) -> list[dict[str, Any]]:
        wanted = None if names is None else set(names)
        with self._data.lock:
            found = [
                (row["name"], runtime_of(row))
                for row in self._data.tasks.values()
                if (wanted is None or row["name"] in wanted) and finished_in(row, since, until)
            ]
        return runtime_rows(found)

    def record_samples(
        self, kind: str, t: float, values: Mapping[str, Mapping[str, float | None]]
    ) -> None:
        kind, cleaned = clean_samples(kind, values)
        cutoff = self.retention.cutoff(t)
        with self._data.lock:
            series = self._data.samples.setdefault(kind, {})
            for key, fields in cleaned.items():
                points = series.setdefault(key, [])
                at = bisect.bisect_left(points, t, key=lambda p: p[0])
                if at < len(points) and points[at][0] == t:
                    points[at] = (t, fields)
                else:
                    points.insert(at, (t, fields))
                self._trim(series, key, cutoff)

    def _trim(
        self,
        series: dict[str, list[tuple[float, dict[str, float | None]]]],
        key: str,
        cutoff: float | None,
    ) -> None:
        points = series[key]
        if cutoff is not None:
            del points[: bisect.bisect_left(points, cutoff, key=lambda p: p[0])]
        del points[: max(len(points) - self.max_samples, 0)]
        if not points:
            del series[key]

    def samples(
        self,
        kind: str,
        since: float | None = None,
        until: float | None = None,
        keys: Sequence[str] | None = None,
    ) -> dict[str, list[dict[str, Any]]]:
        with self._data.lock:
            series = self._data.samples.get(kind, {})
            chosen = series if keys is None else [k for k in keys if k in series]
            found = {
                key: [
                    sample_out(t, fields)
                    for t, fields in series[key]
                    if (since is None or t >= since) and (until is None or t <= until)
                ]
                for key in chosen
            }
        return {key: points for key, points in found.items() if points}

    def alert_states(self) -> dict[str, dict[str, Any]]:
        with self._data.lock:
            return copy.deepcopy(self._data.alerts)

    def save_alert_states(self, changes: Mapping[str, dict[str, Any] | None]) -> None:
        with self._data.lock:
            for id, state in changes.items():
                if state is None:
                    self._data.alerts.pop(id, None)
                else:
                    self._data.alerts[id] = copy.deepcopy(state)

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
