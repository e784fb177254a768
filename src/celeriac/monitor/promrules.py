"""The alert rules as a Prometheus rules file, over the metrics :mod:`celeriac.monitor.metrics`
exports (the dashboard's ``/metrics``, or a worker's ``worker_metrics_port``).

The YAML is written here, by hand: every value is a double-quoted scalar (JSON string
syntax, which YAML reads alike). Kinds no metric can tell (``task_lost``, ``beat_missed``)
are left out with a comment; ``task_runtime`` becomes runs that *finished* beyond the
threshold, as the runtime histogram sees tasks when they end.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable

from .rules import Rule, is_glob
from .series import RUNTIME_BUCKETS

#: the window of rules that have none of their own
DEFAULT_RANGE = "5m"
#: how far back a worker_offline rule over a pattern compares the count of workers
WORKERS_BEFORE = "10m"


def prometheus_rules(rules: Iterable[Rule]) -> str:
    """A Prometheus rules file (YAML) with one alerting rule per rule that metrics can tell."""
    lines = [
        "# Prometheus alerting rules made by celeriac from dashboard_alerts",
        "# (`celeriac -A proj alerts --prometheus-rules`), over celeriac's metrics.",
        "groups:",
        '  - name: "celeriac"',
        "    rules:",
    ]
    exported = 0
    for rule in rules:
        expr, note = expression(rule)
        if expr is None:
            lines.append(f"      # {rule.name} ({rule.kind}): {note}")
            continue
        if note:
            lines.append(f"      # {rule.name} ({rule.kind}): {note}")
        lines += [
            f"      - alert: {_quote(alert_name(rule.name))}",
            f"        expr: {_quote(expr)}",
            "        labels:",
            f"          severity: {_quote(rule.severity)}",
            f"          celeriac_rule: {_quote(rule.name)}",
            "        annotations:",
            f"          summary: {_quote(rule.describe())}",
        ]
        exported += 1
    if not exported:
        lines[4] = "    rules: []"
    return "\n".join(lines) + "\n"


def expression(rule: Rule) -> tuple[str | None, str]:
    """A rule's PromQL expression (None when no metric tells it), and a note on it."""
    p = rule.params
    if rule.kind == "failure_ratio":
        window = _duration(p["window"])
        name = _matcher("name", p["task"])
        failed = f'sum(increase(celeriac_tasks_total{{state="failed"{name}}}[{window}]))'
        done = f'sum(increase(celeriac_tasks_total{{state=~"succeeded|failed"{name}}}[{window}]))'
        return f"{failed} / {done} > {p['threshold']!r} and {done} >= {p['min_count']}", ""
    if rule.kind == "queue_depth":
        queue = _matcher("queue", p["queue"])[1:]
        return f"celeriac_queue_waiting{{{queue}}} > {p['threshold']}", ""
    if rule.kind == "queue_age":
        queue = _matcher("queue", p["queue"])[1:]
        return f"celeriac_queue_oldest_age_seconds{{{queue}}} > {p['seconds']!r}", ""
    if rule.kind == "dead_letters_growth":
        series = f"celeriac_queue_dead_lettered{{{_matcher('queue', p['queue'])[1:]}}}"
        window = _duration(p["window"])
        return f"{series} - min_over_time({series}[{window}]) >= {p['increase']}", ""
    if rule.kind == "worker_offline":
        return _worker_offline(p["hostname"])
    if rule.kind == "task_runtime":
        return _task_runtime(p["task"], p["seconds"])
    if rule.kind == "task_lost":
        return None, "no metric tells lost tasks; celeriac's own alerting evaluates this rule"
    return None, "no metric tells beat runs; celeriac's own alerting evaluates this rule"


def _worker_offline(pattern: str) -> tuple[str, str]:
    # the active-tasks gauge has a series for each live worker only
    if not is_glob(pattern):
        return f'absent(celeriac_worker_active_tasks{{hostname="{_label(pattern)}"}})', ""
    series = f'celeriac_worker_active_tasks{{hostname=~"{_label(glob_regex(pattern))}"}}'
    expr = (
        f"(count({series} offset {WORKERS_BEFORE}) or vector(0)) > (count({series}) or vector(0))"
    )
    note = f"fewer workers matching {pattern} than {WORKERS_BEFORE} before"
    return expr, note


def _task_runtime(task: str | None, seconds: float) -> tuple[str | None, str]:
    bound = next((b for b in RUNTIME_BUCKETS if b >= seconds), None)
    if bound is None:
        return None, f"the runtime histogram ends at {RUNTIME_BUCKETS[-1]:g} s"
    name = _matcher("name", task)
    count = f"sum(increase(celeriac_task_runtime_seconds_count{{{name[1:]}}}[{DEFAULT_RANGE}]))"
    under = (
        f'sum(increase(celeriac_task_runtime_seconds_bucket{{le="{bound!r}"{name}}}'
        f"[{DEFAULT_RANGE}]))"
    )
    return f"{count} - {under} > 0", f"runs that finished after more than {bound:g} s"


def alert_name(name: str) -> str:
    """A rule's name as a Prometheus alert name: ``queue_depth:celery`` ->
    ``CeleriacQueueDepthCelery``."""
    words = re.split(r"[^A-Za-z0-9]+", name)
    return "Celeriac" + "".join(w[:1].upper() + w[1:] for w in words if w)


def glob_regex(pattern: str) -> str:
    """A glob pattern as an RE2 regular expression (Prometheus anchors it)."""
    out = []
    i = 0
    while i < len(pattern):
        c = pattern[i]
        if c == "*":
            out.append(".*")
        elif c == "?":
            out.append(".")
        elif c == "[" and "]" in pattern[i + 2 :]:
            end = pattern.index("]", i + 2)
            body = pattern[i + 1 : end].replace("\\", "\\\\")
            out.append("[^" + body[1:] + "]" if body.startswith("!") else f"[{body}]")
            i = end
        else:
            out.append(f"\\{c}" if c in _SPECIAL else c)
        i += 1
    return "".join(out)


_SPECIAL = set(".^$*+?()[]{}|\\")


def _matcher(label: str, pattern: str | None) -> str:
    """``,label="value"`` or ``,label=~"regex"`` for a pattern (nothing for None)."""
    if pattern is None:
        return ""
    if is_glob(pattern):
        return f',{label}=~"{_label(glob_regex(pattern))}"'
    return f',{label}="{_label(pattern)}"'


def _label(value: str) -> str:
    """A PromQL string's inside."""
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _duration(seconds: float) -> str:
    return f"{round(seconds)}s" if seconds >= 1 else "1s"


def _quote(text: str) -> str:
    """A YAML double-quoted scalar."""
    return json.dumps(text)
