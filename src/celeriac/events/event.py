"""What an event is: a dict with Celery's field names, and its JSON encoding."""

from __future__ import annotations

import itertools
import json
import os
import threading
import time
import weakref
from collections.abc import Callable
from typing import Any

import orjson

from ..utils import safe_repr

#: the task events, in the order of a task's life
TASK_EVENTS = (
    "task-sent",
    "task-received",
    "task-started",
    "task-succeeded",
    "task-failed",
    "task-retried",
    "task-rejected",
    "task-revoked",
)
WORKER_EVENTS = ("worker-online", "worker-heartbeat", "worker-offline")


_clocks: weakref.WeakSet[LamportClock] = weakref.WeakSet()


def _after_fork_in_child() -> None:
    for clock in list(_clocks):  # a lock held by a parent's thread at the fork stays held
        clock._lock = threading.Lock()


os.register_at_fork(after_in_child=_after_fork_in_child)


class LamportClock:
    """A logical clock: every event a process sends carries the next value, and a process
    that receives an event moves its clock past the event's."""

    def __init__(self, initial: int = 0) -> None:
        #: the next value: a count's own ``__next__``, atomic and called without a Python
        #: frame (every sent event takes one)
        self.forward: Callable[[], int] = itertools.count(initial + 1).__next__
        self._lock = threading.Lock()
        _clocks.add(self)

    @property
    def value(self) -> int:
        """The clock's value. Reading it moves the clock on by one: values may be skipped,
        never repeated, which is all a logical clock promises."""
        return self.forward() - 1

    def adjust(self, other: int) -> int:
        with self._lock:
            value = max(self.value, int(other)) + 1
            self.forward = itertools.count(value + 1).__next__
            return value


def utcoffset() -> int:
    """This machine's offset from UTC in hours, west positive (Celery's sign)."""
    local = time.localtime()
    return -int((local.tm_gmtoff or 0) // 3600)


UTCOFFSET = utcoffset()


def Event(type: str, _fields: dict[str, Any] | None = None, **fields: Any) -> dict[str, Any]:
    """An event of ``type`` with ``fields`` and a ``timestamp`` (Celery's ``Event``)."""
    event = dict(_fields or {}, **fields)
    event["type"] = type
    event.setdefault("timestamp", time.time())
    return event


_groups: dict[str, str] = {}


def group_from(type: str) -> str:
    """``"task"`` for ``"task-sent"``: the group an event type belongs to."""
    group = _groups.get(type)
    if group is None:
        group = type.split("-", 1)[0]
        if len(_groups) < 1000:  # event types are few; custom ones are bounded here
            _groups[type] = group
    return group


def _fallback(value: Any) -> Any:
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    if isinstance(value, set | frozenset | tuple):
        return list(value)
    return repr(value)


def _dumps(value: Any) -> bytes:
    try:  # keys other than strings are rare and make every dump slower: only when needed
        return orjson.dumps(value, default=_fallback)
    except (TypeError, orjson.JSONEncodeError):
        pass
    try:
        return orjson.dumps(value, default=_fallback, option=orjson.OPT_NON_STR_KEYS)
    except (TypeError, orjson.JSONEncodeError):  # an int beyond 64 bits, nesting too deep
        return json.dumps(value, default=_fallback, separators=(",", ":")).encode()


def encode(event: dict[str, Any]) -> bytes:
    """``event`` as JSON; a value JSON cannot hold is written as its ``repr``."""
    return _dumps(event)


def encode_batch(events: list[dict[str, Any]]) -> bytes:
    """Events as one JSON array: one entry of an event log."""
    return _dumps(events)


def decode(body: bytes) -> list[dict[str, Any]]:
    """The events in an entry of an event log (a JSON array of them, or one object); what
    is not a JSON object with a ``type`` is left out."""
    try:
        found = orjson.loads(body)
    except (ValueError, UnicodeDecodeError):  # orjson.JSONDecodeError is a ValueError
        return []
    items = found if isinstance(found, list) else [found]
    return [e for e in items if isinstance(e, dict) and isinstance(e.get("type"), str)]


def task_fields(message: Any) -> dict[str, Any]:
    """What ``task-sent`` and ``task-received`` tell of a task message (a Message, or its
    ``to_dict()``): the arguments themselves in ``payload`` (so that a monitor can send the
    task again), and Celery's fields where they are set. Celery's ``args`` and ``kwargs``
    (their repr) are made by the reading side (:func:`with_celery_fields`): a worker spends
    nothing on them."""
    if isinstance(message, dict):
        get = message.get
        fields = {
            "uuid": get("id"),
            "name": get("task"),
            "payload": {"args": get("args"), "kwargs": get("kwargs")},
            "retries": get("retries") or 0,
            "queue": get("queue"),
            "priority": get("priority"),
            "sent_at": get("sent_at"),
        }
        for key in _OPTIONAL:
            value = get(key)
            if value is not None:
                fields[key] = value
        return _shown_as_given(fields, get("headers"))
    fields = {
        "uuid": message.id,
        "name": message.task,
        "payload": {"args": message.args, "kwargs": message.kwargs},
        "retries": message.retries,
        "queue": message.queue,
        "priority": message.priority,
        "sent_at": message.sent_at,
    }
    if message.eta is not None:
        fields["eta"] = message.eta
    if message.expires is not None:
        fields["expires"] = message.expires
    if message.root_id is not None:
        fields["root_id"] = message.root_id
    if message.parent_id is not None:
        fields["parent_id"] = message.parent_id
    return _shown_as_given(fields, message.headers)


def _shown_as_given(fields: dict[str, Any], headers: Any) -> dict[str, Any]:
    """With ``apply_async(argsrepr=..., kwargsrepr=...)``, events carry those texts in place
    of the arguments (Celery's way to keep secrets out of monitors): the arguments
    themselves are left out, so the task cannot be sent again from a monitor."""
    if not isinstance(headers, dict) or not ("argsrepr" in headers or "kwargsrepr" in headers):
        return fields
    args, kwargs = _argument_texts(fields.pop("payload"))
    fields["args"] = headers.get("argsrepr") or args
    fields["kwargs"] = headers.get("kwargsrepr") or kwargs
    return fields


_OPTIONAL = ("eta", "expires", "root_id", "parent_id")


def with_celery_fields(event: dict[str, Any]) -> dict[str, Any]:
    """``event`` with Celery's fields its sender left to the reader: ``args`` and ``kwargs``
    (the repr of the arguments in ``payload``) and ``routing_key`` (the queue)."""
    payload = event.get("payload")
    if isinstance(payload, dict) and "args" not in event:
        event["args"], event["kwargs"] = _argument_texts(payload)
    if "queue" in event and "routing_key" not in event:
        event["routing_key"] = event["queue"]
    return event


def _argument_texts(payload: dict[str, Any]) -> tuple[str, str]:
    """Celery's ``args`` and ``kwargs`` fields: the repr of a payload's arguments."""
    args = payload.get("args")
    return (
        safe_repr(tuple(args) if isinstance(args, list) else args, 1024),
        safe_repr(payload.get("kwargs"), 1024),
    )
