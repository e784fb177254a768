"""The ``celeriac`` command: worker, beat, schedule, call, result, purge, dlq.

celeriac -A proj worker -l info -c 4 -Q default,high
celeriac -A proj call proj.tasks.add --args '[1, 2]'
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import sys
from collections.abc import Sequence
from typing import Any

from . import __version__
from .app import Celeriac
from .brokers.base import dead_letter_queue
from .exceptions import CeleriacError
from .utils.urls import safe_url

EXIT_USAGE = 2


class CLIError(Exception):
    """A user error: printed as one line, exit code 1 (or ``code``)."""

    def __init__(self, message: str, code: int = 1) -> None:
        super().__init__(message)
        self.code = code


def find_app(path: str) -> Celeriac:
    """Load an app from ``module``, ``module:attr`` or ``module.attr`` (Celery's -A rules)."""
    app = getattr(path, "app", None)
    if isinstance(app, Celeriac):
        return app
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    module_name, _, attr = path.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name and module_name.startswith(exc.name) and "." in module_name and not attr:
            parent, _, attr = module_name.rpartition(".")
            return _attr_app(importlib.import_module(parent), attr, path)
        raise CLIError(f"Unable to load app {path!r}: {exc}", EXIT_USAGE) from None
    except Exception as exc:
        raise CLIError(
            f"Unable to load app {path!r}: {type(exc).__name__}: {exc}", EXIT_USAGE
        ) from None
    if attr:
        return _attr_app(module, attr, path)
    for name in ("app", "celery"):
        found = getattr(module, name, None)
        if isinstance(found, Celeriac):
            return found
    apps = [v for v in vars(module).values() if isinstance(v, Celeriac)]
    if len(apps) == 1:
        return apps[0]
    try:
        sub = importlib.import_module(f"{module_name}.celery")
    except ModuleNotFoundError:
        sub = None
    if sub is not None:
        for v in vars(sub).values():
            if isinstance(v, Celeriac):
                return v
    raise CLIError(
        f"Unable to load app {path!r}: no celeriac app found in it "
        "(looked for 'app', 'celery' and a '.celery' module)",
        EXIT_USAGE,
    )


def _attr_app(module: Any, attr: str, path: str) -> Celeriac:
    found = getattr(module, attr, None)
    if callable(found) and not isinstance(found, Celeriac):
        found = found()
    if not isinstance(found, Celeriac):
        raise CLIError(f"Unable to load app {path!r}: {attr!r} is not a celeriac app", EXIT_USAGE)
    return found


def _json_arg(value: str, what: str) -> Any:
    try:
        return json.loads(value)
    except json.JSONDecodeError as exc:
        raise CLIError(f"--{what} is not valid JSON: {exc}", EXIT_USAGE) from None


# -- commands -------------------------------------------------------------------------------


def cmd_worker(app: Celeriac, args: argparse.Namespace) -> int:
    from .utils.log import setup_logging
    from .worker import Worker

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
    import signal

    from .beat import Beat
    from .beat.service import FileStore
    from .utils.log import setup_logging

    setup_logging(args.loglevel, args.logfile)
    store: Any
    if args.scheduler in ("db", "database"):
        from .beat.database import DatabaseStore

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


def cmd_call(app: Celeriac, args: argparse.Namespace) -> int:
    options: dict[str, Any] = {}
    for key in ("countdown", "eta", "expires", "priority", "queue", "serializer"):
        value = getattr(args, key)
        if value is not None:
            options[key] = value
    result = app.send_task(
        args.name, _json_arg(args.args, "args"), _json_arg(args.kwargs, "kwargs"), **options
    )
    print(result.id)
    return 0


def cmd_result(app: Celeriac, args: argparse.Namespace) -> int:
    result = app.AsyncResult(args.task_id)
    if args.wait is not None:
        result.get(timeout=args.wait, propagate=False)
    if args.traceback:
        print(result.traceback or "")
        return 0
    value = result.result
    print(
        json.dumps(
            {
                "id": result.id,
                "state": result.state,
                "result": value if not isinstance(value, BaseException) else repr(value),
            },
            default=repr,
        )
    )
    return 0


def cmd_purge(app: Celeriac, args: argparse.Namespace) -> int:
    queues = args.queues.split(",") if args.queues else [app.conf.task_default_queue]
    if not args.force:
        answer = input(f"Delete all waiting messages in {', '.join(queues)}? [y/N] ")
        if answer.strip().lower() not in ("y", "yes"):
            print("Nothing purged.")
            return 0
    total = sum(app.broker.purge(q) for q in queues)
    print(
        f"Purged {total} message{'s' if total != 1 else ''} from {len(queues)} queue"
        f"{'s' if len(queues) != 1 else ''}."
    )
    return 0


def cmd_dlq(app: Celeriac, args: argparse.Namespace) -> int:
    queue = args.queue or app.conf.task_default_queue
    broker = app.broker
    if args.action == "list":
        letters = broker.dead_letters(queue, args.limit)
        for dl in letters:
            print(
                json.dumps(
                    {
                        "id": dl.id,
                        "reason": dl.reason,
                        "dead_at": dl.dead_at,
                        "body": dl.body.decode("utf-8", "replace"),
                    }
                )
            )
        print(f"{len(letters)} message(s) in {dead_letter_queue(queue)}", file=sys.stderr)
    elif args.action == "requeue":
        print(f"Requeued {broker.requeue_dead_letters(queue)} message(s) to {queue}.")
    else:
        print(
            f"Deleted {broker.purge_dead_letters(queue)} message(s) from "
            f"{dead_letter_queue(queue)}."
        )
    return 0


INSPECT_METHODS = (
    "ping",
    "stats",
    "active",
    "reserved",
    "scheduled",
    "registered",
    "active_queues",
    "revoked",
    "query_task",
)


def _destination(args: argparse.Namespace) -> list[str] | None:
    return args.destination.split(",") if args.destination else None


def _print_replies(replies: dict[str, Any] | None, as_json: bool) -> int:
    if not replies:
        print("Error: No nodes replied within time constraint.", file=sys.stderr)
        return 1
    if as_json:
        print(json.dumps(replies, default=repr))
        return 0
    for host, reply in sorted(replies.items()):
        print(f"-> {host}: OK")
        if reply not in ({"ok": "pong"}, [], {}):
            print(_indent(json.dumps(reply, indent=2, default=repr)))
        elif reply == []:
            print("    - empty -")
    n = len(replies)
    print(f"\n{n} node{'s' if n != 1 else ''} online.")
    return 0


def _indent(text: str) -> str:
    return "\n".join("    " + line for line in text.splitlines())


def cmd_inspect(app: Celeriac, args: argparse.Namespace) -> int:
    inspect = app.control.inspect(destination=_destination(args), timeout=args.timeout)
    method = getattr(inspect, args.method)
    replies = method(*args.ids) if args.method == "query_task" else method()
    return _print_replies(replies, args.json)


def cmd_status(app: Celeriac, args: argparse.Namespace) -> int:
    replies = app.control.inspect(destination=_destination(args), timeout=args.timeout).ping()
    return _print_replies(replies, args.json)


def cmd_control(app: Celeriac, args: argparse.Namespace) -> int:
    replies = app.control.broadcast(
        args.action, destination=_destination(args), reply=True, timeout=args.timeout
    )
    merged = {host: reply for r in replies or () for host, reply in r.items()}
    return _print_replies(merged, args.json)


# -- parser -----------------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "-A",
        "--app",
        default=argparse.SUPPRESS,
        help="the app: module, module:attr (e.g. proj or proj.celery:app)",
    )
    common.add_argument("-b", "--broker", default=argparse.SUPPRESS, help="broker URL")
    common.add_argument("--result-backend", default=argparse.SUPPRESS, help="result backend URL")
    common.add_argument("--workdir", default=argparse.SUPPRESS, help="change to this directory")
    common.add_argument("--config", default=argparse.SUPPRESS, help="module to load settings from")
    parser = argparse.ArgumentParser(
        prog="celeriac", parents=[common], description="celeriac: a distributed task queue"
    )
    parser.add_argument("--version", action="version", version=f"celeriac {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

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

    from .beat.commands import add_parser as add_schedule_parser

    add_schedule_parser(sub, common)

    c = sub.add_parser("call", parents=[common], help="send a task by name; prints its id")
    c.add_argument("name")
    c.add_argument("-a", "--args", default="[]", help="JSON list of positional arguments")
    c.add_argument("-k", "--kwargs", default="{}", help="JSON object of keyword arguments")
    c.add_argument("--countdown", type=float)
    c.add_argument("--eta", help="ISO 8601 time")
    c.add_argument("--expires", type=float, help="seconds from now")
    c.add_argument("--priority", type=int, help="0 (lowest) to 9 (highest)")
    c.add_argument("--queue")
    c.add_argument("--serializer")
    c.set_defaults(func=cmd_call)

    r = sub.add_parser("result", parents=[common], help="show a task's state and result")
    r.add_argument("task_id")
    r.add_argument("-t", "--traceback", action="store_true")
    r.add_argument("--wait", type=float, metavar="SECONDS", help="wait for it to finish")
    r.set_defaults(func=cmd_result)

    p = sub.add_parser("purge", parents=[common], help="delete waiting messages")
    p.add_argument("-Q", "--queues")
    p.add_argument("-f", "--force", action="store_true", help="do not ask for confirmation")
    p.set_defaults(func=cmd_purge)

    d = sub.add_parser("dlq", parents=[common], help="list, requeue or purge dead letters")
    d.add_argument("action", choices=["list", "requeue", "purge"])
    d.add_argument("-Q", "--queue")
    d.add_argument("--limit", type=int, default=100)
    d.set_defaults(func=cmd_dlq)

    asking = argparse.ArgumentParser(add_help=False, parents=[common])
    asking.add_argument("-d", "--destination", help="comma-separated worker names")
    asking.add_argument("-t", "--timeout", type=float, default=1.0, help="seconds to wait")
    asking.add_argument("-j", "--json", action="store_true", help="print one JSON object")
    i = sub.add_parser("inspect", parents=[asking], help="ask the running workers")
    i.add_argument("method", choices=INSPECT_METHODS)
    i.add_argument("ids", nargs="*", help="task ids (query_task)")
    i.set_defaults(func=cmd_inspect)
    s = sub.add_parser("status", parents=[asking], help="list the workers that answer a ping")
    s.set_defaults(func=cmd_status)
    k = sub.add_parser("control", parents=[asking], help="tell the running workers")
    k.add_argument("action", choices=["shutdown", "ping"])
    k.set_defaults(func=cmd_control)
    return parser


def main(argv: Sequence[str] | None = None) -> None:
    """Entry point of the ``celeriac`` command."""
    parser = build_parser()
    args = parser.parse_args(list(argv) if argv is not None else None)
    if not getattr(args, "command", None):
        parser.print_help()
        sys.exit(EXIT_USAGE)
    try:
        if getattr(args, "workdir", None):
            os.chdir(args.workdir)
        app_path = getattr(args, "app", None)
        app = find_app(app_path) if app_path else Celeriac()
        if getattr(args, "config", None):
            app.config_from_object(args.config)
        if getattr(args, "broker", None):
            app.conf.broker_url = args.broker
        if getattr(args, "result_backend", None):
            app.conf.result_backend = args.result_backend
        code = args.func(app, args)
    except CLIError as exc:
        print(f"Error: {exc}", file=sys.stderr)
        sys.exit(exc.code)
    except CeleriacError as exc:
        print(f"Error: {exc}", file=sys.stderr)
        sys.exit(1)
    except KeyboardInterrupt:
        sys.exit(130)
    sys.exit(code)


if __name__ == "__main__":  # pragma: no cover
    main()
