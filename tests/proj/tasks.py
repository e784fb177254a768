import asyncio
import ctypes
import importlib
import os
import signal
import time

from celeriac import signals
from celeriac.exceptions import SoftTimeLimitExceeded

from . import app


class CustomError(Exception):
    """An application error, rebuilt with its own type by AsyncResult.get()."""


def _record(*fields):
    path = os.environ.get("CELERIAC_TEST_RUNS")
    if path:
        line = " ".join(str(f) for f in fields) + "\n"
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            os.write(fd, line.encode())
        finally:
            os.close(fd)


@signals.worker_before_create_process.connect
def _before_fork(sender=None, **kwargs):
    _record("fork", os.getpid(), type(sender).__name__)


@signals.worker_process_init.connect
def _child_started(**kwargs):
    _record("child", os.getpid(), os.getppid())


@app.task
def add(x, y):
    return x + y


@app.task(bind=True)
def record(self, tag):
    _record("run", tag, os.getpid(), self.request.hostname)
    return tag


@app.task(bind=True)
def sleep_record(self, tag, seconds):
    _record("start", tag, os.getpid(), self.request.hostname)
    time.sleep(seconds)
    _record("end", tag, os.getpid())
    return tag


@app.task(bind=True)
def crash_once(self, tag):
    """Kills its own process (as the OOM killer would) the first time it runs."""
    first = not any(line.split()[:2] == ["start", tag] for line in _runs())
    _record("start", tag, os.getpid(), self.request.hostname)
    if first:
        os.kill(os.getpid(), signal.SIGKILL)
    _record("end", tag, os.getpid())
    return tag


@app.task(bind=True)
def crash(self, tag):
    """Kills its own process every time it runs."""
    _record("start", tag, os.getpid(), self.request.hostname)
    os.kill(os.getpid(), signal.SIGKILL)


@app.task
def timed(tag, seconds):
    """Records its start and end with the time (the fault tests judge duplicates by it)."""
    _record("start", tag, os.getpid(), f"{time.time():.3f}")
    time.sleep(seconds)
    _record("end", tag, os.getpid(), f"{time.time():.3f}")
    return tag


@app.task(bind=True)
def hold_gil(self, tag, seconds):
    """Sleeps in C without letting go of the GIL: no other thread of its process runs."""
    _record("start", tag, os.getpid(), self.request.hostname)
    ctypes.PyDLL(None).usleep(int(seconds * 1_000_000))
    _record("end", tag, os.getpid())
    return tag


@app.task
def exits(code):
    raise SystemExit(code)


@app.task
def interrupted():
    raise KeyboardInterrupt


def _runs():
    path = os.environ.get("CELERIAC_TEST_RUNS")
    if not path or not os.path.exists(path):
        return []
    with open(path) as f:
        return f.read().splitlines()


@app.task
def fail(message):
    raise CustomError(message)


@app.task(
    bind=True,
    autoretry_for=(ConnectionError,),
    retry_backoff=0.1,
    retry_jitter=False,
    max_retries=5,
)
def flaky(self, failures):
    _record("try", self.request.id, self.request.retries)
    if self.request.retries < failures:
        raise ConnectionError("flaky service")
    return self.request.retries


@app.task(bind=True, max_retries=2, default_retry_delay=0.05)
def doomed(self):
    raise self.retry(exc=CustomError("never works"))


@app.task(soft_time_limit=0.5)
def soft_limited(seconds):
    try:
        time.sleep(seconds)
    except SoftTimeLimitExceeded:
        return "cleaned up"
    return "finished"


@app.task(time_limit=0.5)
def hard_limited(seconds):
    time.sleep(seconds)
    return "finished"


@app.task
async def async_add(x, y):
    await asyncio.sleep(0.01)
    return x + y


@app.task
def pid():
    return os.getpid()


@app.task
def module_value(name):
    """``value()`` of module ``name`` as this process has it (the pool_restart test
    changes the module's file)."""
    return importlib.import_module(name).value()


@app.task(bind=True)
def order(self, priority):
    _record("order", priority)
    return priority


@app.task
def collect(values):
    _record("body", len(values))
    return values


@app.task(bind=True)
def forever(self, tag):
    _record("start", tag, os.getpid(), self.request.hostname)
    while True:
        time.sleep(0.05)


@app.task(rate_limit="20/s")
def limited(n):
    _record("limited", n, f"{time.monotonic():.4f}", os.getpid())
    return n


@app.task(bind=True)
def beat_tick(self):
    _record("tick", f"{time.time():.3f}", self.request.id)
