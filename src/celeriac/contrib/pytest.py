"""Celery's pytest fixtures, for celeriac apps. Enable them in a ``conftest.py``::

    pytest_plugins = ("celeriac.contrib.pytest",)

Fixtures: ``celery_app`` and ``celery_worker`` (per test), ``celery_session_app`` and
``celery_session_worker`` (per session), configured by overriding ``celery_config``,
``celery_parameters``, ``celery_worker_parameters``, ``celery_includes``,
``celery_worker_pool``, ``celery_class_tasks`` and ``celery_enable_logging``; a test may mark itself
``@pytest.mark.celery(**settings)`` to add settings to its ``celery_app``.
"""

from __future__ import annotations

import importlib
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import pytest

from .. import _state
from ..app import Celeriac
from ..worker import Worker
from .testing.app import TestApp
from .testing.worker import start_worker


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "celery(**overrides): settings for this test's celery_app")


def _app(
    config: Mapping[str, Any],
    parameters: Mapping[str, Any],
    includes: Sequence[str],
    enable_logging: bool,
) -> Celeriac:
    app = TestApp(config=dict(config), enable_logging=enable_logging, **dict(parameters))
    for module in includes:
        importlib.import_module(module)
    _state.set_current_app(app)
    return app


@pytest.fixture(scope="session")
def celery_config() -> Mapping[str, Any]:
    """Settings of the test apps (override it in a conftest)."""
    return {}


@pytest.fixture(scope="session")
def celery_parameters() -> Mapping[str, Any]:
    """Keyword arguments of the test apps (``task_cls``, ...)."""
    return {}


@pytest.fixture(scope="session")
def celery_worker_parameters() -> Mapping[str, Any]:
    """Keyword arguments of the test workers (``queues``, ``perform_ping_check``, ...)."""
    return {}


@pytest.fixture(scope="session")
def celery_includes() -> Sequence[str]:
    """Modules to import once the app exists (the tasks' modules)."""
    return ()


@pytest.fixture(scope="session")
def celery_worker_pool() -> str:
    """The test workers' pool."""
    return "solo"


@pytest.fixture(scope="session")
def celery_enable_logging() -> bool:
    return False


@pytest.fixture(scope="session")
def use_celery_app_trap() -> bool:
    return False


@pytest.fixture(scope="session")
def celery_session_app(
    celery_config: Mapping[str, Any],
    celery_parameters: Mapping[str, Any],
    celery_includes: Sequence[str],
    celery_enable_logging: bool,
) -> Iterator[Celeriac]:
    """One app for the whole session."""
    app = _app(celery_config, celery_parameters, celery_includes, celery_enable_logging)
    yield app
    app.close()


@pytest.fixture(scope="session")
def celery_class_tasks() -> Sequence[Any]:
    """Class-based tasks (``Task`` subclasses or instances) the session worker registers
    (override it in a conftest)."""
    return []


@pytest.fixture(scope="session")
def celery_session_worker(
    celery_session_app: Celeriac,
    celery_class_tasks: Sequence[Any],
    celery_worker_pool: str,
    celery_worker_parameters: Mapping[str, Any],
) -> Iterator[Worker]:
    """A worker for ``celery_session_app``, running for the whole session (with
    ``celery_class_tasks`` registered)."""
    for task in celery_class_tasks:
        celery_session_app.register_task(task)
    with start_worker(
        celery_session_app, pool=celery_worker_pool, **dict(celery_worker_parameters)
    ) as worker:
        yield worker


@pytest.fixture
def celery_app(
    request: pytest.FixtureRequest,
    celery_config: Mapping[str, Any],
    celery_parameters: Mapping[str, Any],
    celery_includes: Sequence[str],
    celery_enable_logging: bool,
) -> Iterator[Celeriac]:
    """An app for this test (settings from ``celery_config`` and the ``celery`` mark)."""
    marker = request.node.get_closest_marker("celery")
    config = {**celery_config, **(marker.kwargs if marker else {})}
    app = _app(config, celery_parameters, celery_includes, celery_enable_logging)
    yield app
    app.close()


@pytest.fixture
def celery_worker(
    celery_app: Celeriac,
    celery_worker_pool: str,
    celery_worker_parameters: Mapping[str, Any],
) -> Iterator[Worker]:
    """A worker for ``celery_app``, running for this test."""
    with start_worker(celery_app, pool=celery_worker_pool, **dict(celery_worker_parameters)) as w:
        yield w


@pytest.fixture
def depends_on_current_app(celery_app: Celeriac) -> None:
    """Make ``celery_app`` the current app for this test."""
    _state.set_current_app(celery_app)
