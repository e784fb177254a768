"""The course's ``newapp`` tasks: the shared task of the first shell session, retries,
errors, routing by arguments and the periodic ones."""

from __future__ import annotations

import logging
import time
from typing import Any

from celeriac import shared_task
from celeriac.signals import task_failure

logger = logging.getLogger(__name__)


@shared_task
def sharedtask() -> str:
    """``from newapp.tasks import sharedtask; sharedtask.delay()``"""
    logger.info("sharedtask ran")
    return "Hello from sharedtask"


@shared_task(
    bind=True,
    autoretry_for=(ConnectionError,),
    retry_backoff=1,  # 1 s, 2 s, 4 s... between tries
    retry_jitter=False,
    max_retries=4,
)
def flaky_call(self: Any, fail_times: int = 2) -> str:
    """Retries: a network call that fails ``fail_times`` times, then succeeds."""
    if self.request.retries < fail_times:
        raise ConnectionError(f"try {self.request.retries + 1}: connection timed out")
    return f"succeeded after {self.request.retries} retries"


@shared_task(bind=True, max_retries=2, default_retry_delay=1)
def charge(self: Any, amount: int) -> str:
    """Retries asked by the task itself, on a condition of its own."""
    if amount < 0:
        raise ValueError("a negative amount is a bug: no retry")
    if self.request.retries < 1:
        raise self.retry(exc=TimeoutError("payment service busy"))
    return f"charged {amount}"


@shared_task
def divide(x: float, y: float) -> float:
    """Fails with ZeroDivisionError for ``y=0``: see it in the admin, the dashboard (and
    Sentry when SENTRY_DSN is set)."""
    return x / y


@shared_task
def resize_image(megapixels: int = 1) -> str:
    """Routed by its arguments (``dcelery.routers``): above 20 megapixels, to ``bulk``."""
    return f"resized {megapixels} MP"


@shared_task
def heartbeat() -> float:
    """Sent by beat every HEARTBEAT_SECONDS."""
    return time.time()


@shared_task
def weekly_report() -> str:
    """Sent by beat on Mondays at 7:30 (a crontab)."""
    return "weekly report"


@shared_task
def daily_cleanup() -> str:
    """Sent by beat every day at 8:00 (a crontab)."""
    return "cleaned up"


@task_failure.connect
def log_failure(sender: Any = None, task_id: str | None = None, exception: Any = None, **_: Any):
    """The course's task signals: one line per failed task."""
    logger.warning("task %s (%s) failed: %r", getattr(sender, "name", sender), task_id, exception)
