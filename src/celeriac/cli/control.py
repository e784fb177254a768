"""``celeriac inspect|status|control``: ask and tell the running workers."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from ..app import Celeriac
from ..worker.control import Panel
from .base import EXIT_USAGE, CLIError

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
    "memsample",
    "memdump",
    "objgraph",
)

#: Celery's control commands: their arguments (name, type, required) and whether more
#: arguments follow (task ids).
CONTROL_COMMANDS: dict[str, tuple[tuple[tuple[str, type, bool], ...], bool]] = {
    "revoke": ((), True),
    "revoke_by_stamped_headers": ((), True),
    "terminate": ((("signal", str, True),), True),
    "rate_limit": ((("task_name", str, True), ("rate_limit", str, True)), False),
    "time_limit": (
        (("task_name", str, True), ("soft", float, True), ("hard", float, False)),
        False,
    ),
    "election": ((("id", str, True), ("topic", str, True), ("action", str, False)), False),
    "heartbeat": ((), False),
    "enable_events": ((), False),
    "disable_events": ((), False),
    "add_consumer": (
        (
            ("queue", str, True),
            ("exchange", str, False),
            ("exchange_type", str, False),
            ("routing_key", str, False),
        ),
        False,
    ),
    "cancel_consumer": ((("queue", str, True),), False),
    "pool_grow": ((("n", int, False),), False),
    "pool_shrink": ((("n", int, False),), False),
    "autoscale": ((("max", int, True), ("min", int, False)), False),
    "pool_restart": ((), False),
    "shutdown": ((), False),
    "ping": ((), False),
}


def _destination(args: argparse.Namespace) -> list[str] | None:
    return args.destination.split(",") if args.destination else None


def _print_replies(replies: dict[str, Any] | None, as_json: bool) -> int:
    """Each worker's reply, as Celery prints them; exit code 1 when none came or every one
    is an error."""
    if not replies:
        print("Error: No nodes replied within time constraint.", file=sys.stderr)
        return 1
    errors = [r for r in replies.values() if isinstance(r, dict) and set(r) == {"error"}]
    if as_json:
        print(json.dumps(replies, default=repr))
        return 1 if len(errors) == len(replies) else 0
    for host, reply in sorted(replies.items()):
        if isinstance(reply, dict) and set(reply) == {"error"}:
            print(f"-> {host}: ERROR")
            print(_indent(str(reply["error"])))
            continue
        print(f"-> {host}: OK")
        if isinstance(reply, str):  # memsample, memdump: a text, as Celery's
            print(_indent(reply))
        elif isinstance(reply, dict) and set(reply) == {"ok"} and isinstance(reply["ok"], str):
            if reply["ok"] != "pong":
                print(_indent(reply["ok"]))
        elif reply == []:
            print("    - empty -")
        elif reply != {}:
            print(_indent(json.dumps(reply, indent=2, default=repr)))
    n = len(replies)
    print(f"\n{n} node{'s' if n != 1 else ''} online.")
    return 1 if len(errors) == len(replies) else 0


def _indent(text: str) -> str:
    return "\n".join("    " + line for line in text.splitlines())


def _project_command(app: Celeriac, name: str, kind: str, given: list[str]) -> dict[str, Any]:
    """The arguments of the project's own command ``name`` (``celeriac.worker.control``),
    or a usage error naming the commands there are."""
    app.finalize()  # the modules that define commands are imported
    info = Panel.meta.get(name)
    if info is None:
        known = INSPECT_METHODS if kind == "inspect" else tuple(CONTROL_COMMANDS)
        own = sorted(n for n, i in Panel.meta.items() if i.type == kind)
        raise CLIError(
            f"{kind}: unknown command {name!r} (choose from {', '.join((*known, *own))})",
            EXIT_USAGE,
        )
    if len(given) > len(info.args):
        usage = info.signature or " ".join(n for n, _ in info.args) or "no arguments"
        raise CLIError(f"{kind} {name} takes: {usage}", EXIT_USAGE)
    try:
        return {n: typ(value) for (n, typ), value in zip(info.args, given, strict=False)}
    except ValueError as exc:
        raise CLIError(f"{kind} {name}: {exc}", EXIT_USAGE) from None


def cmd_inspect(app: Celeriac, args: argparse.Namespace) -> int:
    inspect = app.control.inspect(destination=_destination(args), timeout=args.timeout)
    if args.method not in INSPECT_METHODS:
        arguments = _project_command(app, args.method, "inspect", args.ids)
        return _print_replies(inspect._request(args.method, **arguments), args.json)
    method = getattr(inspect, args.method)
    if args.method == "query_task":
        replies = method(*args.ids)
    elif args.method == "registered":
        replies = method(*args.ids)  # Celery's attribute names: registered rate_limit
    elif args.method in ("memdump", "objgraph"):  # [n_samples], [type [num [max_depth]]]
        types = (int,) if args.method == "memdump" else (str, int, int)
        if len(args.ids) > len(types):
            raise CLIError(f"inspect {args.method}: too many arguments", EXIT_USAGE)
        try:
            replies = method(*(typ(v) for typ, v in zip(types, args.ids, strict=False)))
        except ValueError as exc:
            raise CLIError(f"inspect {args.method}: {exc}", EXIT_USAGE) from None
    else:
        replies = method()
    return _print_replies(replies, args.json)


def cmd_status(app: Celeriac, args: argparse.Namespace) -> int:
    replies = app.control.inspect(destination=_destination(args), timeout=args.timeout).ping()
    return _print_replies(replies, args.json)


def _arguments(action: str, given: list[str]) -> tuple[dict[str, Any], list[str]]:
    """The named arguments of ``action`` from the command line, and the rest (task ids)."""
    spec, variadic = CONTROL_COMMANDS[action]
    usage = " ".join(n if required else f"[{n}]" for n, _, required in spec)
    usage += " [task_id ...]" if variadic else ""
    named: dict[str, Any] = {}
    for i, (name, typ, required) in enumerate(spec):
        if i >= len(given):
            if required:
                raise CLIError(f"control {action} takes: {usage}", EXIT_USAGE)
            break
        try:
            named[name] = typ(given[i])
        except ValueError:
            what = f"control {action}: {name} must be a {typ.__name__}"
            raise CLIError(what, EXIT_USAGE) from None
    rest = given[len(spec) :]
    if rest and not variadic:
        raise CLIError(f"control {action} takes: {usage or 'no arguments'}", EXIT_USAGE)
    return named, rest


def cmd_control(app: Celeriac, args: argparse.Namespace) -> int:
    action = args.action
    ids: list[str] = []
    if action not in CONTROL_COMMANDS:
        named = _project_command(app, action, "control", args.arguments)
    else:
        named, ids = _arguments(action, args.arguments)
    if (args.modules or args.reload) and action != "pool_restart":
        raise CLIError(f"control {action}: -M/--module and --reload are pool_restart's", EXIT_USAGE)
    if action == "pool_restart":  # Celery's default: the modules of the app's tasks
        modules = [m for given in args.modules or () for m in given.split(",") if m]
        named = {"modules": modules or None, "reload": args.reload}
    if action in ("revoke", "terminate"):
        if not ids:
            raise CLIError(f"control {action}: give at least one task id", EXIT_USAGE)
        signal = named.get("signal", "SIGTERM").upper()
        signal = signal if signal.startswith("SIG") or signal.isdigit() else f"SIG{signal}"
        try:
            how_ = int(signal) if signal.isdigit() else signal
            app.control.revoke(ids, terminate=action == "terminate", signal=how_)
        except ValueError as exc:
            raise CLIError(str(exc), EXIT_USAGE) from None
        how = f" and stopped with {signal} where they run" if action == "terminate" else ""
        print(
            f"revoked{how}: {', '.join(ids)}\n(kept in the result backend: every worker, one "
            "started later included, applies it within half a second)"
        )
        return 0
    if action == "revoke_by_stamped_headers":  # Celery's name=value arguments
        if not ids:
            raise CLIError(f"control {action}: give at least one name=value", EXIT_USAGE)
        try:
            app.control.revoke_by_stamped_headers(ids)
        except ValueError as exc:
            raise CLIError(str(exc), EXIT_USAGE) from None
        print(
            f"revoked the tasks stamped {', '.join(ids)}\n(kept in the result backend: every "
            "worker, one started later included, applies it within half a second)"
        )
        return 0
    if action == "rate_limit":
        rate = named["rate_limit"]
        try:
            app.control.rate_limit(named["task_name"], rate)  # "0": no limit, as Celery's
        except ValueError as exc:
            raise CLIError(str(exc), EXIT_USAGE) from None
        print(
            f"rate limit of {named['task_name']} set to {rate} on every worker (kept in the "
            "result backend, applied within a heartbeat)"
        )
        return 0
    if action == "election":
        print(
            "election is not needed: celeriac workers hold no elections (beat's leadership "
            "is a lease in the result backend). Nothing was sent."
        )
        return 0
    replies = app.control.broadcast(
        action, named, destination=_destination(args), reply=True, timeout=args.timeout
    )
    merged = {host: reply for r in replies or () for host, reply in r.items()}
    return _print_replies(merged, args.json)


def add_parsers(sub: Any, common: argparse.ArgumentParser) -> None:
    asking = argparse.ArgumentParser(add_help=False, parents=[common])
    asking.add_argument("-d", "--destination", help="comma-separated worker names")
    asking.add_argument("-t", "--timeout", type=float, default=1.0, help="seconds to wait")
    asking.add_argument("-j", "--json", action="store_true", help="print one JSON object")
    i = sub.add_parser("inspect", parents=[asking], help="ask the running workers")
    i.add_argument(
        "method", help=f"{', '.join(INSPECT_METHODS)}, or a command of the project's own"
    )
    i.add_argument("ids", nargs="*", help="task ids (query_task), attributes (registered)")
    i.set_defaults(func=cmd_inspect)
    s = sub.add_parser("status", parents=[asking], help="list the workers that answer a ping")
    s.set_defaults(func=cmd_status)
    k = sub.add_parser("control", parents=[asking], help="tell the running workers")
    k.add_argument(
        "action", help=f"{', '.join(CONTROL_COMMANDS)}, or a command of the project's own"
    )
    k.add_argument("arguments", nargs="*", help="the command's arguments (see docs)")
    k.add_argument(
        "-M",
        "--module",
        dest="modules",
        action="append",
        help="pool_restart: a module to import, or to reload with --reload (repeat, or "
        "separate with commas; default: the modules of the app's tasks)",
    )
    k.add_argument(
        "--reload", action="store_true", help="pool_restart: reload modules already imported"
    )
    k.set_defaults(func=cmd_control)
