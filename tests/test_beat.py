"""Beat, stepped with an injected clock: due runs, restarts, catch-up, max-active, two beats,
the database schedule changed at run time, and event subscriptions."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any

import pytest

from celeriac import Celery, Task
from celeriac.beat import Beat, FileStore
from celeriac.beat.database import DatabaseStore, PeriodicTasks
from celeriac.exceptions import ImproperlyConfigured
from celeriac.message import Message
from celeriac.schedules import clocked, crontab, schedule
from services import POSTGRES_BEAT

T0 = dt.datetime(2026, 11, 23, 7, 0, tzinfo=dt.UTC)  # a Monday


def at(seconds: float) -> dt.datetime:
    return T0 + dt.timedelta(seconds=seconds)


def sent(app: Celery, queue: str = "celery") -> list[Message]:
    """Take every message waiting in ``queue``."""
    out: list[Message] = []
    while True:
        got = app.broker.fetch([queue], 100, 0)
        if not got:
            return out
        for d in got:
            out.append(Message.decode(d.body, frozenset({"application/json"})))
            app.broker.ack(d)


@pytest.fixture
def app(beat_app: Celery) -> Celery:
    return beat_app


def test_interval_entry_runs_when_due(app: Celery) -> None:
    app.conf.beat_schedule = {"ping": {"task": "proj.ping", "schedule": 10.0, "args": [1]}}
    beat = Beat(app)
    beat.tick(at(0))
    [first] = sent(app)  # never run: at once, named after its entry
    assert (first.task, first.args) == ("proj.ping", [1])
    assert first.headers["periodic_task_name"] == "ping"
    beat.tick(at(5))
    assert sent(app) == []
    beat.tick(at(10))
    assert len(sent(app)) == 1


class BrokenSchedule(schedule):
    """A custom schedule with a bug."""

    def is_due(self, last_run_at: Any) -> Any:
        raise RuntimeError("broken schedule")


def test_an_entry_that_fails_does_not_hold_up_the_others(
    app: Celery, caplog: pytest.LogCaptureFixture
) -> None:
    app.conf.beat_schedule = {
        "broken": {"task": "proj.broken", "schedule": BrokenSchedule(10.0)},
        "ping": {"task": "proj.ping", "schedule": 10.0},
    }
    beat = Beat(app)
    beat.tick(at(0))
    beat.tick(at(10))
    assert [m.task for m in sent(app)] == ["proj.ping", "proj.ping"]
    assert caplog.text.count("beat: broken failed") == 1  # once, not at every tick


def test_the_seed_crontab_snippet(app: Celery) -> None:
    app.conf.beat_schedule = {
        "task1": {"task": "tasks.task1", "schedule": crontab(hour=7, minute=30, day_of_week=1)},
        "task2": {"task": "tasks.task2", "schedule": crontab(hour=8, minute=0)},
    }
    beat = Beat(app)
    beat.tick(at(0))  # Monday 07:00
    assert sent(app) == []
    beat.tick(at(30 * 60))  # 07:30
    assert [m.task for m in sent(app)] == ["tasks.task1"]
    beat.tick(at(60 * 60))  # 08:00
    assert [m.task for m in sent(app)] == ["tasks.task2"]
    beat.tick(at(86400 + 30 * 60))  # Tuesday 07:30: not task1's day
    assert sent(app) == []


def test_restart_neither_repeats_nor_replays(app: Celery) -> None:
    app.conf.beat_schedule = {"ping": {"task": "proj.ping", "schedule": 10.0}}
    first = Beat(app)
    first.tick(at(0))
    first.close()
    assert len(sent(app)) == 1
    state = json.loads(Path(app.conf.beat_schedule_filename).read_text())
    assert state["entries"]["ping"]["total_run_count"] == 1
    again = Beat(app)  # a restart: state from the file
    again.tick(at(5))
    assert sent(app) == []
    again.tick(at(95))  # eight runs were missed while "down": one catch-up run
    again.tick(at(96))
    assert len(sent(app)) == 1


def test_missed_runs_none_skips_the_catch_up(app: Celery) -> None:
    app.conf.beat_schedule = {"ping": {"task": "proj.ping", "schedule": 10.0}}
    first = Beat(app)
    first.tick(at(0))
    first.close()
    sent(app)
    app.conf.beat_missed_runs = "none"
    later = Beat(app)
    later.tick(at(100))
    assert sent(app) == []
    later.tick(at(110))
    assert len(sent(app)) == 1


def test_max_active_skips_runs_while_earlier_ones_are_unfinished(app: Celery) -> None:
    app.conf.beat_schedule = {"slow": {"task": "proj.slow", "schedule": 10.0, "max_active": 1}}
    beat = Beat(app)
    beat.tick(at(0))
    first = sent(app)
    beat.tick(at(10))
    assert sent(app) == []  # the first run is still pending
    app.AsyncResult(first[0].id)  # it finishes:
    app.results.store(first[0].id, "SUCCESS", 1)
    beat.tick(at(20))
    assert len(sent(app)) == 1


def test_two_beats_send_each_run_once_and_one_takes_over(app: Celery, tmp_path: Path) -> None:
    app.conf.beat_schedule = {"ping": {"task": "proj.ping", "schedule": 10.0}}
    app.conf.beat_leader_lease = 0.2
    first = Beat(app, FileStore(app, str(tmp_path / "a.json")))
    second = Beat(app, FileStore(app, str(tmp_path / "b.json")))
    for t in range(0, 60, 5):
        first.tick(at(t))
        second.tick(at(t))
    assert len(sent(app)) == 6  # 0, 10, ..., 50: once each
    import time

    time.sleep(0.3)  # the first beat "dies": its lease runs out
    for t in range(60, 100, 5):
        second.tick(at(t))
    assert len(sent(app)) == 4  # 60..90 by the second, carrying on from the shared state


def test_add_periodic_task_and_on_after_configure(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/b.db"
    app = Celery("beat", broker=url, backend=url)
    app.conf.beat_schedule_filename = str(tmp_path / "s.json")

    @app.task
    def hello(name: str) -> str:
        return name

    @app.on_after_configure.connect
    def setup(sender: Celery, **kwargs: Any) -> None:
        sender.add_periodic_task(10.0, hello.s("world"), name="hello every 10")
        sender.add_periodic_task(crontab(minute=0), hello.s("hourly"), queue="hourly")

    beat = Beat(app)
    beat.tick(at(0))
    assert [m.args for m in sent(app)] == [["world"]]
    beat.tick(at(3600))
    assert [m.args for m in sent(app, "hourly")] == [["hourly"]]
    app.close()


def test_bad_entries_are_clear_errors(app: Celery) -> None:
    app.conf.beat_schedule = {"x": {"task": "t", "schedule": crontab(minute="*"), "when": 1}}
    with pytest.raises(ImproperlyConfigured, match="unknown key"):
        Beat(app).tick(at(0))
    with pytest.raises(ValueError, match="crontab minute"):
        crontab(minute="61")


@pytest.mark.parametrize("database", ["sqlite", "postgresql"])
def test_database_schedule_changes_are_picked_up(app: Celery, database: str) -> None:
    if database == "postgresql":
        POSTGRES_BEAT.prepare()
        app.conf.beat_db_url = POSTGRES_BEAT.url
    app.conf.beat_db_sync_interval = 0.0
    tasks = PeriodicTasks(app)
    tasks.add("report", "proj.report", 60.0, kwargs={"kind": "daily"}, options={"priority": 7})
    beat = Beat(app, DatabaseStore(app))
    beat.tick(at(0))
    [message] = sent(app)
    assert (message.task, message.kwargs, message.priority) == ("proj.report", {"kind": "daily"}, 7)
    tasks.disable("report")
    beat.tick(at(60))
    assert sent(app) == []
    tasks.enable("report")
    tasks.add("once", "proj.once", clocked(at(90)), one_off=True)
    beat.tick(at(120))
    assert sorted(m.task for m in sent(app)) == ["proj.once", "proj.report"]
    beat.tick(at(200))
    assert [m.task for m in sent(app)] == ["proj.report"]  # the one-off disabled itself
    assert tasks.get("once").enabled is False
    assert tasks.get("report").total_run_count == 3
    tasks.remove("report")
    beat.tick(at(400))
    assert sent(app) == []
    tasks.close()


def test_event_subscriptions(app: Celery, tmp_path: Path) -> None:
    @app.on_event("order.created")
    @app.task
    def send_receipt(order: dict[str, Any]) -> int:
        return int(order["id"])

    @app.on_event("order.created")
    @app.task
    def update_stock(order: dict[str, Any]) -> int:
        return len(order["items"])

    results = app.send_event("order.created", {"id": 7, "items": ["a", "b"]})
    assert sorted(m.task for m in sent(app)) == sorted([send_receipt.name, update_stock.name])
    assert len(results) == 2

    from celeriac.subscriptions import announce

    announce(app)  # what a worker does when it starts
    other = Celery("other", broker=app.conf.broker_url, backend=app.conf.result_backend)
    other.send_event("order.created", {"id": 8, "items": []})  # knows nothing of the tasks
    assert len(sent(app)) == 2
    other.close()


def test_schedule_command_line(tmp_path: Path) -> None:
    import subprocess
    import sys

    db = f"sqlite:///{tmp_path}/cli.db"

    def cli(*args: str) -> str:
        done = subprocess.run(
            [sys.executable, "-m", "celeriac", "-b", db, "schedule", *args],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert done.returncode == 0, done.stderr
        return done.stdout

    assert "report" in cli(
        "add",
        "report",
        "proj.report",
        "--cron",
        "30 7 * * 1",
        "--tz",
        "Europe/London",
        "--kwargs",
        '{"kind": "weekly"}',
    )
    cli("add", "ping", "proj.ping", "--every", "30", "--priority", "9")
    listing = cli("list")
    assert "report" in listing and "ping" in listing and "enabled" in listing
    cli("disable", "ping")
    rows = {line.split("\t")[0]: line for line in cli("list").splitlines()}
    assert "disabled" in rows["ping"] and "enabled" in rows["report"]
    task_id = cli("run-now", "report").strip()
    assert len(task_id) == 36
    cli("remove", "ping")
    assert "ping" not in cli("list")
    bad = subprocess.run(
        [
            sys.executable,
            "-m",
            "celeriac",
            "-b",
            db,
            "schedule",
            "add",
            "x",
            "t",
            "--cron",
            "61 * * * *",
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert bad.returncode == 1 and "crontab minute" in bad.stderr


def test_start_time_expires_and_the_max_active_setting(app: Celery) -> None:
    app.conf.beat_schedule_max_active = 1  # CELERY_BEAT_SCHEDULE_MAX_ACTIVE
    app.conf.beat_schedule = {
        "window": {
            "task": "proj.window",
            "schedule": 10.0,
            "start_time": at(20),
            "expires": at(45),
        },
    }
    beat = Beat(app)
    for t in range(0, 80, 10):
        beat.tick(at(t))
        for message in sent(app):  # each run finishes at once
            app.results.store(message.id, "SUCCESS", t)
    entry = beat._entries["window"]  # type: ignore[index]
    assert entry.total_run_count == 3  # at 20, 30 and 40 only
    beat.close()
    app.conf.beat_schedule = {"busy": {"task": "proj.busy", "schedule": 10.0}}
    busy = Beat(app)
    busy.tick(at(100))
    busy.tick(at(110))
    assert len(sent(app)) == 1  # the setting's max_active: the first run never finished


class RepeatedTask(Task):
    """Celery's periodic-task recipe: the class puts its task in the beat schedule when it
    is bound to the app."""

    run_every = dt.timedelta(seconds=10)
    bound: list[str] = []

    @classmethod
    def on_bound(cls, app: Any) -> None:
        cls.bound.append(cls.name)
        app.conf.beat_schedule[cls.name] = {"task": cls.name, "schedule": cls.run_every}


def test_a_task_class_adds_itself_to_the_schedule_when_bound(app: Celery) -> None:
    @app.task(base=RepeatedTask, name="proj.cleanup")
    def cleanup() -> None:
        return None

    assert RepeatedTask.bound == []  # bound once the app is configured, as in Celery
    beat = Beat(app)
    beat.tick(at(0))
    assert [m.task for m in sent(app)] == ["proj.cleanup"]

    @app.task(base=RepeatedTask, name="proj.later")
    def later() -> None:
        return None

    app.finalize()
    assert RepeatedTask.bound == ["proj.cleanup", "proj.later"]  # once each


def test_celerys_beat_service_runs_in_a_thread_of_the_program(app: Celery, tmp_path: Path) -> None:
    import threading

    from celeriac import beat
    from conftest import wait_until

    app.conf.beat_schedule = {"ping": {"task": "proj.ping", "schedule": 0.2}}
    service = beat.Service(app, schedule_filename=str(tmp_path / "schedule"))
    assert isinstance(service.scheduler, FileStore)
    thread = threading.Thread(target=service.start)
    thread.start()
    got: list[Message] = []

    def two_sent() -> bool:
        got.extend(sent(app))
        return len(got) >= 2

    wait_until(two_sent, timeout=10)
    service.stop(wait=True)
    thread.join(5)
    assert not thread.is_alive() and {m.task for m in got} == {"proj.ping"}

    embedded = beat.EmbeddedService(app, schedule_filename=str(tmp_path / "schedule2"))
    embedded.start()
    wait_until(lambda: bool(sent(app)), timeout=10)
    embedded.stop()  # type: ignore[attr-defined]
    assert not embedded.is_alive()
    with pytest.raises(NotImplementedError, match="celeriac beat"):
        beat.EmbeddedService(app, thread=False)
