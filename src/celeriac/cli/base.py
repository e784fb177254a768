"""What every command shares: finding the app, errors, JSON arguments."""

from __future__ import annotations

import argparse
import importlib
import json
import os
import sys
from collections.abc import Iterable
from typing import Any

from ..app import Celeriac

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


def json_arg(value: str, what: str) -> Any:
    try:
        return json.loads(value)
    except json.JSONDecodeError as exc:
        raise CLIError(f"--{what} is not valid JSON: {exc}", EXIT_USAGE) from None


_OPTPARSE_TYPES: dict[str, Any] = {"int": int, "float": float, "string": str, "long": int}


def add_user_options(parser: argparse.ArgumentParser, options: Any) -> list[str]:
    """Add a project's own command-line options (``app.user_options["preload"]`` or
    ``["worker"]``) to ``parser``: click ``Option`` objects (Celery 5), functions given the
    argparse parser (Celery 4) and optparse-style options (Celery 3). Returns the
    destination names of the options added, for :func:`user_option_values`."""
    before = len(parser._actions)
    for option in list(options):
        if hasattr(option, "opts") and hasattr(option, "is_flag"):
            default = None if type(option.default).__name__ == "Sentinel" else option.default
            kwargs: dict[str, Any] = {"dest": option.name, "help": option.help}
            if option.is_flag:
                kwargs.update(action="store_true", default=bool(default))
            elif option.count:
                kwargs.update(action="count", default=default or 0)
            else:
                kwargs.update(type=option.type, default=default)
                if option.multiple:
                    kwargs.update(action="append", default=list(default or ()) or None)
            parser.add_argument(*option.opts, *option.secondary_opts, **kwargs)
        elif hasattr(option, "_long_opts"):
            kwargs = {"dest": option.dest, "help": option.help, "default": option.default}
            if option.action in ("store_true", "store_false", "count", "append"):
                kwargs["action"] = option.action
            elif option.type:
                kwargs["type"] = _OPTPARSE_TYPES.get(option.type, str)
            if str(kwargs["default"]).startswith("NO"):  # optparse's NO_DEFAULT
                kwargs["default"] = None
            parser.add_argument(*option._short_opts, *option._long_opts, **kwargs)
        elif callable(option):
            option(parser)
        else:
            raise CLIError(
                f"app.user_options: {option!r} is not an option celeriac can read (a "
                "click.Option, a function given the argparse parser, or an optparse Option)"
            )
    added = parser._actions[before:]
    return [a.dest for a in added if a.dest != argparse.SUPPRESS]


def user_option_values(args: argparse.Namespace, dests: Iterable[str]) -> dict[str, Any]:
    """The values ``args`` holds for the options whose destination names
    :func:`add_user_options` returned (None for those of another command)."""
    return {dest: getattr(args, dest, None) for dest in dests}
