"""Publishing: a task's name, arguments and options become a routed :class:`Message`
(:meth:`Producer.build_message`), and messages go to the broker in one batch, with the
publish signals, broadcast fan-out and the retry policy (:meth:`Producer.publish`).

``app.send_task``, ``app.build_message`` and ``app.publish`` are the app's own doors to it.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import socket
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from . import _state, signals
from .brokers.base import Outgoing
from .canvas import maybe_signature
from .events.event import task_fields
from .exceptions import OperationalError, QueueNotFound
from .message import Encoded, Message, celery_shape, clamp_priority
from .routing import (
    Broadcast,
    BroadcastTargets,
    Queue,
    declared_queues,
    destination,
    prepare_routers,
    route,
)
from .serialization import get_serializer
from .utils import gc_paused
from .utils.ids import new_id
from .utils.time import relative_or_absolute, to_unix
from .utils.urls import safe_url

if TYPE_CHECKING:
    from .app import Celeriac
    from .task import Task

logger = logging.getLogger("celeriac.app")

#: ``apply_async`` options that are AMQP message properties: they travel with the message
#: and the task sees them in ``self.request.properties``, as in Celery.
PROPERTIES = (
    "app_id",
    "user_id",
    "type",
    "message_id",
    "cluster_id",
    "content_encoding",
    "delivery_mode",
    "expiration",
    "timestamp",
)


class Producer:
    """Builds and publishes the messages of one app."""

    def __init__(self, app: Celeriac) -> None:
        self.app = app
        self._routers: tuple[Any, list[Any]] | None = None
        self._queues: tuple[Any, dict[str, Queue], frozenset[str]] | None = None
        self._broadcast_targets = BroadcastTargets()

    @property
    def queues(self) -> dict[str, Queue]:
        """The queues declared in ``task_queues``, by name."""
        return self.declared()[1]

    def declared(self) -> tuple[Any, dict[str, Queue], frozenset[str]]:
        """``task_queues`` as (the setting, queues by name, names of broadcast queues)."""
        setting = self.app.conf.task_queues
        if self._queues is None or self._queues[0] is not setting:
            queues = declared_queues(setting)
            broadcasts = frozenset(n for n, q in queues.items() if isinstance(q, Broadcast))
            self._queues = (setting, queues, broadcasts)
        return self._queues

    def route(
        self, name: str, args: Any, kwargs: Any, options: dict[str, Any], task: Task | None
    ) -> dict[str, Any]:
        return route(self.routers_for(self.app.conf.task_routes), name, args, kwargs, options, task)

    def routers_for(self, routes: Any) -> list[Any]:
        """The router callables of the ``task_routes`` setting (prepared once per value)."""
        if self._routers is None or self._routers[0] is not routes:
            self._routers = (routes, prepare_routers(routes))
        return self._routers[1]

    def build_message(
        self,
        name: str,
        args: Sequence[Any] | None = None,
        kwargs: dict[str, Any] | None = None,
        *,
        countdown: float | None = None,
        eta: dt.datetime | float | None = None,
        task_id: str | None = None,
        expires: dt.datetime | dt.timedelta | float | None = None,
        priority: int | None = None,
        queue: str | None = None,
        link: Any = None,
        link_error: Any = None,
        headers: dict[str, Any] | None = None,
        ignore_result: bool | None = None,
        serializer: str | None = None,
        task: Task | None = None,
        shadow: str | None = None,
        **options: Any,
    ) -> Message:
        """Resolve routing and options into a :class:`Message` (not yet sent). A ``shadow``
        name travels in the headers, for the worker's log lines."""
        if shadow:
            headers = {**(headers or {}), "shadow": str(shadow)}
        if task is None:
            task = self.app.tasks.get(name)
        conf = self.app.conf
        parent = _state.current_request.get()
        if priority is None and parent is not None and conf.task_inherit_parent_priority:
            priority = parent.priority
        explicit = {"queue": queue, "priority": priority}
        routed = self.route(name, args, kwargs, explicit, task)
        queue = queue or routed.get("queue") or (task and task.queue) or conf.task_default_queue
        queue = getattr(queue, "name", queue)  # a Queue given
        exchange = options.pop("exchange", None) or routed.get("exchange")
        routing_key = options.pop("routing_key", None) or routed.get("routing_key")
        if exchange or routing_key:
            queue = destination(self.queues, conf, str(queue), exchange, routing_key)
        if priority is None:
            priority = routed.get("priority")
        if priority is None and task is not None:
            priority = task.priority
        queues = self.queues
        declared = queues.get(str(queue))
        if declared is None and queues and not conf.task_create_missing_queues:
            raise QueueNotFound(
                f"queue {queue!r} is not in task_queues (task_create_missing_queues is off)"
            )
        if priority is None and declared is not None:
            priority = declared.priority
        if priority is None:
            priority = conf.task_default_priority
        priority = clamp_priority(priority or 0)
        if declared is not None and declared.max_priority is not None:
            priority = min(priority, int(declared.max_priority))
        now = time.time()
        eta_ts: float | None = None
        if countdown is not None:
            eta_ts = now + float(countdown)
        elif eta is not None:
            eta_ts = to_unix(eta, self.app.timezone)
        if expires is None and task is not None:
            expires = task.expires
        expires_at = (
            relative_or_absolute(expires, self.app.timezone) if expires is not None else None
        )
        if expires_at is None and declared is not None and declared.message_ttl:
            # like a queue TTL: counted from when the message is due in its queue
            expires_at = (eta_ts or now) + float(declared.message_ttl)
        task_id = task_id or new_id()
        root_id = options.pop("root_id", None) or (parent.root_id or parent.id if parent else None)
        parent_id = options.pop("parent_id", None) or (parent.id if parent else None)
        if ignore_result is None:
            ignore_result = (
                task.ignore_result
                if task and task.ignore_result is not None
                else conf.task_ignore_result
            )
        headers = dict(headers or {})
        for key in ("argsrepr", "kwargsrepr"):  # what events and logs show of the arguments
            shown = options.pop(key, None)
            if shown is not None:
                headers[key] = str(shown)
        properties = {key: options.pop(key) for key in PROPERTIES if key in options}
        chord = options.pop("chord", None)
        reply_to = options.pop("reply_to", None)
        backend = self.app.backend
        if backend is not None and not getattr(backend, "keeps_values", True):
            # rpc://: the result comes back to this process (or to whoever ``reply_to`` names)
            if chord is not None:
                raise NotImplementedError(
                    f"the {safe_url(backend.url)} result backend does not support chords (a "
                    "group chained with a task is a chord too), as in Celery: use a result "
                    "backend that keeps values, such as redis://, sqlite:// or postgresql://"
                )
            if not ignore_result:
                headers["reply_to"] = reply_to or backend.reply_to  # type: ignore[attr-defined]
        return Message(
            id=task_id,
            task=name,
            args=list(args or ()),
            kwargs=dict(kwargs or {}),
            queue=str(queue),
            priority=priority,
            eta=eta_ts,
            expires=expires_at,
            retries=int(options.pop("retries", 0)),
            root_id=root_id or task_id,
            parent_id=parent_id,
            group_id=options.pop("group_id", None),
            group_index=options.pop("group_index", None),
            callbacks=_signature_list(link) or options.pop("callbacks", None),
            errbacks=_signature_list(link_error) or options.pop("errbacks", None),
            chain=options.pop("chain", None),
            chord=chord,
            soft_time_limit=options.pop("soft_time_limit", None),
            time_limit=options.pop("time_limit", None),
            ignore_result=bool(ignore_result),
            headers=headers,
            origin=_hostname(),
            sent_at=now,
            properties=properties or None,
            content_type=get_serializer(
                serializer or (task and task.serializer) or conf.task_serializer
            ).content_type,
        )

    def publish(
        self,
        messages: Sequence[Message | Encoded],
        retry: bool | None = None,
        retry_policy: dict[str, Any] | None = None,
        task: Task | None = None,
    ) -> None:
        """Encode and send messages in one batch, retrying per ``retry_policy`` on errors."""
        if signals.before_task_publish.has_receivers():
            for msg in messages:
                data = msg.to_dict()
                body, headers = celery_shape(data)
                signals.before_task_publish.send(
                    sender=msg.task,
                    body=body,
                    exchange="",
                    routing_key=msg.queue,
                    headers=headers,
                    properties={
                        "correlation_id": msg.id,
                        "priority": msg.priority,
                        "content_type": data["content_type"],
                    },
                    declare=[],
                    retry_policy=retry_policy,
                )
        with gc_paused():
            outgoing = [
                msg
                if isinstance(msg, Outgoing)
                else Outgoing(msg.encode(), msg.queue, msg.priority, msg.eta, msg.id)
                for msg in messages
            ]
        outgoing = self._fan_out(outgoing)
        try:
            self.app.broker.publish(outgoing)
        except OperationalError as exc:  # the retry policy is read only when needed
            if retry is None:
                retry = self.app.conf.task_publish_retry
            policy = {**self.app.conf.task_publish_retry_policy, **(retry_policy or {})}
            self._publish_with_retry(outgoing, bool(retry), policy, exc)
        if signals.after_task_publish.has_receivers():
            for msg in messages:
                body, headers = celery_shape(msg.to_dict())
                signals.after_task_publish.send(
                    sender=msg.task,
                    body=body,
                    headers=headers,
                    exchange="",
                    routing_key=msg.queue,
                )
        if self.app.conf.task_send_sent_event:
            events = self.app.events.shared_dispatcher()
            if events.enabled:  # as send() would check, once for all the messages
                for msg in messages:
                    fields = task_fields(msg if isinstance(msg, Message) else msg.to_dict())
                    events.put("task-sent", fields)
        if signals.task_sent.has_receivers():
            for msg in messages:
                data = msg.to_dict()
                eta = data.get("eta")
                signals.task_sent.send(
                    sender=msg.task,
                    task_id=msg.id,
                    task=msg.task,
                    args=data.get("args"),
                    kwargs=data.get("kwargs"),
                    eta=dt.datetime.fromtimestamp(eta, dt.UTC).isoformat() if eta else None,
                    taskset=data.get("group_id"),
                )

    def publish_bytes(self, queue: str, body: bytes, message_id: str | None = None) -> None:
        """Publish ``body``, which is not a task message, to ``queue`` (rpc:// replies)."""
        self.app.broker.publish([Outgoing(body, queue, 0, None, message_id)])

    def _fan_out(self, outgoing: list[Outgoing]) -> list[Outgoing]:
        """Messages for broadcast queues become one copy per live consuming worker."""
        broadcasts = self.declared()[2]
        if not broadcasts or not any(o.queue in broadcasts for o in outgoing):
            return outgoing
        expanded: list[Outgoing] = []
        for o in outgoing:
            if o.queue not in broadcasts:
                expanded.append(o)
                continue
            targets = self._broadcast_targets.queues(self.app.results.backend, o.queue)
            if not targets:
                logger.warning("no live worker consumes broadcast queue %s: not sent", o.queue)
            for queue in targets:
                expanded.append(Outgoing(o.body, queue, o.priority, o.eta, o.message_id))
        return expanded

    def _publish_with_retry(
        self, outgoing: list[Outgoing], retry: bool, policy: dict[str, Any], exc: Exception
    ) -> None:
        """Publish again after the first attempt failed with ``exc``, per ``policy``."""
        limit = policy.get("max_retries", 3)
        max_retries = (float("inf") if limit is None else int(limit)) if retry else 0
        interval = float(policy.get("interval_start", 0))
        attempt = 0
        while attempt < max_retries:
            attempt += 1
            logger.warning("publish failed (%s); retry %d in %.2fs", exc, attempt, interval)
            time.sleep(interval)
            interval = min(
                interval + float(policy.get("interval_step", 0.2)),
                float(policy.get("interval_max", 1.0)),
            )
            try:
                self.app.broker.publish(outgoing)
                return
            except OperationalError as again:
                exc = again
        url = safe_url(self.app.broker.url)
        raise OperationalError(
            f"could not publish to {url} after {attempt + 1} attempt(s): {exc}"
        ) from exc


def _signature_list(value: Any) -> list[dict[str, Any]] | None:
    if not value:
        return None
    items = value if isinstance(value, list | tuple) else [value]
    return [dict(s) for s in (maybe_signature(v) for v in items) if s is not None]


_HOSTNAME: str | None = None


def _hostname() -> str:
    global _HOSTNAME
    if _HOSTNAME is None:
        _HOSTNAME = f"{os.getpid()}@{socket.gethostname()}"
    return _HOSTNAME
