"""``celeriac call|result|purge|dlq``: send tasks, read results, empty queues and
dead-letter queues."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from ..app import Celeriac
from ..brokers.base import dead_letter_queue
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
