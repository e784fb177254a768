"""Lifecycle signals, with Celery's names and arguments.

Receivers are observers: one that raises is logged and the others still run; the worker
never stops because of a receiver.

    from celeriac.signals import task_success

    @task_success.connect
    def on_success(sender=None, result=None, **kwargs):
        ...
"""

from __future__ import annotations

import logging
import threading
import weakref
from collections.abc import Callable, Sequence
from typing import Any

logger = logging.getLogger("celeriac.signals")

Receiver = Callable[..., Any]


def _sender_matches(wanted: Any, sender: Any) -> bool:
    if wanted is None or wanted is sender:
        return True
    if isinstance(wanted, str):
        return wanted == getattr(sender, "name", sender)
    return bool(wanted == sender)


class Signal:
    """A named hook point. ``connect`` receivers, ``send`` to call them. A project's own
    signals are made as in Celery: ``Signal()``, ``Signal(name="x", providing_args=[...])``
    (``providing_args`` and ``use_caching`` are accepted)."""

    def __init__(
        self,
        name: str | Sequence[str] | None = None,
        providing_args: Any = (),
        use_caching: bool = False,
    ) -> None:
        if name is not None and not isinstance(name, str):  # Celery 4's Signal(["x", "y"])
            name, providing_args = None, name
        self.name = name or "signal"
        self.providing_args = tuple(providing_args or ())
        self._lock = threading.Lock()
        self._receivers: list[tuple[Any, Any, Any]] = []  # (key, sender, ref)

    def connect(
        self,
        receiver: Receiver | None = None,
        *,
        sender: Any = None,
        weak: bool = False,
        dispatch_uid: Any = None,
    ) -> Any:
        """Connect ``receiver``; usable as ``@sig.connect`` or ``@sig.connect(sender=...)``."""
        if receiver is None:

            def decorator(fn: Receiver) -> Receiver:
                self.connect(fn, sender=sender, weak=weak, dispatch_uid=dispatch_uid)
                return fn

            return decorator
        key = dispatch_uid if dispatch_uid is not None else (id(receiver), id(sender))
        ref: Any = receiver
        if weak:
            ref = (
                weakref.WeakMethod(receiver)
                if hasattr(receiver, "__self__")
                else weakref.ref(receiver)
            )
        with self._lock:
            if not any(k == key for k, _, _ in self._receivers):
                self._receivers.append((key, sender, ref))
        return receiver

    def disconnect(
        self, receiver: Receiver | None = None, *, sender: Any = None, dispatch_uid: Any = None
    ) -> bool:
        """Disconnect a receiver; returns whether one was connected."""
        key = dispatch_uid if dispatch_uid is not None else (id(receiver), id(sender))
        with self._lock:
            before = len(self._receivers)
            self._receivers = [r for r in self._receivers if r[0] != key]
            return len(self._receivers) != before

    @property
    def receivers(self) -> list[Receiver]:
        live = []
        for _, _, ref in list(self._receivers):
            fn = ref() if isinstance(ref, weakref.ReferenceType) else ref
            if fn is not None:
                live.append(fn)
        return live

    def has_receivers(self) -> bool:
        return bool(self._receivers)

    def send(self, sender: Any = None, **named: Any) -> list[tuple[Receiver, Any]]:
        """Call every matching receiver; errors are logged, never raised."""
        if not self._receivers:
            return []
        responses: list[tuple[Receiver, Any]] = []
        for _, wanted, ref in list(self._receivers):
            if not _sender_matches(wanted, sender):
                continue
            fn = ref() if isinstance(ref, weakref.ReferenceType) else ref
            if fn is None:
                continue
            try:
                responses.append((fn, fn(signal=self, sender=sender, **named)))
            except Exception as exc:
                logger.exception("Signal %s receiver %r raised: %r", self.name, fn, exc)
                responses.append((fn, exc))
        return responses

    def __repr__(self) -> str:
        return f"<Signal: {self.name}>"


before_task_publish = Signal("before_task_publish")
after_task_publish = Signal("after_task_publish")
#: Celery's old publish signal (deprecated there, still imported): sent with
#: after_task_publish, with its old arguments ``task_id``, ``task``, ``args``, ``kwargs``,
#: ``eta`` (ISO 8601 or None) and ``taskset`` (the group id)
task_sent = Signal("task_sent")
task_received = Signal("task_received")
task_prerun = Signal("task_prerun")
task_postrun = Signal("task_postrun")
task_success = Signal("task_success")
task_failure = Signal("task_failure")
task_retry = Signal("task_retry")
task_revoked = Signal("task_revoked")
task_rejected = Signal("task_rejected")
task_unknown = Signal("task_unknown")
task_internal_error = Signal("task_internal_error")
worker_init = Signal("worker_init")
worker_process_init = Signal("worker_process_init")
worker_process_shutdown = Signal("worker_process_shutdown")
worker_ready = Signal("worker_ready")
worker_shutting_down = Signal("worker_shutting_down")
worker_shutdown = Signal("worker_shutdown")
heartbeat_sent = Signal("heartbeat_sent")
celeryd_init = Signal("celeryd_init")
celeryd_after_setup = Signal("celeryd_after_setup")
import_modules = Signal("import_modules")
setup_logging = Signal("setup_logging")
after_setup_logger = Signal("after_setup_logger")
after_setup_task_logger = Signal("after_setup_task_logger")
beat_init = Signal("beat_init")
beat_embedded_init = Signal("beat_embedded_init")
user_preload_options = Signal("user_preload_options")
#: in a prefork worker's parent, just before it forks a child (``sender``: the pool), to close
#: what must not be shared across a fork (a gRPC channel, a client's connection pool)
worker_before_create_process = Signal("worker_before_create_process")
#: Celery's eventlet pool's signals: celeriac has no eventlet pool (``-P eventlet`` runs the
#: threads pool, and says so at start), so they are never sent; modules that connect to them
#: still import
eventlet_pool_started = Signal("eventlet_pool_started")
eventlet_pool_preshutdown = Signal("eventlet_pool_preshutdown")
eventlet_pool_postshutdown = Signal("eventlet_pool_postshutdown")
eventlet_pool_apply = Signal("eventlet_pool_apply")

__all__ = [
    "Signal",
    "after_setup_logger",
    "after_setup_task_logger",
    "after_task_publish",
    "beat_embedded_init",
    "beat_init",
    "before_task_publish",
    "celeryd_after_setup",
    "celeryd_init",
    "eventlet_pool_apply",
    "eventlet_pool_postshutdown",
    "eventlet_pool_preshutdown",
    "eventlet_pool_started",
    "heartbeat_sent",
    "import_modules",
    "setup_logging",
    "task_failure",
    "task_internal_error",
    "task_postrun",
    "task_prerun",
    "task_received",
    "task_rejected",
    "task_retry",
    "task_revoked",
    "task_sent",
    "task_success",
    "task_unknown",
    "user_preload_options",
    "worker_before_create_process",
    "worker_init",
    "worker_process_init",
    "worker_process_shutdown",
    "worker_ready",
    "worker_shutdown",
    "worker_shutting_down",
]
