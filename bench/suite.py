"""The orchestration: which workload runs on which system, how often, and in what order.

Runs inside bench/.venv (``run.py`` re-executes itself there first).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import subprocess
import time
from collections.abc import Callable
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import Any

import common
import report
import workloads
from harness import BENCH, TMP, Failed, NotApplicable, progress, time_limit
from report import (
    ASYNCIO,
    ASYNCIO_RATE,
    ASYNCIO_SHARE,
    ASYNCIO_STEADY,
    BROKERS,
    EVENTS,
    FLOOR,
    MAIN,
    MEMORY,
    POSTGRES,
    RABBITMQ,
    SCALEOUT,
    SCALEOUT_BROKERS,
    SCALEOUT_POOL,
    SWEEP,
    Row,
)
from systems import CELERIAC_BROKERS, PEERS, PUBLISH_ONLY, System, make
from systems import POSTGRES as POSTGRES_SYSTEMS
from systems import RABBITMQ as RABBITMQ_SYSTEMS
from workloads import Scale

Measure = Callable[[], dict[str, Any]]
PSQL = ["psql", "-h", "127.0.0.1", "-U", "postgres", "-d", "test"]
DOCS = BENCH.parent / "docs" / "performance.md"
GIT = ["git", "-C", str(BENCH.parent)]
POOLS = ["prefork", "threads", "asyncio"]
CONCURRENCIES = [1, 2, 4, 8]
RATE = ("value", "tasks/s")
LATENCY = {"latency p50": ("p50", "ms"), "latency p99": ("p99", "ms")}


class Suite:
    def __init__(self, scale: Scale, systems: list[System]) -> None:
        self.scale = scale
        self.systems = systems
        self.rows: list[Row] = []

    # -- running and recording ------------------------------------------------------------

    def repeat(self, title: str, label: str, measure: Measure, limit: float) -> Row:
        """Run ``measure`` scale.repeat times; a failure or n/a ends the series."""
        row = Row("", title, "", "", label, "")
        for attempt in range(1, self.scale.repeat + 1):
            if not self._attempt(row, attempt, measure, limit):
                break
        return row

    def alternate(
        self, title: str, systems: list[System], fn: Callable[..., dict[str, Any]], limit: float
    ) -> list[Row]:
        """As :meth:`repeat` for several systems taking turns (A B C A B C ...), so that a
        drift of the machine's speed falls on each of them alike; one row per system."""
        rows = [Row("", title, "", "", system.label, "") for system in systems]
        for attempt in range(1, self.scale.repeat + 1):
            for system, row in zip(systems, rows, strict=True):
                if row.status == "ok":
                    self._attempt(row, attempt, partial(fn, system, self.scale), limit)
        return rows

    def _attempt(self, row: Row, attempt: int, measure: Measure, limit: float) -> bool:
        """One run of ``measure`` into ``row`` (the row's workload as its title and the
        system's label), with a progress line; whether it went well."""
        started = time.monotonic()
        try:
            with time_limit(limit):
                run = measure()
        except NotApplicable as exc:
            row.status, row.reason = "n/a", str(exc)
        except Failed as exc:
            row.status, row.reason = "failed", str(exc)
        except Exception as exc:  # a broken peer must not stop the suite
            row.status, row.reason = "failed", f"{type(exc).__name__}: {exc}"[:300]
        took = time.monotonic() - started
        where = f"{row.workload:<22} {row.label:<20} run {attempt}/{self.scale.repeat}"
        if row.status != "ok":
            progress(f"{where}: {row.status}: {row.reason} ({took:.1f} s)")
            return False
        row.runs.append(run)
        progress(f"{where}: {summary(run)} ({took:.1f} s)")
        return True

    def record(
        self,
        section: str,
        system: System,
        series: Row,
        figures: dict[str, tuple[str, str]],
        label: str | None = None,
    ) -> None:
        """Turn one series of runs into a row per figure (figure -> (run key, unit))."""
        for workload, (key, unit) in figures.items():
            self.rows.append(
                Row(
                    section=section,
                    workload=workload,
                    unit=unit,
                    system=system.name,
                    label=label or system.label,
                    version=system.version(),
                    status=series.status,
                    reason=series.reason,
                    samples=[run[key] for run in series.runs if key in run],
                    runs=series.runs,
                    key=key,
                )
            )

    def measure(
        self,
        section: str,
        system: System,
        title: str,
        measure: Measure,
        figures: dict[str, tuple[str, str]],
        limit: float,
        label: str | None = None,
    ) -> None:
        series = self.repeat(title, label or system.label, measure, limit)
        self.record(section, system, series, figures, label)

    # -- the workloads --------------------------------------------------------------------

    def floor(self) -> None:
        progress(f"== floor: redis-py INCR, {self.scale.tasks:,} round trips / one pipeline")
        for kind, title in (("roundtrips", "INCR round trips"), ("pipelined", "pipelined INCR")):
            measure = partial(workloads.floor, kind, self.scale)
            series = self.repeat(title, "redis-py", measure, self._limit())
            samples = [run["value"] for run in series.runs]
            row = Row(FLOOR, title, "ops/s", "redis-py", "redis-py", _version("redis"))
            row.status, row.reason, row.samples, row.runs = (
                series.status, series.reason, samples, series.runs
            )  # fmt: skip
            self.rows.append(row)

    def each(
        self,
        title: str,
        fn: Callable[[System, Scale], dict[str, Any]],
        figures: dict[str, tuple[str, str]],
        limit: float,
    ) -> None:
        """One workload on every selected system, in the main comparison."""
        for system in self.systems:
            self.measure(MAIN, system, title, partial(fn, system, self.scale), figures, limit)

    def enqueue(self) -> None:
        progress(f"== enqueue: {self.scale.tasks:,} delay()-style calls, one producer process")
        self.each("enqueue", workloads.enqueue, {"enqueue": RATE}, self._limit())

    def bulk(self) -> None:
        progress(f"== bulk enqueue: {self.scale.tasks:,} tasks through each batch API")
        self.each("bulk enqueue", workloads.bulk, {"bulk enqueue": RATE}, self._limit())

    def drain(self) -> None:
        progress(
            f"== drain: {self.scale.tasks:,} queued, then one worker (c=2); the time includes "
            "the worker's start-up"
        )
        self.each("drain", workloads.drain, {"drain": RATE}, self._limit(3))

    def latency(self) -> None:
        progress(
            f"== latency: an idle worker (c=2), {self.scale.latency_tasks} tasks one at a "
            "time; idle worker memory"
        )
        figures = {
            **LATENCY,
            "idle worker RSS": ("rss_mb", "MB"),
            # shared pages counted once, shared among the processes that map them
            "idle worker PSS": ("pss_mb", "MB"),
        }
        self.each("latency", workloads.latency, figures, self.scale.latency_budget + 400)

    def results(self) -> None:
        progress(
            f"== results: up to {self.scale.result_trips:,} delay().get() round trips or "
            f"{self.scale.results_budget:.0f} s"
        )
        figures = {"results round trips": ("value", "round trips/s")}
        self.each("results", workloads.results, figures, self.scale.results_budget + 400)

    def brokers(self) -> None:
        progress("== celeriac on SQLite, RabbitMQ and PostgreSQL: enqueue, drain, latency")
        plan: list[tuple[str, Callable[[System, Scale], dict[str, Any]], dict[str, Any]]] = [
            ("enqueue", workloads.enqueue, {"enqueue": RATE}),
            ("drain", workloads.drain, {"drain": RATE}),
            ("latency", workloads.latency, LATENCY),
        ]
        self._copy_from_main(BROKERS, "celeriac (redis)")
        for broker in CELERIAC_BROKERS:
            system = make(f"celeriac-{broker}")
            try:
                for title, fn, figures in plan:
                    measure = partial(fn, system, self.scale)
                    self.measure(BROKERS, system, title, measure, figures, self._limit(3) + 300)
            finally:
                system.cleanup()

    def rabbitmq(self, chosen: list[str]) -> None:
        """celeriac against Celery on RabbitMQ, unconfirmed (its default) and with
        ``confirm_publish``: enqueue, bulk and drain, the systems taking turns."""
        progress(
            "== RabbitMQ: celeriac and Celery (default, and with confirm_publish): enqueue, "
            "bulk, drain; each on a fresh vhost, the systems taking turns"
        )
        names = [name for name in RABBITMQ_SYSTEMS if name in chosen] or RABBITMQ_SYSTEMS
        systems = [make(name) for name in names]
        plan: list[tuple[str, Callable[[System, Scale], dict[str, Any]], str, float]] = [
            ("enqueue", workloads.enqueue, "enqueue", self._limit()),
            ("bulk enqueue", workloads.bulk, "bulk enqueue", self._limit()),
            ("drain", workloads.drain, "drain", self._limit(3)),
        ]
        try:
            for title, fn, figure, limit in plan:
                taking = [s for s in systems if figure != "drain" or s.name not in PUBLISH_ONLY]
                rows = self.alternate(title, taking, fn, limit)
                for system, series in zip(taking, rows, strict=True):
                    self.record(RABBITMQ, system, series, {figure: RATE})
        finally:
            for system in systems:
                system.cleanup()

    def postgres(self, chosen: list[str]) -> None:
        """celeriac's PostgreSQL broker against PgQueuer and Procrastinate: enqueue, bulk,
        drain and latency, each system on a fresh schema of its own, taking turns."""
        progress(
            "== PostgreSQL: celeriac, PgQueuer and Procrastinate: enqueue, bulk, drain, "
            "latency; each on a fresh schema, the systems taking turns"
        )
        names = [name for name in POSTGRES_SYSTEMS if name in chosen] or POSTGRES_SYSTEMS
        systems = [make(name) for name in names]
        plan: list[tuple[str, Callable[[System, Scale], dict[str, Any]], dict[str, Any], float]]
        plan = [
            ("enqueue", workloads.enqueue, {"enqueue": RATE}, self._limit()),
            ("bulk enqueue", workloads.bulk, {"bulk enqueue": RATE}, self._limit()),
            ("drain", workloads.drain, {"drain": RATE}, self._limit(3)),
            ("latency", workloads.latency, LATENCY, self.scale.latency_budget + 400),
        ]
        try:
            for title, fn, figures, limit in plan:
                rows = self.alternate(title, systems, fn, limit)
                for system, series in zip(systems, rows, strict=True):
                    self.record(POSTGRES, system, series, figures)
        finally:
            for system in systems:
                system.cleanup()

    def sweep(self) -> None:
        progress("== celeriac drain on Redis: pools prefork/threads/asyncio x concurrency 1-8")
        system = make("celeriac")
        for pool in POOLS:
            for concurrency in CONCURRENCIES:
                label = f"{pool} c={concurrency}"
                main_row = report.find(self.rows, MAIN, "drain", "celeriac")
                if (pool, concurrency) == ("prefork", 2) and main_row is not None:
                    self.rows.append(dataclasses.replace(main_row, section=SWEEP, label=label))
                    continue
                measure = partial(workloads.drain, system, self.scale, concurrency, pool)
                self.measure(
                    SWEEP, system, "drain", measure, {"drain": RATE}, self._limit(3), label
                )

    def events(self) -> None:
        progress("== celeriac on Redis: drain with events off and on, enqueue with task-sent")
        system = make("celeriac")
        figures = {
            "drain, events off": ("drain_off", "tasks/s"),
            "drain, events on (-E)": ("drain_on", "tasks/s"),
            "drain on/off": ("drain_ratio", "x"),
            "drain CPU, events off": ("cpu_off_s", "s"),
            "drain CPU, events on": ("cpu_on_s", "s"),
            "drain CPU on/off": ("cpu_ratio", "x"),
            "enqueue": ("enqueue_off", "tasks/s"),
            "enqueue with task-sent": ("enqueue_on", "tasks/s"),
            "enqueue on/off": ("enqueue_ratio", "x"),
        }
        measure = partial(workloads.events, system, self.scale)
        self.measure(EVENTS, system, "events", measure, figures, self._limit(8))

    def asyncio(self) -> None:
        scale = self.scale
        progress(
            f"== asyncio: {scale.asyncio_tasks:,} queued tasks that sleep 0.1 s, then one "
            f"worker at concurrency {scale.asyncio_concurrency} (ideal "
            f"{scale.asyncio_concurrency / common.ASYNCIO_SLEEP:,.0f} tasks/s; rates with "
            "start-up, and steady from the first task)"
        )
        figures = {
            ASYNCIO_RATE: RATE,
            ASYNCIO_STEADY: ("steady", "tasks/s"),
            ASYNCIO_SHARE: ("of_ideal", "%"),
        }
        for system in self.systems:
            if system.asyncio:
                measure = partial(workloads.asyncio_sleep, system, scale)
                self.measure(ASYNCIO, system, "asyncio", measure, figures, self._limit(3))

    def memory(self) -> None:
        n = self.scale.memory_tasks
        progress(f"== celeriac worker memory: idle, then after {n:,} tasks (prefork, c=2)")
        system = make("celeriac")
        figures = {
            "idle worker RSS": ("idle_rss_mb", "MB"),
            f"RSS after {n:,} tasks": ("after_rss_mb", "MB"),
            "idle worker PSS": ("idle_pss_mb", "MB"),
            f"PSS after {n:,} tasks": ("after_pss_mb", "MB"),
        }
        measure = partial(workloads.memory, system, self.scale)
        self.measure(MEMORY, system, "memory", measure, figures, self._limit(4))

    def scaleout(self) -> None:
        n = self.scale.scaleout_tasks
        progress(
            f"== celeriac scale-out on Redis, PostgreSQL and RabbitMQ: {n:,} queued, drained by "
            "one worker (c=1), then by four side by side; -P solo, then -P prefork"
        )
        limit = 2 * (self.scale.step_timeout + self.scale.scaleout_budget) + 120
        for name in SCALEOUT_BROKERS:
            system = make(name)
            try:
                for pool in (SCALEOUT_POOL, "prefork"):
                    figures = {
                        f"1 worker ({pool})": ("one", "tasks/s"),
                        f"4 workers ({pool})": ("four", "tasks/s"),
                        f"4 ÷ 1 ({pool})": ("value", "x"),
                        f"4 ÷ 1, start-up included ({pool})": ("started_ratio", "x"),
                        f"ran twice, all runs ({pool})": ("twice", "tasks"),
                        f"lost, all runs ({pool})": ("lost", "tasks"),
                    }
                    measure = partial(workloads.scaleout, system, self.scale, pool)
                    label = f"celeriac ({getattr(system, 'broker', 'redis')})"
                    self.measure(
                        SCALEOUT, system, f"scaleout {pool}", measure, figures, limit, label
                    )
            finally:
                system.cleanup()
        for row in self.rows:  # a task run twice or lost in any run counts: the sum
            if row.section == SCALEOUT and row.key in ("twice", "lost") and row.samples:
                row.samples = [int(sum(row.samples))]

    def _copy_from_main(self, section: str, label: str) -> None:
        for workload in ("enqueue", "drain", "latency p50", "latency p99"):
            row = report.find(self.rows, MAIN, workload, "celeriac")
            if row is not None:
                self.rows.append(dataclasses.replace(row, section=section, label=label))

    def _limit(self, steps: int = 1) -> float:
        return self.scale.step_timeout * steps + 120


def summary(run: dict[str, Any]) -> str:
    if "four" in run:
        return (
            f"1 worker {run['one']:,.0f}/s, 4 workers {run['four']:,.0f}/s: "
            f"{run['value']:.2f}x ({run['started_ratio']:.2f}x with start-up), "
            f"{run['twice']} run twice, {run['lost']} lost"
        )
    if "p50" in run:
        return f"p50 {run['p50']:.2f} ms, p99 {run['p99']:.2f} ms ({run['count']} tasks)"
    if "drain_ratio" in run:
        return (
            f"drain {run['drain_off']:,.0f} -> {run['drain_on']:,.0f}/s with events "
            f"({run['drain_ratio']:.2f}x; CPU {run['cpu_ratio']:.2f}x), "
            f"enqueue {run['enqueue_off']:,.0f} -> {run['enqueue_on']:,.0f}/s "
            f"with task-sent ({run['enqueue_ratio']:.2f}x)"
        )
    if "after_rss_mb" in run:
        return f"idle {run['idle_rss_mb']:.1f} MB, after {run['after_rss_mb']:.1f} MB RSS"
    text = f"{run['value']:,.1f}/s"
    if "first_task_s" in run:
        text += f" (first task after {run['first_task_s']:.2f} s)"
    if "of_ideal" in run:
        text += f", steady {run['steady']:,.0f}/s = {run['of_ideal']:.0f}% of ideal"
    if "done" in run:
        text += f" ({run['done']} round trips)"
    return text


# -- machine and configuration --------------------------------------------------------------


def _version(dist: str) -> str:
    from importlib import metadata

    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return "?"


def _quiet(cmd: list[str]) -> str:
    try:
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.SubprocessError):
        return "?"
    return done.stdout.strip() or "?"


def machine() -> dict[str, Any]:
    cpu = "?"
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            cpu = line.split(":", 1)[1].strip()
            break
    client = common.counter_client()
    try:
        redis_version = client.info("server")["redis_version"]
    finally:
        client.close()
    mem_kb = int(Path("/proc/meminfo").read_text().split()[1])
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "memory_gb": round(mem_kb / 1024 / 1024, 1),
        "kernel": platform.release(),
        "python": platform.python_version(),
        "redis": redis_version,
        "hiredis": _version("hiredis"),
        "rabbitmq": _quiet(["rabbitmqctl", "version"]),
        "postgresql": _quiet([*PSQL, "-Atc", "SHOW server_version"]),
        "celeriac_commit": _quiet([*GIT, "describe", "--always", "--dirty"]),
        "load_average_at_start": os.getloadavg(),
    }


def configuration(systems: list[System]) -> dict[str, Any]:
    config = {s.name: {"version": s.version(), **s.config()} for s in systems}
    others = RABBITMQ_SYSTEMS + POSTGRES_SYSTEMS
    for name in dict.fromkeys([f"celeriac-{broker}" for broker in CELERIAC_BROKERS] + others):
        system = make(name)
        config[system.name] = {"version": system.version(), **system.config()}
    return config


def show(header: dict[str, Any]) -> None:
    print("Machine: " + ", ".join(f"{k} {v}" for k, v in header["machine"].items()))
    print("Scale: " + ", ".join(f"{k} {v}" for k, v in header["scale"].items()))
    print("Configuration:")
    for name, config in header["config"].items():
        print(f"  {name}:")
        for key, value in config.items():
            text = value if isinstance(value, str) else json.dumps(value, default=str)
            print(f"    {key}: {text}")
    print(flush=True)


# -- entry ----------------------------------------------------------------------------------


def rerender(path: Path, out: Path | None) -> int:
    """Table, targets, chart and Markdown again from a results.json, without running."""
    document = json.loads(path.read_text())
    fields = {f.name for f in dataclasses.fields(Row)}
    by_place: dict[str, list[dict[str, Any]]] = {}
    rows = []
    for item in document.pop("rows"):
        runs = item["runs"]
        if isinstance(runs, str):  # "the runs of: <section / workload / label>"
            runs = by_place[runs.partition(": ")[2]]
        else:
            by_place[f"{item['section']} / {item['workload']} / {item['label']}"] = runs
        rows.append(Row(**{**{k: v for k, v in item.items() if k in fields}, "runs": runs}))
    header = {k: v for k, v in document.items() if k not in ("ratio", "targets")}
    target = out or path.parent
    target.mkdir(parents=True, exist_ok=True)
    finish(rows, header, target)
    return 0


def run_suite(args: argparse.Namespace, names: list[str]) -> int:
    if args.from_json:
        return rerender(args.from_json, args.out)
    scale = workloads.QUICK if args.quick else workloads.FULL
    if args.repeat:
        scale = dataclasses.replace(scale, repeat=args.repeat)
    chosen = args.systems.split(",") if args.systems else ["celeriac", *PEERS]
    selected = args.workloads.split(",") if args.workloads else names
    unknown = set(selected) - set(names)
    if unknown:
        print(f"unknown workloads: {', '.join(sorted(unknown))}")
        return 2
    out = args.out or (TMP / "quick" if args.quick else BENCH / "results")
    out.mkdir(parents=True, exist_ok=True)

    systems = [make(name) for name in chosen]
    started = datetime.now(UTC)
    header: dict[str, Any] = {
        "started": started.isoformat(timespec="seconds"),
        "mode": "quick" if args.quick else "full",
        "machine": machine(),
        "scale": dataclasses.asdict(scale),
        "config": configuration(systems),
    }
    show(header)
    suite = Suite(scale, systems)
    try:
        for name in selected:
            celeriac_only = ("brokers", "sweep", "memory", "events", "scaleout")
            if name in celeriac_only and "celeriac" not in chosen:
                continue
            if name == "rabbitmq":
                wanted = {"celeriac", "celery", *RABBITMQ_SYSTEMS}
                if wanted & set(chosen):
                    suite.rabbitmq(chosen)
                continue
            if name == "postgres":
                if {"celeriac", *POSTGRES_SYSTEMS} & set(chosen):
                    suite.postgres(chosen)
                continue
            getattr(suite, name)()
    finally:
        for system in systems:
            system.cleanup()
    header["duration_s"] = round((datetime.now(UTC) - started).total_seconds(), 1)
    header["load_average_at_end"] = os.getloadavg()
    finish(suite.rows, header, out)
    return 0


def finish(rows: list[Row], header: dict[str, Any], out: Path) -> None:
    print(report.text_table(rows))
    print("\n" + report.RATIO_NOTE)
    found = report.targets(rows)
    print(report.targets_text(found))
    report.write_json(out / "results.json", header, rows)
    machine_info = header["machine"]
    title = (
        f"celeriac benchmarks, {header['started']} ({header['mode']} run), "
        f"{machine_info['cores']} cores, {machine_info['cpu']}"
    )
    report.write_chart(out / "results.png", rows, title)
    markdown = report.markdown_table(rows) + "\n" + report.targets_markdown(found) + "\n"
    (out / "results.md").write_text(markdown)
    if out.resolve() == (BENCH / "results").resolve() and header["mode"] == "full":
        report.update_docs(DOCS, header, markdown)
    print(f"\nwrote {out / 'results.json'}, {out / 'results.png'} and {out / 'results.md'}")
