"""Celery-style scheduler subclasses (celeriac.beat.Scheduler, PersistentScheduler,
ScheduleEntry) run in celeriac's beat: their hooks are honoured, or beat stops at once."""

from __future__ import annotations

import datetime as dt
import threading
from pathlib import Path
from typing import Any

import pytest

from celeriac import Celery
from celeriac.beat import Beat, PersistentScheduler, ScheduleEntry, Scheduler
from celeriac.beat.scheduler import open_store
from celeriac.exceptions import ImproperlyConfigured
from test_beat import T0, at, sent


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> dt.datetime:
        return self.now


class FromCode(Scheduler):
    """Entries made in setup_schedule, a lock-like tick wrapper, and apply_async adding a
    header: what custom schedulers usually do."""

    ticks = 0
    synced = 0

    def setup_schedule(self) -> None:
        self.update_from_dict({"report": {"task": "proj.report", "schedule": 60.0}})
        self.add(name="ping", task="proj.ping", schedule=10.0, args=(1,))

    def tick(self, *args: Any, **kwargs: Any) -> float:
        type(self).ticks += 1
        return super().tick(*args, **kwargs)

    def apply_async(
        self, entry: ScheduleEntry, producer: Any = None, advance: bool = True, **kw: Any
    ) -> Any:
        kw.setdefault("headers", {})["via"] = "custom"
        return super().apply_async(entry, producer, advance, **kw)

    def sync(self) -> None:
        type(self).synced += 1


@pytest.fixture
def app(beat_app: Celery) -> Celery:
    return beat_app


def test_a_subclass_runs_with_its_hooks(app: Celery) -> None:
    store = open_store(app, f"{__name__}:FromCode")
    assert isinstance(store, FromCode)
    clock = Clock()
    beat = Beat(app, store=store, clock=clock)
    wait = store.tick()
    assert FromCode.ticks == 1 and 0 < wait <= 10
    got = sent(app)
    assert sorted(m.task for m in got) == ["proj.ping", "proj.report"]
    assert {m.headers.get("via") for m in got} == {"custom"}
    assert FromCode.synced == 2
    assert store.schedule["ping"].total_run_count == 1
    clock.now = at(10)
    store.tick()
    assert [m.task for m in sent(app)] == ["proj.ping"]
    beat.close()


def test_the_schedule_property_is_read_every_tick(app: Celery) -> None:
    entries: dict[str, ScheduleEntry] = {}

    class Dynamic(Scheduler):
        @property
        def schedule(self) -> dict[str, ScheduleEntry]:
            return entries

    store = Dynamic(app=app)
    clock = Clock()
    beat = Beat(app, store=store, clock=clock)
    beat.tick()
    assert sent(app) == []
    entries["new"] = ScheduleEntry(name="new", task="proj.new", schedule=30.0, app=app)
    clock.now = at(1)
    beat.tick()
    assert [m.task for m in sent(app)] == ["proj.new"]


def test_beat_runs_the_subclass_in_its_loop(app: Celery) -> None:
    app.conf.beat_schedule = {"ping": {"task": "proj.ping", "schedule": 30.0}}

    class Counting(Scheduler):
        ticked = threading.Event()

        def tick(self, *args: Any, **kwargs: Any) -> float:
            wait = super().tick(*args, **kwargs)
            self.ticked.set()
            return wait

    beat = Beat(app, store=Counting(app=app))
    thread = threading.Thread(target=beat.run)
    thread.start()
    try:
        assert Counting.ticked.wait(10)
    finally:
        beat.stop()
        thread.join(10)
    assert [m.task for m in sent(app)] == ["proj.ping"]


def test_persistent_scheduler_keeps_run_state_in_its_file(app: Celery, tmp_path: Path) -> None:
    app.conf.beat_schedule = {"ping": {"task": "proj.ping", "schedule": 100.0}}
    path = str(tmp_path / "state.json")
    clock = Clock()
    first = Beat(app, store=PersistentScheduler(app=app, schedule_filename=path), clock=clock)
    first.tick()
    first.close()
    assert len(sent(app)) == 1
    again = PersistentScheduler(app=app, schedule_filename=path)
    assert again.schedule["ping"].total_run_count == 1
    assert again.schedule["ping"].last_run_at == T0


@pytest.mark.parametrize("hook", ["is_due", "apply_entry", "reserve", "populate_heap"])
def test_a_hook_beat_does_not_call_stops_it_at_once(app: Celery, hook: str) -> None:
    cls = type("Custom", (Scheduler,), {hook: lambda self, *a, **k: None})
    with pytest.raises(ImproperlyConfigured, match=f"overrides {hook}"):
        cls(app=app)


def test_schedule_entry_is_celerys() -> None:
    entry = ScheduleEntry(name="e", task="t", schedule=10.0, last_run_at=T0)
    due, _ = entry.is_due()
    assert due
    later = next(entry)
    assert later.total_run_count == 1 and later.name == "e"
