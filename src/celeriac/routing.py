"""Routing: which queue (and priority) a task goes to.

Precedence, as Celery documents: explicit ``apply_async(queue=..., priority=...)`` options,
then ``task_routes``, then the task's own options, then the configuration defaults.

``task_routes`` is a dict (task name, glob or compiled regex -> options), a router callable
``(name, args, kwargs, options, task=None, **kw) -> dict | None``, a dotted path to one, or a
list of those, tried in order.
"""

from __future__ import annotations

import fnmatch
import importlib
import re
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from .exceptions import ImproperlyConfigured

RouterFn = Callable[..., Mapping[str, Any] | str | None]


class MapRouter:
    """Routes by exact name first, then glob and regex patterns in definition order."""

    def __init__(self, routes: Mapping[Any, Any]) -> None:
        self.exact: dict[str, Mapping[str, Any]] = {}
        self.patterns: list[tuple[re.Pattern[str], Mapping[str, Any]]] = []
        for key, value in routes.items():
            route = {"queue": value} if isinstance(value, str) else value
            if isinstance(key, re.Pattern):
                self.patterns.append((key, route))
            elif any(c in key for c in "*?["):
                self.patterns.append((re.compile(fnmatch.translate(key)), route))
            else:
                self.exact[key] = route

    def __call__(self, name: str, *args: Any, **kwargs: Any) -> Mapping[str, Any] | None:
        if name in self.exact:
            return self.exact[name]
        for pattern, route in self.patterns:
            if pattern.match(name):
                return route
        return None


def _import_router(path: str) -> RouterFn:
    module, _, attr = path.replace(":", ".").rpartition(".")
    try:
        obj = getattr(importlib.import_module(module), attr)
    except (ImportError, AttributeError) as exc:
        raise ImproperlyConfigured(f"cannot import router {path!r}: {exc}") from None
    return obj() if isinstance(obj, type) else obj


def prepare_routers(routes: Any) -> list[RouterFn]:
    """Turn the ``task_routes`` setting into a list of router callables."""
    if not routes:
        return []
    if isinstance(routes, Mapping) or callable(routes) or isinstance(routes, str):
        routes = [routes]
    routers: list[RouterFn] = []
    for r in routes if isinstance(routes, Sequence) else [routes]:
        if isinstance(r, Mapping):
            routers.append(MapRouter(r))
        elif isinstance(r, str):
            routers.append(_import_router(r))
        elif callable(r):
            routers.append(r)
        else:
            raise ImproperlyConfigured(f"task_routes entry {r!r} is not a dict, router or path")
    return routers


def route(
    routers: list[RouterFn],
    name: str,
    args: Any,
    kwargs: Any,
    options: Mapping[str, Any],
    task: Any = None,
) -> dict[str, Any]:
    """The first route any router gives for this call ({} if none)."""
    for router in routers:
        try:
            found = router(name, args, kwargs, options, task=task)
        except TypeError:
            found = router(name, args, kwargs, options)
        if found:
            return {"queue": found} if isinstance(found, str) else dict(found)
    return {}
