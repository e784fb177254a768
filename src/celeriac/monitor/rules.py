"""What alert rules say and how each kind is checked: a rule of ``dashboard_alerts`` is a
dict with a ``kind`` and that kind's parameters (:data:`KINDS`), checked by
:func:`load_rules` into a :class:`Rule`; :class:`Checks` tells, for each kind, which
queues, workers, entries or tasks are in trouble now (:class:`Finding`). What happens
then (firing, notifying, silencing) is :mod:`celeriac.monitor.alerts`.
"""

from __future__ import annotations

import datetime as dt
import fnmatch
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from .. import states
from ..beat.entry import Entry
from ..beat.scheduler import open_store
from ..exceptions import ImproperlyConfigured
from ..keys import BEAT_STATE_KEY
from ..routing import app_queues
from ..serialization import json_loads
from .series import QUEUES

if TYPE_CHECKING:
    from ..app import Celeriac
    from ..brokers.base import Broker, QueueStats
    from .store import EventStore

#: tasks a task rule names in its summary at most
LISTED = 5
#: running tasks a task_runtime rule looks at at most
RUNNING_LIMIT = 10_000
SEVERITIES = ("info", "warning", "critical")

_REQUIRED = object()
_COMMON = {"kind", "name", "severity", "channels"}


def _text(value: Any) -> str:
    if not isinstance(value, str) or not value:
        raise ValueError("must be a non-empty text")
    return value


def _seconds(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not value > 0:
        raise ValueError("must be a positive number of seconds")
    return float(value)


def _ratio(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value < 1:
        raise ValueError("must be a ratio from 0 up to (not including) 1, e.g. 0.1")
    return float(value)


def _count(value: Any) -> int:
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError("must be a whole number, 0 or more")
    return value


#: each kind's parameters: name -> (check, default)
KINDS: dict[str, dict[str, tuple[Callable[[Any], Any], Any]]] = {
    "failure_ratio": {
        "task": (_text, None),
        "window": (_seconds, 300.0),
        "threshold": (_ratio, _REQUIRED),
        "min_count": (_count, 10),
    },
    "queue_depth": {"queue": (_text, _REQUIRED), "threshold": (_count, _REQUIRED)},
    "queue_age": {"queue": (_text, _REQUIRED), "seconds": (_seconds, _REQUIRED)},
    "worker_offline": {"hostname": (_text, "*")},
    "task_runtime": {"task": (_text, None), "seconds": (_seconds, _REQUIRED)},
    "task_lost": {"task": (_text, None), "window": (_seconds, 3600.0)},
    "beat_missed": {"entry": (_text, "*"), "grace": (_seconds, 60.0)},
    "dead_letters_growth": {
        "queue": (_text, _REQUIRED),
        "increase": (_count, 1),
        "window": (_seconds, 600.0),
    },
}
#: the parameter naming what a kind watches (part of a rule's default name)
SUBJECTS = ("task", "queue", "hostname", "entry")


#: each kind in words, from its parameters
DESCRIPTIONS = {
    "failure_ratio": "more than {threshold:.0%} of {tasks} failed over {window:g} s "
    "(at least {min_count} finished)",
    "queue_depth": "more than {threshold} messages waiting in queue {queue}",
    "queue_age": "a message of queue {queue} waiting more than {seconds:g} s",
    "worker_offline": "worker {hostname} offline",
    "task_runtime": "{tasks} running longer than {seconds:g} s",
    "task_lost": "{tasks} lost with their worker (started within {window:g} s)",
    "beat_missed": "beat entry {entry} more than {grace:g} s late",
    "dead_letters_growth": "{increase} or more new dead letters in queue {queue} over {window:g} s",
}


@dataclass(frozen=True)
class Rule:
    """One alert rule, checked."""

    name: str
    kind: str
    severity: str
    channels: tuple[str, ...]
    params: Mapping[str, Any]

    def describe(self) -> str:
        """The rule in words."""
        tasks = f"task {self.params['task']}" if self.params.get("task") else "all tasks"
        return DESCRIPTIONS[self.kind].format(tasks=tasks, **self.params)

    def as_dict(self) -> dict[str, Any]:
        """The rule as the dashboard shows it."""
        return {
            "name": self.name,
            "kind": self.kind,
            "severity": self.severity,
            "channels": list(self.channels),
            "description": self.describe(),
            **self.params,
        }


def load_rules(value: Any, channels: Iterable[str] = ("log",)) -> list[Rule]:
    """The rules of a ``dashboard_alerts`` value; ImproperlyConfigured names the rule and
    what is wrong with it. ``channels``: the names a rule may notify."""
    if value is None:
        return []
    if not isinstance(value, list | tuple):
        raise ImproperlyConfigured("dashboard_alerts must be a list of rule dicts")
    known = list(channels)
    rules: list[Rule] = []
    for n, spec in enumerate(value):
        rule = _rule(n, spec, known)
        if any(r.name == rule.name for r in rules):
            raise ImproperlyConfigured(
                f"dashboard_alerts[{n}]: another rule is named {rule.name!r} (give each a 'name')"
            )
        rules.append(rule)
    return rules


def _rule(n: int, spec: Any, channels: list[str]) -> Rule:
    where = f"dashboard_alerts[{n}]"
    if not isinstance(spec, Mapping):
        raise ImproperlyConfigured(f"{where} must be a dict with a 'kind'")
    kind = spec.get("kind")
    if kind not in KINDS:
        raise ImproperlyConfigured(
            f"{where}: 'kind' must be one of {', '.join(KINDS)}, not {kind!r}"
        )
    if isinstance(spec.get("name"), str) and spec["name"]:
        where = f"{where} ({spec['name']!r})"
    takes = KINDS[kind]
    unknown = set(spec) - set(takes) - _COMMON
    if unknown:
        raise ImproperlyConfigured(
            f"{where}: unknown key(s) {', '.join(map(repr, sorted(unknown)))} (a {kind} rule "
            f"takes {', '.join(takes)}, and name, severity, channels)"
        )
    params: dict[str, Any] = {}
    for key, (check, default) in takes.items():
        if key not in spec or spec[key] is None:
            if default is _REQUIRED:
                raise ImproperlyConfigured(f"{where}: a {kind} rule needs {key!r}")
            params[key] = default
            continue
        try:
            params[key] = check(spec[key])
        except ValueError as exc:
            raise ImproperlyConfigured(f"{where}: {key!r} {exc}, not {spec[key]!r}") from None
    severity = spec.get("severity", "warning")
    if severity not in SEVERITIES:
        raise ImproperlyConfigured(f"{where}: 'severity' must be one of {', '.join(SEVERITIES)}")
    chosen = spec.get("channels", channels)
    if isinstance(chosen, str):
        chosen = [chosen]
    missing = [c for c in chosen if c not in channels] if isinstance(chosen, list | tuple) else 0
    if missing != [] or not isinstance(chosen, list | tuple):
        raise ImproperlyConfigured(
            f"{where}: 'channels' must name channels of dashboard_alert_channels "
            f"({', '.join(channels)}); unknown: {missing or chosen!r}"
        )
    name = spec.get("name")
    if name is None:  # the kind, and what it watches when the rule says
        subject = next((params[k] for k in SUBJECTS if spec.get(k)), None)
        name = f"{kind}:{subject}" if subject else kind
    elif not isinstance(name, str) or not name:
        raise ImproperlyConfigured(f"{where}: 'name' must be a non-empty text")
    return Rule(name, kind, severity, tuple(chosen), params)


@dataclass(frozen=True)
class Finding:
    """A rule's condition holds: for ``subject`` (a queue, hostname or entry; None for
    the rule as a whole), with this ``value`` and a one-line ``summary``."""

    subject: str | None
    value: float
    summary: str


def alert_id(rule: Rule, subject: str | None) -> str:
    """An alert's id: its rule's name, and its subject when the rule has several (a
    pattern)."""
    if subject is None or any(rule.params.get(k) == subject for k in SUBJECTS):
        return rule.name
    return f"{rule.name}:{subject}"


def _matches(value: str | None, pattern: str | None) -> bool:
    return pattern is None or (value is not None and fnmatch.fnmatchcase(value, pattern))


def _ago(seconds: float) -> str:
    return f"{seconds:.0f} s"


def _tasks_listed(rows: list[dict[str, Any]], now: float, column: str) -> str:
    shown = [f"{r['name'] or '?'}[{r['uuid']}] ({_ago(now - (r[column] or now))})" for r in rows]
    more = f" and {len(rows) - LISTED} more" if len(rows) > LISTED else ""
    return ", ".join(shown[:LISTED]) + more


def beat_entries(app: Celeriac) -> dict[str, Entry]:
    """The beat entries with their last runs, as a beat would load them: from the app's
    schedule store, with the state beats mirror in the result backend."""
    store = open_store(app)
    try:
        entries = store.entries()
    finally:
        store.close()
    backend = app.backend if app.results.keeps_values else None
    if backend is not None:
        for name, entry in entries.items():
            raw = backend.get_value(BEAT_STATE_KEY.format(name))
            entry.load_state(json_loads(raw) if raw else None)
    return entries


class Checks:
    """Each kind's condition, as of ``now``, with the queue statistics of one evaluation
    read once."""

    def __init__(
        self,
        app: Celeriac,
        store: EventStore,
        broker: Broker,
        now: float,
        entries: Callable[[], Mapping[str, Entry]],
    ) -> None:
        self.app, self.store, self.broker, self.now = app, store, broker, now
        self._entries = entries
        self._stats: dict[str, QueueStats] = {}
        self._queues: list[str] | None = None

    def __call__(self, rule: Rule) -> list[Finding]:
        check: Callable[[Rule], list[Finding]] = getattr(self, rule.kind)
        return check(rule)

    def _stat(self, queue: str) -> QueueStats:
        if queue not in self._stats:
            self._stats[queue] = self.broker.queue_stats(queue)
        return self._stats[queue]

    def _queues_of(self, pattern: str) -> list[str]:
        """``pattern``'s queues: itself, or the known ones it matches (the app's, and those
        sampled within the last hour)."""
        if not is_glob(pattern):
            return [pattern]
        if self._queues is None:
            sampled = self.store.samples(QUEUES, since=self.now - 3600)
            self._queues = list(dict.fromkeys([*app_queues(self.app), *sorted(sampled)]))
        return [q for q in self._queues if fnmatch.fnmatchcase(q, pattern)]

    def failure_ratio(self, rule: Rule) -> list[Finding]:
        p = rule.params
        since = self.now - p["window"]
        pattern = p["task"]
        names: list[str | None] = [pattern]
        if pattern is not None and is_glob(pattern):
            names = [n for n in self.store.task_names() if fnmatch.fnmatchcase(n, pattern)]
        failed = sum(self.store.count_tasks(states.FAILURE, n, since=since) for n in names)
        succeeded = sum(self.store.count_tasks(states.SUCCESS, n, since=since) for n in names)
        total = failed + succeeded
        if not total or total < p["min_count"] or failed / total <= p["threshold"]:
            return []
        ratio = failed / total
        what = f"of {pattern} " if pattern else ""
        summary = f"{failed} of {total} tasks {what}failed in {p['window']:g} s ({ratio:.0%})"
        return [Finding(None, ratio, summary)]

    def queue_depth(self, rule: Rule) -> list[Finding]:
        found = []
        for queue in self._queues_of(rule.params["queue"]):
            waiting = self._stat(queue).waiting
            if waiting > rule.params["threshold"]:
                summary = f"queue {queue}: {waiting} messages waiting"
                found.append(Finding(queue, float(waiting), summary))
        return found

    def queue_age(self, rule: Rule) -> list[Finding]:
        found = []
        for queue in self._queues_of(rule.params["queue"]):
            age = self._stat(queue).oldest_age
            if age is not None and age > rule.params["seconds"]:
                summary = f"queue {queue}: the oldest message has waited {_ago(age)}"
                found.append(Finding(queue, float(age), summary))
        return found

    def dead_letters_growth(self, rule: Rule) -> list[Finding]:
        p = rule.params
        found = []
        for queue in self._queues_of(p["queue"]):
            now = self._stat(queue).dead_lettered
            history = self.store.samples(QUEUES, since=self.now - p["window"], keys=[queue])
            before = [s["dead_lettered"] for s in history.get(queue, [])]
            lowest = min([v for v in before if v is not None] + [now])
            growth = now - lowest
            if before and growth >= p["increase"]:
                summary = (
                    f"queue {queue}: {growth:g} new dead letters in {p['window']:g} s "
                    f"({now} in all)"
                )
                found.append(Finding(queue, float(growth), summary))
        return found

    def worker_offline(self, rule: Rule) -> list[Finding]:
        found = []
        for row in self.store.workers(now=self.now):
            if row["alive"] or not _matches(row["hostname"], rule.params["hostname"]):
                continue
            last = row["offline_at"] or row["last_heartbeat"] or row["updated"]
            went = "went offline" if row["offline_at"] is not None else "stopped sending heartbeats"
            summary = f"worker {row['hostname']} {went} {_ago(self.now - last)} ago"
            found.append(Finding(row["hostname"], self.now - last, summary))
        return found

    def task_runtime(self, rule: Rule) -> list[Finding]:
        p = rule.params
        lost = {row["uuid"] for row in self.store.lost_tasks(now=self.now)}
        running = [
            row
            for row in self.store.tasks(state=states.STARTED, limit=RUNNING_LIMIT)
            if row["started"] is not None
            and self.now - row["started"] > p["seconds"]
            and row["uuid"] not in lost
            and _matches(row["name"], p["task"])
        ]
        if not running:
            return []
        running.sort(key=lambda r: r["started"])
        longest = self.now - running[0]["started"]
        summary = (
            f"{len(running)} task(s) running longer than {p['seconds']:g} s: "
            f"{_tasks_listed(running, self.now, 'started')}"
        )
        return [Finding(None, longest, summary)]

    def task_lost(self, rule: Rule) -> list[Finding]:
        p = rule.params
        since = self.now - p["window"]
        lost = [
            row
            for row in self.store.lost_tasks(now=self.now)
            if _matches(row["name"], p["task"]) and (row["started"] or row["updated"]) >= since
        ]
        if not lost:
            return []
        summary = (
            f"{len(lost)} task(s) lost with their worker: "
            f"{_tasks_listed(lost, self.now, 'started')}"
        )
        return [Finding(None, float(len(lost)), summary)]

    def beat_missed(self, rule: Rule) -> list[Finding]:
        p = rule.params
        found = []
        for name, entry in sorted(self._entries().items()):
            if not entry.enabled or entry.last_run_at is None or not _matches(name, p["entry"]):
                continue
            if entry.expires is not None and entry.expires.timestamp() <= self.now:
                continue
            due = entry.schedule.next_run_after(entry.last_run_at).timestamp()
            late = self.now - due
            if late > p["grace"]:
                when = dt.datetime.fromtimestamp(due, dt.UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
                summary = f"beat entry {name} ({entry.task}) missed its run due {when}"
                found.append(Finding(name, late, summary))
        return found


def is_glob(pattern: str) -> bool:
    """Is ``pattern`` a glob pattern (not a plain name)?"""
    return any(c in pattern for c in "*?[")
