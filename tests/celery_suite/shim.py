"""The fixture shim for Celery's integration suite run on celeriac (``dev.py celery-suite``).

``dev.py`` copies this file into the downloaded suite as ``t/integration/_celeriac_shim.py``
and rewrites every ``from celery... import ...`` of the suite into a call of
:func:`imported`: a name celeriac offers is celeriac's, any other missing name becomes a
placeholder that fails the tests using it (and only those) with ``NotImplementedError``.

The suite's ``conftest.py`` ends with ``from ._celeriac_shim import *``, which replaces
Celery's in-process ``celery_session_worker`` with a real worker process started with the
CLI (``celeriac -A t.integration._celeriac_worker worker``), on ``TEST_BROKER`` and
``TEST_BACKEND`` (the runner points both at Redis unless they are set).
"""

from __future__ import annotations

import importlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import pytest

from celeriac.utils.nodenames import anon_nodename

__all__ = ["celery_session_worker", "pytest_configure", "pytest_terminal_summary"]

#: What each missing name was asked for as (``celery.canvas.StampingVisitor``).
MISSING: set[str] = set()
WORKER_LOG = Path(os.environ.get("CELERY_SUITE_WORKER_LOG", "celeriac-worker.log"))


class _Missing(type):
    def __getattr__(cls, name: str) -> Any:
        raise AttributeError(f"celeriac has no {cls.__qualname__} (so no .{name})")

    def __call__(cls, *args: Any, **kwargs: Any) -> Any:
        raise NotImplementedError(f"celeriac has no {cls.__qualname__}")


def _placeholder(dotted: str) -> Any:
    MISSING.add(dotted)
    return _Missing(dotted, (), {"__qualname__": dotted, "__module__": __name__})


def _celeriac_module(module: str) -> str:
    top, _, rest = module.partition(".")
    if top == "kombu":
        return "celeriac" + (f".{rest}" if rest else "")
    return "celeriac" + module[len("celery") :]


def imported(module: str, names: Sequence[str]) -> tuple[Any, ...]:
    """``from <module> import <names>``, with celery and kombu replaced by celeriac."""
    found: list[Any] = []
    target = _celeriac_module(module)
    try:
        loaded: Any = importlib.import_module(target)
    except ImportError:
        loaded = None
    for name in names:
        dotted = f"{module}.{name}"
        value: Any = getattr(loaded, name, None) if loaded is not None else None
        if value is None and loaded is not None:
            try:
                value = importlib.import_module(f"{target}.{name}")
            except ImportError:
                value = None
        if value is None:
            value = _placeholder(dotted)
        found.append(value)
    return tuple(found)


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "flaky: Celery reruns these (not rerun here)")
    _unlimited_redis_reads()


def _unlimited_redis_reads() -> None:
    """The suite's own Redis helper (``get_redis_connection``) makes clients whose reads
    never time out in the redis-py versions Celery 5.5 installs (up to 5.2). From redis-py 8
    on, a client waits at most 5 s for a reply, so a helper that waits 10 s on ``BLPOP`` to
    show that nothing came raises redis's TimeoutError instead of returning None. Its
    clients are given back the unlimited wait (before the test modules import the helper)."""
    package = __name__.rpartition(".")[0]
    tasks = sys.modules.get(f"{package}.tasks")
    original = getattr(tasks, "get_redis_connection", None)
    if original is None:
        return

    def get_redis_connection() -> Any:
        client = original()
        client.connection_pool.connection_kwargs["socket_timeout"] = None
        return client

    for module in (tasks, sys.modules.get(f"{package}.conftest")):
        if getattr(module, "get_redis_connection", None) is original:
            module.get_redis_connection = get_redis_connection  # type: ignore[union-attr]


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if MISSING:
        terminalreporter.write_line("names the suite imports that celeriac does not offer:")
        for dotted in sorted(MISSING):
            terminalreporter.write_line(f"  {dotted}")
    terminalreporter.write_line(f"the worker's log: {WORKER_LOG.resolve()}")


def _settings(config: Mapping[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in config.items() if not key.startswith("cassandra_")}


@pytest.fixture(scope="session")
def celery_session_worker(
    celery_session_app: Any,
    celery_config: Mapping[str, Any],
    celery_class_tasks: Sequence[Any],
    celery_worker_pool: str,
) -> Iterator[subprocess.Popen[bytes]]:
    """A real worker process for the session, started with the CLI."""
    for task_class in celery_class_tasks:
        celery_session_app.register_task(task_class())
    env = {**os.environ, "CELERY_SUITE_CONFIG": json.dumps(_settings(celery_config))}
    concurrency = os.environ.get("CELERY_SUITE_CONCURRENCY", "1")
    command = [
        str(Path(sys.executable).with_name("celeriac")),
        "-A",
        "t.integration._celeriac_worker",
        "worker",
        "-P",
        celery_worker_pool,
        "-c",
        concurrency,
        "-n",
        anon_nodename(),
        "--purge",
        "-l",
        "INFO",
    ]
    with WORKER_LOG.open("wb") as log:
        process = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 30
        while not celery_session_app.control.ping(destination=[anon_nodename()], timeout=1):
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"the worker did not start; see {WORKER_LOG}")
        yield process
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
