"""Fixtures of the dashboard's tests: the dashboard served by uvicorn on a free port, in a
thread of the test process, beside a real worker (in a thread too, so the in-memory broker
works like the others) on one broker.

* :func:`start_dashboard` (and the ``dashboard`` fixture, a factory stopping what it
  started): a :class:`RunningDashboard` with ``.url`` (the prefix included, no trailing
  slash), ``.app``, ``.service``, ``.config``, ``.get()``/``.post()`` and ``.stop()``.
* :func:`live_cluster`: an app on one broker (see ``contract/conftest.py``'s ``PAIRS``),
  its tasks (:data:`TASKS`), a worker sending events and a dashboard on it; the ``live``
  fixture gives one per broker (module-scoped), ``live_sqlite`` the SQLite one only.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn

from celeriac import Celery
from celeriac.dashboard import DashboardConfig, DashboardService, create_app
from conftest import wait_until
from contract.conftest import BACKENDS, BROKERS, PAIRS, _app
from services import free_port

#: the tasks :func:`live_cluster` registers: short name -> task name
TASKS = {
    "add": "dash.add",
    "fail": "dash.fail",
    "sleep": "dash.sleep",
    "login": "dash.login",
}


def define_tasks(app: Celery) -> None:
    """Register :data:`TASKS` on ``app``."""

    @app.task(name=TASKS["add"])
    def add(x: int, y: int) -> int:
        return x + y

    @app.task(name=TASKS["fail"])
    def fail(message: str) -> None:
        raise ValueError(message)

    @app.task(name=TASKS["sleep"])
    def sleep(seconds: float) -> float:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:  # in steps: a revoke with terminate can stop it
            time.sleep(0.05)
        return seconds

    @app.task(name=TASKS["login"])
    def login(user: str, password: str = "") -> str:
        return user


@dataclass
class RunningDashboard:
    """A dashboard served on 127.0.0.1 by uvicorn in a thread."""

    url: str
    app: Celery
    config: DashboardConfig
    service: DashboardService
    server: uvicorn.Server
    thread: threading.Thread

    def get(self, path: str, **options: Any) -> httpx.Response:
        """GET ``path`` (relative to :attr:`url`); no cookies are kept between requests."""
        return httpx.get(self.url + path, timeout=60.0, **options)

    def post(self, path: str, **options: Any) -> httpx.Response:
        """POST ``path`` as a script would (no cookies, no Origin, unless given)."""
        return httpx.post(self.url + path, timeout=60.0, **options)

    def stop(self) -> None:
        """Stop serving and stop the dashboard's threads."""
        self.server.should_exit = True
        self.thread.join(30)
        self.service.stop()


def start_dashboard(
    app: Celery,
    config: DashboardConfig | None = None,
    store: str = "memory://",
    **options: Any,
) -> RunningDashboard:
    """Serve ``app``'s dashboard on a free port of 127.0.0.1 until :meth:`stop`.

    ``config`` or ``options`` (the :class:`DashboardConfig` fields) set it up; by default the
    event store is a private in-memory one and samples are taken every second."""
    if config is None:
        options.setdefault("sample_interval", 1.0)
        options.setdefault("alert_interval", 1.0)
        if store == "memory://":
            store = f"memory://dashboard-{time.monotonic_ns()}"
        config = DashboardConfig(store=store, **options)
    config.port = free_port()
    config.address = "127.0.0.1"
    service = DashboardService(app, config)
    asgi = create_app(app, config, service)
    server = uvicorn.Server(
        uvicorn.Config(
            asgi, host=config.address, port=config.port, log_level="warning", lifespan="on"
        )
    )
    thread = threading.Thread(target=server.run, name="test-dashboard", daemon=True)
    thread.start()
    try:
        wait_until(lambda: server.started or not thread.is_alive(), timeout=30)
    except AssertionError:
        server.should_exit = True
        raise
    if not server.started:
        service.stop()
        raise AssertionError("the dashboard's server did not start")
    url = f"http://127.0.0.1:{config.port}{config.url_prefix}"
    return RunningDashboard(url, app, config, service, server, thread)


@pytest.fixture
def dashboard() -> Iterator[Callable[..., RunningDashboard]]:
    """A factory: ``dashboard(app, **options)`` starts one (see :func:`start_dashboard`);
    every one started is stopped after the test."""
    started: list[RunningDashboard] = []

    def start(
        app: Celery, config: DashboardConfig | None = None, **options: Any
    ) -> RunningDashboard:
        running = start_dashboard(app, config, **options)
        started.append(running)
        return running

    yield start
    for running in started:
        running.stop()


@dataclass
class LiveCluster:
    """An app, a worker running its tasks, and a dashboard on them."""

    broker: str
    app: Celery
    worker: Any
    dashboard: RunningDashboard

    @property
    def hostname(self) -> str:
        return str(self.worker.hostname)

    def send(self, short: str, *args: Any, **options: Any) -> Any:
        """Send one of :data:`TASKS` by its short name."""
        return self.app.send_task(TASKS[short], args, **options)

    def wait_for_task(self, task_id: str, state: str | None = None, timeout: float = 30) -> Any:
        """The dashboard's store row of ``task_id`` once it is there (in ``state``)."""

        def found() -> Any:
            row = self.dashboard.service.store.task(task_id)
            return row if row and (state is None or row["state"] == state) else None

        return wait_until(found, timeout=timeout, interval=0.1)


@contextlib.contextmanager
def live_cluster(broker: str, tmp_path: Path, **options: Any) -> Iterator[LiveCluster]:
    """A :class:`LiveCluster` on ``broker`` (a name of ``PAIRS``); ``options`` go to the
    dashboard (:func:`start_dashboard`)."""
    backend = dict(PAIRS)[broker]
    assert broker in BROKERS and backend in BACKENDS
    with contextlib.contextmanager(_app)(broker, backend, tmp_path) as app:
        app.conf.worker_send_task_events = True
        app.conf.event_heartbeat_interval = 1.0
        define_tasks(app)
        options.setdefault("store", f"sqlite:///{tmp_path}/events.db")
        running = start_dashboard(app, **options)
        worker = app.Worker(
            install_signal_handlers=False,
            pool="threads",
            concurrency=4,
            hostname=f"dash-{broker}@%h",
            queues=[app.conf.task_default_queue],
        )
        thread = threading.Thread(target=worker.start, name="test-worker", daemon=True)
        thread.start()
        try:
            cluster = LiveCluster(broker, app, worker, running)
            wait_until(lambda: any(w["alive"] for w in running.service.store.workers()), timeout=30)
            yield cluster
        finally:
            worker.stop()
            thread.join(30)
            running.stop()


@pytest.fixture(scope="module", params=[b for b, _ in PAIRS if b in BROKERS])
def live(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LiveCluster]:
    """A live cluster on each broker, shared by a module's tests."""
    with live_cluster(request.param, tmp_path_factory.mktemp(f"live-{request.param}")) as c:
        yield c


@pytest.fixture(scope="module")
def live_sqlite(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveCluster]:
    """A live cluster on the SQLite broker, shared by a module's tests."""
    with live_cluster("sqlite", tmp_path_factory.mktemp("live-sqlite")) as cluster:
        yield cluster
