"""``celeriac worker`` and ``celeriac beat``: the long-running processes. Every flag of
Celery's ``worker`` and ``beat`` is accepted; the few that mean nothing here say why."""

from __future__ import annotations

import argparse
import logging
import signal
import sys
from typing import Any

from .. import __version__, signals
from ..app import Celeriac
from ..utils.log import setup_logging
from ..utils.urls import safe_url
from ..worker import Worker
from ..worker.worker import GREEN_POOLS, expand_hostname
from . import daemon

logger = logging.getLogger("celeriac.cli")

#: Celery flags that have nothing to do here, and why (logged when given).
_NOT_NEEDED = {
    "without_gossip": "workers do not gossip; remote control goes through the result backend",
    "without_mingle": "workers do not mingle at start: revocations are read from the backend",
    "statedb": "revoked ids are kept in the result backend, not in a file",
    "optimization": "the prefork pool always hands a job to whichever process is free",
    "executable": "the worker runs on the interpreter that started it",
    "no_color": "logs are not coloured",
    "loader": "settings come from config_from_object; there is no loader to choose",
}


def _daemon_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("-l", "--loglevel", default="WARNING", help="DEBUG, INFO, WARNING, ERROR")
    parser.add_argument("-f", "--logfile", help="log to this file instead of stderr (%%n, %%i)")
    parser.add_argument("--pidfile", help="write the process id here (refused if it runs)")
    parser.add_argument("-D", "--detach", action="store_true", help="run in the background")
    parser.add_argument("--uid", help="run as this user (name or id)")
    parser.add_argument("--gid", help="run with this group (name or id)")
    parser.add_argument("--umask", help="octal umask, e.g. 022")
    parser.add_argument("--executable", help=argparse.SUPPRESS)


def add_parsers(sub: Any, common: argparse.ArgumentParser) -> None:
    w = sub.add_parser("worker", parents=[common], help="run a worker")
    w.add_argument("-Q", "--queues", help="comma-separated queues to consume")
    w.add_argument("-X", "--exclude-queues", help="queues not to consume")
    w.add_argument("-I", "--include", help="comma-separated modules to import")
    w.add_argument("--purge", "--discard", action="store_true", help="empty the queues first")
    w.add_argument("-c", "--concurrency", type=int, help="number of pool processes/threads")
    w.add_argument(
        "-P",
        "--pool",
        choices=["prefork", "processes", "threads", "asyncio", "solo", *GREEN_POOLS],
        help="gevent and eventlet run on the threads pool",
    )
    w.add_argument("--autoscale", metavar="MAX,MIN", help="runs MAX processes (no autoscaling)")
    w.add_argument("-n", "--hostname", help="node name, e.g. worker1@%%h")
    w.add_argument("--prefetch-multiplier", type=int)
    w.add_argument("--max-tasks-per-child", type=int)
    w.add_argument("--max-memory-per-child", type=int, metavar="KB")
    w.add_argument("--time-limit", type=float, help="hard time limit of every task (s)")
    w.add_argument("--soft-time-limit", type=float, help="soft time limit of every task (s)")
    w.add_argument(
        "-E",
        "--task-events",
        "--events",
        action="store_true",
        dest="events",
        help="send task events",
    )
    w.add_argument("-O", "--optimization", choices=["default", "fair"])
    w.add_argument("-S", "--statedb")
    w.add_argument("--without-gossip", action="store_true")
    w.add_argument("--without-mingle", action="store_true")
    w.add_argument("--without-heartbeat", action="store_true", help="send no worker events")
    w.add_argument(
        "--heartbeat-interval", type=float, help="seconds between worker-heartbeat events"
    )
    w.add_argument("--burst", action="store_true", help="exit when the queues are empty")
    w.add_argument(
        "--metrics-port", type=int, metavar="PORT", help="serve Prometheus metrics on this port"
    )
    w.add_argument("--metrics-addr", metavar="ADDR", help="address to serve them on (127.0.0.1)")
    w.add_argument("-B", "--beat", action="store_true", help="also run beat in this process")
    w.add_argument("-s", "--schedule-filename", "--schedule", dest="schedule", help="(-B)")
    w.add_argument("--scheduler", help="(-B) 'file', 'db' or a store class")
    w.add_argument("-q", "--quiet", action="store_true", help="no start-up banner")
    _daemon_options(w)
    w.set_defaults(func=cmd_worker)

    b = sub.add_parser("beat", parents=[common], help="send periodic tasks when they are due")
    b.add_argument("-s", "--schedule", help="file keeping the run state (file scheduler)")
    b.add_argument("-S", "--scheduler", help="'file' (default), 'db' (SQL tables) or a class")
    b.add_argument("--max-interval", type=float, help="longest sleep between checks (s)")
    _daemon_options(b)
    b.set_defaults(func=cmd_beat)


def _say_not_needed(args: argparse.Namespace) -> None:
    for option, why in _NOT_NEEDED.items():
        if getattr(args, option, None):
            flag = "--" + option.replace("_", "-")
            logger.info("%s is accepted and not needed: %s", flag, why)


def cmd_worker(app: Celeriac, args: argparse.Namespace) -> int:
    hostname = expand_hostname(args.hostname)
    logfile = daemon.expand_path(args.logfile, hostname) if args.logfile else None
    daemon.prepare(hostname, args.pidfile, args.detach, args.uid, args.gid, args.umask)
    setup_logging(
        args.loglevel,
        logfile,
        app.conf.worker_log_format,
        app.conf.worker_task_log_format,
        app.conf.worker_hijack_root_logger,
    )
    _say_not_needed(args)
    if args.events:
        app.conf.worker_send_task_events = True
    if args.heartbeat_interval is not None:
        app.conf.event_heartbeat_interval = args.heartbeat_interval
    if args.without_heartbeat:
        app.conf.event_heartbeat_interval = 0  # no worker events at all, as Celery's
    if args.metrics_port is not None:
        app.conf.worker_metrics_port = args.metrics_port
    if args.metrics_addr:
        app.conf.worker_metrics_addr = args.metrics_addr
    concurrency = args.concurrency
    if args.autoscale:
        most = int(args.autoscale.split(",")[0])
        logger.warning("--autoscale: no autoscaling; running %d processes", most)
        concurrency = most
    if args.include:
        app.conf.include = (*app.conf.include, *args.include.split(","))
    if args.time_limit is not None:
        app.conf.task_time_limit = args.time_limit
    if args.soft_time_limit is not None:
        app.conf.task_soft_time_limit = args.soft_time_limit
    if args.max_memory_per_child is not None:
        app.conf.worker_max_memory_per_child = args.max_memory_per_child
    worker = Worker(
        app,
        queues=args.queues,
        exclude_queues=args.exclude_queues,
        concurrency=concurrency,
        pool=args.pool,
        hostname=hostname,
        prefetch_multiplier=args.prefetch_multiplier,
        max_tasks_per_child=args.max_tasks_per_child,
        burst=args.burst,
        beat=args.beat,
        beat_scheduler=args.scheduler,
        beat_schedule=args.schedule,
        **getattr(args, "user_options", {}),  # the project's own options, for its steps
    )
    if args.purge:
        purged = sum(app.broker.purge(q) for q in worker.queues)
        logger.warning("--purge: deleted %d waiting message(s)", purged)
    if not args.quiet:  # once the tasks are imported (Django is set up by then)
        signals.worker_init.connect(
            lambda **_: print(_banner(app, worker), file=sys.stderr, flush=True),
            sender=worker,
        )
    return worker.start()


def cmd_beat(app: Celeriac, args: argparse.Namespace) -> int:
    from ..beat import Beat
    from ..beat.scheduler import open_store

    logfile = daemon.expand_path(args.logfile) if args.logfile else None
    store = open_store(app, args.scheduler, args.schedule)  # a bad one stops here, first
    daemon.prepare(None, args.pidfile, args.detach, args.uid, args.gid, args.umask)
    setup_logging(args.loglevel, logfile)
    _say_not_needed(args)
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
