"""What every command shares: finding the app, errors, JSON arguments."""

from __future__ import annotations

import importlib
import json
import os
import sys
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
