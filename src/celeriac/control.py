"""Remote control of workers: ``app.control.revoke(...)``, ``app.control.rate_limit(...)``.

Revocations are kept in the result backend (with a TTL), so every worker, including ones
started later, honours them: a revoked task that has not started is recorded as REVOKED and
never runs. Workers keep the set of revoked ids in memory and re-read it when the revocation
counter moves (they look every half second), so receiving a task costs no lookup.
"""

from __future__ import annotations

import signal as signal_module
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from . import states

if TYPE_CHECKING:
    from .app import Celeriac

REVOKED_KEY = "celeriac:revoked:{}"
REVOKED_SET = "celeriac:revoked-ids"  # every id revoked in the last REVOKE_TTL seconds
REVOCATIONS_KEY = "celeriac:revocations"  # bumped by every revoke: workers re-read the set
#: How long a revocation is remembered (seconds).
REVOKE_TTL = 3 * 86400.0


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

    def rate_limit(
        self, task_name: str, rate_limit: str | None, destination: Any = None, **kwargs: Any
    ) -> None:
        """Change a task's rate limit on every worker, within a heartbeat (None: back to the
        task's own). ``destination`` is accepted for compatibility; all workers apply it."""
        from .worker.ratelimit import publish

        publish(self.app, task_name, rate_limit)

    def purge(self) -> int:
        """Delete the waiting messages of the app's queues (``task_queues``, else the default
        queue); how many. Messages under a worker's lease are left to it."""
        names = list(self.app.queues) or [self.app.conf.task_default_queue]
        return sum(self.app.broker.purge(name) for name in names)

    def is_revoked(self, task_id: str) -> bool:
        return self.app.results.backend.get_value(REVOKED_KEY.format(task_id)) is not None

    def termination_signal(self, task_id: str) -> int | None:
        """The signal a running ``task_id`` is to be stopped with, if revoked to terminate."""
        value = self.app.results.backend.get_value(REVOKED_KEY.format(task_id))
        if not value:
            return None
        return int(getattr(signal_module.Signals, value.decode(), signal_module.SIGTERM))


def _signal_name(sig: str | int) -> str:
    """``"SIGKILL"``, ``"KILL"`` or ``9`` -> ``"SIGKILL"``."""
    if isinstance(sig, int):
        return signal_module.Signals(sig).name
    name = sig.upper()
    name = name if name.startswith("SIG") else f"SIG{name}"
    if name not in signal_module.Signals.__members__:
        raise ValueError(f"unknown signal {sig!r}")
    return name
