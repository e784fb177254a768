"""One run of each workload; each function returns that run's figures.

Every run starts from an empty broker (``System.prepare``). Producers run in their own
process; workers are started per run and stopped at its end.
"""

from __future__ import annotations

import statistics
import time
from contextlib import ExitStack
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import common
from harness import (
    POLL,
    Counter,
    Failed,
    NotApplicable,
    Worker,
    process_cpu,
    produce,
    redis_pid,
    worker,
)
from systems import System


@dataclass(frozen=True)
class Scale:
    tasks: int = 10_000  # enqueue, bulk enqueue, drain
    drain_budget: float = 90.0  # seconds; a slower system is timed on what it ran by then
    latency_tasks: int = 200
    latency_budget: float = 60.0  # seconds; a slow system stops early and says how many
    result_trips: int = 2_000
    results_budget: float = 60.0
    memory_tasks: int = 100_000
    scaleout_tasks: int = 40_000
    scaleout_budget: float = 180.0  # seconds for one drain of the scale-out workload
    asyncio_tasks: int = 10_000  # the asyncio workload: tasks that sleep, then count
    asyncio_concurrency: int = 500
    repeat: int = 3
    step_timeout: float = 300.0  # one producer call or one wait for a worker


FULL = Scale()
QUICK = Scale(
    tasks=500,
    drain_budget=30.0,
    latency_tasks=20,
    latency_budget=15.0,
    result_trips=50,
    results_budget=15.0,
    memory_tasks=5_000,
    scaleout_tasks=2_000,
    scaleout_budget=60.0,
    asyncio_tasks=1_000,
    repeat=1,
    step_timeout=120.0,
)


def floor(kind: str, scale: Scale) -> dict[str, Any]:
    """redis-py alone: ``roundtrips`` (INCR in a loop) or ``pipelined`` (one pipeline)."""
    out = produce("redis-py", kind, scale.tasks, timeout=scale.step_timeout)
    return {"value": scale.tasks / out["seconds"], "seconds": out["seconds"]}


def enqueue(system: System, scale: Scale, **env: str) -> dict[str, Any]:
    """celeriac's runs each come with redis-py's round trips measured just before, so the
    share of the floor is judged on a pair taken minutes apart at most, on a machine whose
    speed may drift over a run of the whole suite."""
    system.prepare()
    floor_value = floor("roundtrips", scale)["value"] if system.name == "celeriac" else None
    out = produce(system, "enqueue", scale.tasks, timeout=scale.step_timeout, **env)
    run = {"value": scale.tasks / out["seconds"], "seconds": out["seconds"]}
    if floor_value:
        run["floor"] = floor_value
        run["of_floor"] = run["value"] / floor_value
    return run


def bulk(system: System, scale: Scale) -> dict[str, Any]:
    system.prepare()
    out = produce(system, "bulk", scale.tasks, timeout=scale.step_timeout)
    if "na" in out:
        raise NotApplicable(out["na"])
    return {"value": scale.tasks / out["seconds"], "seconds": out["seconds"]}


def drain(
    system: System,
    scale: Scale,
    concurrency: int = 2,
    pool: str | None = None,
    env: dict[str, str] | None = None,
    task: str | None = None,
) -> dict[str, Any]:
    """Queue the tasks, then time one worker from its start until all of them ran."""
    system.prepare()
    task = task or ("aincr" if pool == "asyncio" else "incr")
    produce(system, "fill", scale.tasks, task, timeout=scale.step_timeout)
    counter = Counter(system)
    log = f"{system.name}-drain-{pool or 'default'}-c{concurrency}"
    server = redis_pid()
    server_cpu = process_cpu(server) if server else 0.0
    try:
        started = time.perf_counter()
        with worker(system, log, concurrency=concurrency, pool=pool, env=env or {}) as running:
            first = counter.wait(1, scale.step_timeout, running)
            budget = scale.drain_budget - (first - started)
            finished, count = counter.wait_at_most(scale.tasks, budget, running)
            cpu = running.cpu_seconds()
    finally:
        counter.close()
    seconds = finished - started
    run = {
        "value": count / seconds,
        "seconds": seconds,
        "count": count,
        "first_task_s": first - started,
        "worker_cpu_s": cpu,  # the worker's processes, start-up included
    }
    if server:  # Redis's share: the counter's INCRs too, the same in every run
        run["redis_cpu_s"] = process_cpu(server) - server_cpu
    if count < scale.tasks:
        run["note"] = f"{count:,}/{scale.tasks:,} run in the {scale.drain_budget:.0f} s budget"
    return run


def events(system: System, scale: Scale) -> dict[str, Any]:
    """celeriac's drain with every event off, then on (``-E``: task and worker events), and
    enqueue without, then with, ``task_send_sent_event``: each pair back to back."""
    on = {"BENCH_CELERIAC_EVENTS": "1"}
    off_run = drain(system, scale)
    on_run = drain(system, scale, env=on)
    drain_off, drain_on = off_run["value"], on_run["value"]
    enqueue_off = enqueue(system, scale)["value"]
    enqueue_on = enqueue(system, scale, **on)["value"]
    cpu_off, cpu_on = (
        run["worker_cpu_s"] + run.get("redis_cpu_s", 0.0) for run in (off_run, on_run)
    )
    return {
        "drain_off": drain_off,
        "drain_on": drain_on,
        "drain_ratio": drain_on / drain_off,
        # CPU (worker and Redis) for the same tasks: on 2 busy cores the cost that bounds
        # throughput, and much steadier from run to run than the time taken
        "cpu_off_s": cpu_off,
        "cpu_on_s": cpu_on,
        "cpu_ratio": cpu_on / cpu_off,
        "enqueue_off": enqueue_off,
        "enqueue_on": enqueue_on,
        "enqueue_ratio": enqueue_on / enqueue_off,
        "value": drain_on / drain_off,
    }


def _warm_up(system: System, running: Worker, counter: Counter, **env: str) -> None:
    """One task through the started worker, so it is connected and idle afterwards."""
    produce(system, "fill", 1, timeout=120, **env)
    counter.wait(1, 120, running)
    time.sleep(1.0)


def latency(system: System, scale: Scale) -> dict[str, Any]:
    """An idle worker; tasks sent one at a time, each once the previous one started."""
    system.prepare()
    counter = Counter(system)
    try:
        with worker(system, f"{system.name}-latency") as running:
            _warm_up(system, running, counter)
            memory = running.memory()
            out = produce(
                system,
                "latency",
                scale.latency_tasks,
                scale.latency_budget,
                timeout=scale.latency_budget + 120,
            )
    finally:
        counter.close()
    delays = [seconds * 1000 for seconds in out["delays"]]
    error = out.get("error")
    if len(delays) < 2:
        ended = f": the producer failed ({error})" if error else ""
        raise Failed(
            f"only {len(delays)} task(s) started within {scale.latency_budget:.0f} s{ended}"
        )
    cuts = statistics.quantiles(delays, n=100, method="inclusive")
    run = {"p50": cuts[49], "p99": cuts[98], "count": len(delays), "delays_ms": delays, **memory}
    if len(delays) < scale.latency_tasks:
        run["note_on"] = ["p50", "p99"]
        run["note"] = (
            f"{len(delays)}/{scale.latency_tasks} tasks, then the producer failed ({error})"
            if error
            else f"{len(delays)}/{scale.latency_tasks} tasks in the {scale.latency_budget:.0f} s "
            "budget"
        )
    return run


def results(system: System, scale: Scale) -> dict[str, Any]:
    """send-and-wait round trips through a started worker, results enabled."""
    system.prepare()
    counter = Counter(system)
    flag = {"BENCH_RESULTS": "1"}
    try:
        with worker(system, f"{system.name}-results", results=True, env=flag) as running:
            _warm_up(system, running, counter, **flag)
            out = produce(
                system,
                "results",
                scale.result_trips,
                scale.results_budget,
                timeout=scale.results_budget + 120,
                **flag,
            )
    finally:
        counter.close()
    if "na" in out:
        raise NotApplicable(out["na"])
    run = {"value": out["done"] / out["seconds"], **out}
    if out["done"] < scale.result_trips:
        run["note"] = (
            f"{out['done']:,}/{scale.result_trips:,} in the {scale.results_budget:.0f} s budget"
        )
    return run


def memory(system: System, scale: Scale) -> dict[str, Any]:
    """Worker memory when idle and again after ``memory_tasks`` tasks went through it."""
    system.prepare()
    counter = Counter(system)
    try:
        with worker(system, f"{system.name}-memory") as running:
            _warm_up(system, running, counter)
            idle = running.memory()
            produce(system, "fill", scale.memory_tasks, timeout=scale.step_timeout)
            counter.wait(scale.memory_tasks + 1, scale.step_timeout, running)
            time.sleep(1.0)
            after = running.memory()
    finally:
        counter.close()
    return {
        "idle_rss_mb": idle["rss_mb"],
        "after_rss_mb": after["rss_mb"],
        "idle_pss_mb": idle["pss_mb"],
        "after_pss_mb": after["pss_mb"],
        "processes": after["processes"],
    }


def spread_drain(system: System, scale: Scale, workers: int, pool: str) -> dict[str, Any]:
    """Queue ``scaleout_tasks`` tasks, each with an argument of its own, then start
    ``workers`` workers of concurrency 1 together (node names w1@%h, w2@%h, ...) and wait
    until every argument has run.

    The rate (``value``) is the steady one of workers all at work: timed from the moment
    every worker process has run a task (one worker: its first task) to the last task, over
    the tasks run meanwhile; ``started_value`` times from starting the workers instead,
    start-up included. Each run sets its argument's bit (``SETBIT``), counts itself and
    its process; a run that found its bit set counts as a task run twice, and an argument
    whose bit is still clear once the workers stopped was lost."""
    system.prepare()
    n = scale.scaleout_tasks
    keys = [key(system.name) for key in (common.seen_key, common.done_key, common.twice_key)]
    seen, done, twice = keys
    shares = common.shares_key(system.name)
    client = common.counter_client()
    poll = client.pipeline(transaction=False)
    poll.bitcount(seen).hlen(shares)
    try:
        client.delete(*keys, shares)
        produce(system, "fill", n, "mark", timeout=scale.step_timeout)
        servers = _broker_pids(system)
        cpu_at = [sum(map(process_cpu, servers))]  # the broker's, then the workers' too
        with ExitStack() as stack:
            started = time.perf_counter()
            running = [
                stack.enter_context(
                    worker(
                        system,
                        f"{system.name}-scaleout-{workers}x-{pool}-w{i}",
                        concurrency=1,
                        pool=pool,
                        name=f"w{i}@%h",
                    )
                )
                for i in range(1, workers + 1)
            ]

            def cpu() -> tuple[float, float]:
                # PostgreSQL's backends are read before they exit with their workers
                broker = sum(map(process_cpu, _broker_pids(system)))
                return broker, sum(each.cpu_seconds() for each in running)

            deadline = started + scale.scaleout_budget
            checks = 0
            first = all_in = 0.0
            at_all_in, cpu_all_in = 0, (0.0, 0.0)
            while True:
                finished = time.perf_counter()
                distinct, active = map(int, poll.execute())
                poll.bitcount(seen).hlen(shares)
                if distinct and not first:
                    first = finished
                if active >= workers and not all_in:
                    all_in, at_all_in, cpu_all_in = finished, distinct, cpu()
                if distinct >= n or finished > deadline:
                    cpu_end = cpu()
                    break
                checks += 1
                if checks % 50 == 0:
                    for each in running:
                        each.check()
                time.sleep(POLL)
            time.sleep(0.5)  # a second run of a task shows up before the workers stop
        # the workers stopped (warm shutdown): what ran is final
        runs = int(client.get(done) or 0)
        ran_twice = int(client.get(twice) or 0)
        lost = n - int(client.bitcount(seen))
        by_process = sorted(int(v) for v in client.hvals(shares))
        client.delete(*keys, shares)
    finally:
        client.close()
    run: dict[str, Any] = {
        "started_value": distinct / (finished - started),
        "seconds": finished - started,
        "first_task_s": first - started if first else None,
        "runs": runs,
        "twice": ran_twice,
        "lost": lost,
        "by_process": by_process,  # tasks run by each worker process, fewest first
        # CPU seconds, start-up included: the workers' processes and the broker server's
        "worker_cpu_s": cpu_end[1],
        "broker_cpu_s": cpu_end[0] - cpu_at[0],
    }
    if all_in and distinct > at_all_in:
        steady = distinct - at_all_in
        run["value"] = steady / (finished - all_in)
        run["all_in_s"] = all_in - started  # every worker process had run a task by then
        # CPU per task while all were at work (worker and broker; 2 cores bound the rate)
        spent = sum(cpu_end) - sum(cpu_all_in)
        run["cpu_us_per_task"] = spent / steady * 1e6
    else:  # too few tasks, or a worker never took one: the rate from the start
        run["value"] = run["started_value"]
        run["note"] = "timed from the workers' start (not every worker process ran a task)"
    return run


def _broker_pids(system: System) -> list[int]:
    """The broker server's processes on this machine (for their CPU time)."""
    broker = getattr(system, "broker", "redis")
    if broker == "redis":
        pid = redis_pid()
        return [pid] if pid else []
    names = {"postgres": b"postgres", "amqp": b"beam.smp"}.get(broker)
    found = []
    for entry in Path("/proc").iterdir():
        try:
            if entry.name.isdigit() and (entry / "comm").read_bytes().strip() == names:
                found.append(int(entry.name))
        except OSError:
            continue
    return found


def scaleout(system: System, scale: Scale, pool: str = "prefork") -> dict[str, Any]:
    """One worker (concurrency 1) draining ``scaleout_tasks`` tasks, then four side by side
    on the same queue (:func:`spread_drain`): both rates, their ratio (start-up included
    too), and the tasks run twice or lost in either."""
    one = spread_drain(system, scale, 1, pool)
    if not one["value"]:
        raise Failed(f"one worker ran no task in {scale.scaleout_budget:.0f} s")
    four = spread_drain(system, scale, 4, pool)
    run: dict[str, Any] = {
        "one": one["value"],
        "four": four["value"],
        "value": four["value"] / one["value"],
        "started_ratio": four["started_value"] / one["started_value"],
        "twice": one["twice"] + four["twice"],
        "lost": one["lost"] + four["lost"],
        "pool": pool,
        "drains": {"1": one, "4": four},
    }
    parts = (("1 worker", one), ("4 workers", four))
    notes = [f"{k}: {d['note']}" for k, d in parts if "note" in d]
    notes += [
        f"{k}: {d['lost']:,} of {scale.scaleout_tasks:,} not run in the "
        f"{scale.scaleout_budget:.0f} s budget"
        for k, d in parts
        if d["lost"]
    ]
    if notes:
        run["note"] = "; ".join(notes)
    return run


def asyncio_sleep(system: System, scale: Scale) -> dict[str, Any]:
    """The drain of ``asyncio_tasks`` tasks that each ``await asyncio.sleep(0.1)`` and then
    count, by one worker running ``asyncio_concurrency`` of them at once (celeriac: ``-P
    asyncio``); the ideal is concurrency / sleep tasks/s. ``steady`` is the rate from the
    first task counted to the last, without start-up (the share of the ideal is its)."""
    if not system.asyncio:
        raise NotApplicable("no asyncio workload for this system")
    concurrency = scale.asyncio_concurrency
    sized = replace(scale, tasks=scale.asyncio_tasks)
    env = {"BENCH_CONCURRENCY": str(concurrency)}  # read by the peers' worker settings
    run = drain(system, sized, concurrency, "asyncio", env=env, task="asleep")
    ideal = concurrency / common.ASYNCIO_SLEEP
    # from the first task counted to the last, an ideal worker runs all but one round of
    # ``concurrency`` tasks: counting those gives the ideal rate for an ideal worker
    steady_s = max(run["seconds"] - run["first_task_s"], 1e-9)
    run["steady"] = max(run["count"] - concurrency, 1) / steady_s
    run["ideal"] = ideal
    run["of_ideal"] = run["steady"] / ideal * 100
    return run
