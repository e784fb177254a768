"""Celery's scheduler classes, for projects that subclass them: ``celeriac.beat.Scheduler``,
``PersistentScheduler`` and ``ScheduleEntry``.

celeriac's beat (:mod:`.service`) decides what is due, leads among several beats and claims
each run; a :class:`Scheduler` is a store it reads entries from and reports runs to, through
Celery's hooks. A subclass (named with ``-S proj.schedulers:MyScheduler`` or
``beat_scheduler``) may override what Celery's documentation and the usual custom schedulers
override, and is honoured:

* ``setup_schedule()`` (fill ``self.schedule`` at start) and the ``schedule`` property (read
  at every tick: changes to what it returns are picked up);
* ``tick()``: the beat calls it instead of its own step, and ``super().tick()`` runs that
  step (a lock around it, for instance); it returns the seconds to wait;
* ``apply_async(entry, producer=None, advance=True, **kwargs)`` and ``send_task(...)``:
  how a due entry is sent;
* ``sync()`` (after every run) and ``close()``.

Celery's other hooks decide what is due, which celeriac's beat does itself (run claims, the
leader lease, missed runs): a subclass overriding ``is_due``, ``apply_entry``, ``reserve``,
``populate_heap``, ``should_sync`` or ``ScheduleEntry.is_due`` stops beat at once, saying so.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from ..exceptions import ImproperlyConfigured
from ..schedules import maybe_schedule
from .entry import Entry as BeatEntry
from .service import FileStore

if TYPE_CHECKING:
    from ..app import Celeriac

__all__ = ["PersistentScheduler", "ScheduleEntry", "Scheduler", "SchedulingError"]

#: Celery's hooks that decide what is due; celeriac's beat does that itself
_NOT_HONOURED = ("is_due", "apply_entry", "reserve", "populate_heap", "should_sync")


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


class SchedulingError(Exception):
    """Celery's error for a periodic task that could not be sent. celeriac's beat does not
    raise it: a send that fails is logged and tried again at the next tick."""


class ScheduleEntry:
    """One periodic task, as Celery's beat sees it (``scheduler.schedule[name]``)."""

    def __init__(
        self,
        name: str | None = None,
        task: str | None = None,
        last_run_at: dt.datetime | None = None,
        total_run_count: int | None = None,
        schedule: Any = None,
        args: Any = (),
        kwargs: Mapping[str, Any] | None = None,
        options: Mapping[str, Any] | None = None,
        relative: bool = False,
        app: Any = None,
    ) -> None:
        self.app = app
        self.name = name
        self.task = task
        self.args = list(args or ())
        self.kwargs = dict(kwargs or {})
        self.options = dict(options or {})
        self.schedule = maybe_schedule(schedule, relative, app=app)
        self.last_run_at = last_run_at
        self.total_run_count = total_run_count or 0

    def is_due(self) -> Any:
        """``(due, seconds until the next check)`` (Celery's ``schedstate``)."""
        return self.schedule.is_due(self.last_run_at or _now())

    def _next_instance(self, last_run_at: dt.datetime | None = None) -> ScheduleEntry:
        """This entry after one more run."""
        return type(self)(
            name=self.name,
            task=self.task,
            last_run_at=last_run_at or _now(),
            total_run_count=self.total_run_count + 1,
            schedule=self.schedule,
            args=self.args,
            kwargs=self.kwargs,
            options=self.options,
            app=self.app,
        )

    __next__ = next = _next_instance

    def update(self, other: ScheduleEntry) -> None:
        """Take ``other``'s definition (its run state stays this entry's)."""
        self.task, self.schedule = other.task, other.schedule
        self.args, self.kwargs, self.options = other.args, other.kwargs, other.options

    def editable_fields_equal(self, other: ScheduleEntry) -> bool:
        return all(
            getattr(self, f) == getattr(other, f)
            for f in ("task", "args", "kwargs", "options", "schedule")
        )

    def __repr__(self) -> str:
        call = f"{self.task}(*{self.args}, **{self.kwargs})"
        return f"<ScheduleEntry: {self.name} {call} {self.schedule}>"


class Scheduler:
    """Celery's ``celery.beat.Scheduler``, as a store of celeriac's beat (see the module)."""

    Entry = ScheduleEntry

    def __init__(
        self,
        app: Celeriac,
        schedule: dict[str, ScheduleEntry] | None = None,
        max_interval: float | None = None,
        Producer: Any = None,
        lazy: bool = False,
        sync_every_tasks: int | None = None,
        **kwargs: Any,
    ) -> None:
        overridden = [
            name
            for name in _NOT_HONOURED
            if getattr(type(self), name) is not getattr(Scheduler, name)
        ]
        if type(self).Entry.is_due is not ScheduleEntry.is_due:
            overridden.append("BeatEntry.is_due")
        if overridden:
            raise ImproperlyConfigured(
                f"scheduler {type(self).__qualname__} overrides {', '.join(overridden)}, which "
                "celeriac's beat does not call: it decides itself what is due (one leading "
                "beat, each run claimed once). Override setup_schedule, the schedule "
                "property, tick, apply_async, send_task or sync instead (docs/scheduling.md)"
            )
        self.app = app
        self.data: dict[str, ScheduleEntry] = {} if schedule is None else schedule
        self.max_interval = float(max_interval or app.conf.beat_max_loop_interval or 300.0)
        self.sync_every_tasks = sync_every_tasks
        self._beat: Any = None  # the beat that reads this store (set by it)
        self._seen: Any = None
        if not lazy:
            self.setup_schedule()

    # -- Celery's hooks ---------------------------------------------------------------------

    def setup_schedule(self) -> None:
        """Fill the schedule at start: ``beat_schedule`` by default."""
        self.merge_inplace(self.app.conf.beat_schedule or {})

    def get_schedule(self) -> dict[str, ScheduleEntry]:
        return self.data

    def set_schedule(self, schedule: dict[str, ScheduleEntry]) -> None:
        self.data = schedule

    #: the entries by name, read at every tick
    schedule = property(get_schedule, set_schedule)

    def tick(self, *args: Any, **kwargs: Any) -> float:
        """One step of the beat (send what is due); returns the seconds to wait."""
        if self._beat is None:
            raise RuntimeError("this scheduler ticks inside a beat (celeriac beat -S ...)")
        wait: float = self._beat.tick()
        return wait

    def apply_async(
        self, entry: ScheduleEntry, producer: Any = None, advance: bool = True, **kwargs: Any
    ) -> Any:
        """Send ``entry``'s task; returns its AsyncResult."""
        options = {**entry.options, **kwargs}
        return self.send_task(entry.task, entry.args, entry.kwargs, **options)

    def send_task(self, *args: Any, **kwargs: Any) -> Any:
        return self.app.send_task(*args, **kwargs)

    # Celery's hooks that decide what is due: here for code that calls them; celeriac's beat
    # does not (a subclass overriding one is refused, see __init__)

    def is_due(self, entry: ScheduleEntry) -> Any:
        return entry.is_due()

    def apply_entry(self, entry: ScheduleEntry, producer: Any = None) -> None:
        self.apply_async(entry, producer)

    def reserve(self, entry: ScheduleEntry) -> ScheduleEntry:
        new_entry = self.schedule[str(entry.name)] = next(entry)
        return new_entry

    def populate_heap(self, *args: Any, **kwargs: Any) -> None:
        """Nothing: celeriac's beat keeps no heap."""

    def should_sync(self) -> bool:
        return True

    def sync(self) -> None:
        """Keep the run state (after each run); nothing by default."""

    def close(self) -> None:
        self.sync()

    def add(self, **kwargs: Any) -> ScheduleEntry:
        entry = self.Entry(app=self.app, **kwargs)
        self.schedule[str(entry.name)] = entry
        return entry

    def update_from_dict(self, dict_: Mapping[str, Any]) -> None:
        self.schedule.update(
            {name: self._maybe_entry(name, entry) for name, entry in dict_.items()}
        )

    def merge_inplace(self, b: Mapping[str, Any]) -> None:
        """Make the schedule ``b``'s entries, keeping the run state of those already here."""
        schedule = self.schedule
        for name in set(schedule) - set(b):
            schedule.pop(name)
        for name, spec in b.items():
            entry = self._maybe_entry(name, spec)
            if name in schedule:
                schedule[name].update(entry)
            else:
                schedule[name] = entry

    def _maybe_entry(self, name: str, entry: Any) -> ScheduleEntry:
        if isinstance(entry, ScheduleEntry):
            entry.app = self.app
            return entry
        BeatEntry.from_config(name, entry, self.app)  # the same checks as beat_schedule's
        spec = {k: v for k, v in dict(entry).items() if k in _CELERY_ENTRY_KEYS}
        return self.Entry(**spec, name=name, app=self.app)

    @property
    def info(self) -> str:
        return ""

    # -- what celeriac's beat calls (the store) ---------------------------------------------

    def entries(self) -> dict[str, BeatEntry]:
        """celeriac entries for the schedule's (with their run state)."""
        found = dict(self.schedule)
        self._seen = self._fingerprint(found)
        return {name: self._entry(name, e) for name, e in found.items()}

    def changed(self) -> bool:
        return self._fingerprint(dict(self.schedule)) != self._seen

    def save(self, entry: BeatEntry) -> None:
        mine = self.schedule.get(entry.name)
        if mine is not None:
            mine.last_run_at = entry.last_run_at
            mine.total_run_count = entry.total_run_count
            self._seen = self._fingerprint(dict(self.schedule))
        self.sync()

    def send(self, entry: BeatEntry, task_id: str) -> str:
        """Send ``entry`` through :meth:`apply_async`; returns the id it was sent as."""
        mine = self.schedule.get(entry.name) or self._celery_entry(entry)
        result = self.apply_async(mine, task_id=task_id)
        return str(getattr(result, "id", None) or task_id)

    def _entry(self, name: str, e: ScheduleEntry) -> BeatEntry:
        schedule = e.schedule
        if getattr(schedule, "app", None) is None:
            schedule.app = self.app
        return BeatEntry(
            name=name,
            task=str(e.task),
            schedule=schedule,
            args=list(e.args),
            kwargs=dict(e.kwargs),
            options=dict(e.options),
            last_run_at=e.last_run_at,
            total_run_count=e.total_run_count,
        )

    def _celery_entry(self, entry: BeatEntry) -> ScheduleEntry:
        return self.Entry(
            name=entry.name,
            task=entry.task,
            schedule=entry.schedule,
            args=entry.args,
            kwargs=entry.kwargs,
            options=entry.options,
            last_run_at=entry.last_run_at,
            total_run_count=entry.total_run_count,
            app=self.app,
        )

    @staticmethod
    def _fingerprint(entries: Mapping[str, ScheduleEntry]) -> Any:
        return sorted(
            (name, str(e.task), repr(e.schedule), repr(e.args), repr(e.kwargs), repr(e.options))
            for name, e in entries.items()
        )


_CELERY_ENTRY_KEYS = {"task", "schedule", "args", "kwargs", "options", "relative"}


class PersistentScheduler(Scheduler):
    """Celery's ``PersistentScheduler``: run state kept in a file (``-s`` /
    ``beat_schedule_filename``; celeriac's JSON file, not Celery's shelve database)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.schedule_filename = kwargs.get("schedule_filename")
        super().__init__(*args, **kwargs)

    def setup_schedule(self) -> None:
        self._file = FileStore(self.app, self.schedule_filename)
        super().setup_schedule()
        saved = self._file._read()
        for name, entry in self.schedule.items():
            state = saved.get(name)
            if state:
                mine = self._entry(name, entry)
                mine.load_state(state)
                entry.last_run_at, entry.total_run_count = mine.last_run_at, mine.total_run_count

    def entries(self) -> dict[str, BeatEntry]:
        found = super().entries()
        self._file._entries = dict(found)
        return found

    def save(self, entry: BeatEntry) -> None:
        self._file.save(entry)
        super().save(entry)
