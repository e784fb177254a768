"""Routing: which queue (and priority) a task goes to, and the queues declared for it.

Precedence, as Celery documents: explicit ``apply_async(queue=..., priority=...)`` options,
then ``task_routes``, then the task's own options, then the queue's declared default priority,
then the configuration defaults.

``task_routes`` is a dict (task name, glob or compiled regex -> options), a router callable
``(name, args, kwargs, options, task=None, **kw) -> dict | None``, a dotted path to one, or a
list of those, tried in order.
"""

from __future__ import annotations

import fnmatch
import re
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from . import plugins
from .exceptions import ImproperlyConfigured, QueueNotFound
from .keys import BROADCAST_ALIVE, BROADCAST_MEMBERS, BROADCAST_MEMBERS_TTL

RouterFn = Callable[..., Mapping[str, Any] | str | None]


class Exchange:
    """An AMQP exchange, as far as routing by key needs one: its name and type (``direct``,
    ``topic`` or ``fanout``). See :func:`destination`."""

    def __init__(self, name: str = "", type: str = "direct", **kwargs: Any) -> None:
        self.name = name
        self.type = type

    def __repr__(self) -> str:
        return f"<Exchange {self.name}({self.type})>"


class Queue:
    """A declared queue (``task_queues``), Celery/kombu style.

    ``priority``: the default priority of messages routed here without one. ``max_priority``
    (or ``queue_arguments={"x-max-priority": n}``): higher priorities count as this one.
    ``message_ttl`` (seconds, or ``x-message-ttl`` in ms): a message not started within it
    expires (it is recorded REVOKED and moved to the dead-letter queue). ``exchange`` and
    ``routing_key`` bind it, for the tasks sent by routing key (see :func:`destination`).
    Every queue has its dead-letter queue ``<name>.dlq``."""

    def __init__(
        self,
        name: str,
        exchange: Any = None,
        routing_key: str | None = None,
        *,
        priority: int | None = None,
        max_priority: int | None = None,
        message_ttl: float | None = None,
        queue_arguments: Mapping[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        args = dict(queue_arguments or {})
        self.name = name
        self.exchange = exchange
        self.routing_key = routing_key or name
        self.priority = priority
        self.max_priority = max_priority if max_priority is not None else args.get("x-max-priority")
        ttl_ms = args.get("x-message-ttl")
        self.message_ttl = (
            message_ttl
            if message_ttl is not None
            else (ttl_ms / 1000.0 if ttl_ms is not None else None)
        )
        if self.max_priority is not None and not 0 <= int(self.max_priority) <= 9:
            self.max_priority = min(9, max(0, int(self.max_priority)))

    def __repr__(self) -> str:
        return f"<Queue {self.name}>"


class Broadcast(Queue):
    """A queue every worker consuming it gets its own copy of each message from.

    Each such worker takes a private queue ``<name>@<worker name>`` and announces itself in
    the result backend while it lives; publishing to the broadcast queue sends a copy (same
    task id) to each worker alive at that moment. As in Celery, a worker that is down when a
    message is published does not get it."""


def private_queue(queue: str, worker: str) -> str:
    """The queue a worker named ``worker`` takes its copies of broadcast ``queue`` from."""
    return f"{queue}@{worker}"


def join_broadcasts(backend: Any, queues: Sequence[str], worker: str, ttl: float) -> None:
    """Announce (again) that ``worker`` consumes the broadcast ``queues``, for ``ttl`` s."""
    for queue in queues:
        backend.add_to_set(BROADCAST_MEMBERS.format(queue), worker, BROADCAST_MEMBERS_TTL)
        backend.set_value(BROADCAST_ALIVE.format(queue, worker), b"1", ttl)


def leave_broadcasts(backend: Any, queues: Sequence[str], worker: str) -> None:
    for queue in queues:
        backend.delete_value(BROADCAST_ALIVE.format(queue, worker))


class BroadcastTargets:
    """Publisher side: the private queues of the live workers of each broadcast queue, read
    from the result backend at most once per ``ttl`` seconds."""

    def __init__(self, ttl: float = 1.0) -> None:
        self.ttl = ttl
        self._cache: dict[str, tuple[float, list[str]]] = {}

    def queues(self, backend: Any, queue: str) -> list[str]:
        now = time.monotonic()
        cached = self._cache.get(queue)
        if cached is not None and now - cached[0] < self.ttl:
            return cached[1]
        workers = backend.set_members(BROADCAST_MEMBERS.format(queue))
        alive = [
            private_queue(queue, w)
            for w in workers
            if backend.get_value(BROADCAST_ALIVE.format(queue, w)) is not None
        ]
        self._cache[queue] = (now, alive)
        return alive


def _exchange_of(queue: Queue, conf: Any) -> tuple[str, str]:
    """(name, type) of the exchange ``queue`` is bound to; a queue declared without one is
    bound to the default exchange (``task_default_exchange``, else the default queue's
    name, of type ``task_default_exchange_type``), as in Celery."""
    exchange = queue.exchange
    name = getattr(exchange, "name", exchange)
    if not name:
        default = conf.task_default_exchange or conf.task_default_queue
        return str(default), str(conf.task_default_exchange_type or "direct")
    return str(name), str(getattr(exchange, "type", "direct"))


def _topic_match(binding: list[str], key: list[str]) -> bool:
    """AMQP topic matching on dot-separated words: ``*`` is one word, ``#`` any number."""
    if not binding:
        return not key
    word, rest = binding[0], binding[1:]
    if word == "#":
        return any(_topic_match(rest, key[i:]) for i in range(len(key) + 1))
    return bool(key) and word in ("*", key[0]) and _topic_match(rest, key[1:])


def destination(
    queues: Mapping[str, Queue], conf: Any, queue: str, exchange: Any, routing_key: str | None
) -> str:
    """The queue a task sent to ``queue`` with ``exchange`` and ``routing_key`` (either may
    be None) reaches, as an AMQP broker routes it in Celery.

    A queue on a direct exchange, with no exchange given, is reached by its name: the
    routing key changes nothing (Celery publishes to it through the default exchange). With
    an exchange given, or a topic or fanout one, the key decides: the one queue bound to that
    exchange with a binding that matches it. None or several is
    :class:`~celeriac.exceptions.QueueNotFound` (an AMQP broker would drop the message, or
    deliver a copy to each queue: celeriac sends a task to one queue)."""
    known = dict(queues) or {
        conf.task_default_queue: Queue(
            conf.task_default_queue, routing_key=conf.task_default_routing_key
        )
    }
    target = known.get(queue)
    own_name, own_type = _exchange_of(target, conf) if target is not None else (queue, "direct")
    if (exchange is None or exchange == "") and (own_type == "direct" or routing_key is None):
        return queue
    name = str(getattr(exchange, "name", exchange) or own_name)
    kind = getattr(exchange, "type", None) or next(
        (t for n, t in (_exchange_of(q, conf) for q in known.values()) if n == name), "direct"
    )
    key = routing_key or (target.routing_key if target is not None else queue)
    found = [
        q.name
        for q in known.values()
        if _exchange_of(q, conf)[0] == name
        and (
            kind == "fanout"
            or (kind == "topic" and _topic_match(q.routing_key.split("."), key.split(".")))
            or (kind not in ("fanout", "topic") and q.routing_key == key)
        )
    ]
    if len(found) == 1:
        return found[0]
    where = f"exchange {name!r} ({kind}) with routing key {key!r}"
    if not found:
        raise QueueNotFound(
            f"no queue in task_queues is bound to {where}: an AMQP broker would drop the "
            "task; declare the queue (Queue(name, Exchange(...), routing_key=...)) or give "
            "queue=..."
        )
    raise QueueNotFound(
        f"{where} reaches the queues {', '.join(found)}: celeriac sends a task to one queue; "
        "give queue=... or make the bindings distinct"
    )


def declared_queues(setting: Any) -> dict[str, Queue]:
    """The ``task_queues`` setting as name -> Queue (names and dicts are accepted too)."""
    if not setting:
        return {}
    items = setting.values() if isinstance(setting, Mapping) else setting
    queues: dict[str, Queue] = {}
    for item in items:
        if isinstance(item, str):
            item = Queue(item)
        elif isinstance(item, Mapping):
            item = Queue(**item)
        if not isinstance(item, Queue):
            raise ImproperlyConfigured(f"task_queues entry {item!r} is not a Queue")
        queues[item.name] = item
    return queues


def app_queues(app: Any) -> list[str]:
    """The app's queues: the default queue, those of ``task_queues``, and those
    ``task_routes`` names plainly (routers and router paths are not asked)."""
    names = [app.conf.task_default_queue, *app.queues]
    routes = app.conf.task_routes
    for table in routes if isinstance(routes, list | tuple) else [routes]:
        if not isinstance(table, Mapping):
            continue
        for target in table.values():
            queue = target.get("queue") if isinstance(target, Mapping) else target
            if isinstance(queue, Queue):
                queue = queue.name
            if isinstance(queue, str) and queue:
                names.append(queue)
    return list(dict.fromkeys(names))


class MapRouter:
    """Routes by exact name first, then glob and regex patterns in definition order."""

    def __init__(self, routes: Mapping[Any, Any]) -> None:
        self.exact: dict[str, Mapping[str, Any]] = {}
        self.patterns: list[tuple[re.Pattern[str], Mapping[str, Any]]] = []
        for key, value in routes.items():
            route = {"queue": value} if isinstance(value, str) else value
            if isinstance(key, re.Pattern):
                self.patterns.append((key, route))
            elif any(c in key for c in "*?["):
                self.patterns.append((re.compile(fnmatch.translate(key)), route))
            else:
                self.exact[key] = route

    def __call__(self, name: str, *args: Any, **kwargs: Any) -> Mapping[str, Any] | None:
        if name in self.exact:
            return self.exact[name]
        for pattern, route in self.patterns:
            if pattern.match(name):
                return route
        return None


def _import_router(path: str) -> RouterFn:
    """A router by dotted path (``"proj.routers.route"``) or by the name it is registered
    under in the ``celeriac.routers`` entry point group (``"least-loaded"``)."""
    if "." not in path and ":" not in path:
        obj = plugins.load(plugins.ROUTERS, path, "router")
    else:
        obj = plugins.import_path(path, "router")
    return obj() if isinstance(obj, type) else obj


def prepare_routers(routes: Any) -> list[RouterFn]:
    """Turn the ``task_routes`` setting into a list of router callables."""
    if not routes:
        return []
    if isinstance(routes, Mapping) or callable(routes) or isinstance(routes, str):
        routes = [routes]
    routers: list[RouterFn] = []
    for r in routes if isinstance(routes, Sequence) else [routes]:
        if isinstance(r, Mapping):
            routers.append(MapRouter(r))
        elif isinstance(r, str):
            routers.append(_import_router(r))
        elif callable(r):
            routers.append(r)
        else:
            raise ImproperlyConfigured(f"task_routes entry {r!r} is not a dict, router or path")
    return routers


def route(
    routers: list[RouterFn],
    name: str,
    args: Any,
    kwargs: Any,
    options: Mapping[str, Any],
    task: Any = None,
) -> dict[str, Any]:
    """The first route any router gives for this call ({} if none)."""
    for router in routers:
        try:
            found = router(name, args, kwargs, options, task=task)
        except TypeError:
            found = router(name, args, kwargs, options)
        if found:
            return {"queue": found} if isinstance(found, str) else dict(found)
    return {}
