"""A periodic task: what to send, on which schedule, and the state of its runs."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ..canvas import Signature
from ..exceptions import ImproperlyConfigured
from ..schedules import maybe_schedule

if TYPE_CHECKING:
    from ..app import Celeriac

#: How many recent run ids an entry remembers (for the max-active guard).
RECENT_RUNS = 20
_ENTRY_KEYS = {"task", "schedule", "args", "kwargs", "options", "relative", "max_active"}
_ENTRY_KEYS |= {"enabled", "one_off", "start_time", "expires"}


@dataclass
class Entry:
    """One periodic task. ``last_run_at``, ``total_run_count`` and ``recent`` (ids of recent
    runs) are its state; the rest is its definition."""

    name: str
    task: str
    schedule: Any
    args: list[Any] = field(default_factory=list)
    kwargs: dict[str, Any] = field(default_factory=dict)
    options: dict[str, Any] = field(default_factory=dict)
    enabled: bool = True
    one_off: bool = False
    start_time: dt.datetime | None = None
    expires: dt.datetime | None = None
    max_active: int | None = None
    last_run_at: dt.datetime | None = None
    total_run_count: int = 0
    recent: list[str] = field(default_factory=list)

    @classmethod
    def from_config(cls, name: str, spec: Mapping[str, Any], app: Celeriac) -> Entry:
        """An entry of ``beat_schedule`` (Celery's format), with a clear error when wrong."""
        if not isinstance(spec, Mapping):
            raise ImproperlyConfigured(f"beat_schedule[{name!r}] is not a dict")
        unknown = set(spec) - _ENTRY_KEYS
        if unknown:
            raise ImproperlyConfigured(
                f"beat_schedule[{name!r}]: unknown key(s) {', '.join(sorted(unknown))}"
            )
        task = spec.get("task")
        if isinstance(task, Signature):
            task = task.task
        if not isinstance(task, str) or not task:
            raise ImproperlyConfigured(f"beat_schedule[{name!r}] has no 'task' name")
        if "schedule" not in spec:
            raise ImproperlyConfigured(f"beat_schedule[{name!r}] has no 'schedule'")
        try:
            schedule = maybe_schedule(spec["schedule"], spec.get("relative", False), app=app)
        except (TypeError, ValueError) as exc:
            raise ImproperlyConfigured(f"beat_schedule[{name!r}]: {exc}") from None
        if getattr(schedule, "app", None) is None:
            schedule.app = app
        return cls(
            name=name,
            task=task,
            schedule=schedule,
            args=list(spec.get("args") or ()),
            kwargs=dict(spec.get("kwargs") or {}),
            options=dict(spec.get("options") or {}),
            enabled=bool(spec.get("enabled", True)),
            one_off=bool(spec.get("one_off", False)),
            start_time=spec.get("start_time"),
            expires=spec.get("expires"),
            max_active=spec.get("max_active"),
        )

    def state(self) -> dict[str, Any]:
        """The run state, JSON-able."""
        return {
            "last_run_at": self.last_run_at.isoformat() if self.last_run_at else None,
            "total_run_count": self.total_run_count,
            "recent": list(self.recent),
            "enabled": self.enabled,
        }

    def load_state(self, state: Mapping[str, Any] | None) -> None:
        """Take ``state`` (from :meth:`state`) if it is newer than this entry's own."""
        if not state:
            return
        last = state.get("last_run_at")
        when = parse_time(last) if last else None
        if when is not None and (self.last_run_at is None or when > self.last_run_at):
            self.last_run_at = when
            self.total_run_count = max(self.total_run_count, int(state.get("total_run_count", 0)))
            self.recent = list(state.get("recent") or [])[-RECENT_RUNS:]
            if state.get("enabled") is False and self.one_off:
                self.enabled = False

    def ran(self, at: dt.datetime, task_id: str) -> None:
        """Record a run sent at ``at``."""
        self.last_run_at = at
        self.total_run_count += 1
        self.recent = [*self.recent, task_id][-RECENT_RUNS:]
        if self.one_off or type(self.schedule).__name__ == "clocked":
            self.enabled = False


def parse_time(value: str) -> dt.datetime:
    """An ISO 8601 time; naive ones are taken as UTC."""
    when = dt.datetime.fromisoformat(value)
    return when if when.tzinfo else when.replace(tzinfo=dt.UTC)


def configured_entries(app: Celeriac) -> dict[str, Entry]:
    """The entries of ``beat_schedule`` (which ``add_periodic_task`` also fills)."""
    return {
        name: Entry.from_config(name, spec, app)
        for name, spec in (app.conf.beat_schedule or {}).items()
    }
