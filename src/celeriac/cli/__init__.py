"""The ``celeriac`` command: worker, beat, schedule, call, result, purge, dlq, inspect,
status, control, multi, shell, report, events and migrate; one module per group of
commands.

celeriac -A proj worker -l info -c 4 -Q default,high
celeriac -A proj call proj.tasks.add --args '[1, 2]'
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

from .. import __version__
from ..app import Celeriac
from ..exceptions import CeleriacError
from . import control, imports, messages, multi, schedule, tools, worker
from .base import EXIT_USAGE, CLIError, find_app

__all__ = ["CLIError", "build_parser", "find_app", "main"]


def build_parser() -> argparse.ArgumentParser:
    """The parser of every command."""
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

    for commands in (worker, schedule, messages, control, multi, tools, imports):
        commands.add_parsers(sub, common)
    return parser


def main(argv: Sequence[str] | None = None) -> None:
    """Entry point of the ``celeriac`` command."""
    parser = build_parser()
    args = parser.parse_args(list(argv) if argv is not None else None)
    if not getattr(args, "command", None):
        parser.print_help()
        sys.exit(EXIT_USAGE)
    try:
        if getattr(args, "skip_checks", False):
            os.environ["CELERIAC_SKIP_CHECKS"] = "1"
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
