"""How a worker starts as a Celery project starts it: the steps a project adds with
``app.steps[...]`` (the liveness-probe pattern of Kubernetes deployments, run by a real worker
process) and the pools its scripts name."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path
from textwrap import dedent

import pytest

from celeriac import Celery, bootsteps
from celeriac.exceptions import ImproperlyConfigured
from celeriac.worker import Worker
from celeriac.worker.timer import Timer
from conftest import WorkerProcess, wait_until

PROBE = """
import os
from pathlib import Path

from click import Option

from celeriac import Celery, bootsteps, signals

app = Celery("probe", broker=os.environ["PROBE_BROKER"])
app.user_options["preload"].add(Option(["--stage"], default="dev", help="where we run"))
app.user_options["worker"].add(Option(["--probe-name"], default="heartbeat"))
READY = Path(os.environ["PROBE_DIR"]) / "ready"
LOG = Path(os.environ["PROBE_DIR"]) / "log"


def note(what):
    with LOG.open("a") as f:
        f.write(what + "\\n")


class LivenessProbe(bootsteps.StartStopStep):
    requires = {"celery.worker.components:Timer"}

    def __init__(self, worker, probe_name="heartbeat", **kwargs):
        self.tref = None
        self.heartbeat = Path(os.environ["PROBE_DIR"]) / probe_name
        note("init " + type(worker).__name__)

    def start(self, worker):
        READY.touch()
        self.tref = worker.timer.call_repeatedly(0.1, self.beat, (worker,), priority=10)
        note("start")

    def beat(self, worker):
        self.heartbeat.write_text(str(os.getpid()))

    def stop(self, worker):
        self.tref.cancel()
        READY.unlink(missing_ok=True)
        note("stop")

    def shutdown(self, worker):
        note("shutdown")


app.steps["worker"].add(LivenessProbe)


@signals.user_preload_options.connect
def on_preload(options, **kwargs):
    note("stage " + options["stage"])
"""


@pytest.mark.slow
def test_a_liveness_probe_step_runs_with_the_worker(tmp_path: Path) -> None:
    """With the project's own command-line options (``app.user_options``, click options as
    Celery 5 takes them): one for every command, one for the worker that the step reads."""
    pytest.importorskip("click")
    (tmp_path / "probe.py").write_text(dedent(PROBE))
    env = {
        **os.environ,
        "PROBE_BROKER": f"sqlite:///{tmp_path}/broker.db",
        "PROBE_DIR": str(tmp_path),
        "PYTHONPATH": os.pathsep.join([str(tmp_path), os.environ.get("PYTHONPATH", "")]),
    }
    options = ["-P", "threads", "--stage", "prod", "--probe-name", "alive"]
    worker = WorkerProcess(env, options, app="probe", cwd=tmp_path).wait_ready()
    try:
        assert (tmp_path / "ready").exists()
        heartbeat = tmp_path / "alive"
        wait_until(heartbeat.exists, timeout=10)
        first = heartbeat.stat().st_mtime_ns
        wait_until(lambda: heartbeat.stat().st_mtime_ns != first, timeout=10)
        worker.signal(signal.SIGTERM)
        assert worker.wait(30) == 0, worker.output
    finally:
        worker.kill()
    assert not (tmp_path / "ready").exists()
    assert (tmp_path / "log").read_text().split("\n") == [
        "stage prod",
        "init Worker",
        "start",
        "stop",
        "shutdown",
        "",
    ]


def test_a_consumer_step_is_refused_with_what_to_do_instead() -> None:
    class KombuConsumer(bootsteps.ConsumerStep):
        def get_consumers(self, channel: object) -> list[object]:
            return []

    app = Celery("t", broker="memory://steps")
    app.steps["consumer"].add(KombuConsumer)
    with pytest.raises(ImproperlyConfigured, match=r"ConsumerStep.*Send the messages as tasks"):
        Worker(app, install_signal_handlers=False)


def test_a_step_can_leave_itself_out() -> None:
    made: list[str] = []

    class Optional(bootsteps.StartStopStep):
        def __init__(self, worker: Worker, **options: object) -> None:
            made.append(str(options.get("probe")))

        def include_if(self, worker: Worker) -> bool:
            return False

        def start(self, worker: Worker) -> None:
            raise AssertionError("left out, never started")

    app = Celery("t", broker="memory://steps-optional")
    app.steps["worker"].add(Optional)
    worker = Worker(app, install_signal_handlers=False, probe="on")
    assert made == ["on"]
    worker.steps.start()
    worker.steps.stop()


def test_the_timer_repeats_until_cancelled_and_survives_an_error() -> None:
    timer = Timer()
    calls: list[str] = []

    def fail() -> None:
        calls.append("fail")
        raise RuntimeError("a step's bug")

    entry = timer.call_repeatedly(0.01, calls.append, ("tick",))
    timer.call_after(0.02, fail)
    once = timer.call_after(0.01, calls.append, ("cancelled",))
    once.cancel()
    try:
        wait_until(lambda: calls.count("tick") >= 5 and "fail" in calls, timeout=5)
        entry.cancel()
        time.sleep(0.05)
        count = calls.count("tick")
        time.sleep(0.05)
        assert calls.count("tick") == count
        assert "cancelled" not in calls
    finally:
        timer.stop()


def test_a_greenlet_pool_runs_on_threads(caplog: pytest.LogCaptureFixture) -> None:
    """``-P gevent`` / ``-P eventlet`` in a start-up script: the tasks run on threads."""
    app = Celery("t", broker="memory://green")
    with caplog.at_level("WARNING", "celeriac.worker"):
        worker = Worker(app, pool="gevent", concurrency=50, install_signal_handlers=False)
    assert worker.pool_name == "threads" and worker.concurrency == 50
    assert "no greenlet pool" in caplog.text
