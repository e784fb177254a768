"""What the event store keeps of a task and of a worker, and how an event changes it: the
rules every store technology shares, so they all answer alike.

Rows are plain dicts of storable values (text, numbers, None); ``payload``, ``meta`` and
``loadavg`` are kept as JSON text and decoded by :func:`task_out` and :func:`worker_out`.
The rules make applying an event twice harmless and keep a task from moving back when its
events come out of order (the rule of :class:`celeriac.events.state.Task`): a state replaces
the current one when its event is at least as new, or when it comes later in a task's life
(PENDING < RECEIVED < STARTED < RETRY < the final states; a custom state ranks with
STARTED), unless it is from a run before the task's last retry.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from typing import Any

from .. import states
from ..events.event import with_celery_fields
from ..events.state import TASK_STATES, heartbeat_expires, state_wins

#: a task's columns, in storage order
TASK_COLUMNS = (
    "uuid",
    "name",
    "state",
    "worker",
    "queue",
    "sent",
    "received",
    "started",
    "succeeded",
    "failed",
    "retried",
    "rejected",
    "revoked",
    "runtime",
    "retries",
    "result",
    "exception",
    "traceback",
    "args",
    "kwargs",
    "payload",
    "root_id",
    "parent_id",
    "eta",
    "expires",
    "priority",
    "meta",
    "timestamp",
    "updated",
)
#: a worker's columns, in storage order
WORKER_COLUMNS = (
    "hostname",
    "pid",
    "freq",
    "last_heartbeat",
    "online_at",
    "offline_at",
    "active",
    "processed",
    "loadavg",
    "sw_ident",
    "sw_ver",
    "sw_sys",
    "updated",
)
#: columns that hold JSON text
JSON_COLUMNS = ("payload", "meta", "loadavg")

#: the column each task event type stamps with its time (task-started -> started)
TIME_COLUMNS = {type: type.split("-", 1)[1] for type in TASK_STATES}

WORKER_EVENTS = ("worker-online", "worker-heartbeat", "worker-offline")

# Longest values kept: memory per row is bounded, whatever the events carry.
KEY_LIMIT = 255  # uuid, hostname, name, queue, ids, state
TEXT_LIMIT = 4096  # result, exception, args, kwargs reprs
TRACEBACK_LIMIT = 32_768  # its end is kept: the innermost frames and the error
JSON_LIMIT = 65_536  # payload and meta; a larger one is not kept (it could not be re-sent)
_INT_RANGE = (-(2**63), 2**63)

_TEXT_FIELDS = {
    "name": KEY_LIMIT,
    "queue": KEY_LIMIT,
    "root_id": KEY_LIMIT,
    "parent_id": KEY_LIMIT,
    "result": TEXT_LIMIT,
    "exception": TEXT_LIMIT,
    "args": TEXT_LIMIT,
    "kwargs": TEXT_LIMIT,
}
_FLOAT_FIELDS = ("runtime", "eta", "expires")
_INT_FIELDS = ("retries", "priority")
_WORKER_TEXT = ("sw_ident", "sw_ver", "sw_sys")
_WORKER_INTS = ("pid", "active", "processed")


class BadEvent(ValueError):
    """An event of a kind the store keeps, but unusable (no uuid, no timestamp ...)."""


@dataclass(slots=True)
class Change:
    """One event, checked and reduced to what the store keeps."""

    kind: str  # "task" or "worker"
    type: str
    key: str  # the task's uuid or the worker's hostname
    timestamp: float
    hostname: str | None = None
    fields: dict[str, Any] = field(default_factory=dict)


def change_from(event: dict[str, Any]) -> Change | None:
    """The :class:`Change` an event makes; None for events the store does not keep (other
    groups, custom worker events). Raises :class:`BadEvent` for an unusable one."""
    type = event.get("type")
    if not isinstance(type, str):
        raise BadEvent("an event without a type")
    group = type.split("-", 1)[0]
    if group == "worker" and type not in WORKER_EVENTS:
        return None
    if group not in ("task", "worker"):
        return None
    timestamp = _float(event.get("timestamp"))
    if timestamp is None:
        raise BadEvent(f"a {type} event without a valid timestamp")
    host = event.get("hostname")
    hostname = (_text(host, KEY_LIMIT) or None) if isinstance(host, str) else None
    if group == "worker":
        if hostname is None:
            raise BadEvent(f"a {type} event without a hostname")
        return Change("worker", type, hostname, timestamp, hostname, _worker_fields(event))
    uuid = event.get("uuid")
    if not isinstance(uuid, str) or not uuid or len(uuid) > KEY_LIMIT:
        raise BadEvent(f"a {type} event without a valid uuid")
    uuid = _text(uuid, None)
    return Change("task", type, uuid, timestamp, hostname, _task_fields(type, event))


def _task_fields(type: str, event: dict[str, Any]) -> dict[str, Any]:
    if "payload" in event and "args" not in event:  # as a receiver reads it
        event = with_celery_fields(dict(event))
    found: dict[str, Any] = {}
    for name, limit in _TEXT_FIELDS.items():
        value = event.get(name)
        if value is not None:
            found[name] = _text(value, limit)
    traceback = event.get("traceback")
    if isinstance(traceback, str):
        found["traceback"] = _text(traceback[-TRACEBACK_LIMIT:], None)
    for name in _FLOAT_FIELDS:
        found[name] = _float(event.get(name))
    for name in _INT_FIELDS:
        found[name] = _int(event.get(name))
    payload = event.get("payload")
    if isinstance(payload, dict) and isinstance(payload.get("args"), list | tuple):
        kwargs = payload.get("kwargs")
        if kwargs is None or isinstance(kwargs, dict):
            kept: dict[str, Any] = {"args": list(payload["args"]), "kwargs": kwargs or {}}
            if payload.get("redacted"):  # by the monitor's hook: not the arguments as sent
                kept["redacted"] = True
            found["payload"] = _json(kept)
    if type == "task-state":
        state = event.get("state")
        if isinstance(state, str) and state:
            found["state"] = _text(state, KEY_LIMIT)
        if "meta" in event:
            found["meta"] = _json(event.get("meta"))
    return {k: v for k, v in found.items() if v is not None}


def _worker_fields(event: dict[str, Any]) -> dict[str, Any]:
    found: dict[str, Any] = {"freq": _float(event.get("freq"))}
    for name in _WORKER_INTS:
        found[name] = _int(event.get(name))
    for name in _WORKER_TEXT:
        value = event.get(name)
        found[name] = None if value is None else _text(value, KEY_LIMIT)
    loadavg = event.get("loadavg")
    if isinstance(loadavg, list | tuple):
        found["loadavg"] = _json([v for v in map(_float, loadavg[:3]) if v is not None])
    return {k: v for k, v in found.items() if v is not None}


# -- merging --------------------------------------------------------------------------------


def new_task(uuid: str) -> dict[str, Any]:
    row: dict[str, Any] = dict.fromkeys(TASK_COLUMNS)
    row.update(uuid=uuid, state=states.PENDING, retries=0, timestamp=0.0, updated=0.0)
    return row


def new_worker(hostname: str) -> dict[str, Any]:
    row: dict[str, Any] = dict.fromkeys(WORKER_COLUMNS)
    row.update(hostname=hostname, updated=0.0)
    return row


def merge_task(row: dict[str, Any], change: Change) -> dict[str, Any]:
    """Apply a task's ``change`` to its ``row`` (changed in place, and returned).

    A field takes the event's value when the event is at least as new as anything applied
    to the row before, or when the row has none yet; the time of each event type, ``retries``
    and ``updated`` only grow; the state follows the rule of the module's docstring, except
    that a state of a run before the task's last retry never replaces one of a later run."""
    when = change.timestamp
    newest = when >= (row["updated"] or 0.0)
    fields = change.fields
    new_state = fields.get("state") if change.type == "task-state" else TASK_STATES.get(change.type)
    for name, value in fields.items():
        if name == "state":
            continue
        if name == "retries":
            row["retries"] = max(row["retries"] or 0, value)
        elif newest or row[name] is None:
            row[name] = value
    if change.hostname and change.type != "task-sent" and (newest or row["worker"] is None):
        row["worker"] = change.hostname
    column = TIME_COLUMNS.get(change.type)
    if column is not None:
        row[column] = max(row[column] or when, when)
    if new_state is not None:
        if state_wins(new_state, when, row["state"], row["timestamp"], row["retried"]):
            row["state"] = new_state
            row["timestamp"] = max(when, row["timestamp"])
    row["updated"] = max(when, row["updated"] or 0.0)
    return row


def merge_worker(row: dict[str, Any], change: Change) -> dict[str, Any]:
    """Apply a worker's ``change`` to its ``row`` (changed in place, and returned).

    Its fields take the newest event's values; a heartbeat (or ``worker-online``) newer than
    the worker's ``worker-offline`` brings it back, a ``worker-offline`` older than its last
    heartbeat is an old one and changes nothing."""
    when = change.timestamp
    newest = when >= (row["updated"] or 0.0)
    for name, value in change.fields.items():
        if newest or row[name] is None:
            row[name] = value
    if change.type == "worker-offline":
        if when >= (row["last_heartbeat"] or 0.0):
            row["offline_at"] = max(row["offline_at"] or when, when)
    else:
        row["last_heartbeat"] = max(row["last_heartbeat"] or when, when)
        if change.type == "worker-online":
            row["online_at"] = max(row["online_at"] or when, when)
        if row["offline_at"] is not None and when > row["offline_at"]:
            row["offline_at"] = None
    row["updated"] = max(when, row["updated"] or 0.0)
    return row


# -- reading --------------------------------------------------------------------------------


def worker_alive(row: dict[str, Any], now: float) -> bool:
    """Online, and its last heartbeat less than two heartbeat intervals old."""
    last = row.get("last_heartbeat")
    if last is None or row.get("offline_at") is not None:
        return False
    return now < heartbeat_expires(last, row.get("freq"))


def is_lost(task: dict[str, Any], worker: dict[str, Any] | None, now: float) -> bool:
    """A task STARTED on a worker that is gone: offline, its heartbeats stopped, or started
    again since (a worker we know nothing of tells nothing)."""
    if task.get("state") != states.STARTED or worker is None:
        return False
    if not worker_alive(worker, now):
        return worker.get("last_heartbeat") is not None or worker.get("offline_at") is not None
    online, started = worker.get("online_at"), task.get("started")
    return online is not None and started is not None and online > started


def task_out(row: dict[str, Any]) -> dict[str, Any]:
    """A stored task row as the queries give it (JSON columns decoded)."""
    out = dict(row)
    for name in ("payload", "meta"):
        out[name] = _decode(out.get(name))
    return out


def worker_out(row: dict[str, Any], now: float) -> dict[str, Any]:
    """A stored worker row as the queries give it, with ``alive``."""
    out = dict(row)
    out["loadavg"] = _decode(out.get("loadavg")) or []
    out["alive"] = worker_alive(row, now)
    return out


# -- values ---------------------------------------------------------------------------------


def _text(value: Any, limit: int | None) -> str:
    """``value`` as text any store can hold (no NUL, valid UTF-8), cut to ``limit``."""
    text = value if isinstance(value, str) else json.dumps(value, default=repr)
    if limit is not None and len(text) > limit:
        text = text[: limit - 3] + "..."
    if "\x00" in text:
        text = text.replace("\x00", "\ufffd")
    if not text.isascii():
        try:
            text.encode()
        except UnicodeEncodeError:  # lone surrogates, from JSON escapes
            text = "".join("\ufffd" if "\ud800" <= c <= "\udfff" else c for c in text)
    return text


def _float(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    number = float(value)
    return number if math.isfinite(number) else None


def _int(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, int) and _INT_RANGE[0] <= value < _INT_RANGE[1]:
        return value
    return None


def _json(value: Any) -> str | None:
    """``value`` as ASCII JSON text, or None when it is too large to keep."""
    try:
        text = json.dumps(value, separators=(",", ":"), allow_nan=False, default=repr)
    except (ValueError, TypeError, RecursionError):
        return None
    return text if len(text) <= JSON_LIMIT else None


def _decode(text: Any) -> Any:
    if not isinstance(text, str):
        return text
    try:
        return json.loads(text)
    except ValueError:
        return None
