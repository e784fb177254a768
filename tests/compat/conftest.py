"""Typical Celery project code, with only the import changed, run against a real worker
process on every broker. Each test writes a small project into its temporary directory, starts
``celeriac -A <app> worker`` in it, and runs the project's own pytest suite in a separate
pytest process (``pytester``), as the project's developers would."""

from __future__ import annotations

import contextlib
import importlib
import os
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from textwrap import dedent

import pytest

from conftest import WorkerProcess
from services import (
    AMQP,
    POSTGRES_PROCESS,
    REDIS_PROCESS,
    REDIS_PROCESS_RESULTS,
    amqp_delete_queues,
)

BROKERS = ["sqlite", "redis", "amqp", "postgresql"]

# pytester puts sys.modules back as it found them after each test: a driver first imported
# during one (to empty a service) would be imported again afterwards, beside its compiled
# part, and later tests would see two classes for each of its errors.
for _driver in ("psycopg", "redis", "pika"):
    with contextlib.suppress(ImportError):
        importlib.import_module(_driver)


@dataclass
class Site:
    """A project directory, the broker and backend its settings read, and its workers."""

    root: Path
    broker: str
    backend: str
    queue: str
    workers: list[WorkerProcess] = field(default_factory=list)

    @property
    def env(self) -> dict[str, str]:
        return {
            **os.environ,
            "COMPAT_BROKER": self.broker,
            "COMPAT_BACKEND": self.backend,
            "COMPAT_QUEUE": self.queue,
            "PYTHONPATH": os.pathsep.join([str(self.root), os.environ.get("PYTHONPATH", "")]),
        }

    def write(self, files: dict[str, str]) -> None:
        """Write ``{relative path: text}`` into the project (the text is dedented)."""
        for name, text in files.items():
            path = self.root / name
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(dedent(text).lstrip())

    def worker(self, app: str, *args: str, **env: str) -> WorkerProcess:
        """Start ``celeriac -A app worker -Q <queue> *args`` in the project and wait for it."""
        process = WorkerProcess(
            {**self.env, **env}, ["-Q", self.queue, *args], app=app, cwd=self.root
        )
        self.workers.append(process)
        return process.wait_ready()

    def check(
        self, pytester: pytest.Pytester, files: dict[str, str], app: str | None, passed: int
    ) -> None:
        """Write the project, start its worker (``-A app``, unless None) and see its own
        suite pass ``passed`` tests."""
        self.write(files)
        if app is not None:
            self.worker(app, "-c", "2")
        self.run_suite(pytester).assert_outcomes(passed=passed)

    def run_suite(self, pytester: pytest.Pytester, *args: str) -> pytest.RunResult:
        """Run the project's own test suite in its own pytest process."""
        with pytest.MonkeyPatch.context() as patch:
            for name, value in self.env.items():
                if os.environ.get(name) != value:
                    patch.setenv(name, value)
            return pytester.runpytest_subprocess(
                "-q", "-p", "no:cacheprovider", "-p", "no:randomly", *args, timeout=120
            )


@pytest.fixture(params=BROKERS)
def site(
    request: pytest.FixtureRequest, pytester: pytest.Pytester, tmp_path: Path
) -> Iterator[Site]:
    """An empty project on one broker, with the broker's own result store (RabbitMQ keeps
    none, so its projects keep results in Redis)."""
    kind = request.param
    queue = f"compat-{uuid.uuid4().hex[:8]}"
    root = pytester.path
    if kind == "sqlite":
        url = f"sqlite:///{tmp_path}/broker.db"
        made = Site(root, url, url, queue)
    elif kind == "redis":
        REDIS_PROCESS.prepare()
        made = Site(root, REDIS_PROCESS.url, REDIS_PROCESS.url, queue)
    elif kind == "postgresql":
        POSTGRES_PROCESS.prepare()
        made = Site(root, POSTGRES_PROCESS.url, POSTGRES_PROCESS.url, queue)
    else:
        AMQP.prepare()
        REDIS_PROCESS_RESULTS.prepare()
        made = Site(root, AMQP.url, REDIS_PROCESS_RESULTS.url, queue)
    yield made
    for worker in made.workers:
        worker.kill()
    if kind == "amqp":
        amqp_delete_queues(AMQP.url, [queue, *(f"{queue}.delay.{n}" for n in range(32))])
