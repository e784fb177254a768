"""The event store: what monitors read, kept durably and within bounds whatever the number of
tasks.

An :class:`EventStore` keeps one row per task and one per worker, built from the events of
the app's event log (:mod:`celeriac.monitor.ingest` feeds it), and the cursor of the log it
has applied up to, so a monitor that restarts goes on where it stopped. Rows older than
``max_age`` seconds and all but the newest ``max_tasks`` tasks are forgotten as events are
applied. One module per technology, each registered under its URL schemes in the
``celeriac.event_stores`` entry-point group: ``sqlite://`` (``celeriac-events.db`` in the
working directory when the URL names no file), ``postgresql://``, ``redis://``, and
``memory://`` for tests. See :mod:`celeriac.monitor.rows` for what a row holds and how an
event changes it.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

from .. import plugins
from .queries import DEFAULT_MAX_SAMPLES
from .rows import BadEvent, Change, change_from, merge_task, merge_worker, new_task, new_worker

#: entry-point group of event-store classes, by URL scheme
EVENT_STORES = "celeriac.event_stores"

#: the defaults of the ``max_age`` (seconds) and ``max_tasks`` options
DEFAULT_MAX_AGE = 7 * 24 * 3600.0
DEFAULT_MAX_TASKS = 100_000
#: seconds between two retention passes (they also run once a twentieth of ``max_tasks``
#: new tasks came in)
DEFAULT_PRUNE_INTERVAL = 5.0
#: the store a monitor uses when given no URL
DEFAULT_URL = "sqlite://"
#: the file of ``sqlite://`` alone, in the working directory (not the broker's
#: ``celeriac.db``: the store's writes then never wait on the broker's lock)
DEFAULT_SQLITE_FILE = "celeriac-events.db"
#: the cursor name :meth:`EventStore.apply` and :meth:`EventStore.cursor` use by default
DEFAULT_SOURCE = "events"

logger = logging.getLogger("celeriac.monitor")


@runtime_checkable
class EventStore(Protocol):
    """Tasks and workers as the events describe them, kept within bounds.

    Task rows have the columns of :data:`celeriac.monitor.rows.TASK_COLUMNS` (``payload``,
    the arguments as sent, and ``meta``, the meta of the last ``task-state``, decoded), worker
    rows those of :data:`celeriac.monitor.rows.WORKER_COLUMNS` plus ``alive``. Times are Unix
    timestamps; ``updated`` is the time of the newest event applied to the row. Methods raise
    :class:`~celeriac.exceptions.OperationalError` when the store cannot be reached."""

    url: str
    #: forget tasks not updated for this many seconds, and workers not heard of for as long
    max_age: float | None
    #: keep at most this many tasks (the most recently updated)
    max_tasks: int | None
    #: keep at most this many samples of each series (the newest)
    max_samples: int

    def apply(
        self,
        events: Sequence[dict[str, Any]],
        cursor: str | None = None,
        source: str = DEFAULT_SOURCE,
    ) -> None:
        """Apply ``events`` (event dicts, oldest first) in one transaction, or one atomic
        write where the technology has no transactions, with ``cursor`` saved as where
        ``source`` was read up to. Events the store does not keep are ignored, unusable ones
        skipped with a warning; applying an event again changes nothing. Retention runs
        here now and then (every ``prune_interval`` seconds, or sooner when many tasks came
        in)."""

    def cursor(self, source: str = DEFAULT_SOURCE) -> str | None:
        """The cursor saved with the last batch applied from ``source`` (None before)."""

    def prune(self, now: float | None = None) -> None:
        """Apply the retention now: forget tasks older than ``max_age`` (as of ``now``) and
        all but the newest ``max_tasks``, and workers not heard of for ``max_age``."""

    def task(self, uuid: str) -> dict[str, Any] | None:
        """The task ``uuid``, or None."""

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
        """Tasks with the given ``state``, ``name`` and ``worker`` (hostname), updated
        between ``since`` and ``until`` (inclusive), whose name, uuid, args, kwargs, result
        or exception contain ``search`` (ASCII letters in any case); sorted by ``sort``
        (one of :data:`celeriac.monitor.queries.SORTABLE`; the most recently updated first
        by default) in ``order`` (``"asc"`` or ``"desc"``), ties by ``updated`` then
        ``uuid`` in the same order, rows without a value last. Raises ValueError for
        another ``sort`` or ``order``."""

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
        """How many tasks :meth:`tasks` would give with these filters and no limit."""

    def throughput(self, since: float, until: float, bucket: float = 60.0) -> list[dict[str, Any]]:
        """Tasks that succeeded and failed between ``since`` and ``until`` (inclusive), per
        ``bucket`` seconds: ``[{"t", "succeeded", "failed"}]``, oldest first, one for every
        bucket of the window (zeros included); ``t`` is the bucket's start, a multiple of
        ``bucket``. Raises ValueError for a bucket that is not positive or too many of them."""

    def runtimes(
        self, since: float, until: float, names: Sequence[str] | None = None
    ) -> list[dict[str, Any]]:
        """Runtime percentiles of the tasks that finished between ``since`` and ``until``,
        by task name (only ``names`` when given): ``[{"name", "count", "p50", "p95",
        "p99"}]`` sorted by name, nearest-rank percentiles in seconds. A task's runtime is
        the one its worker reported, else the time from its start to its failure; tasks
        with neither are left out."""

    def record_samples(
        self, kind: str, t: float, values: Mapping[str, Mapping[str, float | None]]
    ) -> None:
        """Keep one sample at time ``t`` of each series ``values`` names: ``{key: {field:
        number or None}}`` (``kind`` "queues" with queue names as keys, "workers" with
        hostnames...). A sample of the same kind, key and time is replaced. Samples older
        than ``max_age`` (as of ``t``) and all but the newest ``max_samples`` of a series
        are forgotten; :meth:`prune` forgets old samples of every series."""

    def samples(
        self,
        kind: str,
        since: float | None = None,
        until: float | None = None,
        keys: Sequence[str] | None = None,
    ) -> dict[str, list[dict[str, Any]]]:
        """The samples of ``kind`` taken between ``since`` and ``until`` (inclusive), of
        ``keys`` only when given: ``{key: [{"t": t, **fields}]}``, oldest first."""

    def alert_states(self) -> dict[str, dict[str, Any]]:
        """The saved state of every alert, by alert id (see :mod:`celeriac.monitor.alerts`)."""

    def save_alert_states(self, changes: Mapping[str, dict[str, Any] | None]) -> None:
        """Save the states of these alerts (JSON-able dicts) in one write; None deletes one."""

    def workers(self, now: float | None = None) -> list[dict[str, Any]]:
        """Every worker, by hostname, with ``alive``: its last heartbeat is less than two
        heartbeat intervals old (as of ``now``) and it did not go offline since."""

    def counts(self) -> dict[str, Any]:
        """``{"states": {state: n}, "names": {name: {state: n}}}``, over every task kept
        (a task whose name no event told is counted under the name ``""``)."""

    def lost_tasks(self, now: float | None = None) -> list[dict[str, Any]]:
        """Tasks STARTED on a worker that went offline, whose heartbeats stopped, or that
        started again since (as of ``now``)."""

    def task_names(self) -> list[str]:
        """The names of the tasks kept, sorted."""

    def stats(self) -> dict[str, Any]:
        """``{"tasks": n, "workers": n, "oldest": t, "newest": t}``: rows kept and the
        ``updated`` times of the oldest and newest tasks (None when there are none)."""

    def close(self) -> None:
        """Release connections (the store reconnects on its next use)."""


def create_store(url: str | None = None, options: dict[str, Any] | None = None) -> EventStore:
    """The event store at ``url`` (:data:`DEFAULT_URL` when None): the class the
    ``celeriac.event_stores`` entry point of its scheme names. ``options``: ``max_age``,
    ``max_tasks`` (None: no bound of that kind), ``max_samples`` (per series),
    ``prune_interval``, and the connection's options (as transport options: ``key_prefix``
    on Redis, ``busy_timeout`` on SQLite...)."""
    url = url or DEFAULT_URL
    cls = plugins.for_url(EVENT_STORES, url, "event store")
    store: EventStore = cls(url, dict(options or {}))
    return store


class Retention:
    """The retention options, and when a store applies them: every ``prune_interval``
    seconds, or once a twentieth of ``max_tasks`` new tasks came in since the last time
    (so a store holds at most ``max_tasks`` plus that many tasks between two passes)."""

    def __init__(self, options: dict[str, Any]) -> None:
        max_age = options.pop("max_age", DEFAULT_MAX_AGE)
        self.max_samples = max(int(options.pop("max_samples", DEFAULT_MAX_SAMPLES)), 0)
        max_tasks = options.pop("max_tasks", DEFAULT_MAX_TASKS)
        self.max_age: float | None = None if max_age is None else float(max_age)
        self.max_tasks: int | None = None if max_tasks is None else max(int(max_tasks), 0)
        self.interval = float(options.pop("prune_interval", DEFAULT_PRUNE_INTERVAL))
        self.slack = max((self.max_tasks or 0) // 20, 1)
        self._last = time.monotonic()
        self._created = 0

    @property
    def bounded(self) -> bool:
        return self.max_age is not None or self.max_tasks is not None

    def due(self, created: int) -> bool:
        """Count ``created`` new tasks; is a retention pass due?"""
        self._created += created
        if not self.bounded:
            return False
        return (
            self.max_tasks is not None and self._created >= self.slack
        ) or time.monotonic() - self._last >= self.interval

    def done(self) -> None:
        """A retention pass was made."""
        self._last = time.monotonic()
        self._created = 0

    def cutoff(self, now: float | None) -> float | None:
        """Rows updated before this time are too old (None: no age limit)."""
        if self.max_age is None:
            return None
        return (time.time() if now is None else now) - self.max_age


@dataclass
class Batch:
    """A batch of events as changes, by task and by worker, in the order they came."""

    tasks: dict[str, list[Change]] = field(default_factory=dict)
    workers: dict[str, list[Change]] = field(default_factory=dict)

    @classmethod
    def of(cls, events: Iterable[dict[str, Any]]) -> Batch:
        """The changes ``events`` make (unusable events are skipped with a warning)."""
        batch = cls()
        for event in events:
            try:
                change = change_from(event)
            except BadEvent as exc:
                logger.warning("an event was skipped: %s", exc)
                continue
            if change is not None:
                found = batch.tasks if change.kind == "task" else batch.workers
                found.setdefault(change.key, []).append(change)
        return batch

    def merge(
        self,
        tasks: Mapping[str, dict[str, Any]],
        workers: Mapping[str, dict[str, Any]],
    ) -> tuple[dict[str, dict[str, Any]], dict[str, dict[str, Any]], int]:
        """The rows after this batch, given the stored ones it touches (changed in place);
        and how many tasks are new."""
        task_rows: dict[str, dict[str, Any]] = {}
        created = 0
        for uuid, changes in self.tasks.items():
            row = tasks.get(uuid)
            if row is None:
                row, created = new_task(uuid), created + 1
            for change in changes:
                merge_task(row, change)
            task_rows[uuid] = row
        worker_rows: dict[str, dict[str, Any]] = {}
        for hostname, changes in self.workers.items():
            row = workers.get(hostname) or new_worker(hostname)
            for change in changes:
                merge_worker(row, change)
            worker_rows[hostname] = row
        return task_rows, worker_rows, created
