"""``celeriac migrate PATH [--dry-run]``: rewrite a project's imports from Celery to
celeriac, show the changes as a diff, and list what it cannot rewrite.

Rewritten, when celeriac has the module and every name imported from it:
``from celery[.x.y] import ...``, ``import celery`` (as ``import celeriac as celery``, so
``celery.`` in the code keeps working), ``import celery.x.y``, ``from kombu[.x] import
Queue, Exchange, Broadcast`` and ``"celery.contrib.pytest"`` in ``pytest_plugins``. Settings
(``CELERY_...``) and relative imports (a project's own ``celery.py``) stay as they are.
Left as they are, and listed: names celeriac does not have, and imports of
django_celery_beat, django_celery_results and flower, with what replaces them.

``celeriac migrate SOURCE_URL DEST_URL [-Q queues] [-T tasks] [--limit N]`` is Celery's
command: it moves the tasks waiting in the app's queues (or those of ``-Q``) from one broker
to another (see :mod:`celeriac.app.migrate`).
"""

from __future__ import annotations

import argparse
import ast
import importlib
import importlib.util
import os
import re
import sys
from dataclasses import dataclass, field
from typing import Any

from ..app import Celeriac
from .base import EXIT_USAGE, CLIError

#: What replaces the Celery add-ons a project may import (see docs/coming-from-celery.md).
ADDONS = {
    "django_celery_beat": "the app `celeriac.contrib.django.schedules` (the same models: "
    "`from celeriac.contrib.django.schedules.models import PeriodicTask`, an admin, "
    "`celeriac beat -S django`, `manage.py import_django_celery_beat`; docs/django.md); "
    "without Django, `celeriac beat -S db` and `celeriac schedule ...` (docs/scheduling.md)",
    "django_celery_results": "the app `celeriac.contrib.django.results` with "
    "CELERY_RESULT_BACKEND = 'django-db' (the same TaskResult and GroupResult fields; "
    "docs/django.md)",
    "flower": "`celeriac dashboard` (Flower's HTTP API and options; the `dashboard` "
    "extra), and `celeriac inspect ...`, `celeriac status`, `celeriac control ...` "
    "(docs/monitoring.md)",
}
SKIPPED_DIRS = {".git", ".hg", ".tox", ".venv", "venv", "env", "node_modules", "__pycache__",
                "site-packages", "build", "dist", ".mypy_cache", ".ruff_cache"}  # fmt: skip
_PYTEST_PLUGIN = re.compile(r"""(["'])celery\.contrib\.pytest\1""")


@dataclass
class FileResult:
    path: str
    old: str
    new: str
    rewritten: int = 0
    notes: list[str] = field(default_factory=list)


def add_parsers(sub: Any, common: argparse.ArgumentParser) -> None:
    m = sub.add_parser(
        "migrate",
        help="rewrite a project's imports from Celery to celeriac",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    m.add_argument("path", help="a project directory or a Python file (or a broker URL)")
    m.add_argument(
        "celerys_destination",
        nargs="*",
        metavar="DEST_URL",
        help="with a broker URL as PATH: move its waiting tasks to this broker (Celery's migrate)",
    )
    m.add_argument("-n", "--dry-run", action="store_true", help="show the diff, change nothing")
    m.add_argument("-Q", "--queues", help="moving tasks: these queues only (comma-separated)")
    m.add_argument("-T", "--tasks", help="moving tasks: these task names only (comma-separated)")
    m.add_argument("--limit", type=int, help="moving tasks: stop after this many")
    m.set_defaults(func=cmd_migrate)


def _move_tasks(app: Celeriac, args: argparse.Namespace) -> int:
    """Celery's ``migrate SOURCE DEST``: the waiting tasks of one broker moved to another."""
    from ..app.migrate import migrate_tasks

    if "://" not in args.path or len(args.celerys_destination) != 1:
        raise CLIError(
            "celeriac migrate PATH rewrites a project's imports; celeriac migrate SOURCE_URL "
            "DEST_URL moves the tasks waiting in one broker to another",
            EXIT_USAGE,
        )
    source, dest = args.path, args.celerys_destination[0]
    queues = [q.strip() for q in args.queues.split(",") if q.strip()] if args.queues else None
    if args.dry_run:
        raise CLIError("--dry-run rewrites nothing and moves nothing: leave it out", EXIT_USAGE)
    tasks = [t.strip() for t in args.tasks.split(",") if t.strip()] if args.tasks else None
    state = migrate_tasks(source, dest, app=app, queues=queues, tasks=tasks, limit=args.limit)
    print(f"moved {state.filtered} of the {state.count} waiting tasks looked at")
    return 0


def cmd_migrate(app: Celeriac, args: argparse.Namespace) -> int:
    if args.celerys_destination:  # Celery's ``migrate SOURCE DESTINATION``
        return _move_tasks(app, args)
    if not os.path.exists(args.path):
        raise CLIError(
            f"no such file or directory: {args.path} (celeriac migrate PATH rewrites a "
            "project's imports; celeriac migrate SOURCE_URL DEST_URL moves waiting tasks "
            "between brokers)",
            EXIT_USAGE,
        )
    import difflib

    results = [migrate_file(path) for path in python_files(args.path)]
    changed = [r for r in results if r.new != r.old]
    for r in changed:
        shown = os.path.relpath(r.path)
        shown = r.path if shown.startswith("..") else shown
        sys.stdout.writelines(
            difflib.unified_diff(
                r.old.splitlines(keepends=True),
                r.new.splitlines(keepends=True),
                f"a/{shown.lstrip('/')}",
                f"b/{shown.lstrip('/')}",
            )
        )
        if not args.dry_run:
            with open(r.path, "w", encoding="utf-8") as f:
                f.write(r.new)
    notes = [note for r in results for note in r.notes]
    rewritten = sum(r.rewritten for r in results)
    what = "would be rewritten" if args.dry_run else "rewritten"
    print(
        f"\n{rewritten} import{'s' if rewritten != 1 else ''} {what} in {len(changed)} "
        f"file{'s' if len(changed) != 1 else ''} ({len(results)} looked at)."
    )
    if notes:
        print(f"\nNot rewritten ({len(notes)}):")
        for note in notes:
            print(f"  {note}")
    return 1 if notes else 0


def python_files(path: str) -> list[str]:
    if os.path.isfile(path):
        return [path]
    found = []
    for root, dirs, files in os.walk(path):
        dirs[:] = sorted(d for d in dirs if d not in SKIPPED_DIRS and not d.endswith(".egg-info"))
        found += [os.path.join(root, f) for f in sorted(files) if f.endswith(".py")]
    return found


def migrate_file(path: str) -> FileResult:
    with open(path, encoding="utf-8") as f:
        old = f.read()
    result = FileResult(path, old, old)
    try:
        tree = ast.parse(old, path)
    except SyntaxError as exc:
        if "celery" in old:
            result.notes.append(f"{path}:{exc.lineno}: not read (syntax error: {exc.msg})")
        return result
    lines = old.splitlines(keepends=True)
    edits: dict[int, str] = {}  # line index -> its new text
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            _from_import(node, lines, edits, result)
        elif isinstance(node, ast.Import):
            _import(node, lines, edits, result)
    for index, text in edits.items():
        lines[index] = text
    new = "".join(lines)
    new, plugins = _PYTEST_PLUGIN.subn(r"\1celeriac.contrib.pytest\1", new)
    result.new, result.rewritten = new, result.rewritten + plugins
    return result


def _root(module: str) -> str:
    return module.partition(".")[0]


def _from_import(
    node: ast.ImportFrom, lines: list[str], edits: dict[int, str], result: FileResult
) -> None:
    module = node.module or ""
    root = _root(module)
    where = f"{result.path}:{node.lineno}"
    if node.level or root not in ("celery", "kombu", *ADDONS):
        return
    names = [a.name for a in node.names]
    if root in ADDONS:
        result.notes.append(f"{where}: from {module} import ...: {ADDONS[root]}")
        return
    if root == "kombu":
        target = "celeriac"
        missing = [n for n in names if not _has("celeriac", n)]
        if missing:
            result.notes.append(
                f"{where}: from {module} import {', '.join(missing)}: celeriac has no "
                f"{', '.join(missing)} (it has Queue, Exchange and Broadcast)"
            )
            return
    else:
        target = "celeriac" + module[len("celery") :]
        if not _module_exists(target):
            result.notes.append(f"{where}: from {module} import ...: celeriac has no {target}")
            return
        missing = [n for n in names if n != "*" and not _has(target, n)]
        if missing:
            result.notes.append(
                f"{where}: from {module} import {', '.join(missing)}: {target} has no "
                f"{', '.join(missing)}"
            )
            return
    index = node.lineno - 1
    text = edits.get(index, lines[index])
    pattern = re.compile(r"(\bfrom\s+)" + re.escape(module) + r"(?=\s+import\b)")
    replaced, count = pattern.subn(lambda m: m.group(1) + target, text, count=1)
    if count:
        edits[index] = replaced
        result.rewritten += 1
    else:  # the module's name is split over lines: leave it, and say so
        result.notes.append(f"{where}: from {module} import ...: rewrite it by hand ({target})")


def _import(node: ast.Import, lines: list[str], edits: dict[int, str], result: FileResult) -> None:
    where = f"{result.path}:{node.lineno}"
    ours = [a for a in node.names if _root(a.name) in ("celery", "kombu", *ADDONS)]
    if not ours:
        return
    for alias in ours:
        root = _root(alias.name)
        if root in ADDONS:
            result.notes.append(f"{where}: import {alias.name}: {ADDONS[root]}")
            return
        if root == "kombu":
            result.notes.append(
                f"{where}: import {alias.name}: use celeriac's Queue, Exchange and Broadcast "
                "(from celeriac import Queue)"
            )
            return
        target = "celeriac" + alias.name[len("celery") :]
        if not _module_exists(target):
            result.notes.append(f"{where}: import {alias.name}: celeriac has no {target}")
            return
    if node.lineno != node.end_lineno:
        result.notes.append(f"{where}: an import over several lines: rewrite it by hand")
        return
    parts, extra = [], False
    for alias in node.names:
        name, asname = alias.name, alias.asname
        if _root(name) != "celery":
            parts.append(f"{name} as {asname}" if asname else name)
            continue
        target = "celeriac" + name[len("celery") :]
        if asname:
            parts.append(f"{target} as {asname}")
        elif target == "celeriac":
            parts.append("celeriac as celery")
        else:
            parts.append(target)
            extra = True  # ``celery.x.y`` in the code needs the name ``celery``
    index = node.lineno - 1
    text = edits.get(index, lines[index])
    indent = text[: len(text) - len(text.lstrip())]
    segment = lines[index][node.col_offset : node.end_col_offset]
    statement = "import " + ", ".join(parts)
    if extra:
        statement += f"\n{indent}import celeriac as celery"
    edits[index] = text.replace(segment, statement, 1)
    result.rewritten += 1


def _module_exists(name: str) -> bool:
    try:
        return importlib.util.find_spec(name) is not None
    except (ImportError, ValueError):
        return False


def _has(module_name: str, name: str) -> bool:
    """Does celeriac's ``module_name`` offer ``name`` (an attribute or a submodule)?"""
    if _module_exists(f"{module_name}.{name}"):
        return True
    try:
        module = importlib.import_module(module_name)
    except Exception:  # it needs what is not installed (Django, Sentry): cannot tell
        return True
    return hasattr(module, name)
