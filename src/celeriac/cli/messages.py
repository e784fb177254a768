"""``celeriac call|result|queues|purge|dlq``: send tasks, read results, look at queues, empty
queues and dead-letter queues."""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from typing import Any

from ..app import Celeriac
from ..brokers.base import QueueStats, dead_letter_queue
from ..routing import app_queues
from .base import json_arg


def add_parsers(sub: Any, common: argparse.ArgumentParser) -> None:
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

    s = sub.add_parser(
        "queues", parents=[common], help="messages waiting, in flight, delayed and dead per queue"
    )
    s.add_argument("-Q", "--queues", help="comma-separated queues (default: the app's)")
    s.add_argument("-j", "--json", action="store_true", help="a JSON list, an object per queue")
    s.set_defaults(func=cmd_queues)

    p = sub.add_parser("purge", parents=[common], help="delete waiting messages")
    p.add_argument("-Q", "--queues")
    p.add_argument("-f", "--force", action="store_true", help="do not ask for confirmation")
    p.set_defaults(func=cmd_purge)

    d = sub.add_parser("dlq", parents=[common], help="list, requeue or purge dead letters")
    d.add_argument("action", choices=["list", "requeue", "purge"])
    d.add_argument("-Q", "--queue")
    d.add_argument("--limit", type=int, default=100)
    d.set_defaults(func=cmd_dlq)


def cmd_call(app: Celeriac, args: argparse.Namespace) -> int:
    options: dict[str, Any] = {}
    for key in ("countdown", "eta", "expires", "priority", "queue", "serializer"):
        value = getattr(args, key)
        if value is not None:
            options[key] = value
    result = app.send_task(
        args.name, json_arg(args.args, "args"), json_arg(args.kwargs, "kwargs"), **options
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


def cmd_queues(app: Celeriac, args: argparse.Namespace) -> int:
    if args.queues:
        names = list(dict.fromkeys(q.strip() for q in args.queues.split(",") if q.strip()))
    else:
        names = app_queues(app)
    stats = [app.broker.queue_stats(name) for name in names]
    if args.json:
        print(json.dumps([dataclasses.asdict(s) for s in stats], indent=2))
    else:
        print(stats_table(stats))
    return 0


def stats_table(stats: list[QueueStats]) -> str:
    """``stats`` as an aligned table; "-" where the broker cannot tell."""
    header = ("queue", "waiting", "in-flight", "delayed", "dead", "oldest")
    rows = [header] + [
        (
            s.queue,
            _count(s.waiting),
            _count(s.in_flight),
            _count(s.delayed),
            _count(s.dead_lettered),
            age(s.oldest_age),
        )
        for s in stats
    ]
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    return "\n".join(
        "  ".join(
            cell.ljust(width) if i == 0 else cell.rjust(width)
            for i, (cell, width) in enumerate(zip(row, widths, strict=True))
        ).rstrip()
        for row in rows
    )


def _count(value: int | None) -> str:
    return "-" if value is None else str(value)


def age(seconds: float | None) -> str:
    """A short age: ``12.3s``, ``4m``, ``2h``, ``3d`` (whole units, rounded down); "-" for None."""
    if seconds is None:
        return "-"
    if seconds < 59.95:  # what would print as 60.0s is a minute
        return f"{seconds:.1f}s"
    if seconds < 3600:
        return f"{max(int(seconds // 60), 1)}m"
    if seconds < 86400:
        return f"{int(seconds // 3600)}h"
    return f"{int(seconds // 86400)}d"


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
