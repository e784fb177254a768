"""Soak of the event store: a real worker's events for many tasks, ingested into a bounded
store, with the monitor's memory watched.

    .venv/bin/python bench/soak_events.py [--tasks 100000] [--max-tasks 10000]

It starts ``celeriac worker -E`` (prefork, ``-c 2``) on Redis database 1 (flushed before
and after), and a monitor process that follows the app's event log into a SQLite event
store (``bench/.tmp/soak-events.db``) bounded to ``--max-tasks`` tasks; then it sends the
tasks (each one ``INCR`` of a counter), in groups of 1,000. Every second it samples the
monitor's RSS, the store's row count and how far the store is behind the log. At the end it
prints a table and two verdicts: memory stayed flat (the monitor's RSS grew less than 10%
after the warm-up, which ends when the store first holds ``--max-tasks`` tasks) and the
store stayed within its bound (``max_tasks`` plus the twentieth a store may gain between two
retention passes). The exit code is 0 when both hold.
"""

from __future__ import annotations

import argparse
import os
import signal
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import redis
from celeriac import Celery, group

BENCH = Path(__file__).resolve().parent
TMP = BENCH / ".tmp"
REDIS_DB = 1
URL = f"redis://127.0.0.1:6379/{REDIS_DB}"
DONE = "soak:done"
FLAT = 0.10  # RSS growth allowed after the warm-up

app = Celery("soak", broker=URL)
app.conf.update(
    task_default_queue="soak",
    task_ignore_result=True,
    worker_prefetch_multiplier=64,
)
COUNTER = redis.Redis(db=REDIS_DB)


@app.task(name="soak_events.tick")  # the same name when run as __main__
def tick(i: int) -> None:
    COUNTER.incr(DONE)


# -- the monitor process ---------------------------------------------------------------------


def monitor(store_url: str, max_tasks: int) -> None:
    """Ingest the event log into the store until SIGTERM."""
    from celeriac.monitor.ingest import Ingester
    from celeriac.monitor.store import create_store

    store = create_store(store_url, {"max_tasks": max_tasks})
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    Ingester(app, store).run(stop)
    store.close()


# -- the orchestrator ------------------------------------------------------------------------


def rss_mb(pid: int) -> float:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def entry_time(cursor: str | None) -> float | None:
    """The time a Redis stream entry was added, from its id (milliseconds-sequence)."""
    if not cursor:
        return None
    return int(cursor.split("-")[0]) / 1000


def start(cmd: list[str], log: Path) -> subprocess.Popen[bytes]:
    env = {**os.environ, "PYTHONPATH": str(BENCH)}
    return subprocess.Popen(
        cmd,
        cwd=BENCH,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=log.open("wb"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )


def stop(proc: subprocess.Popen[bytes]) -> None:
    for sig, grace in ((signal.SIGTERM, 15.0), (signal.SIGKILL, 5.0)):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            return
        try:
            proc.wait(grace)
            return
        except subprocess.TimeoutExpired:
            continue


def send(total: int, errors: list[BaseException]) -> None:
    try:
        for first in range(0, total, 1000):
            group(tick.s(i) for i in range(first, min(first + 1000, total))).apply_async()
    except BaseException as exc:  # reported by the main loop
        errors.append(exc)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tasks", type=int, default=100_000)
    parser.add_argument("--max-tasks", type=int, default=10_000)
    parser.add_argument("--timeout", type=float, default=1800, help="seconds, at most")
    parser.add_argument("--monitor", metavar="STORE_URL", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.monitor:
        monitor(args.monitor, args.max_tasks)
        return 0

    from celeriac.eventlogs.redis import RedisEventLog
    from celeriac.monitor.ingest import default_source
    from celeriac.monitor.store import create_store

    TMP.mkdir(exist_ok=True)
    path = TMP / "soak-events.db"
    for suffix in ("", "-wal", "-shm"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)
    store_url = f"sqlite:///{path}"
    COUNTER.flushdb()
    bound = args.max_tasks + max(args.max_tasks // 20, 1)
    python = sys.executable
    worker_command = [str(Path(python).parent / "celeriac"), "-A", "soak_events", "worker"]
    worker_command += ["-E", "-P", "prefork", "-c", "2", "-q", "-l", "WARNING"]
    watcher = start(
        [python, __file__, "--monitor", store_url, "--max-tasks", str(args.max_tasks)],
        TMP / "soak-monitor.log",
    )
    worker = start(
        worker_command,
        TMP / "soak-worker.log",
    )
    store = create_store(store_url, {"max_tasks": None, "max_age": None})
    log = RedisEventLog(URL)
    errors: list[BaseException] = []
    producer = threading.Thread(target=send, args=(args.tasks, errors), daemon=True)
    samples: list[dict[str, Any]] = []
    began = time.monotonic()
    caught_up_to: str | None = None  # the log's newest entry once every task ran
    verdict = 1
    try:
        producer.start()
        while True:
            time.sleep(1.0)
            for proc, what in ((watcher, "monitor"), (worker, "worker")):
                if proc.poll() is not None:
                    raise SystemExit(f"the {what} exited ({proc.returncode}): see {TMP}")
            if errors:
                raise errors[0]
            done = int(COUNTER.get(DONE) or 0)
            stats = store.stats()
            cursor = store.cursor(default_source(app))
            newest = log.newest()
            at, head = entry_time(cursor), entry_time(newest)
            samples.append(
                {
                    "t": time.monotonic() - began,
                    "done": done,
                    "rows": stats["tasks"],
                    "lag": (head - at) if at is not None and head is not None else None,
                    "rss": rss_mb(watcher.pid),
                }
            )
            if done >= args.tasks and caught_up_to is None:
                time.sleep(1.0)  # the last events leave the worker's buffers
                caught_up_to = log.newest()
            if caught_up_to is not None and cursor is not None:
                if tuple(map(int, cursor.split("-"))) >= tuple(map(int, caught_up_to.split("-"))):
                    break
            if time.monotonic() - began > args.timeout:
                raise SystemExit(f"not done after {args.timeout:.0f} s")
        counts = store.counts()["states"]
        lost = store.lost_tasks()
        verdict = report(samples, args.tasks, args.max_tasks, bound, counts, len(lost))
    finally:
        stop(worker)
        stop(watcher)
        store.close()
        log.close()
        COUNTER.flushdb()
    return verdict


def report(
    samples: list[dict[str, Any]],
    tasks: int,
    max_tasks: int,
    bound: int,
    counts: dict[str, int],
    lost: int,
) -> int:
    step = max(len(samples) // 20, 1)
    shown = samples[::step]
    if shown[-1] is not samples[-1]:
        shown.append(samples[-1])
    print(f"{'t (s)':>7} {'tasks run':>10} {'store rows':>10} {'behind (s)':>10} {'RSS (MB)':>9}")
    for s in shown:
        lag = "-" if s["lag"] is None else f"{s['lag']:.1f}"
        print(f"{s['t']:7.0f} {s['done']:10,} {s['rows']:10,} {lag:>10} {s['rss']:9.1f}")
    full = next((i for i, s in enumerate(samples) if s["rows"] >= max_tasks), None)
    if full is None:  # fewer tasks than the bound: the warm-up is the first tenth
        full = len(samples) // 10
    warm = samples[full:]
    baseline = warm[0]["rss"]
    peak = max(s["rss"] for s in warm)
    growth = (peak - baseline) / baseline if baseline else 0.0
    flat = growth < FLAT
    most = max(s["rows"] for s in samples)
    within = most <= bound
    print()
    print(f"{tasks:,} tasks in {samples[-1]['t']:.0f} s; {len(samples)} samples, one a second")
    print(
        f"monitor RSS: {samples[0]['rss']:.1f} MB at the start, {baseline:.1f} MB once the store "
        f"held {max_tasks:,} tasks, {peak:.1f} MB at most after (median "
        f"{statistics.median(s['rss'] for s in warm):.1f}): growth {growth:+.1%}, "
        f"flat: {'yes' if flat else 'NO'}"
    )
    print(
        f"store rows: {most:,} at most (bound {bound:,} = max_tasks + a twentieth), "
        f"{samples[-1]['rows']:,} at the end: within bound: {'yes' if within else 'NO'}"
    )
    print(f"store at the end: {counts}; lost tasks: {lost}")
    return 0 if flat and within else 1


if __name__ == "__main__":
    sys.exit(main())
