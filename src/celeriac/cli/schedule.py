"""``celeriac schedule list|add|enable|disable|remove|run-now``: the database schedule."""

from __future__ import annotations

import argparse
import datetime as dt
import sys
from typing import Any

from ..app import Celeriac
from .base import CLIError, json_arg


def add_parsers(sub: Any, common: argparse.ArgumentParser) -> None:
    s = sub.add_parser(
        "schedule", parents=[common], help="list and edit the database schedule (beat -S db)"
    )
    s.add_argument("--db", help="the schedule's database URL (default: see docs/scheduling.md)")
    actions = s.add_subparsers(dest="action", metavar="ACTION", required=True)
    actions.add_parser("list", help="the periodic tasks, their schedules and last runs")
    add = actions.add_parser("add", help="add a periodic task, or change one")
    add.add_argument("name")
    add.add_argument("task", help="task name, e.g. proj.tasks.report")
    when = add.add_mutually_exclusive_group(required=True)
    when.add_argument("--every", type=float, metavar="SECONDS")
    when.add_argument("--cron", metavar="'M H DOM MON DOW'", help="e.g. '30 7 * * 1'")
    when.add_argument("--at", metavar="ISO-TIME", help="once, at this time (a one-off)")
    when.add_argument("--solar", nargs=3, metavar=("EVENT", "LAT", "LON"))
    add.add_argument("--tz", help="time zone of --cron, e.g. Europe/London")
    add.add_argument("-a", "--args", default="[]", help="JSON list")
    add.add_argument("-k", "--kwargs", default="{}", help="JSON object")
    add.add_argument("--queue")
    add.add_argument("--priority", type=int)
    add.add_argument("--one-off", action="store_true", help="disable it after one run")
    add.add_argument("--max-active", type=int, help="skip a run while this many are unfinished")
    add.add_argument("--disabled", action="store_true")
    for name, text in (
        ("enable", "enable a periodic task"),
        ("disable", "disable a periodic task"),
        ("remove", "delete a periodic task"),
        ("run-now", "send a periodic task's task now"),
    ):
        actions.add_parser(name, help=text).add_argument("name")
    s.set_defaults(func=cmd_schedule)


def cmd_schedule(app: Celeriac, args: argparse.Namespace) -> int:
    from ..beat.database import PeriodicTasks  # beat's modules only for this command

    tasks = PeriodicTasks(app, args.db)
    try:
        if args.action == "list":
            _print_list(tasks)
        elif args.action == "add":
            entry = tasks.add(
                args.name,
                args.task,
                _schedule(args, app),
                json_arg(args.args, "args"),
                json_arg(args.kwargs, "kwargs"),
                {k: v for k in ("queue", "priority") if (v := getattr(args, k)) is not None},
                enabled=not args.disabled,
                one_off=args.one_off or bool(args.at),
                max_active=args.max_active,
            )
            print(f"{entry.name}: {_describe(entry.schedule)} -> {entry.task}")
        elif args.action == "run-now":
            print(tasks.run_now(args.name).id)
        else:
            {"enable": tasks.enable, "disable": tasks.disable, "remove": tasks.remove}[args.action](
                args.name
            )
            print(f"{args.name}: {args.action}d")
    except KeyError as exc:
        raise CLIError(str(exc.args[0])) from None
    except ValueError as exc:
        raise CLIError(str(exc)) from None
    finally:
        tasks.close()
    return 0


def _schedule(args: argparse.Namespace, app: Celeriac) -> Any:
    from ..schedules import clocked, crontab, schedule, solar

    if args.every is not None:
        return schedule(args.every, app=app)
    if args.cron:
        return crontab.from_string(args.cron, tz=args.tz, app=app)
    if args.at:
        when = dt.datetime.fromisoformat(args.at)
        return clocked(when if when.tzinfo else when.replace(tzinfo=app.timezone), app=app)
    event, lat, lon = args.solar
    return solar(event, float(lat), float(lon), app=app)


def _describe(schedule: Any) -> str:
    human = getattr(schedule, "human", None)
    return str(human()) if callable(human) else repr(schedule)


def _print_list(tasks: Any) -> None:
    entries = tasks.all()
    if not entries:
        print("no periodic tasks", file=sys.stderr)
    for e in entries:
        last = e.last_run_at.isoformat(timespec="seconds") if e.last_run_at else "never"
        state = "enabled" if e.enabled else "disabled"
        print(
            f"{e.name}\t{e.task}\t{_describe(e.schedule)}\t{state}\t"
            f"last run {last}\truns {e.total_run_count}"
        )
