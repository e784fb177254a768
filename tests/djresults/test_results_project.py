"""A Django project on celeriac's results app (tests/djresults/resultsproj): a worker started
with ``manage.py celeriac worker`` stores results through the ORM, the read-only admin lists
them with filters and search over HTTP, the dashboard is served inside the project to staff
only, and ``delay_on_commit`` publishes on commit and never on rollback, on SQLite and
PostgreSQL."""

from __future__ import annotations

import json
import os
import re
import socket
import sqlite3
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from celeriac import Celery
from conftest import wait_until
from services import _postgres, require_service

pytest.importorskip("django")
httpx = pytest.importorskip("httpx")

PROJECT = Path(__file__).resolve().parent / "resultsproj"
TESTS = PROJECT.parent.parent
POSTGRES_PROJECT = _postgres("celeriac_test_djresults")


def _env(data: Path, db: str) -> dict[str, str]:
    return {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "resultsproj.settings",
        "RESULTSPROJ_DATA": str(data),
        "RESULTSPROJ_DB": db,
        "PYTHONPATH": os.pathsep.join([str(PROJECT), str(TESTS), os.environ.get("PYTHONPATH", "")]),
    }


def _manage(env: dict[str, str], *args: str) -> str:
    done = subprocess.run(
        [sys.executable, "manage.py", *args],
        env=env,
        cwd=PROJECT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


@pytest.fixture(params=["sqlite", "postgresql"])
def project(request: pytest.FixtureRequest, tmp_path: Path) -> dict[str, str]:
    db = "sqlite"
    if request.param == "postgresql":
        require_service("postgresql")
        POSTGRES_PROJECT.prepare()
        db = POSTGRES_PROJECT.url.rpartition("search_path%3D")[2]
    env = _env(tmp_path, db)
    _manage(env, "migrate", "-v", "0")
    return env


def test_on_commit_publishes_after_commit_and_never_on_rollback(project: dict[str, str]) -> None:
    script = (PROJECT / "oncommit.py").read_text()
    steps = json.loads(_manage(project, "shell", "-c", script).splitlines()[-1])
    assert steps["inside"] == 0  # nothing is sent while the transaction is open
    assert steps["after_commit"] == 2
    assert "by-apply-async" in steps["ids"]
    assert steps["after_rollback"] == 2  # the rolled-back transaction sent nothing
    assert steps["users"] == ["committed"]
    assert steps["autocommit"] == 3  # outside a transaction: sent at once


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Process:
    """A process of the project whose output is collected."""

    def __init__(self, command: list[str], env: dict[str, str]) -> None:
        self.popen = subprocess.Popen(
            command,
            env=env,
            cwd=PROJECT,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        self.lines: list[str] = []
        out = self.popen.stdout
        assert out is not None
        self.reader = threading.Thread(target=lambda: self.lines.extend(iter(out.readline, "")))
        self.reader.start()

    def wait_for(self, text: str) -> None:
        def seen() -> bool:
            assert self.popen.poll() is None, "".join(self.lines)
            return any(text in line for line in self.lines)

        try:
            wait_until(seen, timeout=60)
        except AssertionError:
            raise AssertionError("".join(self.lines)) from None

    def stop(self) -> None:
        self.popen.terminate()
        try:
            self.popen.wait(30)
        except subprocess.TimeoutExpired:
            self.popen.kill()
            self.popen.wait(10)
        self.reader.join(10)


@pytest.fixture
def running(tmp_path: Path) -> Iterator[tuple[dict[str, str], str]]:
    """The SQLite project migrated, with users, a worker (manage.py celeriac worker) and an
    ASGI server (uvicorn) with the dashboard mounted."""
    env = _env(tmp_path, "sqlite")
    _manage(env, "migrate", "-v", "0")
    _manage(env, "shell", "-c", USERS)
    worker = Process(
        [sys.executable, "manage.py", "celeriac", "worker", "-c", "2", "-l", "info"], env
    )
    port = _free_port()
    server = Process(
        [sys.executable, "-m", "uvicorn", "resultsproj.asgi:application", "--port", str(port)],
        env,
    )
    try:
        worker.wait_for(" ready: ")
        server.wait_for("Uvicorn running")
        yield env, f"http://127.0.0.1:{port}"
    finally:
        worker.stop()
        server.stop()


USERS = """
from django.contrib.auth.models import User
User.objects.create_superuser("boss", "boss@example.com", "boss-password")
User.objects.create_user("clerk", "clerk@example.com", "clerk-password")
"""

CLERK_SESSION = """
from importlib import import_module
from django.conf import settings
from django.contrib.auth import BACKEND_SESSION_KEY, HASH_SESSION_KEY, SESSION_KEY
from django.contrib.auth.models import User
clerk = User.objects.get(username="clerk")
session = import_module(settings.SESSION_ENGINE).SessionStore()
session[SESSION_KEY] = str(clerk.pk)
session[BACKEND_SESSION_KEY] = "django.contrib.auth.backends.ModelBackend"
session[HASH_SESSION_KEY] = clerk.get_session_auth_hash()
session.create()
print(session.session_key)
"""


def _login(client: Any, username: str, password: str) -> None:
    page = client.get("/admin/login/")
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page.text)
    assert token, page.text
    done = client.post(
        "/admin/login/?next=/admin/",
        data={"username": username, "password": password, "csrfmiddlewaretoken": token[1]},
        headers={"Referer": f"{client.base_url}/admin/login/"},
    )
    assert done.status_code == 302 and done.headers["location"] == "/admin/", done.text


def test_results_in_the_admin_and_the_dashboard_for_staff(
    running: tuple[dict[str, str], str], tmp_path: Path
) -> None:
    env, base = running
    producer = Celery("site", broker=f"sqlite:///{tmp_path / 'broker.db'}")
    ok = producer.send_task(
        "orders.tasks.total", [[1, 2, 39]], headers={"periodic_task_name": "nightly totals"}
    )
    bad = producer.send_task("orders.tasks.refuse", ["out of stock"])
    site = sqlite3.connect(tmp_path / "site.db")

    def stored() -> list[tuple[str, str, str, str, str | None, str | None]]:
        rows = site.execute(
            "SELECT task_id, status, result, task_args, periodic_task_name, worker "
            "FROM celeriac_results_taskresult "
            "WHERE status IN ('SUCCESS', 'FAILURE') ORDER BY status DESC"
        ).fetchall()
        return rows if len(rows) == 2 else []

    rows = wait_until(stored, timeout=60)
    site.close()
    assert rows[0][:5] == (ok.id, "SUCCESS", "42", "[[1, 2, 39]]", "nightly totals")
    assert rows[0][5]  # the worker's name
    assert rows[1][:2] == (bad.id, "FAILURE")
    producer.close()

    with httpx.Client(base_url=base, timeout=30) as anonymous:
        response = anonymous.get("/dashboard/")
        assert response.status_code == 302
        assert response.headers["location"] == "/admin/login/?next=/dashboard/"

    with httpx.Client(base_url=base, timeout=30) as clerk:
        key = _manage(env, "shell", "-c", CLERK_SESSION).splitlines()[-1].strip()
        clerk.cookies.set("sessionid", key)
        assert clerk.get("/dashboard/").status_code == 302  # logged in, not staff

    with httpx.Client(base_url=base, timeout=30) as boss:
        _login(boss, "boss", "boss-password")
        changelist = "/admin/celeriac_results/taskresult/"
        listed = boss.get(changelist, params={"status__exact": "FAILURE"})
        assert listed.status_code == 200
        assert bad.id in listed.text and ok.id not in listed.text
        found = boss.get(changelist, params={"q": ok.id})
        assert ok.id in found.text and bad.id not in found.text
        by_name = boss.get(changelist, params={"task_name": "orders.tasks.total"})
        assert ok.id in by_name.text and bad.id not in by_name.text
        detail = boss.get(f"{changelist}{_pk(boss, changelist, ok.id)}/change/")
        assert detail.status_code == 200 and "[[1, 2, 39]]" in detail.text
        assert 'name="_save"' not in detail.text  # read-only
        assert boss.get(f"{changelist}add/").status_code == 403
        page = boss.get("/dashboard/")
        assert page.status_code == 200 and "<html" in page.text.lower()


def _pk(client: Any, changelist: str, task_id: str) -> str:
    listed = client.get(changelist, params={"q": task_id}).text
    found = re.search(rf'href="{changelist}(\d+)/change/', listed)
    assert found, listed
    return found[1]


def test_manage_py_celeriac_runs_celeriac_commands(tmp_path: Path) -> None:
    env = _env(tmp_path, "sqlite")
    for command in ("beat", "dashboard", "worker"):
        assert "usage:" in _manage(env, "celeriac", command, "--help")
