"""Periodic tasks in the Django admin (``celeriac.contrib.django.schedules``), end to end.

A small Django project (``tests/djbeat``) keeps its periodic tasks in the app's models. The
tests run its real processes: ``celeriac beat -S django`` (two of them: each run is sent
once), a worker, and ``manage.py runserver`` whose admin is driven over HTTP and in Chromium;
a change made in the admin reaches the running beat. On SQLite and on PostgreSQL.
"""

from __future__ import annotations

import json
import os
import re
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from conftest import WorkerProcess, wait_until
from services import SLOT, _postgres, free_port, service_up

pytest.importorskip("django")

PROJECT = Path(__file__).resolve().parent / "djbeat"
TESTS = PROJECT.parent
SENT = re.compile(r"beat: sent (\S+) \((\S+)\) as \S+\[([\w-]+)\]")


class Site:
    """The project with its database (SQLite in ``tmp_path``, or a PostgreSQL schema)."""

    def __init__(self, tmp_path: Path, database: str) -> None:
        self.tmp_path = tmp_path
        self.database = database
        self.env = {
            **os.environ,
            "DJANGO_SETTINGS_MODULE": "site_beat.settings",
            "DJBEAT_DATA": str(tmp_path),
            "PYTHONPATH": os.pathsep.join(
                [str(PROJECT), str(TESTS), os.environ.get("PYTHONPATH", "")]
            ),
        }
        if database == "postgresql":
            service = _postgres("djbeat")
            service.prepare()
            self.env["DJBEAT_PG_SCHEMA"] = f"djbeat_{SLOT}" if SLOT else "djbeat"
        self.processes: list[WorkerProcess] = []
        self.servers: list[subprocess.Popen[bytes]] = []
        self.manage("migrate", "-v", "0")

    def manage(self, *args: str) -> str:
        done = subprocess.run(
            [sys.executable, "-m", "django", *args],
            env=self.env,
            cwd=PROJECT,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert done.returncode == 0, done.stdout + done.stderr
        return done.stdout

    def orm(self, code: str) -> Any:
        """Run ``code`` with Django set up and the models imported; returns what it prints
        as JSON (``out(value)``)."""
        prelude = (
            "import django, json; django.setup()\n"
            "from celeriac.contrib.django.schedules.models import *\n"
            "out = lambda v: print(json.dumps(v, default=str))\n"
        )
        text = self.run_python(prelude + code)
        return json.loads(text) if text.strip() else None

    def run_python(self, code: str) -> str:
        done = subprocess.run(
            [sys.executable, "-c", code],
            env=self.env,
            cwd=PROJECT,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert done.returncode == 0, done.stderr
        return done.stdout

    def add_interval_task(self, name: str, every: int, label: str, enabled: bool = True) -> int:
        task_id: int = self.orm(
            f"i = IntervalSchedule.objects.create(every={every}, period='seconds')\n"
            f"t = PeriodicTask.objects.create(name={name!r}, task='ticks.tasks.tick', "
            f"interval=i, args=json.dumps([{label!r}]), enabled={enabled})\n"
            "out(t.id)"
        )
        return task_id

    def start(self, command: str, *args: str) -> WorkerProcess:
        process = WorkerProcess(self.env, list(args), command=command, app="site_beat", cwd=PROJECT)
        self.processes.append(process)
        return process.wait_ready(60)

    def server(self) -> str:
        """``manage.py runserver`` on a free port; its base URL."""
        port = free_port()
        server = subprocess.Popen(
            [sys.executable, "-m", "django", "runserver", f"127.0.0.1:{port}", "--noreload"],
            env=self.env,
            cwd=PROJECT,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        self.servers.append(server)
        wait_until(lambda: service_up(port) or server.poll() is not None, timeout=60)
        assert server.poll() is None, "runserver exited"
        return f"http://127.0.0.1:{port}"

    def runs(self) -> list[tuple[str, str]]:
        """(label, task id) of every run the worker made."""
        log = self.tmp_path / "runs.txt"
        if not log.exists():
            return []
        return [(line.split()[0], line.split()[1]) for line in log.read_text().splitlines()]

    def close(self) -> None:
        for process in self.processes:
            if process.proc.poll() is None:
                process.kill()
        for server in self.servers:
            server.terminate()
            server.wait(20)


@pytest.fixture(params=["sqlite", "postgresql"])
def site(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Site]:
    s = Site(tmp_path, request.param)
    yield s
    s.close()


@pytest.fixture
def sqlite_site(tmp_path: Path) -> Iterator[Site]:
    s = Site(tmp_path, "sqlite")
    yield s
    s.close()


def sent(*beats: WorkerProcess) -> list[tuple[str, str, str]]:
    return [m.groups() for b in beats for line in b.lines if (m := SENT.search(line))]  # type: ignore[misc]


def test_two_django_beats_send_each_run_once(site: Site) -> None:
    site.add_interval_task("heartbeat", 1, "hb")
    site.start("worker", "-c", "2")
    # by its short name and by its path
    beats = [
        site.start("beat", "-S", "django"),
        site.start("beat", "-S", "celeriac.contrib.django.schedules:DatabaseScheduler"),
    ]
    wait_until(lambda: len(site.runs()) >= 4, timeout=60)
    [leader] = [b for b in beats if any(line.rstrip().endswith(" leads") for line in b.lines)]
    leader.kill()  # no goodbye: the other takes over when the lease runs out
    count = len(site.runs())
    wait_until(lambda: len(site.runs()) >= count + 3, timeout=60)
    [standby] = [b for b in beats if b is not leader]
    assert any(line.rstrip().endswith(" leads") for line in standby.lines), standby.output
    runs = sent(*beats)
    scheduled = [when for _, when, _ in runs]
    assert len(scheduled) == len(set(scheduled)), runs  # no run sent by both beats
    wait_until(lambda: len(site.runs()) >= len(runs), timeout=30)
    ids = [task_id for _, task_id in site.runs()]
    assert len(ids) == len(set(ids))
    assert {task_id for *_, task_id in runs} >= set(ids[: len(runs)])
    # the run state is written back to the row
    state = site.orm("t = PeriodicTask.objects.get(name='heartbeat')\nout(t.total_run_count)")
    assert state >= count


def _login(base: str) -> Any:
    import httpx

    client = httpx.Client(base_url=base, timeout=30, follow_redirects=True)
    client.get("/admin/login/")
    page = client.post(
        "/admin/login/?next=/admin/",
        data={
            "username": "admin",
            "password": "s3cret-pass",
            "csrfmiddlewaretoken": client.cookies["csrftoken"],
            "next": "/admin/",
        },
    )
    assert "Log out" in page.text or "logout" in page.text, page.text[:2000]
    return client


def _superuser(site: Site) -> None:
    site.orm(
        "from django.contrib.auth.models import User\n"
        "User.objects.create_superuser('admin', 'admin@example.com', 's3cret-pass')"
    )


def test_a_change_in_the_admin_reaches_the_running_beat(site: Site) -> None:
    _superuser(site)
    task_id = site.add_interval_task("report", 1, "before")
    interval = site.orm(f"out(PeriodicTask.objects.get(id={task_id}).interval_id)")
    site.start("worker", "-c", "2")
    beat = site.start("beat", "-S", "django")
    client = _login(site.server())
    wait_until(lambda: any(label == "before" for label, _ in site.runs()), timeout=60)

    # the list shows the schedule in words and the next run
    listing = client.get("/admin/celeriac_schedules/periodictask/").text
    assert "every second" in listing and "report" in listing

    # edit the task's arguments through its change form
    url = f"/admin/celeriac_schedules/periodictask/{task_id}/change/"
    form = client.get(url)
    assert 'value="ticks.tasks.tick"' in form.text  # the registered tasks are offered
    changed = client.post(
        url,
        data={
            "csrfmiddlewaretoken": client.cookies["csrftoken"],
            "name": "report",
            "regtask": "ticks.tasks.tick",
            "task": "",
            "enabled": "on",
            "description": "",
            "interval": str(interval),
            "crontab": "",
            "solar": "",
            "clocked": "",
            "start_time_0": "",
            "start_time_1": "",
            "expires_0": "",
            "expires_1": "",
            "args": '["after"]',
            "kwargs": "{}",
            "queue": "",
            "exchange": "",
            "routing_key": "",
            "priority": "",
            "headers": "{}",
            "expire_seconds": "",
            "_save": "Save",
        },
    )
    assert "was changed successfully" in changed.text, changed.text[:3000]
    wait_until(lambda: any(label == "after" for label, _ in site.runs()), timeout=60)

    # disabled from the list: beat stops sending it
    action = {
        "csrfmiddlewaretoken": client.cookies["csrftoken"],
        "_selected_action": str(task_id),
        "index": "0",
    }
    reloads = sum("beat: 1 entry" in line for line in beat.lines)
    page = client.post(
        "/admin/celeriac_schedules/periodictask/", data={**action, "action": "disable_tasks"}
    )
    assert "1 periodic task(s) disabled" in page.text
    wait_until(lambda: sum("beat: 1 entry" in line for line in beat.lines) > reloads, 30)
    sends = len(sent(beat))
    time.sleep(2.5)  # several one-second periods
    assert len(sent(beat)) == sends, sent(beat)[sends:]

    # run now: sent at once though it is disabled
    page = client.post(
        "/admin/celeriac_schedules/periodictask/", data={**action, "action": "run_tasks_now"}
    )
    found = re.search(r"Sent 1 task\(s\) now: report \(([\w-]+)\)", page.text)
    assert found, page.text[:3000]
    wait_until(lambda: ("after", found[1]) in site.runs(), timeout=60)

    # duplicate: a disabled copy with a schedule of its own
    page = client.post(
        "/admin/celeriac_schedules/periodictask/", data={**action, "action": "duplicate_tasks"}
    )
    assert "Made report (copy) (disabled)" in page.text
    copy = site.orm(
        "c = PeriodicTask.objects.get(name='report (copy)')\n"
        "out([c.enabled, c.args, c.interval_id, c.total_run_count, c.schedule_text()])"
    )
    assert (
        copy[:2] == [False, '["after"]'] and copy[2] != interval and copy[3:] == [0, "every second"]
    )


def test_chromium_logs_in_adds_a_task_from_the_registered_ones_and_runs_it_now(
    sqlite_site: Site,
) -> None:
    sync_api = pytest.importorskip("playwright.sync_api")
    if not os.path.exists("/usr/bin/chromium"):
        pytest.skip("/usr/bin/chromium is not installed")
    site = sqlite_site
    _superuser(site)
    interval = site.orm("out(IntervalSchedule.objects.create(every=1, period='hours').id)")
    site.start("worker", "-c", "1")
    base = site.server()
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path="/usr/bin/chromium", args=["--no-sandbox"], headless=True
        )
        try:
            page = browser.new_page()
            page.goto(f"{base}/admin/login/")
            page.fill("#id_username", "admin")
            page.fill("#id_password", "s3cret-pass")
            page.click("input[type=submit]")
            page.wait_for_selector("text=Periodic tasks")

            page.goto(f"{base}/admin/celeriac_schedules/periodictask/add/")
            page.fill("#id_name", "nightly")
            page.select_option("#id_regtask", "ticks.tasks.tick")
            page.select_option("#id_interval", str(interval))
            page.fill("#id_args", '["from-chromium"]')
            page.uncheck("#id_enabled")  # only "run now" sends it
            page.click("input[name=_save]")
            page.wait_for_selector("text=was added successfully")
            row = page.locator("tr", has_text="nightly")
            assert "every hour" in row.inner_text()

            row.locator("input[name=_selected_action]").check()
            page.select_option("select[name=action]", "run_tasks_now")
            page.click("button[name=index]")
            message = page.wait_for_selector("text=Sent 1 task(s) now")
            assert message is not None
            found = re.search(r"nightly \(([\w-]+)\)", message.inner_text())
            assert found, message.inner_text()
        finally:
            browser.close()
    wait_until(lambda: ("from-chromium", found[1]) in site.runs(), timeout=60)


# django-celery-beat's tables, as its migrations leave them (made by hand: it is not installed)
_DCB_TABLES = """
CREATE TABLE django_celery_beat_intervalschedule (
    id {id}, every integer NOT NULL, period varchar(24) NOT NULL);
CREATE TABLE django_celery_beat_crontabschedule (
    id {id}, minute varchar(240) NOT NULL, hour varchar(96) NOT NULL,
    day_of_week varchar(64) NOT NULL, day_of_month varchar(124) NOT NULL,
    month_of_year varchar(64) NOT NULL, timezone varchar(63) NOT NULL);
CREATE TABLE django_celery_beat_solarschedule (
    id {id}, event varchar(24) NOT NULL, latitude numeric(9, 6) NOT NULL,
    longitude numeric(9, 6) NOT NULL);
CREATE TABLE django_celery_beat_clockedschedule (id {id}, clocked_time {time} NOT NULL);
CREATE TABLE django_celery_beat_periodictasks (ident smallint PRIMARY KEY, last_update {time});
CREATE TABLE django_celery_beat_periodictask (
    id {id}, name varchar(200) NOT NULL UNIQUE, task varchar(200) NOT NULL,
    interval_id integer, crontab_id integer, solar_id integer, clocked_id integer,
    args text NOT NULL, kwargs text NOT NULL, queue varchar(200), exchange varchar(200),
    routing_key varchar(200), headers text NOT NULL, priority integer,
    expires {time}, expire_seconds integer, one_off boolean NOT NULL,
    start_time {time}, enabled boolean NOT NULL, last_run_at {time},
    total_run_count integer NOT NULL, date_changed {time} NOT NULL, description text NOT NULL);
INSERT INTO django_celery_beat_intervalschedule (id, every, period) VALUES (7, 10, 'minutes');
INSERT INTO django_celery_beat_crontabschedule
    (id, minute, hour, day_of_week, day_of_month, month_of_year, timezone)
    VALUES (3, '30', '7', '1', '*', '*', 'Europe/London');
INSERT INTO django_celery_beat_solarschedule (id, event, latitude, longitude)
    VALUES (2, 'sunset', 51.507200, -0.127600);
INSERT INTO django_celery_beat_clockedschedule (id, clocked_time)
    VALUES (5, '2030-12-24 18:00:00{utc}');
INSERT INTO django_celery_beat_periodictask (id, name, task, interval_id, args, kwargs,
    queue, headers, priority, one_off, enabled, last_run_at, total_run_count, date_changed,
    description)
    VALUES (1, 'poll', 'ticks.tasks.tick', 7, '["p"]', '{}', 'polling', '{"x": 1}', 5,
    {false}, {true}, '2026-01-02 03:04:05{utc}', 42, '2026-01-02 03:04:05{utc}', 'polls');
INSERT INTO django_celery_beat_periodictask (id, name, task, crontab_id, args, kwargs,
    headers, one_off, enabled, total_run_count, date_changed, description)
    VALUES (2, 'weekly', 'ticks.tasks.tick', 3, '[]', '{"kind": "weekly"}', '{}',
    {false}, {false}, 0, '2026-01-02 03:04:05{utc}', '');
INSERT INTO django_celery_beat_periodictask (id, name, task, solar_id, args, kwargs,
    headers, one_off, enabled, total_run_count, date_changed, description)
    VALUES (3, 'lights', 'ticks.tasks.tick', 2, '[]', '{}', '{}', {false}, {true}, 0,
    '2026-01-02 03:04:05{utc}', '');
INSERT INTO django_celery_beat_periodictask (id, name, task, clocked_id, args, kwargs,
    headers, one_off, enabled, total_run_count, date_changed, description)
    VALUES (4, 'launch', 'ticks.tasks.tick', 5, '[]', '{}', '{}', {true}, {true}, 0,
    '2026-01-02 03:04:05{utc}', '');
"""


def _fill(**words: str) -> str:
    sql = _DCB_TABLES
    for key, word in words.items():
        sql = sql.replace(f"{{{key}}}", word)
    return sql


def _create_django_celery_beat_tables(site: Site) -> None:
    if site.database == "sqlite":
        sql = _fill(id="integer PRIMARY KEY", time="datetime", utc="", true="1", false="0")
        with sqlite3.connect(site.tmp_path / "site.db") as db:
            db.executescript(sql)
        return
    import psycopg

    sql = _fill(
        id="serial PRIMARY KEY", time="timestamp with time zone", utc="+00", true="true",
        false="false",
    )  # fmt: skip
    schema = site.env["DJBEAT_PG_SCHEMA"]
    with psycopg.connect("postgresql://postgres@127.0.0.1:5432/test", autocommit=True) as db:
        db.execute(f"SET search_path TO {schema}")
        for statement in sql.split(";"):
            if statement.strip():
                db.execute(statement)


def test_import_django_celery_beat_copies_its_rows(site: Site) -> None:
    _create_django_celery_beat_tables(site)
    output = site.manage("import_django_celery_beat")
    assert "Imported 4 periodic task(s)" in output
    rows = site.orm(
        "out({t.name: [t.task, t.schedule_text(), t.args, t.kwargs, t.queue, t.headers, "
        "t.priority, t.enabled, t.one_off, t.last_run_at and t.last_run_at.isoformat(), "
        "t.total_run_count, t.description] for t in PeriodicTask.objects.all()})"
    )
    assert rows["poll"] == [
        "ticks.tasks.tick", "every 10 minutes", '["p"]', "{}", "polling", '{"x": 1}', 5,
        True, False, "2026-01-02T03:04:05+00:00", 42, "polls",
    ]  # fmt: skip
    assert rows["weekly"][1] == "at 07:30 on Monday (Europe/London)"
    assert rows["weekly"][3] == '{"kind": "weekly"}' and rows["weekly"][7] is False
    assert rows["lights"][1].startswith("at sunset")
    assert rows["launch"][1] == "once at 2030-12-24 18:00 UTC" and rows["launch"][8] is True
    # importing again updates the same tasks
    assert "(0 new, 4 updated)" in site.manage("import_django_celery_beat")
    assert site.orm("out(PeriodicTask.objects.count())") == 4


def test_entries_in_the_settings_are_copied_into_the_tables(sqlite_site: Site) -> None:
    site = sqlite_site
    site.env["DJBEAT_CONFIGURED"] = "1"
    code = (
        "from celeriac.contrib.django.schedules import DatabaseScheduler\n"
        "from site_beat import app\n"
        "entries = DatabaseScheduler(app).entries()\n"
        "out({n: [e.task, e.schedule.human(), e.args, e.options] for n, e in entries.items()})\n"
        "t = PeriodicTask.objects.get(name='nightly')\n"
        "out([t.crontab.timezone, t.queue, t.expire_seconds, t.priority, t.schedule_text()])\n"
    )
    first, row = site.run_python(
        "import django, json; django.setup()\n"
        "from celeriac.contrib.django.schedules.models import *\n"
        "out = lambda v: print(json.dumps(v, default=str))\n" + code
    ).splitlines()
    assert json.loads(first) == {
        "nightly": [
            "ticks.tasks.tick",
            "at 03:00",
            ["n"],
            {"queue": "night", "priority": 2, "expires": 60.0},
        ],
        "often": ["ticks.tasks.tick", "every 2.5 seconds", [], {}],
    }
    assert json.loads(row) == ["Europe/Paris", "night", 60, 2, "at 03:00 (Europe/Paris)"]
