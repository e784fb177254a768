"""Run a worker on the embedded SQLite broker and exercise the course outline's examples.

python run_demo.py
"""

import os
import signal
import subprocess
import sys
import tempfile
import time

here = os.path.dirname(os.path.abspath(__file__))
workdir = tempfile.mkdtemp(prefix="celeriac-demo-")
os.environ["DEMO_BROKER"] = f"sqlite:///{workdir}/demo.db"
os.environ["DEMO_ORDER_FILE"] = os.path.join(workdir, "order.txt")
os.environ["DEMO_BEAT_FILE"] = os.path.join(workdir, "beat.txt")
sys.path.insert(0, here)

from tasks import (  # noqa: E402
    always_fails,
    app,
    async_fetch,
    fetch_report,
    long_job,
    prioritised,
    t1,
    tp1,
    tp2,
    tp3,
    tp4,
)

from celeriac import chain, group  # noqa: E402


def start_worker(*extra):
    cmd = [sys.executable, "-m", "celeriac", "-A", "tasks", "worker", "-l", "info", *extra]
    return subprocess.Popen(cmd, cwd=here, env=os.environ.copy())


def section(title):
    print(f"\n=== {title}", flush=True)


section("Prioritize tasks: four tasks queued before any worker runs")
for p in (5, 6, 7, 9):
    prioritised.apply_async(args=[p], priority=p)
print("queued priorities 5, 6, 7, 9; starting one worker with one slot ...")
worker = start_worker("-c", "1", "-P", "solo", "-q")
try:
    deadline = time.time() + 30
    while time.time() < deadline:
        if os.path.exists(os.environ["DEMO_ORDER_FILE"]):
            with open(os.environ["DEMO_ORDER_FILE"]) as f:
                order = f.read().split()
            if len(order) == 4:
                break
        time.sleep(0.1)
    print("run order:", " ".join(order), "(9 is the highest priority and ran first)")

    section("Passing arguments and returning results")
    result = t1.apply_async(args=[1, 2, 3], kwargs={"a": 1, "b": 2})
    print("t1.apply_async(args=[1,2,3], kwargs={'a':1,'b':2}).get() ->", result.get(timeout=30))
    print(
        "ready():", result.ready(), " successful():", result.successful(), " state:", result.state
    )

    section("Retry failed tasks automatically, with a delay, a limited number of times")
    report = fetch_report.delay("sales")
    print("fetch_report ->", report.get(timeout=30), "| retries:", report.retries)
    doomed = always_fails.delay()
    try:
        doomed.get(timeout=30)
    except ValueError as exc:
        print("always_fails raised its own exception type:", repr(exc))
    print("state:", doomed.state, "| exception:", repr(doomed.exception))
    time.sleep(0.5)
    letters = app.broker.dead_letters("celery")
    print("dead-letter queue:", [dl.reason for dl in letters])

    section("Progress with update_state, and an async task")
    job = long_job.delay(10)
    seen = set()
    while not job.ready():
        if job.state == "PROGRESS":
            seen.add(job.info["done"])
        time.sleep(0.05)
    print("long_job ->", job.get(), "| progress seen:", sorted(seen))
    print("async_fetch ->", async_fetch.delay("https://example.org").get(timeout=30))

    section("Task grouping and task chaining (the course's snippets)")
    tasks_group = group(tp1.s(), tp2.s(), tp3.s(), tp4.s())
    print("group(tp1.s(), tp2.s(), tp3.s(), tp4.s()) ->", tasks_group.apply_async().get(timeout=30))
    tasks_chain = chain(tp1.s(), tp2.s(), tp3.s(), tp4.s())
    print("chain(tp1.s(), tp2.s(), tp3.s(), tp4.s()) ->", tasks_chain.apply_async().get(timeout=30))

    section("Periodic tasks: beat sends heartbeat_report every second")
    beat = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "celeriac",
            "-A",
            "tasks",
            "beat",
            "-s",
            os.path.join(workdir, "beat-state.json"),
        ],
        cwd=here,
        env=os.environ.copy(),
    )
    time.sleep(3.5)
    beat.send_signal(signal.SIGTERM)
    beat.wait(30)
    time.sleep(0.5)
    with open(os.environ["DEMO_BEAT_FILE"]) as f:
        runs = f.read().split()
    print(f"beat ran heartbeat_report {len(runs)} times in about 3.5 seconds")
finally:
    worker.send_signal(signal.SIGTERM)
    code = worker.wait(30)
    print(f"\nworker stopped with exit code {code} (warm shutdown)")
