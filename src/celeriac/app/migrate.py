"""Moving waiting tasks between queues and brokers, with the names of Celery's
``celery.contrib.migrate`` (importable from :mod:`celeriac.contrib.migrate` too):
``move_task_by_id(task_id, "other")``, ``move_by_taskmap({"proj.tasks.add": "slow"})``,
``move(predicate)`` and ``migrate_tasks(source, dest)``; ``celeriac migrate SOURCE DEST``
on the command line.

Works on every broker. The tasks waiting in the source queues are claimed in turn (under the
broker's lease, as a worker claims them); each one the predicate picks is published to its
new queue and then acknowledged, so a crash in between leaves a copy rather than losing it;
the others are given back when the pass ends. Tasks delayed to a later time (a countdown, an
eta, a retry's delay) are not due yet and stay where they are; tasks a worker holds are its
own.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from .._state import get_current_app
from ..brokers.base import Broker, Delivery, Outgoing, create_broker
from ..exceptions import InvalidTaskError
from ..message import Message, celery_shape
from ..routing import app_queues, destination
from ..serialization import content_types

if TYPE_CHECKING:
    from .base import Celeriac

__all__ = [
    "State",
    "StopFiltering",
    "TaskMessage",
    "migrate_tasks",
    "move",
    "move_by_idmap",
    "move_by_taskmap",
    "move_task_by_id",
    "task_id_eq",
    "task_id_in",
]

BATCH = 100


class StopFiltering(Exception):
    """Raised by a callback to end a :func:`move` early."""


class State:
    """How a pass went: ``count`` tasks looked at, ``filtered`` moved."""

    def __init__(self) -> None:
        self.count = 0
        self.filtered = 0
        self.total_apx = 0

    @property
    def strtotal(self) -> str:
        return str(self.total_apx) if self.total_apx else "?"

    def __repr__(self) -> str:
        return f"{self.filtered}/{self.count} moved"


class TaskMessage:
    """What a predicate gets besides the body: Celery's headers (``id``, ``task``, ...),
    ``delivery_info`` (the queue it waits in) and the decoded :class:`Message`."""

    def __init__(self, message: Message, delivery: Delivery) -> None:
        self.message = message
        self.body, self.headers = celery_shape(message.to_dict())
        self.payload = self.body
        self.properties = dict(message.properties or {})
        self.delivery_info = {"routing_key": delivery.queue, "priority": delivery.priority}


Predicate = Callable[[Any, TaskMessage], Any]


def task_id_eq(task_id: str, body: Any, message: TaskMessage) -> bool:
    """Is this the task with that id?"""
    return bool(message.headers["id"] == task_id)


def task_id_in(ids: Iterable[str], body: Any, message: TaskMessage) -> bool:
    """Is this one of the tasks with those ids?"""
    return message.headers["id"] in ids


def _queue_for(dest: Any, app: Celeriac, exchange: Any, routing_key: str | None) -> str:
    """The queue ``dest`` names: a queue's name or a ``Queue``, or an ``(exchange,
    routing_key)`` pair routed as :func:`celeriac.routing.destination` does."""
    if isinstance(dest, tuple) and len(dest) == 2:
        exchange, routing_key = dest
        dest = None
    name = getattr(dest, "name", dest)
    if isinstance(name, str) and name and not (exchange or routing_key):
        return name
    queue = name if isinstance(name, str) and name else app.conf.task_default_queue
    return destination(app.producer.queues, app.conf, queue, exchange, routing_key)


def _pass(
    source: Broker,
    queues: Sequence[str],
    accepted: frozenset[str],
    pick: Callable[[Message, Delivery], str | None],
    dest: Broker,
    state: State,
    limit: int | None,
    moved: Callable[[Message, Delivery], None] | None = None,
) -> State:
    """Claim what waits in ``queues`` of ``source``; publish each task ``pick`` gives a
    queue to that queue of ``dest``, then acknowledge it; give the rest back at the end."""
    claimed: list[Delivery] = []
    done: set[int] = set()  # the claimed deliveries moved (by id()): the rest go back
    try:
        while True:
            got = source.fetch(list(queues), BATCH, 0)
            if not got:
                return state
            claimed += got
            for delivery in got:
                state.count += 1
                try:
                    message = Message.decode(delivery.body, accepted)
                except InvalidTaskError:
                    continue  # not a task it can read: left where it is
                queue = pick(message, delivery)
                if not queue or (queue == delivery.queue and dest is source):
                    continue  # left as it is (already where it would go)
                message.queue = queue
                body = message.encode()
                dest.publish([Outgoing(body, queue, delivery.priority, None, message.id)])
                source.ack(delivery)
                done.add(id(delivery))
                state.filtered += 1
                if moved is not None:
                    moved(message, delivery)
                if limit and state.filtered >= limit:
                    return state
    except StopFiltering:
        return state
    finally:
        for delivery in claimed:
            if id(delivery) not in done:
                source.release(delivery)


def move(
    predicate: Predicate,
    connection: Any = None,
    exchange: Any = None,
    routing_key: str | None = None,
    source: Iterable[Any] | None = None,
    app: Celeriac | None = None,
    callback: Callable[[State, Any, TaskMessage], Any] | None = None,
    limit: int | None = None,
    transform: Callable[[Any], Any] | None = None,
    **kwargs: Any,
) -> State:
    """Move the waiting tasks ``predicate(body, message)`` picks to the queue it returns (a
    name, a ``Queue``, or an ``(exchange, routing_key)`` pair; or a false value to leave
    the task), from the queues in ``source`` (default: the app's). ``transform`` turns what
    the predicate returned into the destination; ``callback(state, body, message)`` is
    called for each task moved and may raise :class:`StopFiltering`; ``limit`` stops after
    that many. ``connection`` is accepted: the app's broker is used."""
    app = app or get_current_app()
    queues = [getattr(q, "name", q) for q in (source or app_queues(app))]
    state = State()
    found: dict[str, TaskMessage] = {}

    def pick(message: Message, delivery: Delivery) -> str | None:
        view = TaskMessage(message, delivery)
        chosen = predicate(view.body, view)
        if not chosen:
            return None
        if transform is not None:
            chosen = transform(chosen)
        found[message.id] = view
        return _queue_for(chosen, app, exchange, routing_key)

    def moved(message: Message, delivery: Delivery) -> None:
        view = found.pop(message.id)
        if callback is not None:
            callback(state, view.body, view)

    broker = app.broker
    return _pass(broker, queues, _accepted(app), pick, broker, state, limit, moved)


def move_task_by_id(task_id: str, dest: Any, **kwargs: Any) -> State:
    """Move the waiting task with that id to ``dest`` (see :func:`move`)."""
    return move_by_idmap({task_id: dest}, **kwargs)


def move_by_idmap(map: Mapping[str, Any], **kwargs: Any) -> State:
    """Move each waiting task whose id is in ``map`` to the queue it names."""

    def by_id(body: Any, message: TaskMessage) -> Any:
        return map.get(message.headers["id"])

    kwargs.setdefault("limit", len(map))
    return move(by_id, **kwargs)


def move_by_taskmap(map: Mapping[str, Any], **kwargs: Any) -> State:
    """Move the waiting tasks of each task name in ``map`` to the queue it names."""

    def by_name(body: Any, message: TaskMessage) -> Any:
        return map.get(message.headers["task"])

    return move(by_name, **kwargs)


def migrate_tasks(
    source: Any,
    dest: Any,
    migrate: Any = None,
    app: Celeriac | None = None,
    queues: Iterable[Any] | Mapping[str, str] | None = None,
    callback: Callable[[State, Any, TaskMessage], Any] | None = None,
    limit: int | None = None,
    tasks: Iterable[str] | None = None,
    **kwargs: Any,
) -> State:
    """Move every waiting task from the broker ``source`` to the broker ``dest`` (each a
    URL, an app, or ``app.connection(url)``), into queues of the same names or, with
    ``queues={"old": "new"}``, renamed. ``queues`` (a list) limits it to those; by default
    the app's queues. ``tasks`` limits it to those task names. ``migrate`` (Celery's
    per-message hook) is refused: use :func:`move` for a choice per task."""
    if migrate is not None:
        raise NotImplementedError(
            "migrate_tasks(migrate=...): celeriac moves the tasks itself; to choose task by "
            "task, use celeriac.contrib.migrate.move(predicate)"
        )
    app = app or get_current_app()
    renamed = dict(queues) if isinstance(queues, Mapping) else {}
    names = list(renamed) or [getattr(q, "name", q) for q in (queues or app_queues(app))]
    state = State()

    only = frozenset(tasks) if tasks is not None else None

    def pick(message: Message, delivery: Delivery) -> str | None:
        if only is not None and message.task not in only:
            return None
        return renamed.get(delivery.queue, delivery.queue)

    def moved(message: Message, delivery: Delivery) -> None:
        if callback is not None:
            view = TaskMessage(message, delivery)
            callback(state, view.body, view)

    from_broker, to_broker = _broker(source, app), _broker(dest, app)
    try:
        return _pass(from_broker, names, _accepted(app), pick, to_broker, state, limit, moved)
    finally:
        for broker, given in ((from_broker, source), (to_broker, dest)):
            if broker is not app.broker and broker is not getattr(given, "broker", None):
                broker.close()


def _broker(where: Any, app: Celeriac) -> Broker:
    """The broker a URL, an app or a connection handle names."""
    if hasattr(where, "broker") and not isinstance(where, str):
        broker: Broker = where.broker
        return broker
    url = where if isinstance(where, str) else getattr(where, "url", None)
    if not isinstance(url, str):
        raise TypeError(f"not a broker URL, app or connection: {where!r}")
    if url == app.broker.url:
        return app.broker
    return create_broker(url, app.conf.broker_transport_options)


def _accepted(app: Celeriac) -> frozenset[str]:
    return content_types(app.conf.accept_content)
