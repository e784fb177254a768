"""``celeriac worker`` and ``celeriac beat``: the long-running processes."""

from __future__ import annotations

import argparse
import signal
import sys
from typing import Any

from .. import __version__
from ..app import Celeriac
from ..beat import Beat
from ..beat.database import DatabaseStore
from ..beat.service import FileStore
from ..utils.log import setup_logging
from ..utils.urls import safe_url
from ..worker import Worker


def add_parsers(sub: Any, common: argparse.ArgumentParser) -> None:
    w = sub.add_parser("worker", parents=[common], help="run a worker")
    w.add_argument("-Q", "--queues", help="comma-separated queues to consume")
    w.add_argument("-X", "--exclude-queues", help="queues not to consume")
    w.add_argument("-c", "--concurrency", type=int, help="number of pool processes/threads")
    w.add_argument("-P", "--pool", choices=["prefork", "processes", "threads", "asyncio", "solo"])
    w.add_argument("-l", "--loglevel", default="WARNING", help="DEBUG, INFO, WARNING, ERROR")
    w.add_argument("-f", "--logfile", help="log to this file instead of stderr")
    w.add_argument("-n", "--hostname", help="node name, e.g. worker1@%%h")
    w.add_argument("--prefetch-multiplier", type=int)
    w.add_argument("--max-tasks-per-child", type=int)
    w.add_argument("--burst", action="store_true", help="exit when the queues are empty")
    w.add_argument("-q", "--quiet", action="store_true", help="no start-up banner")
    w.add_argument("-B", "--beat", action="store_true", help="also run beat in this process")
    w.set_defaults(func=cmd_worker)

    b = sub.add_parser("beat", parents=[common], help="send periodic tasks when they are due")
    b.add_argument("-s", "--schedule", help="file keeping the run state (file scheduler)")
    b.add_argument(
        "-S", "--scheduler", default="file", help="'file' (default) or 'db' (SQL tables)"
    )
    b.add_argument("--max-interval", type=float, help="longest sleep between checks (s)")
    b.add_argument("-l", "--loglevel", default="WARNING", help="DEBUG, INFO, WARNING, ERROR")
    b.add_argument("-f", "--logfile", help="log to this file instead of stderr")
    b.set_defaults(func=cmd_beat)


def cmd_worker(app: Celeriac, args: argparse.Namespace) -> int:
    setup_logging(
        args.loglevel,
        args.logfile,
        app.conf.worker_log_format,
        app.conf.worker_task_log_format,
        app.conf.worker_hijack_root_logger,
    )
    worker = Worker(
        app,
        queues=args.queues,
        exclude_queues=args.exclude_queues,
        concurrency=args.concurrency,
        pool=args.pool,
        hostname=args.hostname,
        prefetch_multiplier=args.prefetch_multiplier,
        max_tasks_per_child=args.max_tasks_per_child,
        burst=args.burst,
        beat=args.beat,
    )
    if not args.quiet:
        print(_banner(app, worker), file=sys.stderr, flush=True)
    return worker.start()


def cmd_beat(app: Celeriac, args: argparse.Namespace) -> int:
    setup_logging(args.loglevel, args.logfile)
    store: Any
    if args.scheduler in ("db", "database"):
        store = DatabaseStore(app)
    else:
        store = FileStore(app, args.schedule)
    beat = Beat(app, store, max_interval=args.max_interval)
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: beat.stop())
    print(
        f"celeriac {__version__} beat: broker {safe_url(app.broker.url)}, "
        f"schedule {getattr(store, 'where', getattr(store, 'path', ''))}",
        file=sys.stderr,
        flush=True,
    )
    beat.run()
    return 0


def _banner(app: Celeriac, worker: Any) -> str:
    tasks = sorted(app.tasks.regular())
    lines = [
        f"celeriac {__version__} {worker.hostname}",
        f"  app:         {app.main or '__main__'}",
        f"  broker:      {safe_url(app.broker.url)}",
        f"  results:     {safe_url(app.backend.url) if app.backend else 'disabled'}",
        f"  pool:        {worker.pool_name} (concurrency {worker.concurrency})",
        f"  queues:      {', '.join(worker.queues)}",
        "  tasks:",
        *(f"    . {t}" for t in tasks),
    ]
    return "\n".join(lines)
