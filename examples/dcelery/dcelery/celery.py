"""The celeriac app of the "dcelery" project, and the course's t1, t2 and t3."""

from __future__ import annotations

import os
import time
from typing import Any

from celeriac import Celery

from .env import read_env

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "dcelery.settings")
read_env()

if os.environ.get("SENTRY_DSN"):  # failed tasks (and views) reported to Sentry when set
    import sentry_sdk
    from sentry_sdk.integrations.django import DjangoIntegration

    from celeriac.contrib.sentry import CeleriacIntegration

    sentry_sdk.init(
        dsn=os.environ["SENTRY_DSN"], integrations=[DjangoIntegration(), CeleriacIntegration()]
    )

app = Celery("dcelery")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


@app.task
def t1(*args: int, **kwargs: int) -> int:
    """Passing arguments and returning results: the sum of what it was given."""
    return sum(args) + sum(kwargs.values())


@app.task
def t2() -> str:
    """A slow task, to watch priorities at work on a busy worker."""
    time.sleep(float(os.environ.get("T2_SECONDS", "3")))
    return "t2"


@app.task(rate_limit="10/m")
def t3(*args: Any) -> str:
    """Rate limited: at most 10 a minute on each worker."""
    return "t3"
