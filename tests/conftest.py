"""Shared fixtures: real services when present, worker processes started through the CLI."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest

from celeriac import Celery
from services import IN_CI, require_service  # noqa: F401  (re-exported for test modules)

TESTS_DIR = Path(__file__).resolve().parent


def wait_until(predicate: Callable[[], Any], timeout: float = 20.0, interval: float = 0.05) -> Any:
    """Poll ``predicate`` until it returns something truthy; fail after ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout}s")
        time.sleep(interval)


def run_cli(
    *args: str, env: dict[str, str] | None = None, **options: Any
) -> subprocess.CompletedProcess[str]:
    """Run ``celeriac *args`` in the tests' folder and wait for it (two minutes at most)."""
    return subprocess.run(
        [sys.executable, "-m", "celeriac", *args],
        cwd=TESTS_DIR,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        **options,
    )


def _die_with_the_tests() -> Callable[[], None] | None:
    """What a started process runs before its program, so that it is killed when the test
    process dies (Linux): a test run that is killed leaves no worker consuming behind it."""
    if not sys.platform.startswith("linux"):
        return None
    import ctypes

    prctl = ctypes.CDLL(None, use_errno=True).prctl
    return lambda: prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG


_DIE_WITH_THE_TESTS = _die_with_the_tests()


class Captured:
    """A process in a session of its own, its output (stdout and stderr) read by a thread;
    killed if the test process dies."""

    def __init__(self, cmd: Sequence[str], **options: Any) -> None:
        self.proc = subprocess.Popen(
            list(cmd),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            errors="replace",
            start_new_session=True,
            preexec_fn=_DIE_WITH_THE_TESTS,
            **options,
        )
        self.lines: list[str] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.append(line)

    @property
    def output(self) -> str:
        return "".join(self.lines)


class WorkerProcess(Captured):
    """``celeriac -A proj worker`` (or ``beat``) in a subprocess, with its output collected."""

    READY = {"worker": " ready: ", "beat": "beat: starting"}

    def __init__(
        self,
        env: dict[str, str],
        args: list[str],
        prefix: Sequence[str] = (),
        command: str = "worker",
        app: str = "proj",
        cwd: Path = TESTS_DIR,
    ) -> None:
        self.command = command
        cmd = [*prefix, sys.executable, "-m", "celeriac", "-A", app, command, "-l", "info"]
        super().__init__([*cmd, *args], cwd=cwd, env=env)

    def wait_ready(self, timeout: float = 30.0) -> WorkerProcess:
        ready = self.READY[self.command]
        wait_until(lambda: ready in self.output or self.proc.poll() is not None, timeout)
        if self.proc.poll() is not None:
            raise AssertionError(f"worker exited early:\n{self.output}")
        return self

    def signal(self, sig: int) -> None:
        if self.proc.poll() is None:
            os.kill(self.proc.pid, sig)

    def kill(self) -> None:
        """SIGKILL the worker and every process it started."""
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.proc.wait(10)

    def wait(self, timeout: float = 30.0) -> int:
        code = self.proc.wait(timeout)
        self._reader.join(5)
        return code


class Project:
    """The test project's settings for one test: a broker (a private SQLite file unless
    given), a result backend (the broker's store unless given) and a runs log."""

    def __init__(self, tmp_path: Path, broker: str | None = None, backend: str = "") -> None:
        self.tmp_path = tmp_path
        self.broker = broker or f"sqlite:///{tmp_path}/broker.db"
        self.runs_file = tmp_path / "runs.txt"
        self.env = {
            **os.environ,
            "CELERIAC_TEST_BROKER": self.broker,
            "CELERIAC_TEST_BACKEND": backend,
            "CELERIAC_TEST_RUNS": str(self.runs_file),
            "PYTHONPATH": os.pathsep.join([str(TESTS_DIR), os.environ.get("PYTHONPATH", "")]),
        }
        self.workers: list[WorkerProcess] = []
        self.app = Celery("producer", broker=self.broker, backend=backend or None)
        self.app.conf.broker_transport_options = {"visibility_timeout": 30.0}

    def set(self, **env: str) -> None:
        self.env.update(env)
        if "CELERIAC_TEST_VT" in env:
            self.app.conf.broker_transport_options = {
                "visibility_timeout": float(env["CELERIAC_TEST_VT"])
            }

    def worker(
        self, *args: str, ready: bool = True, prefix: Sequence[str] = (), **env: str
    ) -> WorkerProcess:
        """Start ``celeriac -A proj worker *args`` (under ``prefix``, with extra ``env``)."""
        w = WorkerProcess({**self.env, **env}, list(args), prefix)
        self.workers.append(w)
        return w.wait_ready() if ready else w

    def beat(self, *args: str, **env: str) -> WorkerProcess:
        """Start ``celeriac -A proj beat *args``; its state file is in the test's directory."""
        if "-s" not in args and "-S" not in args:
            args = (*args, "-s", str(self.tmp_path / "beat-schedule.json"))
        b = WorkerProcess({**self.env, **env}, list(args), command="beat")
        self.workers.append(b)
        return b.wait_ready()

    def runs(self, kind: str = "run") -> list[list[str]]:
        if not self.runs_file.exists():
            return []
        lines = self.runs_file.read_text().splitlines()
        return [line.split()[1:] for line in lines if line.split()[0] == kind]

    def send(self, name: str, *args: Any, **options: Any) -> Any:
        return self.app.send_task(f"proj.tasks.{name}", args, **options)

    def close(self) -> None:
        for w in self.workers:
            if w.proc.poll() is None:
                w.kill()
        self.app.close()


@pytest.fixture
def project(tmp_path: Path) -> Iterator[Project]:
    p = Project(tmp_path)
    yield p
    p.close()


@pytest.fixture
def memory_app(request: pytest.FixtureRequest) -> Iterator[Celery]:
    """An app on a private in-process broker and backend."""
    name = re.sub(r"\W", "-", request.node.name)
    url = f"memory://{name}-{time.monotonic_ns()}"
    app = Celery("tests", broker=url, backend=url)
    yield app
    app.close()


@pytest.fixture
def sqlite_app(tmp_path: Path) -> Iterator[Celery]:
    url = f"sqlite:///{tmp_path}/app.db"
    app = Celery("tests", broker=url, backend=url)
    yield app
    app.close()


@pytest.fixture
def beat_app(tmp_path: Path) -> Iterator[Celery]:
    """An app on a private SQLite broker and backend, its beat state file in ``tmp_path``."""
    url = f"sqlite:///{tmp_path}/beat.db"
    app = Celery("beat", broker=url, backend=url)
    app.conf.beat_schedule_filename = str(tmp_path / "schedule.json")
    yield app
    app.close()
