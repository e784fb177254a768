"""The task message: what travels through the broker (see docs/protocol.md).

On the wire a message is bytes. A JSON message is one JSON object (the first byte is ``{``).
Any other serializer writes its content type, a newline, then the same object in its encoding.
Brokers never look inside; they carry the bytes with a queue, a priority and an ETA beside them.
"""

from __future__ import annotations

import copy
import dataclasses
import datetime as dt
import operator
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from math import isfinite
from typing import Any

from .brokers.base import Outgoing
from .exceptions import InvalidTaskError
from .serialization import get_serializer, json_dumps, json_loads, loads_checked

PROTOCOL_VERSION = 1
JSON_CONTENT_TYPE = "application/json"


@dataclass(slots=True)
class Message:
    """One task invocation. Times are UNIX seconds (UTC)."""

    id: str
    task: str
    args: list[Any] = field(default_factory=list)
    kwargs: dict[str, Any] = field(default_factory=dict)
    queue: str = "celery"
    priority: int = 0
    eta: float | None = None
    expires: float | None = None
    retries: int = 0
    root_id: str | None = None
    parent_id: str | None = None
    group_id: str | None = None
    group_index: int | None = None
    callbacks: list[dict[str, Any]] | None = None
    errbacks: list[dict[str, Any]] | None = None
    chain: list[dict[str, Any]] | None = None
    chord: dict[str, Any] | None = None
    soft_time_limit: float | None = None
    time_limit: float | None = None
    ignore_result: bool = False
    headers: dict[str, Any] = field(default_factory=dict)
    origin: str | None = None
    sent_at: float = 0.0
    properties: dict[str, Any] | None = None
    content_type: str = JSON_CONTENT_TYPE

    def __reduce__(self) -> tuple[Any, tuple[Any, ...]]:
        # a plain tuple pickles (to a pool's child) and copies several times faster than
        # the generic protocol for slotted classes
        return Message, _all_fields(self)

    def __copy__(self) -> Message:
        return Message(*_all_fields(self))

    def to_dict(self) -> dict[str, Any]:
        return {**self._body(), "content_type": self.content_type}

    def _body(self) -> dict[str, Any]:
        """The object on the wire: the fields that are set, and those always sent."""
        body: dict[str, Any] = {"v": PROTOCOL_VERSION}
        for name, value in zip(_WIRE_FIELDS, _wire_fields(self), strict=True):
            if value is not None or name in _ALWAYS:
                body[name] = value
        return body

    def encode(self) -> bytes:
        """Serialise with this message's content type (see :mod:`celeriac.serialization`)."""
        if not self.sent_at:
            self.sent_at = time.time()
        body = self._body()
        if self.content_type == JSON_CONTENT_TYPE:
            return json_dumps(body)
        ser = get_serializer(self.content_type)
        return ser.content_type.encode("ascii") + b"\n" + ser.dumps(body)

    @classmethod
    def decode(cls, data: bytes, accepted: frozenset[str]) -> Message:
        """Parse wire bytes; raise :class:`InvalidTaskError` with the reason if they are bad."""
        if not data:
            raise InvalidTaskError("empty message")
        if data[:1] == b"{":
            content_type = JSON_CONTENT_TYPE
            payload = data
        else:
            head, sep, payload = data.partition(b"\n")
            if not sep or len(head) > 100:
                raise InvalidTaskError("message has no content type header and is not JSON")
            content_type = head.decode("ascii", "replace")
        obj = loads_checked(payload, content_type, accepted)
        return cls.from_dict(obj, content_type)

    @classmethod
    def from_dict(cls, obj: Any, content_type: str = JSON_CONTENT_TYPE) -> Message:
        if not isinstance(obj, dict):
            raise InvalidTaskError(f"message body is a {type(obj).__name__}, not an object")
        version = obj.get("v", PROTOCOL_VERSION)
        if not isinstance(version, int) or version > PROTOCOL_VERSION:
            raise InvalidTaskError(f"unsupported message protocol version {version!r}")
        task_id, name = obj.get("id"), obj.get("task")
        if not isinstance(task_id, str) or not task_id:
            raise InvalidTaskError("message has no task id")
        if not isinstance(name, str) or not name:
            raise InvalidTaskError("message has no task name")
        args, kwargs = obj.get("args", []), obj.get("kwargs", {})
        if not isinstance(args, (list, tuple)):  # a tuple of types is faster than a union
            raise InvalidTaskError("message args is not a list")
        if not isinstance(kwargs, dict):
            raise InvalidTaskError("message kwargs is not an object")
        # by position: several times faster than keywords (the parsed keys are not the
        # interned names the constructor compares first); fields of a newer protocol
        # revision are ignored
        get = obj.get
        values: list[Any] = [get(field_, default) for field_, default in _DECODED]
        values[2] = args if type(args) is list else list(args)  # id, task, args, kwargs, ...
        values[3] = kwargs
        values[_HEADERS] = values[_HEADERS] or {}
        values[-1] = content_type
        msg = cls(*values)
        _check_fields(msg)
        return msg


def _check_fields(msg: Message) -> None:
    """Raise InvalidTaskError naming the first field of ``msg`` whose type is wrong (the
    workflow fields' contents are checked by the worker, which knows signatures)."""
    if type(msg.priority) is not int:
        raise InvalidTaskError("message priority is not an integer")
    if type(msg.retries) is not int or msg.retries < 0:
        raise InvalidTaskError("message retries is not a count")
    if msg.group_index is not None and type(msg.group_index) is not int:
        raise InvalidTaskError("message group_index is not an integer")
    if type(msg.ignore_result) is not bool:
        raise InvalidTaskError("message ignore_result is not true or false")
    if not isinstance(msg.headers, dict):
        raise InvalidTaskError("message headers is not an object")
    if not isinstance(msg.queue, str):
        raise InvalidTaskError("message queue is not a string")
    for name in _NUMBERS:
        value = getattr(msg, name)
        if value is not None and (not isinstance(value, int | float) or not isfinite(value)):
            raise InvalidTaskError(f"message {name} is not a number")
    for name in _LIMITS:
        value = getattr(msg, name)
        if value is not None and value < 0:
            raise InvalidTaskError(f"message {name} is negative")
    for name in _STRINGS:
        value = getattr(msg, name)
        if value is not None and not isinstance(value, str):
            raise InvalidTaskError(f"message {name} is not a string")
    for name in _LISTS:
        value = getattr(msg, name)
        if value is not None and not isinstance(value, list):
            raise InvalidTaskError(f"message {name} is not a list")
    if msg.chord is not None and not isinstance(msg.chord, dict):
        raise InvalidTaskError("message chord is not an object")
    if msg.properties is not None and not isinstance(msg.properties, dict):
        raise InvalidTaskError("message properties is not an object")
    if msg.kwargs and not all(type(key) is str for key in msg.kwargs):
        raise InvalidTaskError("message kwargs has a key that is not a string")


def shown_name(task: str, headers: dict[str, Any] | None) -> str:
    """The name log lines give an invocation: the ``shadow`` it was sent with (Celery's
    ``apply_async(shadow=...)``), else its task's (also for a shadow that is not a name: a
    message's headers come from whoever sent it)."""
    shadow = (headers or {}).get("shadow")
    return shadow if isinstance(shadow, str) and 0 < len(shadow) <= 200 else task


_NUMBERS = ("eta", "expires", "soft_time_limit", "time_limit", "sent_at")
_LIMITS = ("soft_time_limit", "time_limit")
_STRINGS = ("root_id", "parent_id", "group_id", "origin")
_LISTS = ("callbacks", "errbacks", "chain")


def celery_shape(msg: dict[str, Any]) -> tuple[tuple[Any, ...], dict[str, Any]]:
    """A message (as :meth:`Message.to_dict` gives it) as Celery's protocol 2 shows it to
    the publish signals: the body ``(args, kwargs, embed)`` and the headers (``id``,
    ``task``, ``root_id``, ``eta`` as ISO 8601, ..., then the message's own headers)."""
    headers = {
        "lang": "py",
        "task": msg["task"],
        "id": msg["id"],
        "shadow": None,
        "eta": _iso(msg.get("eta")),
        "expires": _iso(msg.get("expires")),
        "group": msg.get("group_id"),
        "group_index": msg.get("group_index"),
        "retries": msg.get("retries", 0),
        "timelimit": [msg.get("time_limit"), msg.get("soft_time_limit")],
        "root_id": msg.get("root_id"),
        "parent_id": msg.get("parent_id"),
        "argsrepr": repr(tuple(msg.get("args") or ())),
        "kwargsrepr": repr(msg.get("kwargs") or {}),
        "origin": msg.get("origin"),
        "ignore_result": msg.get("ignore_result", False),
        **(msg.get("headers") or {}),
    }
    embed = {k: msg.get(k) for k in ("callbacks", "errbacks", "chain", "chord")}
    return (list(msg.get("args") or ()), dict(msg.get("kwargs") or {}), embed), headers


def _iso(when: float | None) -> str | None:
    if when is None:
        return None
    return dt.datetime.fromtimestamp(when, dt.UTC).isoformat()


class Encoded(Outgoing):
    """A message already encoded, and ready to publish as it is: for the members of a large
    uniform group, which are spliced from one template instead of being built and encoded
    one by one (see :func:`splicer`). It also answers what publishing asks of a
    :class:`Message` (``id``, ``task``, ``headers``, ``to_dict()``) for signal receivers."""

    __slots__ = ("headers", "task")

    def __init__(self, template: Message, task_id: str, body: bytes) -> None:
        self.body, self.queue, self.priority = body, template.queue, template.priority
        self.eta, self.message_id = template.eta, task_id
        self.task, self.headers = template.task, template.headers

    @property
    def id(self) -> str:
        return self.message_id  # type: ignore[return-value]

    def encode(self) -> bytes:
        return self.body

    def to_dict(self) -> dict[str, Any]:
        return {**json_loads(self.body), "content_type": JSON_CONTENT_TYPE}


_HOLES = ("id", "args", "kwargs", "group_index", "root_id")


def splicer(template: Message) -> Callable[[str, list[Any], dict[str, Any], int], bytes] | None:
    """For a JSON ``template``: a function giving the body of a copy of it with its own id,
    arguments and group index (and root id, when the template is its own root), made by
    joining the template's encoded pieces with the new values. None for other content types.
    """
    if template.content_type != JSON_CONTENT_TYPE:
        return None
    own_root = template.root_id == template.id
    holes = [name for name in _HOLES if name != "root_id" or own_root]
    marked = copy.copy(template)
    for name in holes:
        setattr(marked, name, f"\x00{name}")
    encoded = marked.encode()
    marks = {name: json_dumps(f"\x00{name}") for name in holes}
    if any(encoded.count(mark) != 1 for mark in marks.values()):
        return None  # a mark also occurs elsewhere in the template: no splicing
    # the encoded template as a bytes format with one %b per hole, in the order they appear
    found = sorted((encoded.index(mark), name) for name, mark in marks.items())
    pieces: list[bytes] = []
    start = 0
    for at, name in found:
        pieces.append(encoded[start:at].replace(b"%", b"%%"))
        start = at + len(marks[name])
    pieces.append(encoded[start:].replace(b"%", b"%%"))
    fmt = b"%b".join(pieces)
    in_order = operator.itemgetter(*(_HOLES.index(name) for _, name in found))
    no_kwargs = json_dumps({})

    def splice(task_id: str, args: list[Any], kwargs: dict[str, Any], index: int) -> bytes:
        quoted = b'"%b"' % task_id.encode()
        kwargs_json = json_dumps(kwargs) if kwargs else no_kwargs
        # the values in the order of _HOLES
        return fmt % in_order((quoted, json_dumps(args), kwargs_json, b"%d" % index, quoted))

    return splice


_FIELDS = tuple(f for f in Message.__dataclass_fields__)
_WIRE_FIELDS = tuple(f for f in _FIELDS if f != "content_type")
# (name, value when absent) of every field, in order; absent lists and dicts are made per
# message (args, kwargs and headers are filled in by from_dict)
_DECODED = tuple(
    (f.name, None if f.default is dataclasses.MISSING else f.default)
    for f in dataclasses.fields(Message)
)
_HEADERS = _FIELDS.index("headers")
_all_fields = operator.attrgetter(*_FIELDS)  # the values of all fields, as a tuple
_wire_fields = operator.attrgetter(*_WIRE_FIELDS)
_ALWAYS = frozenset({"id", "task", "args", "kwargs", "retries", "priority"})


def clamp_priority(priority: Any) -> int:
    """Priorities are 0-9, 9 highest; anything else is an error."""
    if isinstance(priority, bool) or not isinstance(priority, int) or not 0 <= priority <= 9:
        raise ValueError(
            f"priority must be an integer from 0 (lowest) to 9 (highest), not {priority!r}"
        )
    return priority
