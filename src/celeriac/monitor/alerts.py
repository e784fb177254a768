"""Alerting without Prometheus: rules from the ``dashboard_alerts`` setting, evaluated
against the event store, the broker's queue statistics and the beat schedule; notifications
through the channels of :mod:`celeriac.monitor.channels`; alert states (firing, resolved,
silenced, acknowledged) kept in the event store, so a restarted dashboard keeps them.

The rules and how each kind is checked are in :mod:`celeriac.monitor.rules`. A rule is a
dict with a ``kind`` and that kind's parameters, and optionally a ``name``
(unique; by default the kind and its queue, task, hostname or entry), a ``severity``
(``info``, ``warning`` or ``critical``) and the names of the ``channels`` it notifies (all
by default)::

    dashboard_alerts = [
        {"kind": "failure_ratio", "task": "proj.add", "window": 300, "threshold": 0.1},
        {"kind": "queue_depth", "queue": "celery", "threshold": 1000},
        {"kind": "queue_age", "queue": "celery", "seconds": 300},
        {"kind": "worker_offline", "hostname": "celery@*"},
        {"kind": "task_runtime", "task": "proj.report", "seconds": 600},
        {"kind": "task_lost"},
        {"kind": "beat_missed", "entry": "*", "grace": 60},
        {"kind": "dead_letters_growth", "queue": "celery", "increase": 1, "window": 600},
    ]

Queue, task, hostname and entry values may be glob patterns (``*``, ``?``, ``[...]``).
A rule fires an alert per queue, worker or beat entry it finds in trouble (per rule for
the task rules, with the tasks listed); each alert notifies once when it fires and once
when it resolves, and not at all while silenced.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from .channels import Channel, load_channels
from .promrules import prometheus_rules
from .rules import Checks, Finding, Rule, alert_id, beat_entries, load_rules

if TYPE_CHECKING:
    from ..app import Celeriac
    from ..beat.entry import Entry
    from ..brokers.base import Broker
    from .store import EventStore

__all__ = ["Alerts", "Finding", "Rule", "alert_id", "beat_entries", "load_rules", "message"]

logger = logging.getLogger("celeriac.alerts")

#: a resolved alert is shown (and kept) this long, in seconds
RESOLVED_KEEP = 24 * 3600.0


class Alerts:
    """The alert rules of an app, evaluated against ``store`` and the app's broker (or
    ``broker``), with their states kept in ``store``.

    ``rules`` and ``channels`` default to the ``dashboard_alerts`` and
    ``dashboard_alert_channels`` settings; a wrong one raises ImproperlyConfigured here.
    ``beat`` gives the beat entries (by default :func:`beat_entries`)."""

    def __init__(
        self,
        app: Celeriac,
        store: EventStore,
        broker: Broker | None = None,
        rules: Any = None,
        channels: Any = None,
        clock: Callable[[], float] = time.time,
        beat: Callable[[], Mapping[str, Entry]] | None = None,
    ) -> None:
        self.app = app
        self.store = store
        self._broker = broker
        self.clock = clock
        conf = app.conf
        self.channels: dict[str, Channel] = load_channels(
            conf.get("dashboard_alert_channels") if channels is None else channels
        )
        self._rules = load_rules(
            conf.get("dashboard_alerts") if rules is None else rules, self.channels
        )
        self._beat = beat or (lambda: beat_entries(app))
        self._lock = threading.Lock()
        self._failing: set[str] = set()  # rules whose last check raised (logged once)

    @property
    def broker(self) -> Broker:
        return self._broker if self._broker is not None else self.app.broker

    def rules(self) -> list[dict[str, Any]]:
        """Every rule, as the dashboard shows them."""
        return [rule.as_dict() for rule in self._rules]

    # -- evaluation -------------------------------------------------------------------------

    def check(self, now: float | None = None) -> dict[str, list[Finding]]:
        """Each rule's findings now, by rule name (no state changed, nothing sent); a rule
        whose check fails (the broker or store down) is left out, and logged."""
        now = self.clock() if now is None else now
        checks = Checks(self.app, self.store, self.broker, now, _once(self._beat))
        found: dict[str, list[Finding]] = {}
        for rule in self._rules:
            try:
                found[rule.name] = checks(rule)
            except Exception as exc:
                if rule.name not in self._failing:
                    logger.warning("alerts: rule %s cannot be checked now: %s", rule.name, exc)
                self._failing.add(rule.name)
            else:
                self._failing.discard(rule.name)
        return found

    def evaluate(self, now: float | None = None) -> list[dict[str, Any]]:
        """Check every rule: fire the alerts whose condition holds, resolve those whose
        condition went away, notify each change once (not while silenced), and save the
        states. Returns the alerts that fire (silenced and acknowledged ones included).

        The states are saved before the notifications go (outside the lock, so that a
        slow channel does not hold up a silence): a change is notified once, even when a
        channel fails."""
        now = self.clock() if now is None else now
        findings = self.check(now)
        outbox: list[tuple[Rule, dict[str, Any], str]] = []
        with self._lock:
            saved = self.store.alert_states()
            changes: dict[str, dict[str, Any] | None] = {}
            for rule in self._rules:
                if rule.name in findings:
                    changes.update(self._apply(rule, findings[rule.name], saved, now, outbox))
            names = {rule.name for rule in self._rules}
            for id, state in saved.items():
                if id in changes:
                    continue
                if state.get("rule") not in names or _expired(state, now):
                    changes[id] = None
                elif state.get("status") == "firing" and not state.get("notified"):
                    if not _silenced(state, now):  # a silence ended: tell it now
                        changes[id] = _notify(outbox, self._rule(state), state, "firing")
            self.store.save_alert_states(changes)
            for id, change in changes.items():
                if change is None:
                    saved.pop(id, None)
                else:
                    saved[id] = change
        for rule, state, event in outbox:
            self._send(rule, state, event)
        return [a for a in self._listing(saved, now) if a["state"] != "resolved"]

    def _apply(
        self,
        rule: Rule,
        findings: list[Finding],
        saved: Mapping[str, dict[str, Any]],
        now: float,
        outbox: list[tuple[Rule, dict[str, Any], str]],
    ) -> dict[str, dict[str, Any]]:
        """The states of ``rule``'s alerts after its ``findings``; the notifications due
        are added to ``outbox``."""
        changes: dict[str, dict[str, Any]] = {}
        for finding in findings:
            id = alert_id(rule, finding.subject)
            state = dict(saved.get(id) or {})
            if state.get("status") != "firing":
                state = {
                    "rule": rule.name,
                    "subject": finding.subject,
                    "status": "firing",
                    "since": now,
                    "notified": False,
                    "silenced_until": state.get("silenced_until"),
                    "silenced_by": state.get("silenced_by"),
                }
            state.update(value=finding.value, summary=finding.summary, checked=now)
            if not state["notified"] and not _silenced(state, now):
                state = _notify(outbox, rule, state, "firing")
            changes[id] = state
        for id, state in saved.items():
            if state.get("rule") == rule.name and id not in changes:
                if state.get("status") == "firing":
                    resolved = {**state, "status": "resolved", "resolved_at": now}
                    if state.get("notified") and not _silenced(state, now):
                        resolved = _notify(outbox, rule, resolved, "resolved")
                    resolved["notified"] = False
                    changes[id] = resolved
        return changes

    def _rule(self, state: Mapping[str, Any]) -> Rule:
        return next(rule for rule in self._rules if rule.name == state.get("rule"))

    def _send(self, rule: Rule, state: dict[str, Any], event: str) -> None:
        """Send ``state``'s ``event`` ("firing" or "resolved") to the rule's channels."""
        title, text = message(rule, state, event)
        for name in rule.channels:
            try:
                self.channels[name].send(title, text)
            except Exception as exc:
                logger.warning("alerts: channel %s could not send %r: %s", name, title, exc)

    # -- reading and acting ---------------------------------------------------------------

    def alerts(self, now: float | None = None) -> list[dict[str, Any]]:
        """Every alert kept (firing, silenced, acknowledged, and resolved within a day), the
        newest first: ``{"id", "rule", "kind", "severity", "subject", "state", "since",
        "summary", "value", "silenced_until", "silenced_by", "acknowledged_by",
        "acknowledged_at", "resolved_at"}``."""
        now = self.clock() if now is None else now
        return self._listing(self.store.alert_states(), now)

    def _listing(self, saved: Mapping[str, dict[str, Any]], now: float) -> list[dict[str, Any]]:
        rules = {rule.name: rule for rule in self._rules}
        found = [
            _out(id, state, now, rules[state["rule"]])
            for id, state in saved.items()
            if state.get("rule") in rules and not _expired(state, now)
        ]
        return sorted(found, key=_by_since, reverse=True)

    def silence(self, id: str, seconds: float, user: str | None = None) -> dict[str, Any]:
        """Silence alert ``id`` for ``seconds`` (0 ends a silence): it notifies nothing
        meanwhile, even when it fires again. KeyError for an unknown id."""
        now = self.clock()
        until = now + float(seconds) if seconds > 0 else None
        return self._change(id, now, silenced_until=until, silenced_by=user if until else None)

    def acknowledge(self, id: str, user: str | None = None) -> dict[str, Any]:
        """Record that ``user`` is on alert ``id`` (until it resolves). KeyError for an
        unknown id."""
        now = self.clock()
        return self._change(id, now, acknowledged_by=user or "anonymous", acknowledged_at=now)

    def _change(self, id: str, now: float, **fields: Any) -> dict[str, Any]:
        with self._lock:
            state = self.store.alert_states().get(id)
            if state is None:
                raise KeyError(id)
            state.update(fields)
            self.store.save_alert_states({id: state})
        return _out(id, state, now, next((r for r in self._rules if r.name == state["rule"]), None))

    def prometheus_rules(self) -> str:
        """The rules as a Prometheus rules file (YAML), over celeriac's metrics."""
        return prometheus_rules(self._rules)


def message(rule: Rule, state: Mapping[str, Any], event: str) -> tuple[str, str]:
    """A notification's title and text."""
    title = f"[{event.upper()}] {alert_id(rule, state.get('subject'))}"
    text = f"{title} ({rule.severity}): {state.get('summary', '')}"
    if event == "resolved":
        text = f"{title}: resolved after {state['resolved_at'] - state['since']:.0f} s"
    return title, f"{text}\nRule: {rule.describe()}"


def _notify(
    outbox: list[tuple[Rule, dict[str, Any], str]], rule: Rule, state: dict[str, Any], event: str
) -> dict[str, Any]:
    """Put ``event`` of ``state`` in ``outbox``; the state, marked as notified (or not,
    once resolved)."""
    marked = {**state, "notified": event == "firing"}
    outbox.append((rule, marked, event))
    return marked


def _silenced(state: Mapping[str, Any], now: float) -> bool:
    until = state.get("silenced_until")
    return until is not None and until > now


def _expired(state: Mapping[str, Any], now: float) -> bool:
    """A resolved alert kept long enough (and not silenced)."""
    resolved = state.get("resolved_at")
    return (
        state.get("status") == "resolved"
        and resolved is not None
        and resolved + RESOLVED_KEEP < now
        and not _silenced(state, now)
    )


def _out(id: str, state: Mapping[str, Any], now: float, rule: Rule | None = None) -> dict[str, Any]:
    status = state.get("status", "resolved")
    shown = status
    if status == "firing":
        if _silenced(state, now):
            shown = "silenced"
        elif state.get("acknowledged_by"):
            shown = "acknowledged"
    silenced = _silenced(state, now)
    return {
        "id": id,
        "rule": state.get("rule"),
        "kind": rule.kind if rule else None,
        "severity": rule.severity if rule else None,
        "subject": state.get("subject"),
        "state": shown,
        "since": state.get("since"),
        "summary": state.get("summary"),
        "value": state.get("value"),
        "silenced_until": state.get("silenced_until") if silenced else None,
        "silenced_by": state.get("silenced_by") if silenced else None,
        "acknowledged_by": state.get("acknowledged_by"),
        "acknowledged_at": state.get("acknowledged_at"),
        "resolved_at": state.get("resolved_at") if status == "resolved" else None,
    }


def _by_since(alert: Mapping[str, Any]) -> float:
    return float(alert.get("since") or 0.0)


def _once(get: Callable[[], Mapping[str, Entry]]) -> Callable[[], Mapping[str, Entry]]:
    """``get``, called once at most (the entries are read once per evaluation)."""
    found: list[Mapping[str, Entry]] = []

    def cached() -> Mapping[str, Entry]:
        if not found:
            found.append(get())
        return found[0]

    return cached
