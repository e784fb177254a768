"""Plug-ins: what a URL scheme or a name selects, found by entry point.

A technology is one module plus its entry points; nothing else in celeriac names it. The
groups, each mapping a name (a URL scheme, for the first three) to ``module:attribute``:

* ``celeriac.brokers``: a :class:`~celeriac.brokers.base.Broker` class;
* ``celeriac.backends``: a :class:`~celeriac.backends.base.ResultBackend` class. A broker
  whose scheme is also a result backend keeps results in its own store when no
  ``result_backend`` is set;
* ``celeriac.databases``: an SQL database class (``run`` statements with ``?`` placeholders,
  ``identity_column``), for the database schedule;
* ``celeriac.routers``: a router, by the name ``task_routes`` gives it;
* ``celeriac.fixups``: an object every app calls ``install(app)`` on when it is created,
  whose ``packages()`` are what ``app.autodiscover_tasks()`` imports when given none
  (Django's installed apps).

celeriac's own are declared in its ``pyproject.toml`` like anyone else's. The entry points
are read straight from the installed distributions' ``entry_points.txt`` files, once per
process: importing ``importlib.metadata`` would cost every worker and producer about 50 ms.
"""

from __future__ import annotations

import functools
import os
import sys
from typing import Any

from .exceptions import ImproperlyConfigured
from .utils.imports import symbol_by_name
from .utils.urls import safe_url, scheme

BROKERS = "celeriac.brokers"
BACKENDS = "celeriac.backends"
DATABASES = "celeriac.databases"
ROUTERS = "celeriac.routers"
FIXUPS = "celeriac.fixups"


def entry_points(group: str) -> dict[str, str]:
    """Name -> ``module:attribute`` of the installed entry points of ``group`` (the first
    distribution on ``sys.path`` wins a name)."""
    return dict(_read_all(tuple(sys.path)).get(group, {}))


@functools.lru_cache(maxsize=4)
def _read_all(path: tuple[str, ...]) -> dict[str, dict[str, str]]:
    groups: dict[str, dict[str, str]] = {}
    for directory in path:
        try:
            names = sorted(os.listdir(directory or "."))
        except OSError:
            continue
        for name in names:
            if not name.endswith((".dist-info", ".egg-info")):
                continue
            try:
                with open(os.path.join(directory or ".", name, "entry_points.txt")) as f:
                    text = f.read()
            except OSError:
                continue
            for group, entries in _parse(text).items():
                found = groups.setdefault(group, {})
                for key, value in entries.items():
                    found.setdefault(key, value)
    return groups


def _parse(text: str) -> dict[str, dict[str, str]]:
    """The sections of an ``entry_points.txt`` (an INI file of ``name = module:attr``)."""
    sections: dict[str, dict[str, str]] = {}
    current: dict[str, str] | None = None
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line[0] in "#;":
            continue
        if line.startswith("[") and line.endswith("]"):
            current = sections.setdefault(line[1:-1].strip(), {})
        elif current is not None and "=" in line:
            key, _, value = line.partition("=")
            current[key.strip()] = value.strip()
    return sections


def load(group: str, name: str, what: str) -> Any:
    """The object registered under ``name`` in ``group``, with an error naming what is
    installed when there is none (``what`` says what was asked for)."""
    target = entry_points(group).get(name)
    if target is None:
        known = ", ".join(sorted(entry_points(group))) or "none"
        raise ImproperlyConfigured(f"no {what} named {name!r} (installed: {known})")
    return symbol_by_name(target.replace(" ", ""))


def import_path(path: str, what: str) -> Any:
    """The object a dotted path names (``"proj.routers.route"`` or ``"proj.routers:route"``),
    with an error saying ``what`` could not be imported when it cannot."""
    try:
        return symbol_by_name(path)
    except (ImportError, AttributeError, ValueError) as exc:
        raise ImproperlyConfigured(f"cannot import {what} {path!r}: {exc}") from None


def for_url(group: str, url: str, what: str) -> Any:
    """The class registered for ``url``'s scheme in ``group``."""
    known = entry_points(group)
    if not known:
        raise ImproperlyConfigured(
            f"no {what} plug-ins are installed ({group} entry points): celeriac must be "
            "installed to find them (pip install celeriac, or pip install -e . in its source tree)"
        )
    if scheme(url) not in known:
        schemes = ", ".join(sorted(f"{s}://" for s in known))
        message = f"unknown {what} URL {safe_url(url)!r}: use one of {schemes}"
        if "://" not in url or "." in scheme(url):  # a class's path, as Celery takes
            message += (
                f"; a {what} class of the project's own is registered under a URL scheme "
                f"in the {group} entry-point group (docs/architecture.md, 'Adding a broker "
                "or a result backend')"
            )
        raise ImproperlyConfigured(message)
    return load(group, scheme(url), what)


def serves(group: str, url: str) -> bool:
    """Is ``url``'s scheme registered in ``group``?"""
    return scheme(url) in entry_points(group)
