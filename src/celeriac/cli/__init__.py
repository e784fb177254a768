"""The ``celeriac`` command: worker, beat, schedule, call, result, queues, purge, dlq,
inspect, status, control, multi, shell, report, events, dashboard, alerts and migrate; one
module per group of commands.

celeriac -A proj worker -l info -c 4 -Q default,high
celeriac -A proj call proj.tasks.add --args '[1, 2]'
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

from .. import __version__, signals
from ..app import Celeriac
from ..exceptions import CeleriacError
from . import (
    alerts,
    control,
    dashboard,
    imports,
    messages,
    monitor,
    multi,
    schedule,
    tools,
    worker,
)
from .base import EXIT_USAGE, CLIError, add_user_options, find_app, user_option_values

__all__ = ["CLIError", "build_parser", "find_app", "main"]


def build_parser(
    app: Celeriac | None = None, user_dests: dict[str, list[str]] | None = None
) -> argparse.ArgumentParser:
    """The parser of every command (with ``app``'s own options, ``app.user_options``).
    ``user_dests`` is filled with the destination names of those options, by group
    (``"preload"`` or a command's name)."""
    dests = user_dests if user_dests is not None else {}
    common = argparse.ArgumentParser(add_help=False)
    if app is not None:
        dests["preload"] = add_user_options(common, app.user_options["preload"])
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
    common.add_argument(
        "--skip-checks", action="store_true", default=argparse.SUPPRESS, help="no Django checks"
    )
    common.add_argument("-C", "--no-color", action="store_true", default=argparse.SUPPRESS)
    common.add_argument("--loader", default=argparse.SUPPRESS, help=argparse.SUPPRESS)
    parser = argparse.ArgumentParser(
        prog="celeriac", parents=[common], description="celeriac: a distributed task queue"
    )
    parser.add_argument("--version", action="version", version=f"celeriac {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    for commands in (
        worker,
        schedule,
        messages,
        control,
        multi,
        tools,
        monitor,
        dashboard,
        alerts,
        imports,
    ):
        commands.add_parsers(sub, common)
    for name, command in sub.choices.items():
        if app is not None and app.user_options.get(name):
            dests[name] = add_user_options(command, app.user_options[name])
    return parser


def _early(argv: list[str]) -> argparse.Namespace:
    """``-A``, ``--workdir`` and ``--skip-checks``, read before the rest: the app's own
    options are known once it is loaded."""
    early = argparse.ArgumentParser(add_help=False)
    early.add_argument("-A", "--app")
    early.add_argument("--workdir")
    early.add_argument("--skip-checks", action="store_true")
    return early.parse_known_args(argv)[0]


def main(argv: Sequence[str] | None = None) -> None:
    """Entry point of the ``celeriac`` command."""
    argv = list(argv) if argv is not None else sys.argv[1:]
    try:
        early = _early(argv)
        if early.skip_checks:
            os.environ["CELERIAC_SKIP_CHECKS"] = "1"
        if early.workdir:
            os.chdir(early.workdir)
        app = find_app(early.app) if early.app else Celeriac()
        user_dests: dict[str, list[str]] = {}
        parser = build_parser(app, user_dests)
        args = parser.parse_args(argv)
        if not getattr(args, "command", None):
            parser.print_help()
            sys.exit(EXIT_USAGE)
        if getattr(args, "config", None):
            app.config_from_object(args.config)
        if getattr(args, "broker", None):
            app.conf.broker_url = args.broker
        if getattr(args, "result_backend", None):
            app.conf.result_backend = args.result_backend
        args.user_options = user_option_values(args, user_dests.get(args.command, ()))
        preload = user_option_values(args, user_dests.get("preload", ()))
        signals.user_preload_options.send(sender=app, app=app, options=preload)
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
