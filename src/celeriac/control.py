"""Remote control of workers: ``app.control.revoke(...)``, ``rate_limit(...)``,
``broadcast(...)``, ``ping()``, ``shutdown()``, ``add_consumer(...)``, ``time_limit(...)``,
``pool_grow(...)``, ... and ``app.control.inspect()``.

Revocations, by id or by stamped header, are kept in the result backend (with a TTL), so
every worker, including ones started later, honours them: a revoked task that has not
started is recorded as REVOKED and never runs. Workers keep the revoked ids and stamps in
memory and re-read them when the revocation counter moves (they look every half second, and
before starting stamped messages), so receiving a task costs no lookup.

Other commands travel in the *control log*, an event log of its own beside the broker
(:mod:`celeriac.eventlogs`, named ``control``): the sender appends the request, every worker
follows the log and runs the requests meant for it as they arrive (see
:mod:`celeriac.worker.remote`), and appends its reply, ``{hostname: reply}``, which the
sender reads from the log until its timeout. No result backend is needed, and a reply takes
a round trip on Redis and RabbitMQ (which wake a waiting reader) and up to 50 ms more on
SQLite and PostgreSQL (whose readers poll). A worker started later does not run requests
sent before it started.
"""

from __future__ import annotations

import logging
import signal as signal_module
import time
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from . import states
from .eventlogs.base import LATEST
from .exceptions import EncodeError
from .keys import (
    REVOCATIONS_KEY,
    REVOKE_TTL,
    REVOKED_KEY,
    REVOKED_SET,
    REVOKED_STAMPS_SET,
)
from .rates import publish_override
from .serialization import json_dumps, json_loads
from .utils import safe_repr

if TYPE_CHECKING:
    from .app import Celeriac

logger = logging.getLogger("celeriac.control")


@dataclass(frozen=True)
class Request:
    """A control request as it travels in the control log (JSON)."""

    command: str
    arguments: dict[str, Any]
    destination: list[str] | None  # the hostnames it is meant for; None: every worker
    id: str = ""
    reply: bool = False  # does the sender wait for replies?

    def encode(self) -> bytes:
        return json_dumps(
            {
                "request": self.id,
                "command": self.command,
                "arguments": self.arguments,
                "destination": self.destination,
                "reply": self.reply,
            }
        )

    @classmethod
    def decode(cls, raw: bytes | dict[str, Any]) -> Request:
        """The request in ``raw``; ValueError saying what is wrong with it. Anyone who can
        write to the control log can write a request, so it is checked as input."""
        if isinstance(raw, dict):
            obj: Any = raw
        else:
            try:
                obj = json_loads(raw)
            except Exception as exc:
                raise ValueError(f"not JSON ({exc})") from None
        if not isinstance(obj, dict):
            raise ValueError(f"a JSON {type(obj).__name__}, not an object")
        command, arguments = obj.get("command"), obj.get("arguments")
        destination = obj.get("destination")
        if not isinstance(command, str) or not command:
            raise ValueError("no command name")
        if arguments is None:
            arguments = {}
        if not isinstance(arguments, dict):
            raise ValueError("arguments is not an object")
        if destination is not None and (
            not isinstance(destination, list) or not all(isinstance(h, str) for h in destination)
        ):
            raise ValueError("destination is not a list of hostnames")
        request_id = obj.get("request")
        if not isinstance(request_id, str):
            raise ValueError("no request id")
        return cls(command, arguments, destination, request_id, bool(obj.get("reply")))


def encode_reply(request_id: str, hostname: str, answer: Any) -> bytes:
    """A worker's reply to a request, as it travels in the control log."""
    return json_dumps({"reply_to": request_id, "answer": {hostname: answer}})


def flatten_reply(replies: Iterable[Mapping[str, Any]] | None) -> dict[str, Any]:
    """Workers' replies, a list of ``{hostname: answer}``, as one ``{hostname: answer}``."""
    return {host: answer for reply in replies or () for host, answer in reply.items()}


def reply_to(request_id: str, body: bytes) -> dict[str, Any] | None:
    """The ``{hostname: reply}`` in ``body`` if it is a reply to ``request_id``."""
    try:
        obj = json_loads(body)
    except ValueError:
        return None
    if not isinstance(obj, dict) or obj.get("reply_to") != request_id:
        return None
    answer = obj.get("answer")
    return answer if isinstance(answer, dict) else None


class Control:
    """Operations on the running workers."""

    def __init__(self, app: Celeriac) -> None:
        self.app = app

    def revoke(
        self,
        task_id: str | Iterable[str],
        terminate: bool = False,
        signal: str = "SIGTERM",
        **kwargs: Any,
    ) -> None:
        """Revoke one task id or several: they will not run (``terminate`` is accepted and
        honoured by workers that support it)."""
        ids = [task_id] if isinstance(task_id, str) else list(task_id)
        results = self.app.results
        # the value is the signal to stop a running task with, empty when it may finish
        value = _signal_name(signal).encode() if terminate else b""
        metas = results.metas(ids)
        for tid in ids:
            results.backend.set_value(REVOKED_KEY.format(tid), value, REVOKE_TTL)
            results.backend.add_to_set(REVOKED_SET, tid, REVOKE_TTL)
            meta = metas.get(tid)
            if meta is None or meta["status"] not in states.READY_STATES:
                name = meta.get("name") if meta else None
                results.store(tid, states.REVOKED, None, task_name=name)
        results.backend.incr(REVOCATIONS_KEY)  # workers pick it up within half a second

    def revoke_by_stamped_headers(
        self,
        headers: Mapping[str, Any] | Iterable[str],
        destination: Iterable[str] | None = None,
        terminate: bool = False,
        signal: str | int = "SIGTERM",
        **kwargs: Any,
    ) -> list[dict[str, Any]] | None:
        """Revoke every task stamped with one of ``headers`` (``{"stamp": value}`` or
        ``{"stamp": [value, ...]}``; also Celery's ``["stamp=value"]``): a matching task that
        has not started is recorded as REVOKED and never runs, on every worker, one started
        later included; with ``terminate``, one that runs is stopped with ``signal``.

        Like :meth:`revoke`, this is kept in the result backend (workers apply it within
        half a second). With ``reply=True`` the workers named in ``destination`` (all by
        default) also answer, as Celery's do: ``[{hostname: {"ok": "headers ... flagged as
        revoked, but not terminated"}}]``, or which stamps they terminated."""
        revoked = stamped_headers(headers)
        sig = _signal_name(signal or "SIGTERM") if terminate else ""
        backend = self.app.results.backend
        for name, values in revoked.items():
            for value in _as_values(values):
                backend.add_to_set(REVOKED_STAMPS_SET, _stamp_member(name, value, sig), REVOKE_TTL)
        backend.incr(REVOCATIONS_KEY)  # workers pick it up within half a second
        if not kwargs.get("reply"):
            return None
        arguments = {"headers": revoked, "terminate": bool(terminate), "signal": sig or None}
        return self.broadcast("revoke_by_stamped_headers", arguments, destination, **kwargs)

    def revoked_stamps(self) -> dict[str, list[Any]]:
        """The stamped-header revocations in force: ``{stamp: [value, ...]}``."""
        members = self.app.results.backend.set_members(REVOKED_STAMPS_SET)
        return StampRevocations.decode(members).as_dict()

    def forget_revoked_stamps(self) -> None:
        """Drop every stamped-header revocation: tasks with those stamps run again (Celery's
        ``worker.state.revoked_stamps.clear()``; here for every worker)."""
        backend = self.app.results.backend
        backend.delete_value(REVOKED_STAMPS_SET)
        backend.incr(REVOCATIONS_KEY)

    def rate_limit(
        self, task_name: str, rate_limit: str | None, destination: Any = None, **kwargs: Any
    ) -> None:
        """Change a task's rate limit on every worker, within a heartbeat (None: back to the
        task's own). ``destination`` is accepted for compatibility; all workers apply it."""
        publish_override(self.app.results.backend, task_name, rate_limit)

    def purge(self) -> int:
        """Delete the waiting messages of the app's queues (``task_queues``, else the default
        queue); how many. Messages under a worker's lease are left to it."""
        names = list(self.app.queues) or [self.app.conf.task_default_queue]
        return sum(self.app.broker.purge(name) for name in names)

    discard_all = purge  # Celery's old name

    def broadcast(
        self,
        command: str,
        arguments: dict[str, Any] | None = None,
        destination: Iterable[str] | None = None,
        reply: bool = False,
        timeout: float = 1.0,
        limit: int | None = None,
        callback: Any = None,
        **kwargs: Any,
    ) -> list[dict[str, Any]] | None:
        """Send ``command`` to every worker (or those named in ``destination``); with
        ``reply``, the replies that came within ``timeout`` seconds, ``[{hostname: reply}]``
        (at most ``limit`` of them)."""
        targets = list(destination) if destination is not None else None
        request = Request(command, dict(arguments or {}), targets, uuid.uuid4().hex, reply)
        log = self.app.events.control_log()
        replies_from = log.reader(LATEST) if reply else None
        if replies_from is not None:
            replies_from.read(1, 0)  # from here: the replies come after the request
        try:
            log.append([request.encode()])
            if replies_from is None:
                return None
            if limit is None and targets is not None:
                limit = len(targets)  # every worker named has answered
            deadline = time.monotonic() + timeout
            replies: list[dict[str, Any]] = []
            while True:
                left = deadline - time.monotonic()
                if left <= 0 or (limit is not None and len(replies) >= limit):
                    return replies[:limit] if limit is not None else replies
                for _, body in replies_from.read(100, min(left, 0.25)):
                    answer = reply_to(request.id, body)
                    if answer is not None:
                        replies.append(answer)
                        if callback is not None:
                            callback(answer)
        finally:
            if replies_from is not None:
                replies_from.close()

    def inspect(
        self, destination: Iterable[str] | None = None, timeout: float = 1.0, **kwargs: Any
    ) -> Inspect:
        """Questions to the running workers: ``ping()``, ``stats()``, ``active()``, ..."""
        return Inspect(self, destination, timeout, kwargs.get("limit"))

    def ping(
        self,
        destination: Iterable[str] | None = None,
        timeout: float = 1.0,
        limit: int | None = None,
        **kwargs: Any,
    ) -> list[dict[str, Any]]:
        """``[{hostname: {"ok": "pong"}}]`` from every worker that answered in time."""
        replies = self.broadcast(
            "ping", destination=destination, reply=True, timeout=timeout, limit=limit
        )
        return replies or []

    def shutdown(
        self, destination: Iterable[str] | None = None, reply: bool = False, **kwargs: Any
    ) -> list[dict[str, Any]] | None:
        """Ask workers for a warm shutdown (they finish what they run)."""
        return self.broadcast("shutdown", destination=destination, reply=reply, **kwargs)

    def terminate(
        self,
        task_id: str | Iterable[str],
        destination: Any = None,
        signal: str = "SIGTERM",
        **kwargs: Any,
    ) -> None:
        """Revoke tasks and stop them if they run (``revoke(terminate=True)``)."""
        self.revoke(task_id, terminate=True, signal=signal)

    def time_limit(
        self,
        task_name: str,
        soft: float | None = None,
        hard: float | None = None,
        destination: Iterable[str] | None = None,
        **kwargs: Any,
    ) -> list[dict[str, Any]] | None:
        """Change a task's soft and hard time limits in the workers (None: no limit), for
        the tasks they receive from then on."""
        arguments = {"task_name": task_name, "soft": soft, "hard": hard}
        return self.broadcast("time_limit", arguments, destination, **kwargs)

    def add_consumer(
        self,
        queue: str,
        exchange: str | None = None,
        exchange_type: str = "direct",
        routing_key: str | None = None,
        options: dict[str, Any] | None = None,
        destination: Iterable[str] | None = None,
        **kwargs: Any,
    ) -> list[dict[str, Any]] | None:
        """Make the workers consume ``queue`` too (the exchange arguments are accepted and
        mean nothing: a celeriac queue is its name)."""
        arguments = {
            "queue": queue,
            "exchange": exchange,
            "exchange_type": exchange_type,
            "routing_key": routing_key,
            **(options or {}),
        }
        return self.broadcast("add_consumer", arguments, destination, **kwargs)

    def cancel_consumer(
        self, queue: str, destination: Iterable[str] | None = None, **kwargs: Any
    ) -> list[dict[str, Any]] | None:
        """Make the workers stop consuming ``queue`` (a worker keeps at least one queue)."""
        return self.broadcast("cancel_consumer", {"queue": queue}, destination, **kwargs)

    def pool_grow(
        self, n: int = 1, destination: Iterable[str] | None = None, **kwargs: Any
    ) -> list[dict[str, Any]] | None:
        """Let each worker run ``n`` more tasks at once (the threads pool, and the prefork
        pool whose children consume by themselves; the others reply with an error saying
        their size is fixed)."""
        return self.broadcast("pool_grow", {"n": n}, destination, **kwargs)

    def pool_shrink(
        self, n: int = 1, destination: Iterable[str] | None = None, **kwargs: Any
    ) -> list[dict[str, Any]] | None:
        """Let each worker run ``n`` fewer tasks at once (see :meth:`pool_grow`)."""
        return self.broadcast("pool_shrink", {"n": n}, destination, **kwargs)

    def autoscale(
        self, max: int, min: int, destination: Iterable[str] | None = None, **kwargs: Any
    ) -> list[dict[str, Any]] | None:
        """celeriac has no autoscaler: workers whose pool can be resized run ``max``."""
        return self.broadcast("autoscale", {"max": max, "min": min}, destination, **kwargs)

    def heartbeat(
        self, destination: Iterable[str] | None = None, **kwargs: Any
    ) -> list[dict[str, Any]] | None:
        """Make the workers renew their leases now (no event is sent: there are none yet)."""
        return self.broadcast("heartbeat", None, destination, **kwargs)

    def enable_events(
        self, destination: Iterable[str] | None = None, **kwargs: Any
    ) -> list[dict[str, Any]] | None:
        """Workers reply with an error: worker events are not available yet."""
        return self.broadcast("enable_events", None, destination, **kwargs)

    def disable_events(
        self, destination: Iterable[str] | None = None, **kwargs: Any
    ) -> list[dict[str, Any]] | None:
        """Workers reply with an error: worker events are not available yet."""
        return self.broadcast("disable_events", None, destination, **kwargs)

    def election(
        self, id: str, topic: str, action: Any = None, connection: Any = None, **kwargs: Any
    ) -> list[dict[str, Any]] | None:
        """Not needed: celeriac workers hold no elections; workers reply with an error
        saying so."""
        arguments = {"id": id, "topic": topic, "action": action}
        return self.broadcast("election", arguments, **kwargs)

    def pool_restart(
        self,
        modules: Iterable[str] | None = None,
        reload: bool = False,
        reloader: Any = None,
        destination: Iterable[str] | None = None,
        **kwargs: Any,
    ) -> list[dict[str, Any]] | None:
        """Make the workers import ``modules`` (by default the modules of their tasks),
        reload those already imported with ``reload``, and replace their pool's processes
        so the new code runs; only workers whose ``worker_pool_restarts`` setting is True do
        it (the others reply with an error, as Celery's). ``reloader`` (a function) cannot
        travel to the workers: :func:`importlib.reload` is used."""
        names = None if modules is None else list(modules)
        arguments = {"modules": names, "reload": reload}
        return self.broadcast("pool_restart", arguments, destination, **kwargs)

    def termination_signal(self, task_id: str) -> int | None:
        """The signal a running ``task_id`` is to be stopped with, if revoked to terminate."""
        value = self.app.results.backend.get_value(REVOKED_KEY.format(task_id))
        if not value:
            return None
        name = value.decode("ascii", "replace")
        members = signal_module.Signals.__members__
        return int(members.get(name, signal_module.SIGTERM))


def stamped_headers(headers: Mapping[str, Any] | Iterable[str]) -> dict[str, Any]:
    """``revoke_by_stamped_headers``'s ``headers``: a mapping of stamp names to a value or a
    list of values, or Celery's list of ``"name=value"`` strings. ValueError when neither."""
    if isinstance(headers, Mapping):
        pairs = list(headers.items())
    elif isinstance(headers, Iterable) and not isinstance(headers, str | bytes):
        pairs = []
        for item in headers:
            if not isinstance(item, str) or "=" not in item:
                raise ValueError(f"a stamped header is name=value, not {safe_repr(item, 60)}")
            name, _, value = item.partition("=")
            pairs.append((name, value))
    else:
        raise ValueError(f"stamped headers are a mapping, not {safe_repr(headers, 60)}")
    found: dict[str, Any] = {}
    for name, value in pairs:
        if not isinstance(name, str) or not name:
            raise ValueError(f"a stamp's name is a string, not {safe_repr(name, 60)}")
        found[name] = list(value) if isinstance(value, list | tuple) else value
    return found


def _as_values(value: Any) -> list[Any]:
    """A stamp's value as the list of values it stands for (Celery's ``maybe_list``)."""
    return list(value) if isinstance(value, list | tuple) else [value]


def _stamp_key(value: Any) -> str:
    """A stamp value compared by its JSON text (so 4242 and "4242" differ)."""
    return json_dumps(value).decode()


def _stamp_member(name: str, value: Any, signal: str) -> str:
    try:
        return json_dumps([name, value, signal]).decode()
    except EncodeError:
        raise ValueError(f"stamp {name!r}: {safe_repr(value, 60)} is not JSON") from None


class StampRevocations:
    """The stamped-header revocations in force, as a worker reads them from the result
    backend, and which messages they match (as Celery's worker does: a message whose stamp
    of that name has the value, or one of its values if it is a list)."""

    def __init__(self) -> None:
        #: stamp name -> JSON text of a revoked value -> (the value, the signal to stop a
        #: running task with, "" when it may finish)
        self._revoked: dict[str, dict[str, tuple[Any, str]]] = {}

    @classmethod
    def decode(cls, members: Iterable[str]) -> StampRevocations:
        """Read the members of the revocations' set. Anyone who can write to the result
        backend can add to it, so a member that is not ``[name, value, signal]`` is
        skipped with a log line."""
        found = cls()
        for member in members:
            try:
                name, value, signal = json_loads(member)
                if not isinstance(name, str) or not isinstance(signal, str):
                    raise ValueError("not [name, value, signal]")
                key = _stamp_key(value)
            except (ValueError, TypeError, EncodeError):
                logger.warning("revocations: skipped %s: not a stamp", safe_repr(member, 80))
                continue
            values = found._revoked.setdefault(name, {})
            kept = values.get(key)
            if kept is None or (signal and not kept[1]):  # one that terminates wins
                values[key] = (value, signal)
        return found

    @classmethod
    def of(cls, headers: Mapping[str, Any], signal: str = "") -> StampRevocations:
        """The revocations ``headers`` (see :func:`stamped_headers`) stand for."""
        found = cls()
        for name, values in headers.items():
            for value in _as_values(values):
                found._revoked.setdefault(name, {})[_stamp_key(value)] = (value, signal)
        return found

    def __bool__(self) -> bool:
        return bool(self._revoked)

    def as_dict(self) -> dict[str, list[Any]]:
        return {name: [v for v, _ in values.values()] for name, values in self._revoked.items()}

    def match(self, headers: Mapping[str, Any] | None) -> tuple[str, Any, str] | None:
        """The first revoked stamp of a message's ``headers`` (its ``stamps``): (name,
        value, signal to stop it with or ""), or None when none is revoked."""
        if not self._revoked or not headers:
            return None
        stamps = headers.get("stamps")
        if not isinstance(stamps, Mapping):
            return None
        for name, stamped in stamps.items():
            revoked = self._revoked.get(name) if isinstance(name, str) else None
            if not revoked:
                continue
            for value in _as_values(stamped):
                try:
                    found = revoked.get(_stamp_key(value))
                except EncodeError:
                    continue
                if found is not None:
                    return name, value, found[1]
        return None


def _signal_name(sig: str | int) -> str:
    """``"SIGKILL"``, ``"KILL"`` or ``9`` -> ``"SIGKILL"``."""
    if isinstance(sig, int):
        return signal_module.Signals(sig).name
    name = sig.upper()
    name = name if name.startswith("SIG") else f"SIG{name}"
    if name not in signal_module.Signals.__members__:
        raise ValueError(f"unknown signal {sig!r}")
    return name


class Inspect:
    """``app.control.inspect()``: each method asks the workers and returns
    ``{hostname: reply}``, or None when no worker answered within the timeout."""

    def __init__(
        self,
        control: Control,
        destination: Iterable[str] | None = None,
        timeout: float = 1.0,
        limit: int | None = None,
    ) -> None:
        self.control = control
        self.destination = list(destination) if destination is not None else None
        self.timeout = timeout
        self.limit = limit

    def _ask(self, command: str, **arguments: Any) -> dict[str, Any] | None:
        replies = self.control.broadcast(
            command,
            arguments,
            destination=self.destination,
            reply=True,
            timeout=self.timeout,
            limit=self.limit,
        )
        return flatten_reply(replies) or None

    def ping(self) -> dict[str, Any] | None:
        return self._ask("ping")

    def stats(self) -> dict[str, Any] | None:
        """Each worker's pid, pool (with its processes), broker, uptime and prefetch."""
        return self._ask("stats")

    def active(self) -> dict[str, Any] | None:
        """The tasks each worker is running."""
        return self._ask("active")

    def reserved(self) -> dict[str, Any] | None:
        """The tasks each worker has received and not started."""
        return self._ask("reserved")

    def scheduled(self) -> dict[str, Any] | None:
        """Tasks held by workers for an ETA: always empty lists (the broker holds them)."""
        return self._ask("scheduled")

    def registered(self, *taskinfoitems: str) -> dict[str, Any] | None:
        """The names of the tasks each worker knows; with attribute names (Celery's
        ``registered("rate_limit")``), each name is followed by those attributes."""
        return self._ask("registered", taskinfoitems=list(taskinfoitems))

    def conf(self, with_defaults: bool = False) -> dict[str, Any] | None:
        """Each worker's settings (those that differ from the defaults unless
        ``with_defaults``), secrets masked."""
        return self._ask("conf", with_defaults=with_defaults)

    def clock(self) -> dict[str, Any] | None:
        """Each worker's control clock: the number of the last request it handled."""
        return self._ask("clock")

    def report(self) -> dict[str, Any] | None:
        """A line about each worker: version, name, pool, queues and broker."""
        return self._ask("report")

    registered_tasks = registered

    def active_queues(self) -> dict[str, Any] | None:
        return self._ask("active_queues")

    def revoked(self) -> dict[str, Any] | None:
        return self._ask("revoked")

    def hello(self, from_node: str, revoked: Any = None) -> dict[str, Any] | None:
        """Celery's start-up exchange between workers: each other worker answers with the
        revoked ids it holds and its clock (celeriac's workers need no such exchange: their
        revocations are shared through the result backend)."""
        return self._ask("hello", from_node=from_node)

    def memsample(self) -> dict[str, Any] | None:
        """Each worker's resident memory (RSS), and its pool's processes', as a short text
        (kept by the worker for :meth:`memdump`)."""
        return self._ask("memsample")

    def memdump(self, samples: int = 10) -> dict[str, Any] | None:
        """Each worker's last ``samples`` of the samples :meth:`memsample` took, and its
        memory now, as a text."""
        return self._ask("memdump", samples=samples)

    def objgraph(self, type: str = "Request", n: int = 200, max_depth: int = 10) -> Any:
        """Where the worker can import the ``objgraph`` package: a PNG file, on the
        worker's machine, of what refers to ``n`` objects of ``type``; else an error."""
        return self._ask("objgraph", type=type, n=n, max_depth=max_depth)

    def _request(self, command: str, **arguments: Any) -> dict[str, Any] | None:
        """Ask ``command`` by name (Celery's ``inspect()._request``)."""
        return self._ask(command, **arguments)

    def query_task(self, *ids: Any) -> dict[str, Any] | None:
        """Per worker, ``{task_id: [state, info]}`` for the ids it runs or holds."""
        wanted = [i for group in ids for i in ([group] if isinstance(group, str) else group)]
        return self._ask("query_task", ids=wanted)
