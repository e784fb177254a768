"""A worker's answers to control requests (the control log is described in
:mod:`celeriac.control`). A thread of the worker follows the control log; a request meant
for this worker runs there as it arrives, and its reply goes back through the log."""

from __future__ import annotations

import contextlib
import importlib
import logging
import os
import resource
import sys
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from .. import __version__
from ..control import Request, StampRevocations, encode_reply, stamped_headers
from ..eventlogs.base import LATEST, EventLog, EventReader
from ..events import CONTROL_MAX_AGE
from ..exceptions import OperationalError
from ..keys import WORKER_CHANGES_KEY
from ..routing import Broadcast
from ..serialization import json_dumps, json_loads
from ..utils import keep_running, safe_repr, safe_str
from ..utils.urls import safe_url
from .control import project_command
from .memory import MemorySamples

if TYPE_CHECKING:
    from .pools.base import Job
    from .worker import Worker

logger = logging.getLogger("celeriac.worker")

#: What the commands celeriac does not have answer, and why (an error reply, never a
#: pretended success).
NOT_AVAILABLE = {
    "election": "election is not needed: celeriac workers hold no elections (beat's "
    "leadership is a lease in the result backend)",
}

#: How long one read of the control log waits (how soon a stopping worker's thread ends).
READ_WAIT = 0.25

#: ``pool_restart``'s reply when ``worker_pool_restarts`` is off (Celery's words).
RESTARTS_DISABLED = (
    "Pool restarts not enabled: set worker_pool_restarts = True in the worker's settings"
)


class Remote:
    """Runs the control requests sent to one worker."""

    def __init__(self, worker: Worker) -> None:
        self.worker = worker
        self.started = time.time()
        self.handled = 0  # the control requests this worker ran
        self._log: EventLog | None = None
        self._reader: EventReader | None = None
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self._failing = False
        self.memory = MemorySamples(worker)
        self.commands: dict[str, Callable[..., Any]] = {
            "ping": lambda: {"ok": "pong"},
            "stats": self.stats,
            "active": lambda: [self.task_info(job) for job in worker.running()],
            "reserved": lambda: [self.task_info(job) for job in worker.reserved()],
            "scheduled": lambda: [],
            "registered": self.registered,
            "active_queues": self.active_queues,
            "revoked": self.revoked,
            "hello": self.hello,
            "query_task": self.query_task,
            "shutdown": self.shutdown,
            "conf": self.conf,
            "clock": lambda: {"clock": self.handled},
            "report": self.report,
            "add_consumer": self.add_consumer,
            "cancel_consumer": self.cancel_consumer,
            "time_limit": self.time_limit,
            "pool_grow": lambda n=1, **_: self.resize(self.worker.concurrency + int(n)),
            "pool_shrink": lambda n=1, **_: self.resize(self.worker.concurrency - int(n)),
            "autoscale": self.autoscale,
            "heartbeat": self.heartbeat,
            "enable_events": self.enable_events,
            "disable_events": self.disable_events,
            "revoke_by_stamped_headers": self.revoke_by_stamped_headers,
            "pool_restart": self.pool_restart,
            "memsample": self.memory.sample,
            "memdump": self.memory.dump,
            "objgraph": objgraph,
        }
        for name, why in NOT_AVAILABLE.items():
            self.commands[name] = lambda _why=why, **_: {"error": _why}
        #: what the commands changed (queues, time limits), for consuming prefork children
        self.changes: dict[str, Any] = {}

    # -- following the control log ------------------------------------------------------

    def listen(self) -> None:
        """Take the requests sent from now on as this worker's (before it says it is
        ready), and answer them in a thread of their own as they arrive."""
        self._log = self.worker.app.events.control_log()
        self._reader = self._log.reader(LATEST)
        try:
            self._reader.read(1, 0)  # positioned at the end: what comes next is ours
        except OperationalError as exc:
            logger.warning("control: the control log cannot be read now (%s)", exc)
        self._thread = threading.Thread(
            target=lambda: keep_running(self._follow, "control", self._stop.is_set),
            name="celeriac-control",
            daemon=True,
        )
        self._thread.start()

    def stop(self) -> None:
        """Stop following the control log (the thread ends after its current read, a
        quarter of a second at most) and release its connections."""
        self._stop.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(5)

    def _follow(self) -> None:
        try:
            self._follow_until_stopped()
        finally:
            if self._stop.is_set() and self._reader is not None:
                self._reader.close()

    def _follow_until_stopped(self) -> None:
        assert self._log is not None and self._reader is not None
        pause, trimmed = 0.5, time.monotonic()
        while not self._stop.is_set():
            try:
                entries = self._reader.read(100, READ_WAIT)
            except OperationalError as exc:
                if not self._failing:
                    logger.warning("control: the control log cannot be read now (%s)", exc)
                    self._failing = True
                self._stop.wait(pause)
                pause = min(pause * 2, 10.0)
                continue
            if self._failing:
                logger.info("control: the control log is read again")
                self._failing, pause = False, 0.5
            for _, body in entries:
                self.answer(body)
            if time.monotonic() - trimmed > 60.0:
                trimmed = time.monotonic()
                self._log.trim(CONTROL_MAX_AGE, 10_000)

    def answer(self, body: bytes) -> None:
        """Run one entry of the control log if it is a request meant for this worker. The
        log is input anyone who can write to the broker may fill: an entry that is neither
        a request nor a reply is dropped with a log line."""
        try:
            request = Request.decode(body)
        except ValueError as exc:
            if b'"reply_to"' not in body:
                logger.warning("control: dropped an entry of the control log: %s", exc)
            return
        if request.destination is not None and self.worker.hostname not in request.destination:
            return
        self.handled += 1
        command = request.command
        handler = self.commands.get(command) or project_command(self.worker, command)
        try:
            if handler is None:
                reply: Any = {"error": f"unknown command {command!r}"}
            else:
                reply = handler(**request.arguments)
            encoded = encode_reply(request.id, self.worker.hostname, reply)
        except Exception as exc:
            logger.exception("control command %s failed", safe_repr(command, 60))
            error = {"error": f"{type(exc).__name__}: {safe_str(exc)}"}
            encoded = encode_reply(request.id, self.worker.hostname, error)
        if request.reply and self._log is not None:
            self._log.append([encoded])

    # -- what the commands read -----------------------------------------------------------

    def stats(self) -> dict[str, Any]:
        worker = self.worker
        pool = worker.pool
        return {
            "pid": os.getpid(),
            "hostname": worker.hostname,
            "uptime": round(time.time() - self.started, 3),
            "pool": {
                "implementation": worker.pool_name,
                "max-concurrency": worker.concurrency,
                "processes": pool.pids() if pool is not None else [],
            },
            "prefetch_count": worker.consumer.max_inflight,
            "broker": {"url": safe_url(worker.app.conf.broker_url or "")},
            "clock": self.handled,
            "total": dict(worker.total),
            "rusage": rusage(),
        }

    def registered(self, taskinfoitems: list[str] | None = None) -> list[str]:
        """The tasks' names; with ``taskinfoitems`` (Celery's), each followed by those of
        its attributes: ``"proj.add [rate_limit=10/s]"``."""
        tasks = self.worker.app.tasks
        names = sorted(n for n in tasks if not n.startswith(("celeriac.", "celery.")))
        if not taskinfoitems:
            return names
        shown = []
        for name in names:
            fields = " ".join(
                f"{item}={getattr(tasks[name], item, None)}"
                for item in taskinfoitems
                if isinstance(item, str) and not item.startswith("_")
            )
            shown.append(f"{name} [{fields}]" if fields else name)
        return shown

    def conf(self, with_defaults: bool = False) -> dict[str, Any]:
        """The worker's settings (see :meth:`Settings.masked`), values that do not travel as
        JSON shown by repr."""
        shown = self.worker.app.conf.masked(bool(with_defaults))
        return {key: value if _plain(value) else repr(value) for key, value in shown.items()}

    def report(self) -> dict[str, str]:
        """A text about this worker (Celery's ``celery report``)."""
        worker = self.worker
        return {
            "ok": f"celeriac {__version__} {worker.hostname} pool={worker.pool_name} "
            f"concurrency={worker.concurrency} queues={','.join(worker.queues)} "
            f"broker={safe_url(worker.broker.url)}"
        }

    def task_info(self, job: Job) -> dict[str, Any]:
        """:func:`task_info`, with this worker's name when the pool has none of its own."""
        info = task_info(job)
        info["hostname"] = info["hostname"] or self.worker.hostname
        return info

    def active_queues(self) -> list[dict[str, Any]]:
        """The queues consumed, in the shape of Celery's (an AMQP queue's fields, with the
        values of a queue Celery declares by name: its own direct exchange)."""
        return [
            {
                "name": q,
                "exchange": {
                    "name": q,
                    "type": "direct",
                    "arguments": None,
                    "durable": True,
                    "passive": False,
                    "auto_delete": False,
                    "delivery_mode": None,
                    "no_declare": False,
                },
                "routing_key": q,
                "queue_arguments": None,
                "binding_arguments": None,
                "consumer_arguments": None,
                "durable": True,
                "exclusive": False,
                "auto_delete": False,
                "no_ack": False,
                "alias": None,
                "bindings": [],
                "no_declare": None,
                "expires": None,
                "message_ttl": None,
                "max_length": None,
                "max_length_bytes": None,
                "max_priority": None,
            }
            for q in self.worker.queues
        ]

    def hello(self, from_node: str = "", **_: Any) -> dict[str, Any] | None:
        """Celery's ``hello``: the revoked ids and the clock, to another worker (None to
        itself)."""
        if from_node == self.worker.hostname:
            return None
        return {"revoked": self.revoked(), "clock": self.handled}

    def revoked(self) -> list[str]:
        """The ids revoked cluster-wide, read now: a revocation made just before counts."""
        with contextlib.suppress(OperationalError):
            self.worker.heartbeat.read_revocations()
        return sorted(self.worker.revoked)

    def query_task(self, ids: list[str]) -> dict[str, Any]:
        wanted = set(ids)
        found: dict[str, Any] = {}
        worker = self.worker
        for state, jobs in (("reserved", worker.reserved()), ("active", worker.running())):
            for job in jobs:
                if job.message.id in wanted:
                    found[job.message.id] = [state, self.task_info(job)]
        return found

    def shutdown(self, **_: Any) -> dict[str, str]:
        logger.warning("worker: shutdown requested by a control command")
        self.worker.stop()
        return {"ok": "shutting down"}

    # -- what the commands change -----------------------------------------------------------

    def add_consumer(self, queue: str = "", **_: Any) -> dict[str, str]:
        """Consume ``queue`` too (Celery's exchange and routing key arguments mean nothing
        here: a queue is its name)."""
        worker = self.worker
        if not isinstance(queue, str) or not queue:
            return {"error": "add_consumer needs a queue name"}
        if queue in worker.queues or queue in worker.broadcasts:
            return {"ok": f"already consuming from {queue!r}"}
        if isinstance(worker.app.queues.get(queue), Broadcast):
            return {"error": f"{queue!r} is a broadcast queue: name it in -Q at start"}
        self._set_queues([*worker.queues, queue])
        logger.warning("control: now consuming from %s", safe_repr(queue, 80))
        return {"ok": f"add consumer {queue}"}

    def cancel_consumer(self, queue: str = "", **_: Any) -> dict[str, str]:
        """Stop consuming ``queue`` (what was already received still runs)."""
        worker = self.worker
        if queue in worker.broadcasts:
            return {"error": f"{queue!r} is a broadcast queue: it stays for the worker's life"}
        if queue not in worker.queues:
            return {"error": f"not consuming from {queue!r}"}
        if len(worker.queues) == 1:
            return {"error": f"{queue!r} is the worker's only queue; add another first"}
        self._set_queues([q for q in worker.queues if q != queue])
        logger.warning("control: no longer consuming from %s", safe_repr(queue, 80))
        return {"ok": f"no longer consuming from {queue!r}"}

    def time_limit(
        self, task_name: str = "", soft: float | None = None, hard: float | None = None, **_: Any
    ) -> dict[str, str]:
        """Change a task's soft and hard time limits in this worker (None: no limit), for the
        tasks it receives from now on."""
        if task_name not in self.worker.app.tasks:
            return {"error": f"unknown task {task_name!r}"}
        limits = [_seconds(soft), _seconds(hard)]
        _set_time_limits(self.worker.app.tasks[task_name], limits)
        self.changes.setdefault("time_limits", {})[task_name] = limits
        self._publish_changes()
        logger.warning(
            "control: time limits of %s: soft %s, hard %s", task_name, limits[0], limits[1]
        )
        return {"ok": "time limits set successfully"}

    def resize(self, concurrency: int) -> dict[str, str]:
        """``pool_grow`` and ``pool_shrink``: run ``concurrency`` jobs at once."""
        if concurrency < 1:
            return {"error": "the pool cannot shrink below one"}
        before = self.worker.concurrency
        try:
            self.worker.resize_pool(concurrency)
        except (NotImplementedError, ValueError) as exc:
            return {"error": str(exc)}
        logger.warning("control: pool resized from %d to %d", before, concurrency)
        return {"ok": f"pool will {'grow' if concurrency >= before else 'shrink'} to {concurrency}"}

    def autoscale(self, max: int | None = None, min: int | None = None, **_: Any) -> dict[str, str]:
        """celeriac has no autoscaler: the pool is resized to ``max`` (as ``--autoscale``
        runs MAX at start), where the pool can be resized."""
        if max is None:
            return {"error": "autoscale needs max (and min)"}
        reply = self.resize(int(max))
        if "error" in reply:
            return reply
        return {"ok": f"no autoscaling in celeriac: the pool now runs max={int(max)}"}

    def heartbeat(self, **_: Any) -> dict[str, str]:
        """Renew the leases of what the worker holds now and send a worker-heartbeat event."""
        self.worker.heartbeat.renew_leases()
        self.worker.events.heartbeat()
        return {"ok": "leases renewed, heartbeat sent"}

    def enable_events(self, **_: Any) -> dict[str, str]:
        """Send task events from now on (as ``-E``)."""
        if self.worker.events.task_events:
            return {"ok": "task events already enabled"}
        self.worker.events.enable_task_events()
        self.changes["task_events"] = True
        self._publish_changes()
        return {"ok": "task events enabled"}

    def disable_events(self, **_: Any) -> dict[str, str]:
        """Stop sending task events (worker events go on)."""
        if not self.worker.events.task_events:
            return {"ok": "task events already disabled"}
        self.worker.events.disable_task_events()
        self.changes["task_events"] = False
        self._publish_changes()
        return {"ok": "task events disabled"}

    def revoke_by_stamped_headers(
        self, headers: Any = None, terminate: bool = False, signal: str | None = None, **_: Any
    ) -> dict[str, str]:
        """Celery's reply to ``revoke_by_stamped_headers``. The revocation itself is in the
        result backend, put there by the sender; with ``terminate``, it is applied now (the
        matching running tasks are stopped) and the reply names the stamps they had."""
        given = stamped_headers(headers if headers is not None else {})
        if not terminate:
            return {"ok": f"headers {given} flagged as revoked, but not terminated"}
        heartbeat = self.worker.heartbeat
        heartbeat.refresh_revocations()
        wanted = StampRevocations.of(given)
        stopped: dict[str, list[Any]] = {}
        for stamp in heartbeat.stopped_by_stamps():
            if wanted.match({"stamps": dict([stamp])}) is not None:
                values = stopped.setdefault(stamp[0], [])
                if stamp[1] not in values:
                    values.append(stamp[1])
        if not stopped:
            return {"ok": f"headers {given} were not terminated"}
        return {"ok": f"headers {stopped} revoked"}

    def pool_restart(
        self, modules: list[str] | None = None, reload: bool = False, **_: Any
    ) -> dict[str, str]:
        """With ``worker_pool_restarts``, as Celery: import ``modules`` not loaded yet (by
        default the modules of the app's tasks), reload those loaded with ``reload``, then
        replace the pool's processes so the new code runs (prefork: new children start, the
        old ones finish their task and exit; threads, asyncio, solo: the reload is all)."""
        worker = self.worker
        if not worker.app.conf.worker_pool_restarts:
            return {"error": RESTARTS_DISABLED}
        names = task_modules(worker.app) if modules is None else modules
        if not isinstance(names, list) or not all(isinstance(n, str) and n for n in names):
            return {"error": "pool_restart: modules is a list of module names"}
        imported, reloaded = [], []
        for name in names:
            if name not in sys.modules:
                importlib.import_module(name)
                imported.append(name)
            elif reload:
                importlib.reload(sys.modules[name])
                reloaded.append(name)
        replaced = worker.pool.restart() if worker.pool is not None else False
        logger.warning(
            "control: pool_restart: imported %s, reloaded %s; %s",
            ", ".join(imported) or "none",
            ", ".join(reloaded) or "none",
            "the pool's processes are replaced" if replaced else "no processes to replace",
        )
        return {"ok": "reload started"}

    def _set_queues(self, queues: list[str]) -> None:
        self.worker.queues = queues
        self.changes["queues"] = queues
        self._publish_changes()
        self.worker.consumer.wake()

    def _publish_changes(self) -> None:
        """Tell a consuming pool's children (they read it with each heartbeat)."""
        pool = self.worker.pool
        if pool is not None and pool.consumes:
            key = WORKER_CHANGES_KEY.format(self.worker.hostname)
            self.worker.app.results.backend.set_value(key, json_dumps(self.changes))

    def forget_changes(self) -> None:
        """At start: what a control command changed in an earlier worker of this name is
        not this one's."""
        if self.worker.app.results.enabled:
            backend = self.worker.app.results.backend
            backend.delete_value(WORKER_CHANGES_KEY.format(self.worker.hostname))

    def follow_changes(self) -> None:
        """A consuming prefork child: apply what control commands changed in its worker
        (the parent's queues and time limits). The value is checked as input."""
        app = self.worker.app
        if not app.results.enabled:
            return
        raw = app.results.backend.get_value(WORKER_CHANGES_KEY.format(self.worker.hostname))
        if raw is None:
            return
        try:
            changes = json_loads(raw)
        except ValueError:
            changes = None
        if not isinstance(changes, dict):
            raise ValueError(f"{WORKER_CHANGES_KEY.format(self.worker.hostname)} is not an object")
        queues = changes.get("queues")
        if isinstance(queues, list) and queues and all(isinstance(q, str) and q for q in queues):
            if queues != self.worker.queues:
                self.worker.queues = list(queues)
        task_events = changes.get("task_events")
        if isinstance(task_events, bool) and task_events != self.worker.events.task_events:
            events = self.worker.events
            events.enable_task_events() if task_events else events.disable_task_events()
        limits = changes.get("time_limits")
        if isinstance(limits, dict):
            for name, pair in limits.items():
                task = app.tasks.get(name) if isinstance(name, str) else None
                if task is not None and isinstance(pair, list) and len(pair) == 2:
                    _set_time_limits(task, [_seconds(v) for v in pair])


def task_modules(app: Any) -> list[str]:
    """``pool_restart``'s modules by default: those named in ``imports`` and ``include``,
    and those the app's tasks are defined in, except one that holds the app object itself
    (reloading it would make a second app)."""
    found = {*app.loader.default_modules, *app.loader.task_modules}
    for task in app.tasks.values():
        name = getattr(type(task), "__module__", None)
        if not isinstance(name, str) or name.startswith(("celeriac.", "celery.")):
            continue
        module = sys.modules.get(name)
        if module is None:
            continue
        if not any(value is app for value in vars(module).values()):
            found.add(module.__name__)
    return sorted(found)


def objgraph(
    type: str = "Request", n: int = 200, max_depth: int = 10, num: int | None = None, **_: Any
) -> Any:
    """Celery's ``objgraph`` inspect command, where the worker can import the ``objgraph``
    package: draws what refers to the first ``n`` (Celery's ``num``) objects of ``type`` into
    a PNG file and replies with its name."""
    try:
        import objgraph as graphs
    except ImportError:
        return {"error": "objgraph needs the objgraph package in the worker: pip install objgraph"}
    import tempfile

    objects = graphs.by_type(type)[: int(n if num is None else num)]
    with tempfile.NamedTemporaryFile(prefix="cobjg", suffix=".png", delete=False) as f:
        filename = f.name
    graphs.show_backrefs(objects, max_depth=int(max_depth), filename=filename)
    return {"filename": filename}


def task_info(job: Job) -> dict[str, Any]:
    """What ``inspect().active()`` and ``reserved()`` tell of a job, as Celery does."""
    message = job.message
    started = None
    if job.started_at is not None:  # monotonic: turned into wall-clock time
        started = time.time() - (time.monotonic() - job.started_at)
    return {
        "id": message.id,
        "name": message.task,
        "args": list(message.args),
        "kwargs": dict(message.kwargs),
        "type": message.task,
        "hostname": job.extra.get("hostname"),
        "time_start": started,
        "acknowledged": job.acked,
        "delivery_info": job.delivery_info,
        "worker_pid": job.extra.get("pid"),
        "priority": message.priority,
        "retries": message.retries,
        "root_id": message.root_id,
        "parent_id": message.parent_id,
    }


def _seconds(value: Any) -> float | None:
    """A time limit as given (a number or a numeric string; None, 0 or '' for none)."""
    if value in (None, "", 0):
        return None
    seconds = float(value)
    if seconds < 0 or seconds != seconds:
        raise ValueError(f"bad time limit {value!r}")
    return seconds


def _set_time_limits(task: Any, limits: list[float | None]) -> None:
    task.soft_time_limit, task.time_limit = limits


def _plain(value: Any) -> bool:
    """Does ``value`` travel as JSON as it is?"""
    if value is None or isinstance(value, str | int | float | bool):
        return True
    if isinstance(value, list | tuple):
        return all(_plain(v) for v in value)
    if isinstance(value, dict):
        return all(isinstance(k, str) and _plain(v) for k, v in value.items())
    return False


def rusage() -> dict[str, float]:
    """This process's resource use (``getrusage``: CPU seconds, peak memory in KiB ...)."""
    used = resource.getrusage(resource.RUSAGE_SELF)
    return {name[3:]: getattr(used, name) for name in dir(used) if name.startswith("ru_")}
