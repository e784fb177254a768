"""``celeriac events``: the cluster's events live in the terminal, as JSON lines (``--dump``),
or photographed by a camera class every ``--frequency`` seconds (``--camera``); with
``--store``, also kept in an event store."""

from __future__ import annotations

import argparse
import json
import signal
import sys
import threading
import time
from collections import Counter
from typing import Any, TextIO

from ..app import Celeriac
from ..eventlogs.base import LATEST, OLDEST
from ..events import State
from ..exceptions import OperationalError
from ..plugins import import_path
from ..utils.log import setup_logging
from . import daemon

__all__ = ["add_parsers", "cmd_events", "render"]


def add_parsers(sub: Any, common: argparse.ArgumentParser) -> None:
    e = sub.add_parser("events", parents=[common], help="watch the cluster's events")
    e.add_argument("-d", "--dump", action="store_true", help="print each event as a JSON line")
    e.add_argument("-c", "--camera", help="a class given the cluster's state every --frequency")
    e.add_argument("-F", "--frequency", "--freq", type=float, default=1.0, help="seconds")
    e.add_argument("-r", "--maxrate", help="(--camera) passed to the camera")
    e.add_argument(
        "--from",
        dest="start",
        default=LATEST,
        help="'latest' (default: events from now on), 'oldest' (all the log keeps) or a cursor",
    )
    e.add_argument(
        "--store",
        nargs="?",
        const="sqlite://",
        metavar="URL",
        help="also keep the events in an event store (default: celeriac-events.db here)",
    )
    e.add_argument("--detach", action="store_true")
    e.add_argument("-l", "--loglevel", default="WARNING")
    e.add_argument("-f", "--logfile")
    e.add_argument("--pidfile")
    e.add_argument("--uid")
    e.add_argument("--gid")
    e.add_argument("--umask")
    e.add_argument("--executable", help=argparse.SUPPRESS)
    e.set_defaults(func=cmd_events)


def cmd_events(app: Celeriac, args: argparse.Namespace) -> int:
    start = args.start if args.start in (LATEST, OLDEST) or args.start else LATEST
    daemon.prepare(None, args.pidfile, args.detach, args.uid, args.gid, args.umask)
    setup_logging(args.loglevel, args.logfile)
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    keeper = _keep(app, args.store, stop) if args.store else None
    receiver = app.events.Receiver(start=start)
    state = State()
    camera = _camera(args, state) if args.camera else None
    live = not args.dump and camera is None
    out = sys.stdout
    shown = 0.0
    try:
        while not stop.is_set():
            try:
                events = receiver.poll(1000, min(args.frequency, 1.0))
            except OperationalError as exc:
                print(f"events cannot be read now: {exc}", file=sys.stderr, flush=True)
                stop.wait(2.0)
                continue
            for event in events:
                state.event(event)
                if args.dump:
                    out.write(json.dumps(event, default=repr) + "\n")
            if args.dump and events:
                out.flush()
            now = time.monotonic()
            if (live or camera is not None) and now - shown >= args.frequency:
                shown = now
                if camera is None:
                    _show(out, render(state, receiver.cursor))
                elif hasattr(camera, "capture"):  # a Polaroid takes its own photograph
                    camera.capture()
                else:
                    camera.on_shutter(state)
    finally:
        if camera is not None and hasattr(camera, "cleanup"):
            camera.cleanup()
        if camera is not None and hasattr(camera, "cancel"):
            camera.cancel()
        receiver.close()
        if keeper is not None:
            keeper.join(10)
    return 0


def _keep(app: Celeriac, url: str, stop: threading.Event) -> threading.Thread:
    """Feed the event store at ``url`` from the event log until ``stop``, in a thread (it
    resumes from the store's saved cursor: nothing the log still keeps is missed)."""
    from ..monitor.ingest import Ingester, load_redactor
    from ..monitor.store import create_store

    store = create_store(url)
    redactor = load_redactor(app.conf.get("dashboard_redact"))

    def run() -> None:
        try:
            Ingester(app, store, redactor=redactor).run(stop)
        finally:
            store.close()

    thread = threading.Thread(target=run, name="celeriac-event-store", daemon=True)
    thread.start()
    return thread


def _camera(args: argparse.Namespace, state: State) -> Any:
    cls = import_path(args.camera, "camera")
    return cls(state, freq=args.frequency, maxrate=args.maxrate)


def _show(out: TextIO, text: str) -> None:
    if out.isatty():
        out.write("\x1b[H\x1b[2J")  # home, clear the screen
    out.write(text + "\n")
    out.flush()


def _ago(when: float | None) -> str:
    if not when:
        return "-"
    seconds = max(time.time() - when, 0.0)
    if seconds < 60:
        return f"{seconds:.0f}s ago"
    if seconds < 3600:
        return f"{seconds / 60:.0f}m ago"
    return f"{seconds / 3600:.1f}h ago"


def render(state: State, cursor: str | None = None, tasks: int = 20) -> str:
    """The live view: workers, counts by state, and the latest tasks."""
    lines = [
        f"celeriac events  {time.strftime('%H:%M:%S')}  events={state.event_count} "
        f"tasks={state.task_count} cursor={cursor or '-'}",
        "",
        f"{'WORKER':32} {'STATUS':8} {'ACTIVE':>6} {'PROCESSED':>9}  HEARTBEAT",
    ]
    for worker in sorted(state.workers.values(), key=lambda w: w.hostname):
        heartbeat = worker.heartbeats[-1] if worker.heartbeats else worker.offline_at
        status = "online" if worker.alive else "offline"
        lines.append(
            f"{worker.hostname[:32]:32} {status:8} {worker.active:>6} {worker.processed:>9}"
            f"  {_ago(heartbeat)}"
        )
    counts = Counter(task.state for task in state.tasks.values())
    lines += ["", "  ".join(f"{name}={n}" for name, n in sorted(counts.items())) or "no tasks"]
    lost = state.lost_tasks()
    if lost:
        lines.append(f"LOST (started on a worker that is gone): {', '.join(t.uuid for t in lost)}")
    lines += ["", f"{'TIME':8} {'TASK ID':36} {'STATE':8} {'RUNTIME':>8}  NAME / WORKER"]
    for uuid, task in state.tasks_by_time(tasks):
        when = time.strftime("%H:%M:%S", time.localtime(task.timestamp)) if task.timestamp else "-"
        runtime = f"{task.runtime:.3f}s" if task.runtime is not None else "-"
        host = task.worker.hostname if task.worker else "-"
        lines.append(f"{when:8} {uuid:36} {task.state:8} {runtime:>8}  {task.name} / {host}")
    return "\n".join(lines)
