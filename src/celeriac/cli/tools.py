"""``celeriac shell``, ``celeriac report``, ``flower`` (which points to ``celeriac
dashboard``), and Celery's other commands celeriac has no counterpart for, each refused with
what to use instead."""

from __future__ import annotations

import argparse
import platform
import sys
from typing import Any

from .. import __version__
from ..app import Celeriac
from ..utils.urls import safe_url
from .base import CLIError

#: The distributions whose versions ``report`` shows when they are installed: the drivers
#: and integrations celeriac uses.
DRIVERS = ("redis", "hiredis", "pika", "psycopg", "msgpack", "sentry-sdk", "django", "flask")


def add_parsers(sub: Any, common: argparse.ArgumentParser) -> None:
    s = sub.add_parser("shell", parents=[common], help="a Python shell with the app loaded")
    s.add_argument("-I", "--ipython", action="store_true", help="IPython (default)")
    s.add_argument("-B", "--bpython", action="store_true", help="bpython")
    s.add_argument("--python", action="store_true", help="the plain Python shell")
    s.add_argument("-T", "--without-tasks", action="store_true", help="no tasks in the namespace")
    s.add_argument("--eventlet", action="store_true", help=argparse.SUPPRESS)
    s.add_argument("--gevent", action="store_true", help=argparse.SUPPRESS)
    s.set_defaults(func=cmd_shell)

    r = sub.add_parser("report", parents=[common], help="versions and settings for a bug report")
    r.set_defaults(func=cmd_report)

    f = sub.add_parser(
        "flower", parents=[common], help="(Flower runs on Celery only: use celeriac dashboard)"
    )
    for name in FLOWER_OPTIONS:
        f.add_argument(f"--{name}", nargs="?", help=argparse.SUPPRESS)
    f.set_defaults(func=cmd_flower)

    for name, (what, instead) in CELERY_ONLY.items():
        c = sub.add_parser(name, parents=[common], help=f"(Celery's: {what}; not in celeriac)")
        c.add_argument("rest", nargs=argparse.REMAINDER, help=argparse.SUPPRESS)
        c.set_defaults(func=_not_in_celeriac, what=(name, what, instead))


#: Celery's commands celeriac has no counterpart for: what each does there, and what to use
CELERY_ONLY = {
    "amqp": (
        "an AMQP administration shell",
        "Use RabbitMQ's rabbitmqadmin or management UI; `celeriac -A proj queues` shows depth, "
        "in-flight and dead letters per queue, `celeriac -A proj purge -Q NAME` empties one.",
    ),
    "list": (
        "`list bindings`, the AMQP bindings",
        "celeriac declares its queues itself: `celeriac -A proj queues` lists them.",
    ),
    "graph": (
        "bootstep and worker graphs",
        "`celeriac -A proj status` and `celeriac -A proj inspect stats` show the workers.",
    ),
    "logtool": (
        "worker log analysis",
        "Task history is in the dashboard (`celeriac -A proj dashboard`) and in "
        "`celeriac -A proj events --dump`.",
    ),
    "upgrade": (
        "renaming old settings",
        "None is needed: celeriac reads the old upper-case setting names and the new ones "
        "alike; `celeriac migrate PATH` rewrites a project's imports.",
    ),
}


def _not_in_celeriac(app: Celeriac, args: argparse.Namespace) -> int:
    name, what, instead = args.what
    raise CLIError(f"celeriac has no {name} command (in Celery: {what}). {instead}")


def shell_namespace(app: Celeriac, with_tasks: bool = True) -> dict[str, Any]:
    """What ``celeriac shell`` starts with: the app (as ``app`` and ``celery``), the canvas
    names, and each of the app's tasks by its function's name (as Celery's shell)."""
    import celeriac

    namespace: dict[str, Any] = {"app": app, "celery": app}
    for name in (
        "Task",
        "chain",
        "chord",
        "chunks",
        "group",
        "signature",
        "subtask",
        "xmap",
        "xstarmap",
    ):
        namespace[name] = getattr(celeriac, name)
    if with_tasks:
        app.finalize()
        for name, task in sorted(app.tasks.items()):
            if name.startswith(("celery.", "celeriac.")):
                continue
            short = getattr(task, "__name__", None) or name.rpartition(".")[2]
            namespace.setdefault(short, task)
    return namespace


def cmd_shell(app: Celeriac, args: argparse.Namespace) -> int:
    if args.eventlet or args.gevent:
        print("--eventlet/--gevent: ignored (celeriac has no green-thread pool)", file=sys.stderr)
    namespace = shell_namespace(app, not args.without_tasks)
    shown = ", ".join(sorted(k for k in namespace if k not in ("app", "celery")))
    banner = (
        f"celeriac {__version__} shell (Python {platform.python_version()})\n"
        f"app and celery: {app.main or '__main__'}\n"
        f"also: {shown}"
    )
    if args.bpython:
        try:
            import bpython
        except ImportError:
            raise CLIError("--bpython: bpython is not installed (pip install bpython)") from None
        bpython.embed(namespace, banner=banner)
        return 0
    if not args.python:
        try:
            from IPython import start_ipython
        except ImportError:
            if args.ipython:
                raise CLIError("--ipython: IPython is not installed") from None
        else:
            print(banner)
            start_ipython(argv=[], user_ns=namespace)
            return 0
    import code

    code.interact(banner=banner, local=namespace, exitmsg="")
    return 0


def report_text(app: Celeriac) -> str:
    """The text of ``celeriac report``: versions, platform, where the app sends and keeps
    things, and its settings that differ from the defaults, secrets masked."""
    from importlib import metadata

    versions = []
    for name in DRIVERS:
        try:
            versions.append(f"{name}:{metadata.version(name)}")
        except metadata.PackageNotFoundError:
            continue
    conf = app.conf
    try:
        backend = safe_url(app.backend.url) if app.backend else "disabled"
    except Exception as exc:  # a report is wanted most when something is wrong
        backend = f"{safe_url(conf.result_backend or '')} ({type(exc).__name__}: {exc})"
    lines = [
        f"software -> celeriac:{__version__} py:{platform.python_version()}",
        f"            {' '.join(versions) or 'no optional drivers installed'}",
        f"platform -> system:{platform.system()} arch:{', '.join(platform.architecture())}",
        f"            kernel version:{platform.release()} imp:{platform.python_implementation()}",
        f"app      -> {app.main or '__main__'}",
        f"settings -> broker:{safe_url(conf.broker_url or '')} results:{backend}",
        "",
        conf.humanize(),
    ]
    return "\n".join(lines).rstrip() + "\n"


def cmd_report(app: Celeriac, args: argparse.Namespace) -> int:
    print(report_text(app))
    return 0


#: Flower's options, accepted so that its start-up line reaches the message below.
FLOWER_OPTIONS = [
    "port",
    "address",
    "basic-auth",
    "url-prefix",
    "broker-api",
    "persistent",
    "db",
    "max-tasks",
    "max-workers",
    "auth",
    "auth-provider",
    "conf",
    "unix-socket",
    "purge-offline-workers",
    "state-save-interval",
    "tasks-columns",
    "natural-time",
    "enable-events",
    "inspect-timeout",
    "auto-refresh",
    "certfile",
    "keyfile",
    "xheaders",
    "debug",
    "logging",
    "cookie-secret",
    "oauth2-key",
    "oauth2-secret",
    "oauth2-redirect-uri",
    "task-runtime-metric-buckets",
]


def cmd_flower(app: Celeriac, args: argparse.Namespace) -> int:
    raise CLIError(
        "celeriac flower: Flower is a Celery add-on and cannot watch celeriac workers (it "
        "reads Celery's own event queues). celeriac has its own dashboard, with Flower's "
        "HTTP API (same paths and JSON) and options:\n"
        "  celeriac -A proj dashboard --port 5555 [--basic-auth user:pass] [--url-prefix P]\n"
        "  (pip install 'celeriac[dashboard]'; see docs/monitoring.md). From a terminal:\n"
        "  celeriac -A proj events                 the cluster live (--dump: JSON lines)\n"
        "  celeriac -A proj queues                 depth, in-flight and dead letters per queue\n"
        "  celeriac -A proj inspect active         what each worker runs (also reserved, stats)"
    )
