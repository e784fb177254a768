"""``celeriac dashboard``: the built-in dashboard (Flower's job and more) over HTTP."""

from __future__ import annotations

import argparse
import logging
from typing import Any

from ..app import Celeriac
from ..exceptions import ImproperlyConfigured
from ..utils.log import setup_logging
from .base import CLIError

__all__ = ["add_parsers", "cmd_dashboard"]


def add_parsers(sub: Any, common: argparse.ArgumentParser) -> None:
    d = sub.add_parser(
        "dashboard", parents=[common], help="serve the dashboard: pages, Flower's API, metrics"
    )
    d.add_argument("--port", type=int, help="the port to listen on (5555)")
    d.add_argument("--address", help="the address to listen on (127.0.0.1; another one needs auth)")
    d.add_argument("--basic-auth", metavar="USER:PASS[,USER2:PASS2]", help="HTTP basic auth users")
    d.add_argument("--auth", metavar="TOKEN", help="a bearer token (Authorization: Bearer)")
    d.add_argument("--url-prefix", metavar="PREFIX", help="serve under this path, e.g. /flower")
    d.add_argument(
        "--read-only", action="store_true", default=None, help="refuse every action (403)"
    )
    d.add_argument(
        "--store", metavar="URL", help="the event store (default: celeriac-events.db here)"
    )
    d.add_argument(
        "--unsafe-no-auth",
        action="store_true",
        default=None,
        help="listen on another address than loopback without auth (behind a proxy that "
        "protects it)",
    )
    d.add_argument("-l", "--loglevel", default="INFO")
    d.add_argument("-f", "--logfile")
    d.set_defaults(func=cmd_dashboard)


def cmd_dashboard(app: Celeriac, args: argparse.Namespace) -> int:
    # imported here: the dashboard's packages are an extra, and only this command needs them
    try:
        import uvicorn

        from ..dashboard import DashboardConfig, create_app
    except ImportError as exc:
        raise CLIError(str(exc)) from None

    try:
        config = DashboardConfig.from_app(
            app,
            port=args.port,
            address=args.address,
            basic_auth=args.basic_auth,
            auth=args.auth,
            url_prefix=args.url_prefix,
            read_only=args.read_only,
            store=args.store,
            unsafe_no_auth=args.unsafe_no_auth,
        )
        config.check_bind()
        asgi = create_app(app, config)
    except (ImproperlyConfigured, ValueError) as exc:
        raise CLIError(str(exc)) from None
    setup_logging(args.loglevel, args.logfile)
    logging.getLogger("celeriac.dashboard.audit").setLevel(logging.INFO)
    where = f"http://{config.address}:{config.port}{config.url_prefix}/"
    auth = "basic auth" if config.basic_auth else "a bearer token" if config.auth else "no auth"
    logging.getLogger("celeriac.dashboard").warning(
        "dashboard: serving %s (%s%s)", where, auth, ", read-only" if config.read_only else ""
    )
    uvicorn.run(
        asgi,
        host=config.address,
        port=config.port,
        log_level=str(args.loglevel).lower(),
        access_log=False,
        proxy_headers=False,
        server_header=False,
    )
    return 0
