"""Celery's ``celery.contrib.testing.manager.Manager``: what integration tests use to wait for
workers to receive, start and finish tasks, asked through remote control.

``Manager(app)`` with ``wait_for``, ``ensure_not_for_a_while``, ``join``, ``query_tasks``,
``query_task_states``, ``assert_received``, ``assert_accepted``,
``assert_result_tasks_in_progress_or_completed``, ``missing_results`` and
``wait_until_idle``.
"""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from typing import TYPE_CHECKING, Any

from ... import states
from ...result import ResultSet

if TYPE_CHECKING:
    from ...app import Celeriac

__all__ = ["Manager", "ManagerMixin", "Sentinel"]


class Sentinel(Exception):
    """Raised by :meth:`ManagerMixin.true_or_raise` while a condition does not hold."""


class ManagerMixin:
    """The waiting helpers of :class:`Manager`, for a test class of one's own."""

    app: Celeriac

    def _init_manager(self, block_timeout: float = 30 * 60.0, **kwargs: Any) -> None:
        self.block_timeout = block_timeout
        self.connerrors: tuple[type[BaseException], ...] = ()

    def remark(self, s: str, sep: str = "-") -> None:
        print(f"{sep}{s}", flush=True)

    def missing_results(self, r: Iterable[Any]) -> list[str]:
        """The ids of the results in ``r`` the backend has nothing for yet."""
        return [res.id for res in r if res.state == states.PENDING]

    def wait_for(
        self,
        fun: Callable[[], Any],
        catch: Sequence[type[BaseException]] = (),
        desc: str = "thing",
        args: Sequence[Any] = (),
        kwargs: dict[str, Any] | None = None,
        errback: Callable[..., Any] | None = None,
        max_retries: int = 10,
        interval_start: float = 0.1,
        interval_step: float = 0.5,
        interval_max: float = 5.0,
        emit_warning: bool = False,
        **options: Any,
    ) -> Any:
        """Call ``fun`` until it returns without raising one of ``catch``, waiting longer
        each time; the last error is raised after ``max_retries`` tries (``timeout``
        seconds in all, when given)."""
        deadline = None if options.get("timeout") is None else time.monotonic() + options["timeout"]
        pause, tries = interval_start, 0
        while True:
            try:
                return fun(*args, **(kwargs or {}))
            except tuple(catch) as exc:
                tries += 1
                late = deadline is not None and time.monotonic() >= deadline
                if (max_retries is not None and tries > max_retries) or late:
                    raise
                if errback is not None:
                    errback(exc, pause, tries)
                if emit_warning:
                    self.remark(f"still waiting for {desc}: {exc!r}")
                time.sleep(pause)
                pause = min(pause + interval_step, interval_max)

    retry_over_time = wait_for

    def ensure_not_for_a_while(
        self,
        fun: Callable[[], Any],
        catch: Sequence[type[BaseException]],
        desc: str = "thing",
        **policy: Any,
    ) -> None:
        """Make sure ``fun`` keeps raising one of ``catch`` for a while (20 quick tries, or
        :meth:`wait_for`'s ``policy``): AssertionError if it returns."""
        policy = {"max_retries": 20, "interval_step": 0.02, "interval_max": 1.0, **policy}
        try:
            self.wait_for(fun, catch, desc=desc, **policy)
        except tuple(catch):
            return
        raise AssertionError(f"Should not have happened: {desc}")

    def true_or_raise(self, fun: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """``fun(*args, **kwargs)`` if it is true, else :class:`Sentinel`."""
        found = fun(*args, **kwargs)
        if not found:
            raise Sentinel()
        return found

    def join(self, r: Any, propagate: bool = False, max_retries: int = 10, **kwargs: Any) -> Any:
        """The value of ``r`` (a result or a set of them), waited for."""
        if not isinstance(r, ResultSet):
            r = ResultSet([r], app=self.app)
        kwargs.setdefault("timeout", self.block_timeout)
        return r.get(propagate=propagate, **kwargs)

    def inspect(self, timeout: float = 3.0) -> Any:
        return self.app.control.inspect(timeout=timeout)

    def query_tasks(self, ids: Sequence[str], timeout: float = 0.5) -> dict[str, Any]:
        """``{worker: {id: [state, info]}}`` of the tasks the workers hold."""
        return self.inspect(timeout).query_task(*ids) or {}

    def query_task_states(self, ids: Sequence[str], timeout: float = 0.5) -> dict[str, set[str]]:
        """``{state: {id, ...}}`` of the tasks the workers hold (``active``, ``reserved``)."""
        found: dict[str, set[str]] = defaultdict(set)
        for reply in self.query_tasks(ids, timeout).values():
            for task_id, (state, _) in reply.items():
                found[state].add(task_id)
        return found

    def assert_task_worker_state(
        self,
        fun: Callable[[Sequence[str]], bool],
        ids: Sequence[str],
        interval: float = 0.5,
        desc: str = "",
        **policy: Any,
    ) -> Any:
        return self.wait_for(
            lambda: self.true_or_raise(fun, ids, timeout=interval),
            (Sentinel,),
            desc=desc,
            **{"max_retries": None, "timeout": 30.0, **policy},
        )

    def _in_states(self, wanted: Sequence[str], ids: Sequence[str], **kwargs: Any) -> bool:
        held = self.query_task_states(ids, **kwargs)
        return all(any(i in held[state] for state in wanted) for i in ids)

    def is_received(self, ids: Sequence[str], **kwargs: Any) -> bool:
        """Does a worker hold each of these tasks (received, or running)?"""
        return self._in_states(("reserved", "active", "ready"), ids, **kwargs)

    def is_accepted(self, ids: Sequence[str], **kwargs: Any) -> bool:
        """Has each of these tasks started?"""
        return self._in_states(("active", "ready"), ids, **kwargs)

    def assert_received(
        self, ids: Sequence[str], interval: float = 0.5, desc: str = "", **policy: Any
    ) -> Any:
        desc = desc or "waiting for tasks to be received"
        return self.assert_task_worker_state(self.is_received, ids, interval, desc, **policy)

    def assert_accepted(
        self, ids: Sequence[str], interval: float = 0.5, desc: str = "", **policy: Any
    ) -> Any:
        desc = desc or "waiting for tasks to be accepted"
        return self.assert_task_worker_state(self.is_accepted, ids, interval, desc, **policy)

    def assert_result_tasks_in_progress_or_completed(
        self, async_results: Sequence[Any], interval: float = 0.5, desc: str = "", **policy: Any
    ) -> Any:
        started = (states.STARTED, states.SUCCESS)
        return self.wait_for(
            lambda: self.true_or_raise(lambda: all(r.state in started for r in async_results)),
            (Sentinel,),
            desc=desc or "waiting for tasks to be started or completed",
            interval_start=interval,
            **{"max_retries": None, "timeout": 30.0, **policy},
        )

    def wait_until_idle(self) -> None:
        """Purge the waiting tasks and wait (a minute at most) until no worker runs one."""
        while self.app.control.purge():
            pass
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            replies = self.inspect().active() or {}
            if not sum(len(tasks) for tasks in replies.values()):
                return
            time.sleep(0.1)


class Manager(ManagerMixin):
    """Test helpers for ``app``'s workers (see the module)."""

    def __init__(self, app: Celeriac, **kwargs: Any) -> None:
        self.app = app
        self._init_manager(**kwargs)
