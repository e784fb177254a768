"""``TestApp``: an app for tests, on a broker and result backend private to the process."""

from __future__ import annotations

import itertools
import os
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from ... import _state
from ...app import Celeriac

#: The settings every test app starts from (Celery's test defaults, on celeriac's memory
#: transports); ``config`` adds to them.
DEFAULT_TEST_CONFIG: dict[str, Any] = {
    "worker_hijack_root_logger": False,
    "accept_content": ["json"],
    "enable_utc": True,
    "timezone": "UTC",
}

_numbers = itertools.count(1)


def TestApp(
    name: str | None = None,
    config: dict[str, Any] | None = None,
    enable_logging: bool = False,
    set_as_current: bool = False,
    log: Any = None,
    backend: str | None = None,
    broker: str | None = None,
    **kwargs: Any,
) -> Celeriac:
    """An app for tests: ``memory://`` broker and result backend of its own unless given,
    :data:`DEFAULT_TEST_CONFIG` with ``config`` over it."""
    private = f"memory://test-{os.getpid()}-{next(_numbers)}"
    settings = {**DEFAULT_TEST_CONFIG, **(config or {})}
    settings.setdefault("broker_url", broker or private)
    settings.setdefault("result_backend", backend or private)
    app = Celeriac(name or "celeriac.tests", set_as_current=set_as_current, **kwargs)
    app.conf.update(settings)
    return app


@contextmanager
def setup_default_app(app: Celeriac, use_trap: bool = False) -> Iterator[Celeriac]:
    """Make ``app`` the current app for the block, then put back the one before.
    ``use_trap`` (Celery's check that nothing uses the default app) is accepted; celeriac
    does not trap."""
    before = _state._current_app
    _state.set_current_app(app)
    try:
        yield app
    finally:
        if before is not None:
            _state.set_current_app(before)
