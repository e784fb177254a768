"""One run of each workload; each function returns that run's figures.

Every run starts from an empty broker (``System.prepare``). Producers run in their own
process; workers are started per run and stopped at its end.
"""

from __future__ import annotations

import statistics
import time
from dataclasses import dataclass
from typing import Any

from harness import Counter, Failed, NotApplicable, Worker, produce, worker
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
) -> dict[str, Any]:
    """Queue the tasks, then time one worker from its start until all of them ran."""
    system.prepare()
    task = "aincr" if pool == "asyncio" else "incr"
    produce(system, "fill", scale.tasks, task, timeout=scale.step_timeout)
    counter = Counter(system)
    log = f"{system.name}-drain-{pool or 'default'}-c{concurrency}"
    try:
        started = time.perf_counter()
        with worker(system, log, concurrency=concurrency, pool=pool, env=env or {}) as running:
            first = counter.wait(1, scale.step_timeout, running)
            budget = scale.drain_budget - (first - started)
            finished, count = counter.wait_at_most(scale.tasks, budget, running)
    finally:
        counter.close()
    seconds = finished - started
    run = {"value": count / seconds, "seconds": seconds, "first_task_s": first - started}
    if count < scale.tasks:
        run["note"] = f"{count:,}/{scale.tasks:,} run in the {scale.drain_budget:.0f} s budget"
    return run


def events(system: System, scale: Scale) -> dict[str, Any]:
    """celeriac's drain with every event off, then on (``-E``: task and worker events), and
    enqueue without, then with, ``task_send_sent_event``: each pair back to back."""
    on = {"BENCH_CELERIAC_EVENTS": "1"}
    drain_off = drain(system, scale)["value"]
    drain_on = drain(system, scale, env=on)["value"]
    enqueue_off = enqueue(system, scale)["value"]
    enqueue_on = enqueue(system, scale, **on)["value"]
    return {
        "drain_off": drain_off,
        "drain_on": drain_on,
        "drain_ratio": drain_on / drain_off,
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
    if len(delays) < 2:
        raise Failed(f"only {len(delays)} task(s) started within {scale.latency_budget:.0f} s")
    cuts = statistics.quantiles(delays, n=100, method="inclusive")
    run = {"p50": cuts[49], "p99": cuts[98], "count": len(delays), "delays_ms": delays, **memory}
    if len(delays) < scale.latency_tasks:
        run["note_on"] = ["p50", "p99"]
        run["note"] = (
            f"{len(delays)}/{scale.latency_tasks} tasks in the {scale.latency_budget:.0f} s budget"
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
