"""``celeriac alerts``: the alert rules of ``dashboard_alerts``, checked once (``--check``,
exit status 1 when any fires; ``--notify`` also sends and keeps the alerts' states, as the
dashboard does), or exported as a Prometheus rules file (``--prometheus-rules``)."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from ..app import Celeriac

__all__ = ["add_parsers", "cmd_alerts"]


def add_parsers(sub: Any, common: argparse.ArgumentParser) -> None:
    a = sub.add_parser(
        "alerts", parents=[common], help="check the alert rules, or export them for Prometheus"
    )
    what = a.add_mutually_exclusive_group()
    what.add_argument(
        "--prometheus-rules", action="store_true", help="print the rules as a Prometheus rules file"
    )
    what.add_argument(
        "--check", action="store_true", help="check the rules once; exit 1 when an alert fires"
    )
    what.add_argument(
        "--notify",
        action="store_true",
        help="check once as the dashboard does: notify changes and keep the alerts' states",
    )
    a.add_argument(
        "--store", metavar="URL", help="the event store (default: dashboard_store, or sqlite://)"
    )
    a.set_defaults(func=cmd_alerts)


def cmd_alerts(app: Celeriac, args: argparse.Namespace) -> int:
    from ..monitor.alerts import Alerts, load_rules
    from ..monitor.channels import load_channels
    from ..monitor.promrules import prometheus_rules

    conf = app.conf
    out = sys.stdout
    if args.prometheus_rules:
        channels = load_channels(conf.get("dashboard_alert_channels"))
        out.write(prometheus_rules(load_rules(conf.get("dashboard_alerts"), channels)))
        return 0
    from ..monitor.store import create_store

    store = create_store(
        args.store or conf.get("dashboard_store"), dict(conf.get("dashboard_store_options") or {})
    )
    try:
        alerts = Alerts(app, store)
        if args.check:
            found = alerts.check()
            firing = [
                (rule, finding)
                for rule in alerts.rules()
                for finding in found.get(rule["name"], [])
            ]
            for rule, finding in firing:
                out.write(f"FIRING {rule['name']} ({rule['severity']}): {finding.summary}\n")
            unchecked = [r["name"] for r in alerts.rules() if r["name"] not in found]
            for name in unchecked:
                out.write(f"UNKNOWN {name}: could not be checked (see the log)\n")
            if not firing and not unchecked:
                out.write(f"OK: {len(alerts.rules())} rule(s), no alert fires\n")
            return 1 if firing or unchecked else 0
        if args.notify:
            firing_alerts = alerts.evaluate()
            for alert in firing_alerts:
                out.write(f"{alert['state'].upper()} {alert['id']}: {alert['summary']}\n")
            return 1 if firing_alerts else 0
        for rule in alerts.rules():
            out.write(f"{rule['name']:32} {rule['severity']:8} {rule['description']}\n")
        for alert in alerts.alerts():
            out.write(f"  {alert['state'].upper():12} {alert['id']}: {alert['summary']}\n")
        return 0
    finally:
        store.close()
