"""The course's "dcelery" project shipped in ``examples/dcelery``: its docker-compose file is
valid, and its Procfile stack (Django, a worker per queue, beat on the Django scheduler, the
dashboard) runs the course's shell session end to end, on SQLite, in a copy of the example."""

from __future__ import annotations

import functools
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from conftest import Captured
from services import IN_CI, free_port

pytest.importorskip("django")

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "dcelery"
BIN = Path(sys.executable).parent
SERVICES = {
    "django",
    "postgres",
    "redis",
    "rabbitmq",
    "worker-celery",
    "worker-tasks",
    "worker-bulk",
    "beat",
    "dashboard",
}
QUEUES = {"celery", "tasks", "bulk"}
UUID = r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"


def _program(name: str, where: Path | None = None) -> str:
    """The path of ``name``; skip when it is missing (in CI that is a failure)."""
    found = shutil.which(name, path=str(where) if where else None)
    if found is None:
        if IN_CI:
            pytest.fail(f"{name} is not installed (CI=true: .ci/run installs it)")
        pytest.skip(f"{name} is not installed")
    return found


def _copy(dest: Path) -> Path:
    """A copy of the example without what a run of it leaves behind."""
    leftovers = shutil.ignore_patterns(".env", "*.sqlite3*", "*.db", "*.db-*", "__pycache__")
    shutil.copytree(EXAMPLE, dest, ignore=leftovers)
    return dest


def _wait(predicate: Callable[[], Any], what: str, timeout: float = 60.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not within {timeout:.0f}s")
        time.sleep(0.2)


def test_the_compose_file_is_valid(tmp_path: Path) -> None:
    compose = _program("docker-compose")
    # the build context is the repository's root, two levels up: here, tmp_path
    project = _copy(tmp_path / "examples" / "dcelery")
    shutil.copy(project / ".env.example", project / ".env")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("COMPOSE_", "DOCKER_"))}

    def config(*args: str) -> str:
        done = subprocess.run(
            [compose, "config", *args],
            cwd=project,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert done.returncode == 0, done.stderr
        return done.stdout

    assert set(config("--services").split()) == SERVICES
    resolved = config()
    assert "celeriac -A dcelery beat -S django" in resolved
    assert "celeriac -A dcelery dashboard --address 0.0.0.0" in resolved
    assert "--basic-auth" in resolved
    assert "CELERY_RESULT_BACKEND: django-db" in resolved
    assert "published: 8001" in resolved
    # one worker per queue, the same queues as the Procfile's workers
    compose_queues = set(re.findall(r"worker -Q (\w+)", resolved))
    procfile_queues = set(re.findall(r"worker -Q (\w+)", (EXAMPLE / "Procfile").read_text()))
    assert compose_queues == procfile_queues == QUEUES


class Stack(Captured):
    """``honcho start`` in the project, its output collected."""

    def __init__(self, project: Path, env: dict[str, str]) -> None:
        super().__init__([_program("honcho", BIN), "start"], cwd=project, env=env)

    def find(self, pattern: str) -> list[str]:
        assert self.proc.poll() is None, f"honcho stopped:\n{self.output[-6000:]}"
        return re.findall(pattern, self.output)

    def stop(self) -> int:
        """Ctrl-C, as a user stops it; honcho stops every process."""
        self.proc.send_signal(signal.SIGINT)
        try:
            return self.proc.wait(60)
        finally:
            if self.proc.poll() is None:
                os.killpg(self.proc.pid, signal.SIGKILL)
            self._reader.join(10)


def _running_in(directory: Path) -> list[int]:
    """The processes whose working directory is ``directory``."""
    found = []
    for entry in Path("/proc").glob("[0-9]*"):
        try:
            if Path(os.readlink(entry / "cwd")) == directory:
                found.append(int(entry.name))
        except OSError:
            continue
    return found


def _manage(project: Path, env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    """``python manage.py *args`` in the project; it must succeed."""
    done = subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=project,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return done


@dataclass
class Site:
    """Where the stack of one test serves, and the environment its processes get."""

    project: Path
    env: dict[str, str]
    django: str
    dashboard: str
    password: str = "course-password"


@pytest.fixture
def stack(tmp_path: Path) -> Iterator[tuple[Stack, Site]]:
    project = _copy(tmp_path / "dcelery")
    django_port, dashboard_port = free_port(), free_port()
    site = Site(
        project,
        {},
        django=f"http://127.0.0.1:{django_port}",
        dashboard=f"http://127.0.0.1:{dashboard_port}",
    )
    settings = {
        "DJANGO_PORT": str(django_port),
        "DASHBOARD_PORT": str(dashboard_port),
        "DASHBOARD_USER": "admin",
        "DASHBOARD_PASSWORD": site.password,
        "DASHBOARD_URL": site.dashboard,
        "HEARTBEAT_SECONDS": "2",
        "WORKER_CONCURRENCY": "1",
    }
    dotenv = (project / ".env.example").read_text()
    dotenv += "".join(f"{key}={value}\n" for key, value in settings.items())
    (project / ".env").write_text(dotenv)
    # the project's .env is the only source of its settings
    names = {line.split("=", 1)[0] for line in dotenv.splitlines() if "=" in line}
    site.env = {
        key: value
        for key, value in os.environ.items()
        if key not in names and not key.startswith(("CELERY_", "CELERIAC_", "DJANGO_"))
    }
    site.env["PATH"] = os.pathsep.join([str(BIN), site.env.get("PATH", "")])
    site.env["PYTHONUNBUFFERED"] = "1"

    _manage(project, site.env, "migrate", "-v", "0")
    superuser = ["createsuperuser", "--noinput", "--username", "admin"]
    superuser += ["--email", "admin@example.com"]
    _manage(project, {**site.env, "DJANGO_SUPERUSER_PASSWORD": site.password}, *superuser)

    started = Stack(project, site.env)
    try:
        yield started, site
    finally:
        if started.proc.poll() is None:
            started.stop()
        for pid in _running_in(project):  # what a failed stop left behind
            os.kill(pid, signal.SIGKILL)


def _admin_login(client: httpx.Client, password: str) -> None:
    page = client.get("/admin/login/")
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page.text)
    assert token, page.text
    form = {"username": "admin", "password": password, "csrfmiddlewaretoken": token.group(1)}
    answer = client.post("/admin/login/?next=/admin/", data=form)
    assert answer.status_code == 302 and answer.headers["location"] == "/admin/", answer.text


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_the_procfile_stack_runs_the_course(stack: tuple[Stack, Site]) -> None:
    honcho, site = stack
    _wait(lambda: len(honcho.find(r"\w+@\S+ ready: ")) == 3, "three workers ready", 120)

    def answers(url: str) -> bool:
        try:
            return httpx.get(url, timeout=5).status_code == 200
        except httpx.HTTPError:
            return False

    _wait(lambda: answers(f"{site.django}/health/"), "Django on its port", 60)
    _wait(lambda: answers(f"{site.dashboard}/healthcheck"), "the dashboard", 60)

    # the course's first shell session
    session = "from newapp.tasks import sharedtask; r = sharedtask.delay(); print(r.id)"
    session += "; print(r.get(timeout=60))"
    done = _manage(site.project, site.env, "shell", "-c", session)
    assert done.stdout.strip().endswith("Hello from sharedtask"), done.stdout
    shared_id = re.findall(UUID, done.stdout)[-1]

    # beat (-S django) sends the heartbeat from the database schedule; a worker runs it
    sent = _wait(lambda: honcho.find(rf"beat: sent heartbeat .* as \S+\[({UUID})\]"), "beat", 60)
    beat_id = sent[0]
    _wait(lambda: honcho.find(rf"heartbeat\[{beat_id}\] succeeded"), "the heartbeat's run", 60)

    with httpx.Client(base_url=site.django, timeout=30) as admin:
        _admin_login(admin, site.password)
        index = admin.get("/admin/").text
        results_url = re.search(r'href="(/admin/[\w/]*taskresult/)"', index)
        schedules_url = re.search(r'href="(/admin/[\w/]*periodictask/)"', index)
        assert results_url and schedules_url, index
        for task_id in (shared_id, beat_id):
            query = {"q": task_id, "status__exact": "SUCCESS"}
            listed = admin.get(results_url.group(1), params=query)
            assert listed.status_code == 200
            assert task_id in listed.text, listed.text[-3000:]
        periodic = admin.get(schedules_url.group(1)).text
        assert "heartbeat" in periodic and "weekly-report" in periodic

        # the home page's buttons send the course's snippets
        assert 'action="/run/chain/"' in admin.get("/").text
        expected = {
            "chain": [["tp1", "tp2", "tp3", "tp4"]],
            "routing-by-arguments": ["resized 5 MP", "resized 50 MP"],  # celery, bulk
            "arguments": [9],  # t1 on the tasks queue
        }
        for name, values in expected.items():
            headers = {"Accept": "application/json", "X-CSRFToken": admin.cookies["csrftoken"]}
            sent = admin.post(f"/run/{name}/", headers=headers)
            assert sent.status_code == 200, sent.text
            ids = sent.json()["task_ids"]

            def finished(task_id: str) -> Any:
                state = admin.get(f"/result/{task_id}/").json()
                return state if state["state"] == "SUCCESS" else None

            got = [_wait(functools.partial(finished, i), f"{name} {i}", 60)["result"] for i in ids]
            assert got == values

    # the dashboard saw the same task through the workers' events
    auth = ("admin", site.password)

    def dashboard_info() -> dict[str, Any] | None:
        answer = httpx.get(f"{site.dashboard}/api/task/info/{shared_id}", auth=auth)
        found: dict[str, Any] | None = answer.json() if answer.status_code == 200 else None
        return found if found and found.get("state") == "SUCCESS" else None

    info = _wait(dashboard_info, "the task in the dashboard's API", 60)
    assert info["name"] == "newapp.tasks.sharedtask"
    assert httpx.get(f"{site.dashboard}/api/workers").status_code == 401  # needs auth

    # Ctrl-C stops the whole stack: every worker warm, nothing left running
    honcho.stop()
    for name in ("django", "worker_celery", "worker_tasks", "worker_bulk", "beat", "dashboard"):
        assert re.search(rf"{name}\.1 stopped", honcho.output), honcho.output[-4000:]
    assert len(re.findall(r"\w+@\S+ stopped", honcho.output)) == 3, honcho.output[-4000:]
    _wait(lambda: not _running_in(site.project), "no process left in the project", 30)
