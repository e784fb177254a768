"""``start_worker``: a worker in a thread of the test process, for the length of a block."""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from ... import _state
from ...app import Celeriac
from ...worker import Worker
from . import tasks

logger = logging.getLogger("celeriac.contrib.testing")

#: Celery's name for the worker class :func:`start_worker` runs
TestWorkController = Worker


@contextmanager
def start_worker(
    app: Celeriac,
    concurrency: int = 1,
    pool: str = "solo",
    loglevel: int | str = "WARNING",
    logfile: str | None = None,
    perform_ping_check: bool = True,
    ping_task_timeout: float = 10.0,
    shutdown_timeout: float = 10.0,
    **kwargs: Any,
) -> Iterator[Worker]:
    """Start a worker for ``app`` in a thread, wait until it consumes (and, with
    ``perform_ping_check``, until it answers the ``celery.ping`` task), yield it, then stop
    it warm. ``kwargs`` go to :class:`~celeriac.worker.Worker` (``queues``, ...).
    ``loglevel`` and ``logfile`` are Celery's and accepted: the test process's logging is
    left to pytest."""
    _state.set_current_app(app)
    worker = Worker(
        app,
        concurrency=concurrency,
        pool=pool,
        install_signal_handlers=False,
        lease_keeper=False,
        **kwargs,
    )
    failed: list[BaseException] = []

    def run() -> None:
        try:
            worker.start()
        except BaseException as exc:  # reported to the test below
            failed.append(exc)
            worker.ready.set()

    thread = threading.Thread(target=run, name="celeriac-test-worker", daemon=True)
    thread.start()
    try:
        if not worker.ready.wait(ping_task_timeout) or failed:
            raise RuntimeError(f"the test worker did not start: {failed[0] if failed else ''}")
        if perform_ping_check:
            pong = app.tasks[tasks.ping.name].delay().get(timeout=ping_task_timeout)
            assert pong == "pong", pong
        yield worker
    finally:
        worker.stop()
        thread.join(shutdown_timeout)
        if thread.is_alive():
            logger.warning("the test worker did not stop within %s s", shutdown_timeout)
