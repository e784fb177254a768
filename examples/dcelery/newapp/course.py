"""The course's snippets, each a function that sends its tasks and returns their results.

The home page (``/``) has a button per snippet, and ``python manage.py course NAME`` runs one
from the shell.
"""

from __future__ import annotations

from collections.abc import Callable

from dcelery.celery import t1, t2, t3
from newtasks import tp1, tp2, tp3, tp4

from celeriac import chain, group
from celeriac.result import AsyncResult

from .tasks import charge, divide, flaky_call, resize_image, sharedtask, weekly_report


def shared() -> list[AsyncResult]:
    """``from newapp.tasks import sharedtask; sharedtask.delay()``"""
    return [sharedtask.delay()]


def priorities() -> list[AsyncResult]:
    """``t1.apply_async(priority=5)`` ... ``priority=9``: on a busy worker, 9 runs first."""
    busy = [t2.delay(), t2.delay()]  # keep the ``tasks`` worker busy for a moment
    return busy + [t1.apply_async(priority=p) for p in (5, 6, 7, 9)]


def arguments() -> list[AsyncResult]:
    """``t1.apply_async(args=[1, 2, 3], kwargs={'a': 1, 'b': 2})``: 9."""
    return [t1.apply_async(args=[1, 2, 3], kwargs={"a": 1, "b": 2})]


def grouping() -> list[AsyncResult]:
    """``group(tp1.s(), tp2.s(), tp3.s(), tp4.s()).apply_async()``: four tasks at once."""
    return list(group(tp1.s(), tp2.s(), tp3.s(), tp4.s()).apply_async().results)


def chaining() -> list[AsyncResult]:
    """``chain(tp1.s(), tp2.s(), tp3.s(), tp4.s()).apply_async()``: one after the other,
    each given the result of the one before: ["tp1", "tp2", "tp3", "tp4"]."""
    return [chain(tp1.s(), tp2.s(), tp3.s(), tp4.s()).apply_async()]


def routing_by_queue() -> list[AsyncResult]:
    """t1-t3 are routed to the ``tasks`` queue by name (CELERY_TASK_ROUTES); a queue can
    also be named when sending."""
    return [t3.delay(), sharedtask.apply_async(queue="tasks")]


def routing_by_arguments() -> list[AsyncResult]:
    """``resize_image(megapixels=50)`` goes to ``bulk``, ``megapixels=5`` to ``celery``."""
    return [resize_image.delay(megapixels=5), resize_image.delay(megapixels=50)]


def retries() -> list[AsyncResult]:
    """Automatic retries with back-off, and a retry asked by the task."""
    return [flaky_call.delay(fail_times=2), charge.delay(10)]


def failure() -> list[AsyncResult]:
    """A task that raises: FAILURE with its traceback (and a Sentry event with SENTRY_DSN)."""
    return [divide.delay(1, 0)]


def crontab_now() -> list[AsyncResult]:
    """The crontab task, sent now rather than on Monday at 7:30."""
    return [weekly_report.delay()]


SNIPPETS: dict[str, Callable[[], list[AsyncResult]]] = {
    "sharedtask": shared,
    "priorities": priorities,
    "arguments": arguments,
    "group": grouping,
    "chain": chaining,
    "routing-by-queue": routing_by_queue,
    "routing-by-arguments": routing_by_arguments,
    "retries": retries,
    "failure": failure,
    "crontab": crontab_now,
}
