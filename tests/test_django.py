"""Django: a project laid out as Django and Celery's guide lay it out (``tests/djproj``),
its settings read with ``namespace="CELERY"``, its apps' tasks autodiscovered, and a prefork
worker whose tasks use the ORM on a real database."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from celeriac import Celery

pytest.importorskip("django")

PROJECT = Path(__file__).resolve().parent / "djproj"


def _env(data: Path) -> dict[str, str]:
    return {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "djproj.settings",
        "DJPROJ_DATA": str(data),
        "PYTHONPATH": os.pathsep.join([str(PROJECT), os.environ.get("PYTHONPATH", "")]),
    }


@pytest.mark.parametrize("discover", ["default", "installed-apps"])
def test_a_django_project_runs_its_tasks_with_the_orm(tmp_path: Path, discover: str) -> None:
    env = {**_env(tmp_path), "DJPROJ_DISCOVER": discover}
    migrate = [sys.executable, "-m", "django", "migrate", "-v", "0"]
    subprocess.run(migrate, env=env, cwd=PROJECT, check=True, timeout=120)
    command = [sys.executable, "-m", "celeriac", "-A", "djproj", "worker", "-c", "2", "-l", "info"]
    worker = subprocess.Popen(
        command, env=env, cwd=PROJECT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    lines: list[str] = []
    output = worker.stdout
    assert output is not None
    reader = threading.Thread(target=lambda: lines.extend(iter(output.readline, "")))
    reader.start()
    try:
        deadline = time.monotonic() + 30
        while not any(" ready: " in line for line in lines):
            assert worker.poll() is None, "".join(lines)
            assert time.monotonic() < deadline, "".join(lines)
            time.sleep(0.05)
        # the worker found the app's task by autodiscovery and its queue in the settings
        assert any("notes.tasks.add_note" in line for line in lines), "".join(lines)
        producer = Celery("site", broker=f"sqlite:///{tmp_path / 'broker.db'}")
        results = [
            producer.send_task("notes.tasks.add_note", [f"note {n}"], queue="site")
            for n in range(6)
        ]
        assert sorted(r.get(timeout=30) for r in results) == [1, 2, 3, 4, 5, 6]
        # a task only a view imports: found through the URLconf by Django's checks
        assert producer.send_task("notes.jobs.count_notes", queue="site").get(timeout=30) == 6
        # connections past CONN_MAX_AGE (0: after each task, as after each request) are closed
        for _ in range(4):
            assert producer.send_task("notes.tasks.was_connected", queue="site").get(30) is False
    finally:
        worker.send_signal(signal.SIGTERM)
        assert worker.wait(30) == 0, "".join(lines)
        reader.join(10)
    with sqlite3.connect(tmp_path / "site.db") as db:
        rows = db.execute("SELECT text, pid FROM notes_note ORDER BY id").fetchall()
    assert sorted(text for text, _ in rows) == [f"note {n}" for n in range(6)]
    assert worker.pid not in {pid for _, pid in rows}  # run in the pool's children
