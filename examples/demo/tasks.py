"""The course outline's tasks, written as a Celery user would, importing celeriac instead."""

import os
import random
import time

from celeriac import Celery
from celeriac.utils.log import get_task_logger

app = Celery(
    "demo",
    broker=os.environ.get("DEMO_BROKER", "sqlite:///demo.db"),
    backend=os.environ.get("DEMO_BACKEND"),
)
app.conf.update(task_default_priority=5, worker_prefetch_multiplier=1)
logger = get_task_logger(__name__)


@app.task
def t1(*args, **kwargs):
    """Passing arguments and returning results: the sum of everything it was given."""
    return sum(args) + sum(kwargs.values())


@app.task
def t2():
    return "t2"


@app.task
def t3():
    return "t3"


@app.task
def prioritised(priority):
    """Records the order in which prioritised tasks ran."""
    with open(os.environ.get("DEMO_ORDER_FILE", "order.txt"), "a") as f:
        f.write(f"{priority}\n")
    return priority


class FlakyServiceError(Exception):
    """A network error from an external service that goes away on its own."""


@app.task(
    bind=True,
    autoretry_for=(FlakyServiceError,),
    retry_backoff=0.2,
    retry_backoff_max=2,
    max_retries=5,
)
def fetch_report(self, name):
    """Fails twice with a transient error, then succeeds: retried with exponential back-off."""
    if self.request.retries < 2:
        logger.warning("attempt %d for %s failed", self.request.retries + 1, name)
        raise FlakyServiceError(f"service unavailable for {name}")
    return f"report {name} after {self.request.retries} retries"


@app.task(bind=True, max_retries=2, default_retry_delay=0.1)
def always_fails(self):
    """Retries twice, then fails for good; its message goes to the dead-letter queue."""
    try:
        raise ValueError("the remote API said no")
    except ValueError as exc:
        raise self.retry(exc=exc) from exc


@app.task(bind=True)
def long_job(self, steps):
    """Reports progress with update_state."""
    for i in range(steps):
        time.sleep(0.05 + random.random() * 0.05)
        self.update_state(state="PROGRESS", meta={"done": i + 1, "total": steps})
    return steps


@app.task
async def async_fetch(url):
    """An ``async def`` task runs as a coroutine."""
    import asyncio

    await asyncio.sleep(0.1)
    return f"fetched {url}"


@app.task
def tp1(x=0):
    return x + 1


@app.task
def tp2(x=0):
    return x * 2


@app.task
def tp3(x=0):
    return x + 3


@app.task
def tp4(x=0):
    return x * 4


@app.task
def heartbeat_report():
    """A periodic task (see the beat section of the demo)."""
    with open(os.environ.get("DEMO_BEAT_FILE", "beat.txt"), "a") as f:
        f.write(f"{time.time():.3f}\n")


app.conf.beat_schedule = {
    "every-second": {"task": "tasks.heartbeat_report", "schedule": 1.0},
}
