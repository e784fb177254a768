"""``celeriac inspect|status|control``: ask and tell the running workers."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from ..app import Celeriac

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
    "conf",
    "clock",
    "report",
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


def add_parsers(sub: Any, common: argparse.ArgumentParser) -> None:
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
