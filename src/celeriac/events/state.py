"""The cluster's state built from events: workers (alive or not) and tasks (Celery's
``State``), with memory bounded whatever the number of tasks."""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

from .. import states

#: a worker whose last heartbeat is older than this percentage of its heartbeat interval is
#: offline (Celery's name and value)
HEARTBEAT_EXPIRE_WINDOW = 200
DEFAULT_FREQ = 2.0


def heartbeat_expires(
    timestamp: float, freq: float | None = 60, expire_window: float = HEARTBEAT_EXPIRE_WINDOW
) -> float:
    """When a worker whose last heartbeat was at ``timestamp``, sent every ``freq`` seconds,
    counts as offline."""
    return float(timestamp) + float(freq or DEFAULT_FREQ) * expire_window / 100


#: the state each task event records
TASK_STATES = {
    "task-sent": states.PENDING,
    "task-received": states.RECEIVED,
    "task-started": states.STARTED,
    "task-succeeded": states.SUCCESS,
    "task-failed": states.FAILURE,
    "task-retried": states.RETRY,
    "task-rejected": states.REJECTED,
    "task-revoked": states.REVOKED,
}
#: a state's place in a task's life; a custom state (``update_state``) is one a task reports
#: while it runs, and ranks with STARTED
STATE_ORDER = {
    states.PENDING: 0,
    states.RECEIVED: 1,
    states.STARTED: 2,
    states.RETRY: 3,
    states.SUCCESS: 4,
    states.FAILURE: 4,
    states.REJECTED: 4,
    states.REVOKED: 4,
}


def rank(state: str) -> int:
    return STATE_ORDER.get(state, STATE_ORDER[states.STARTED])


def state_wins(
    new: str, when: float, current: str, current_at: float, retried: float | None
) -> bool:
    """Does a task's state ``new`` (from an event of ``when``) replace ``current`` (set at
    ``current_at``)? When its event is at least as new, or when it comes later in a task's
    life, unless it is from a run before the task's last retry (``retried``) while the
    current state is from a later run: events that come out of order never move a task
    back."""
    of_an_earlier_run = retried is not None and when <= retried < current_at
    return when >= current_at or (rank(new) > rank(current) and not of_an_earlier_run)


#: what a task keeps of its events' fields (time fields are set from the event type)
TASK_FIELDS = (
    "name",
    "args",
    "kwargs",
    "payload",
    "eta",
    "expires",
    "retries",
    "result",
    "exception",
    "traceback",
    "runtime",
    "queue",
    "exchange",
    "routing_key",
    "root_id",
    "parent_id",
    "client",
    "priority",
    "reason",
    "meta",
)

K = TypeVar("K")
V = TypeVar("V")


class LRU(OrderedDict[K, V]):
    """A dict that forgets its least recently set entries beyond ``limit``."""

    def __init__(self, limit: int) -> None:
        super().__init__()
        self.limit = limit

    def __setitem__(self, key: K, value: V) -> None:
        super().__setitem__(key, value)
        self.move_to_end(key)
        while len(self) > self.limit:
            self.popitem(last=False)


class Worker:
    """What events tell of one worker."""

    def __init__(self, hostname: str) -> None:
        self.hostname = hostname
        self.pid: int | None = None
        self.freq = DEFAULT_FREQ
        self.heartbeats: list[float] = []
        self.clock = 0
        self.active = 0
        self.processed = 0
        self.loadavg: list[float] = []
        self.sw_ident = self.sw_ver = self.sw_sys = ""
        self.offline_at: float | None = None
        self.fields: dict[str, Any] = {}

    def event(self, type: str, event: dict[str, Any]) -> None:
        when = float(event.get("timestamp") or time.time())
        self.pid = event.get("pid", self.pid)
        self.clock = max(self.clock, int(event.get("clock") or 0))
        for key in ("freq", "active", "processed", "loadavg", "sw_ident", "sw_ver", "sw_sys"):
            if key in event:
                setattr(self, key, event[key])
        self.fields.update({k: v for k, v in event.items() if k not in ("type", "clock")})
        if type == "worker-offline":
            self.offline_at = when
            self.heartbeats.clear()
        else:
            self.offline_at = None
            self.heartbeats = [*self.heartbeats[-4:], when]

    @property
    def heartbeat_expires(self) -> float | None:
        if not self.heartbeats:
            return None
        return heartbeat_expires(self.heartbeats[-1], self.freq)

    @property
    def alive(self) -> bool:
        expires = self.heartbeat_expires
        return expires is not None and time.time() < expires

    def as_dict(self) -> dict[str, Any]:
        return {
            **self.fields,
            "hostname": self.hostname,
            "pid": self.pid,
            "freq": self.freq,
            "active": self.active,
            "processed": self.processed,
            "loadavg": self.loadavg,
            "alive": self.alive,
            "last_heartbeat": self.heartbeats[-1] if self.heartbeats else None,
            "offline_at": self.offline_at,
        }

    def __repr__(self) -> str:
        return f"<Worker: {self.hostname} ({'ONLINE' if self.alive else 'OFFLINE'})>"


class Task:
    """What events tell of one task."""

    def __init__(self, uuid: str) -> None:
        self.uuid = uuid
        self.state = states.PENDING
        self.timestamp = 0.0
        self.worker: Worker | None = None
        self.name: str | None = None
        self.args: Any = None
        self.kwargs: Any = None
        self.payload: Any = None
        self.eta = self.expires = None
        self.retries = 0
        self.result: Any = None
        self.exception: Any = None
        self.traceback: Any = None
        self.runtime: float | None = None
        self.queue = self.exchange = self.routing_key = None
        self.root_id = self.parent_id = self.client = None
        self.priority: int | None = None
        self.reason: str | None = None
        self.meta: Any = None
        self.sent = self.received = self.started = None
        self.succeeded = self.failed = self.retried = self.rejected = self.revoked = None
        self.clock = 0

    def event(self, type: str, event: dict[str, Any], worker: Worker | None) -> None:
        when = float(event.get("timestamp") or time.time())
        new = event.get("state") if type == "task-state" else TASK_STATES.get(type)
        if type in TASK_STATES:
            column = type.split("-", 1)[1]  # task-started -> self.started
            setattr(self, column, max(getattr(self, column) or when, when))
        for key in TASK_FIELDS:
            if key in event and event[key] is not None:
                setattr(self, key, event[key])
        if worker is not None and type != "task-sent":
            self.worker = worker
        if new is None:  # a custom event (task-progress ...): its fields only
            return
        if state_wins(new, when, self.state, self.timestamp, self.retried):
            self.state = new
            self.timestamp = max(when, self.timestamp)
            self.clock = int(event.get("clock") or self.clock)

    @property
    def ready(self) -> bool:
        return self.state in states.READY_STATES

    def as_dict(self) -> dict[str, Any]:
        info = {key: getattr(self, key) for key in TASK_FIELDS}
        info.update(
            uuid=self.uuid,
            state=self.state,
            timestamp=self.timestamp,
            worker=self.worker.hostname if self.worker else None,
        )
        for key in ("sent", "received", "started", "succeeded", "failed", "retried"):
            info[key] = getattr(self, key)
        return info

    def __repr__(self) -> str:
        return f"<Task: {self.name}({self.uuid}) {self.state}>"


class State:
    """Workers and tasks as events describe them (Celery's ``app.events.State``).

    At most ``max_tasks_in_memory`` tasks and ``max_workers_in_memory`` workers are kept;
    the ones updated least recently are forgotten first.
    """

    def __init__(
        self,
        callback: Callable[[State, dict[str, Any]], Any] | None = None,
        max_workers_in_memory: int = 5000,
        max_tasks_in_memory: int = 10000,
        **_celery_options: Any,
    ) -> None:
        self.callback = callback
        self.workers: LRU[str, Worker] = LRU(max_workers_in_memory)
        self.tasks: LRU[str, Task] = LRU(max_tasks_in_memory)
        self.event_count = 0
        self.task_count = 0
        self._lock = threading.RLock()

    @property
    def max_tasks_in_memory(self) -> int:
        return self.tasks.limit

    def event(self, event: dict[str, Any]) -> tuple[Any, Any]:
        """Take one event into account; ``(object, created)`` as Celery's ``State.event``."""
        with self._lock:
            self.event_count += 1
            type = str(event.get("type", ""))
            group, _, _ = type.partition("-")
            hostname = event.get("hostname")
            worker = None
            created = False
            if hostname and group in ("worker", "task"):
                worker, created = self.get_or_create_worker(str(hostname))
            if group == "worker" and worker is not None:
                worker.event(type, event)
                self.workers[worker.hostname] = worker
                result: Any = worker
            elif group == "task" and event.get("uuid"):
                task, created = self.get_or_create_task(str(event["uuid"]))
                task.event(type, event, worker)
                self.tasks[task.uuid] = task
                if created:
                    self.task_count += 1
                result = task
            else:
                result = None
            if self.callback is not None:
                self.callback(self, event)
            return result, created

    def get_or_create_worker(self, hostname: str, **fields: Any) -> tuple[Worker, bool]:
        worker = self.workers.get(hostname)
        if worker is not None:
            return worker, False
        worker = Worker(hostname)
        self.workers[hostname] = worker
        return worker, True

    def get_or_create_task(self, uuid: str) -> tuple[Task, bool]:
        task = self.tasks.get(uuid)
        if task is not None:
            return task, False
        task = Task(uuid)
        self.tasks[uuid] = task
        return task, True

    def clear(self) -> None:
        with self._lock:
            self.workers.clear()
            self.tasks.clear()
            self.event_count = self.task_count = 0

    def freeze_while(
        self, fun: Callable[..., V], *args: Any, clear_after: bool = False, **kwargs: Any
    ) -> V:
        """``fun(*args, **kwargs)`` with no event applied meanwhile; then, with
        ``clear_after``, an empty state."""
        with self._lock:
            try:
                return fun(*args, **kwargs)
            finally:
                if clear_after:
                    self.clear()

    # -- queries ------------------------------------------------------------------------------

    def itertasks(self, limit: int | None = None) -> Iterator[tuple[str, Task]]:
        for n, item in enumerate(list(self.tasks.items())):
            if limit is not None and n >= limit:
                return
            yield item

    def tasks_by_time(
        self, limit: int | None = None, reverse: bool = True
    ) -> list[tuple[str, Task]]:
        """``(uuid, task)`` pairs, the most recent first (``reverse=False``: oldest first)."""
        found = sorted(self.tasks.items(), key=lambda kv: kv[1].timestamp, reverse=reverse)
        return found[:limit] if limit is not None else found

    tasks_by_timestamp = tasks_by_time

    def tasks_by_type(self, name: str, limit: int | None = None) -> list[tuple[str, Task]]:
        return [(u, t) for u, t in self.tasks_by_time() if t.name == name][:limit]

    def tasks_by_worker(self, hostname: str, limit: int | None = None) -> list[tuple[str, Task]]:
        return [
            (u, t)
            for u, t in self.tasks_by_time()
            if t.worker is not None and t.worker.hostname == hostname
        ][:limit]

    def task_types(self) -> list[str]:
        return sorted({t.name for t in self.tasks.values() if t.name})

    def alive_workers(self) -> list[Worker]:
        return [w for w in self.workers.values() if w.alive]

    def lost_tasks(self) -> list[Task]:
        """Tasks STARTED on a worker that has gone (offline, or its heartbeat expired)."""
        return [
            t
            for t in self.tasks.values()
            if t.state == states.STARTED
            and t.worker is not None
            and t.worker.heartbeats is not None
            and not t.worker.alive
            and (t.worker.offline_at is not None or t.worker.heartbeat_expires is not None)
        ]

    def __repr__(self) -> str:
        return f"<State: events={self.event_count} tasks={self.task_count}>"
