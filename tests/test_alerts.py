"""Alerting: every rule kind fires and resolves against a real event store and a real broker
(SQLite; one test on Redis), notifications reach a local webhook receiver and a local SMTP
sink, alerts are silenced and acknowledged and keep their state across a restart, the rules
export as a Prometheus rules file, and bad rules are refused with clear errors."""

from __future__ import annotations

import base64
import datetime as dt
import email
import json
import logging
import socketserver
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from celeriac import Celery
from celeriac.beat import Beat, FileStore
from celeriac.cli import build_parser
from celeriac.exceptions import ImproperlyConfigured
from celeriac.monitor.alerts import Alerts, load_rules
from celeriac.monitor.channels import load_channels
from celeriac.monitor.promrules import glob_regex, prometheus_rules
from celeriac.monitor.series import Sampler
from celeriac.monitor.store import EventStore, create_store
from conftest import wait_until
from contract.test_event_store_contract import W1, W2, arrived, beat, task
from services import REDIS_BROKER

QUEUE = "alerting"


# -- a webhook receiver and an SMTP sink, on 127.0.0.1 -------------------------------------


@dataclass
class Receiver:
    url: str
    received: list[dict[str, Any]] = field(default_factory=list)

    def texts(self) -> list[str]:
        return [r["json"]["text"] for r in self.received]


@pytest.fixture
def webhook() -> Iterator[Receiver]:
    receiver = Receiver("")

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["Content-Length"]))
            receiver.received.append(
                {"path": self.path, "type": self.headers["Content-Type"], "json": json.loads(body)}
            )
            self.send_response(200)
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"ok")

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    receiver.url = f"http://127.0.0.1:{server.server_address[1]}/hooks/alerts"
    yield receiver
    server.shutdown()
    server.server_close()


class SMTPSink(socketserver.ThreadingTCPServer):
    """Just enough SMTP to take mail: EHLO (offering AUTH PLAIN), AUTH, MAIL, RCPT, DATA,
    RSET, NOOP and QUIT; each mail is kept in ``mails``."""

    daemon_threads = True
    allow_reuse_address = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _SMTPHandler)
        self.mails: list[dict[str, Any]] = []


class _SMTPHandler(socketserver.StreamRequestHandler):
    server: SMTPSink

    def reply(self, *lines: str) -> None:
        self.wfile.write("".join(f"{line}\r\n" for line in lines).encode())

    def handle(self) -> None:
        self.reply("220 sink ready")
        mail: dict[str, Any] = {"auth": None, "to": []}
        while True:
            line = self.rfile.readline().decode().rstrip("\r\n")
            verb, _, rest = line.partition(" ")
            verb = verb.upper()
            if not line and not verb:
                return
            if verb in ("EHLO", "HELO"):
                self.reply("250-sink", "250-AUTH PLAIN", "250 SMTPUTF8")
            elif verb == "AUTH":
                mail["auth"] = base64.b64decode(rest.split()[1]).decode()
                self.reply("235 accepted")
            elif verb == "MAIL":
                mail["from"] = rest.partition(":")[2].split()[0].strip("<>")
                self.reply("250 ok")
            elif verb == "RCPT":
                mail["to"].append(rest.partition(":")[2].strip().strip("<>"))
                self.reply("250 ok")
            elif verb == "DATA":
                self.reply("354 go on")
                data = []
                while (chunk := self.rfile.readline().decode()) not in (".\r\n", ""):
                    data.append(chunk[1:] if chunk.startswith("..") else chunk)
                mail["message"] = email.message_from_string("".join(data))
                self.server.mails.append(mail)
                mail = {"auth": mail["auth"], "to": []}
                self.reply("250 kept")
            elif verb in ("RSET", "NOOP"):
                self.reply("250 ok")
            elif verb == "QUIT":
                self.reply("221 bye")
                return
            else:
                self.reply("502 not here")


@pytest.fixture
def smtp() -> Iterator[SMTPSink]:
    sink = SMTPSink()
    thread = threading.Thread(target=sink.serve_forever, daemon=True)
    thread.start()
    yield sink
    sink.shutdown()
    sink.server_close()


# -- an app, its broker and an event store -------------------------------------------------


@pytest.fixture
def app(tmp_path: Path) -> Iterator[Celery]:
    url = f"sqlite:///{tmp_path}/broker.db"
    app = Celery("alerting", broker=url, backend=url, set_as_current=False)
    app.conf.beat_schedule_filename = str(tmp_path / "beat-schedule")
    yield app
    app.close()


@pytest.fixture
def store(tmp_path: Path) -> Iterator[EventStore]:
    store = create_store(f"sqlite:///{tmp_path}/events.db")
    yield store
    store.close()


def hook(receiver: Receiver) -> dict[str, Any]:
    return {"hook": {"type": "webhook", "url": receiver.url}}


def publish(app: Celery, count: int, queue: str = QUEUE) -> None:
    for _ in range(count):
        app.send_task("proj.nothing", queue=queue)


def ids(found: list[dict[str, Any]]) -> list[str]:
    return sorted(a["id"] for a in found)


# -- every kind fires and resolves ---------------------------------------------------------


def test_queue_depth_and_age_fire_once_and_resolve_once(
    app: Celery, store: EventStore, webhook: Receiver
) -> None:
    app.conf.dashboard_alerts = [
        {"kind": "queue_depth", "queue": QUEUE, "threshold": 2, "severity": "critical"},
        {"kind": "queue_age", "queue": "alert*", "seconds": 0.01, "name": "stale"},
    ]
    app.conf.task_queues = [QUEUE]  # so that the pattern knows it
    app.conf.dashboard_alert_channels = hook(webhook)
    alerts = Alerts(app, store)
    assert alerts.evaluate() == [] and webhook.received == []
    publish(app, 3)
    wait_until(lambda: len(alerts.evaluate()) == 2, timeout=10)
    firing = {a["id"]: a for a in alerts.alerts()}
    assert sorted(firing) == ["queue_depth:alerting", "stale:alerting"]
    depth = firing["queue_depth:alerting"]
    assert depth["state"] == "firing" and depth["value"] == 3.0 and depth["kind"] == "queue_depth"
    assert depth["summary"] == "queue alerting: 3 messages waiting"
    assert depth["severity"] == "critical" and depth["subject"] == QUEUE
    texts = sorted(webhook.texts())
    assert texts[0] == (
        "[FIRING] queue_depth:alerting (critical): queue alerting: 3 messages waiting"
        "\nRule: more than 2 messages waiting in queue alerting"
    )
    assert texts[1].startswith("[FIRING] stale:alerting (warning): queue alerting: the oldest")
    assert {r["type"] for r in webhook.received} == {"application/json"}
    assert {r["path"] for r in webhook.received} == {"/hooks/alerts"}
    publish(app, 1)
    alerts.evaluate()
    assert len(webhook.received) == 2  # still firing: nothing sent again
    assert {a["id"]: a["value"] for a in alerts.alerts()}["queue_depth:alerting"] == 4.0

    app.broker.purge(QUEUE)
    assert alerts.evaluate() == []
    resolved = webhook.texts()[2:]
    assert len(resolved) == 2 and all(t.startswith("[RESOLVED]") for t in resolved)
    assert {a["state"] for a in alerts.alerts()} == {"resolved"}
    alerts.evaluate()
    assert len(webhook.received) == 4


def test_failure_ratio(app: Celery, store: EventStore, webhook: Receiver) -> None:
    now = time.time()
    rules = [
        {
            "kind": "failure_ratio",
            "task": "proj.add",
            "window": 60,
            "threshold": 0.25,
            "min_count": 4,
        },
        {"kind": "failure_ratio", "task": "proj.*", "threshold": 0.5, "name": "everything"},
    ]
    alerts = Alerts(app, store, rules=rules, channels=hook(webhook))
    events: list[dict[str, Any]] = []
    for n in range(5):
        events += [arrived("task-received", f"t{n}", now - 30, name="proj.add")]
        if n < 2:
            events += [task("task-failed", f"t{n}", now - 20, exception="E()")]
        else:
            events += [task("task-succeeded", f"t{n}", now - 20, runtime=0.1)]
    store.apply(events)
    firing = alerts.evaluate(now=now)
    assert ids(firing) == ["failure_ratio:proj.add"] and firing[0]["value"] == 0.4
    assert firing[0]["summary"] == "2 of 5 tasks of proj.add failed in 60 s (40%)"
    # too few tasks for the second rule (10 at least by default)
    store.apply(
        [task("task-failed", f"f{n}", now - 10, name="proj.mul", exception="E()") for n in range(8)]
    )
    assert ids(alerts.evaluate(now=now)) == ["everything", "failure_ratio:proj.add"]
    assert ids(alerts.evaluate(now=now + 400)) == []  # out of the windows
    assert [t.split(" ")[0] for t in webhook.texts()] == ["[FIRING]"] * 2 + ["[RESOLVED]"] * 2


def test_worker_offline(app: Celery, store: EventStore, webhook: Receiver) -> None:
    now = time.time()
    store.apply(
        [
            beat("worker-online", W1, now - 10),
            beat("worker-heartbeat", W1, now - 1),
            beat("worker-online", W2, now - 10),
            beat("worker-offline", W2, now - 5),
            beat("worker-heartbeat", "other@there", now - 100),
        ]
    )
    alerts = Alerts(
        app,
        store,
        rules=[{"kind": "worker_offline", "hostname": "w?@here"}],
        channels=hook(webhook),
    )
    firing = alerts.evaluate(now=now)
    assert ids(firing) == [f"worker_offline:w?@here:{W2}"] and firing[0]["subject"] == W2
    assert firing[0]["summary"] == f"worker {W2} went offline 5 s ago"
    store.apply([beat("worker-online", W2, now)])
    assert alerts.evaluate(now=now + 0.5) == []
    assert webhook.texts()[-1].startswith(f"[RESOLVED] worker_offline:w?@here:{W2}: resolved")


def test_task_runtime_and_task_lost(app: Celery, store: EventStore, webhook: Receiver) -> None:
    now = time.time()
    store.apply(
        [
            beat("worker-heartbeat", W1, now - 1),
            beat("worker-offline", W2, now - 5),
            arrived("task-received", "slow", now - 130, name="proj.report"),
            task("task-started", "slow", now - 120),
            task("task-started", "quick", now - 10),
            arrived("task-received", "gone", now - 20, name="proj.add", hostname=W2),
            task("task-started", "gone", now - 20, W2),
        ]
    )
    rules = [
        {"kind": "task_runtime", "task": "proj.*", "seconds": 60},
        {"kind": "task_lost"},
    ]
    alerts = Alerts(app, store, rules=rules, channels=hook(webhook))
    firing = {a["id"]: a for a in alerts.evaluate(now=now)}
    assert sorted(firing) == ["task_lost", "task_runtime:proj.*"]
    assert firing["task_runtime:proj.*"]["summary"] == (
        "1 task(s) running longer than 60 s: proj.report[slow] (120 s)"
    )
    assert (
        firing["task_lost"]["summary"] == "1 task(s) lost with their worker: proj.add[gone] (20 s)"
    )
    assert firing["task_lost"]["value"] == 1.0
    store.apply(
        [
            task("task-succeeded", "slow", now + 1, runtime=121.0),
            arrived("task-received", "gone", now + 1, name="proj.add"),  # delivered again
            task("task-succeeded", "gone", now + 2, runtime=1.0),
            beat("worker-heartbeat", W1, now + 2),
        ]
    )
    assert alerts.evaluate(now=now + 3) == []
    assert len(webhook.texts()) == 4


def test_beat_missed(app: Celery, store: EventStore, webhook: Receiver) -> None:
    app.conf.beat_schedule = {
        "every-minute": {"task": "proj.tick", "schedule": 60.0},
        "disabled": {"task": "proj.tick", "schedule": 60.0, "enabled": False},
    }
    beat_process = Beat(app, FileStore(app))
    now = dt.datetime.now(dt.UTC)
    beat_process.tick(now - dt.timedelta(seconds=300))  # it last ran five minutes ago
    alerts = Alerts(
        app, store, rules=[{"kind": "beat_missed", "grace": 30}], channels=hook(webhook)
    )
    firing = alerts.evaluate(now=now.timestamp())
    assert ids(firing) == ["beat_missed:every-minute"]
    assert firing[0]["value"] == pytest.approx(240.0, abs=1)
    assert "beat entry every-minute (proj.tick) missed its run due" in firing[0]["summary"]
    beat_process.tick(now)  # it runs again
    assert alerts.evaluate(now=now.timestamp() + 1) == []
    beat_process.close()
    assert [t.split(" ")[0] for t in webhook.texts()] == ["[FIRING]", "[RESOLVED]"]


def test_dead_letters_growth(app: Celery, store: EventStore, webhook: Receiver) -> None:
    sampler = Sampler(app, store, queues=[QUEUE])
    now = time.time()
    sampler.sample(now=now - 60)  # none yet
    alerts = Alerts(
        app,
        store,
        rules=[{"kind": "dead_letters_growth", "queue": QUEUE, "window": 600}],
        channels=hook(webhook),
    )
    assert alerts.evaluate(now=now) == []
    publish(app, 1)
    delivery = wait_until(lambda: app.broker.fetch([QUEUE], 1, 1.0))[0]
    app.broker.dead_letter(delivery, "poison")
    firing = alerts.evaluate(now=now)
    assert ids(firing) == [f"dead_letters_growth:{QUEUE}"] and firing[0]["value"] == 1.0
    assert firing[0]["summary"] == f"queue {QUEUE}: 1 new dead letters in 600 s (1 in all)"
    sampler.sample(now=now)
    assert alerts.evaluate(now=now + 590) == []  # no growth within the window now
    assert [t.split(" ")[0] for t in webhook.texts()] == ["[FIRING]", "[RESOLVED]"]


# -- silence, acknowledge, and states kept -------------------------------------------------


def test_silence_and_acknowledge_and_a_restart(
    app: Celery, tmp_path: Path, store: EventStore, webhook: Receiver
) -> None:
    rules = [{"kind": "queue_depth", "queue": QUEUE, "threshold": 0, "name": "backlog"}]
    alerts = Alerts(app, store, rules=rules, channels=hook(webhook))
    publish(app, 1)
    assert ids(alerts.evaluate()) == ["backlog"] and len(webhook.received) == 1
    acked = alerts.acknowledge("backlog", "ann")
    assert acked["state"] == "acknowledged" and acked["acknowledged_by"] == "ann"
    silenced = alerts.silence("backlog", 600, "bob")
    assert silenced["state"] == "silenced" and silenced["silenced_by"] == "bob"
    assert silenced["silenced_until"] == pytest.approx(time.time() + 600, abs=30)
    with pytest.raises(KeyError):
        alerts.silence("nothing", 60)
    with pytest.raises(KeyError):
        alerts.acknowledge("nothing")

    app.broker.purge(QUEUE)
    alerts.evaluate()  # resolved while silenced: not sent
    publish(app, 1)
    assert [a["state"] for a in alerts.evaluate()] == ["silenced"]  # fired again: not sent
    assert len(webhook.received) == 1

    # a restarted dashboard (another store object on the same file) finds it all
    again_store = create_store(f"sqlite:///{tmp_path}/events.db")
    again = Alerts(app, again_store, rules=rules, channels=hook(webhook))
    [found] = again.alerts()
    assert found["state"] == "silenced" and found["acknowledged_by"] is None  # a new firing
    assert found["silenced_by"] == "bob"
    assert again.silence("backlog", 0)["state"] == "firing"
    again.evaluate()  # the silence ended while it fires: sent now
    assert webhook.texts()[-1].startswith("[FIRING] backlog")
    again.evaluate()
    assert len(webhook.received) == 2
    again_store.close()


def test_alerts_of_a_removed_rule_are_forgotten(app: Celery, store: EventStore) -> None:
    publish(app, 1)
    before = Alerts(app, store, rules=[{"kind": "queue_depth", "queue": QUEUE, "threshold": 0}])
    assert len(before.evaluate()) == 1
    after = Alerts(app, store, rules=[])
    assert after.alerts() == [] and after.evaluate() == [] and store.alert_states() == {}


# -- channels ------------------------------------------------------------------------------


def test_email_and_log_channels(
    app: Celery, store: EventStore, smtp: SMTPSink, caplog: pytest.LogCaptureFixture
) -> None:
    port = smtp.server_address[1]
    channels = {
        "mail": {
            "type": "email",
            "host": "127.0.0.1",
            "port": port,
            "from": "alerts@example.com",
            "to": ["ops@example.com", "dev@example.com"],
            "username": "alerts",
            "password": "s3cret",
        },
        "tls": {
            "type": "email",
            "host": "127.0.0.1",
            "port": port,
            "from": "alerts@example.com",
            "to": "ops@example.com",
            "starttls": True,  # the sink offers no STARTTLS: this channel fails
        },
        "log": {"type": "log", "level": "error"},
    }
    rules = [{"kind": "queue_depth", "queue": QUEUE, "threshold": 0}]
    alerts = Alerts(app, store, rules=rules, channels=channels)
    publish(app, 2)
    with caplog.at_level(logging.INFO, logger="celeriac.alerts"):
        assert len(alerts.evaluate()) == 1
    [mail] = smtp.mails
    assert mail["from"] == "alerts@example.com"
    assert mail["to"] == ["ops@example.com", "dev@example.com"]
    assert mail["auth"] == "\0alerts\0s3cret"
    message = mail["message"]
    assert message["Subject"] == f"[FIRING] queue_depth:{QUEUE}"
    assert message["To"] == "ops@example.com, dev@example.com"
    assert f"queue {QUEUE}: 2 messages waiting" in message.get_payload()
    logged = [(r.levelno, r.getMessage()) for r in caplog.records]
    assert any(
        level == logging.ERROR and f"queue {QUEUE}: 2 messages waiting" in text
        for level, text in logged
    )
    assert any("channel tls could not send" in text and "STARTTLS" in text for _, text in logged)
    assert "s3cret" not in caplog.text


# -- the Prometheus rules file -------------------------------------------------------------


def test_prometheus_rules_for_every_kind() -> None:
    rules = load_rules(
        [
            {"kind": "failure_ratio", "task": "proj.add", "window": 300, "threshold": 0.1},
            {"kind": "queue_depth", "queue": "celery", "threshold": 1000},
            {"kind": "queue_age", "queue": "high-*", "seconds": 90, "severity": "critical"},
            {"kind": "worker_offline", "hostname": "celery@web1"},
            {"kind": "worker_offline", "hostname": "celery@*", "name": "any worker"},
            {"kind": "task_runtime", "seconds": 100},
            {"kind": "task_lost"},
            {"kind": "beat_missed", "entry": "nightly"},
            {"kind": "dead_letters_growth", "queue": "celery", "increase": 5, "window": 600},
        ]
    )
    text = prometheus_rules(rules)
    lines = text.splitlines()
    assert lines[2:5] == ["groups:", '  - name: "celeriac"', "    rules:"]
    assert text.count("      - alert: ") == 7
    exprs = [
        json.loads(line.split(": ", 1)[1]) for line in lines if line.startswith("        expr:")
    ]
    done = 'sum(increase(celeriac_tasks_total{state=~"succeeded|failed",name="proj.add"}[300s]))'
    assert exprs == [
        'sum(increase(celeriac_tasks_total{state="failed",name="proj.add"}[300s])) / '
        f"{done} > 0.1 and {done} >= 10",
        'celeriac_queue_waiting{queue="celery"} > 1000',
        'celeriac_queue_oldest_age_seconds{queue=~"high-.*"} > 90.0',
        'absent(celeriac_worker_active_tasks{hostname="celery@web1"})',
        '(count(celeriac_worker_active_tasks{hostname=~"celery@.*"} offset 10m) or vector(0)) > '
        '(count(celeriac_worker_active_tasks{hostname=~"celery@.*"}) or vector(0))',
        "sum(increase(celeriac_task_runtime_seconds_count{}[5m])) - "
        'sum(increase(celeriac_task_runtime_seconds_bucket{le="120.0"}[5m])) > 0',
        'celeriac_queue_dead_lettered{queue="celery"} - '
        'min_over_time(celeriac_queue_dead_lettered{queue="celery"}[600s]) >= 5',
    ]
    assert '      - alert: "CeleriacQueueDepthCelery"' in lines
    assert '      - alert: "CeleriacAnyWorker"' in lines
    assert '          severity: "critical"' in lines
    assert '          celeriac_rule: "queue_depth:celery"' in lines
    assert '          summary: "more than 1000 messages waiting in queue celery"' in lines
    assert "      # task_lost (task_lost): no metric tells lost tasks" in text
    assert "      # beat_missed:nightly (beat_missed): no metric tells beat runs" in text
    assert "      # task_runtime (task_runtime): runs that finished after more than 120 s" in text
    assert prometheus_rules([]).splitlines()[-1] == "    rules: []"
    only_lost = prometheus_rules(load_rules([{"kind": "task_lost"}]))
    assert "    rules: []" in only_lost.splitlines()
    assert glob_regex("a.b[!c]?*+") == "a\\.b[^c]..*\\+"


# -- the command ---------------------------------------------------------------------------


def test_the_alerts_command(
    app: Celery, tmp_path: Path, store: EventStore, capsys: pytest.CaptureFixture[str]
) -> None:
    app.conf.dashboard_alerts = [{"kind": "queue_depth", "queue": QUEUE, "threshold": 0}]
    app.conf.dashboard_store = f"sqlite:///{tmp_path}/events.db"

    def run(*argv: str) -> int:
        args = build_parser().parse_args(["alerts", *argv])
        code: int = args.func(app, args)
        return code

    assert run("--prometheus-rules") == 0
    assert 'expr: "celeriac_queue_waiting{queue=\\"alerting\\"} > 0"' in capsys.readouterr().out
    assert run("--check") == 0
    assert capsys.readouterr().out == "OK: 1 rule(s), no alert fires\n"
    publish(app, 1)
    assert run("--check") == 1
    assert capsys.readouterr().out == (
        f"FIRING queue_depth:{QUEUE} (warning): queue {QUEUE}: 1 messages waiting\n"
    )
    assert store.alert_states() == {}  # a check keeps nothing
    assert run("--notify") == 1 and list(store.alert_states()) == [f"queue_depth:{QUEUE}"]
    capsys.readouterr()
    assert run() == 0
    out = capsys.readouterr().out
    assert f"queue_depth:{QUEUE}" in out and "FIRING" in out


# -- on Redis ------------------------------------------------------------------------------


def test_on_redis() -> None:
    REDIS_BROKER.prepare()
    app = Celery("alerting-redis", broker=REDIS_BROKER.url, backend=REDIS_BROKER.url)
    store = create_store(REDIS_BROKER.url, {"key_prefix": "alerting:"})
    try:
        rules = [{"kind": "queue_depth", "queue": QUEUE, "threshold": 1, "name": "backlog"}]
        alerts = Alerts(app, store, rules=rules)
        publish(app, 2)
        assert [a["state"] for a in alerts.evaluate()] == ["firing"]
        alerts.acknowledge("backlog", "ann")
        again = Alerts(app, store, rules=rules)
        assert [(a["state"], a["acknowledged_by"]) for a in again.alerts()] == [
            ("acknowledged", "ann")
        ]
        app.broker.purge(QUEUE)
        assert again.evaluate() == [] and again.alerts()[0]["state"] == "resolved"
    finally:
        store.close()
        app.close()
        REDIS_BROKER.cleanup(REDIS_BROKER.url, [])


# -- bad rules and channels ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("rules", "error"),
    [
        ("queue_depth", "dashboard_alerts must be a list of rule dicts"),
        ([5], r"dashboard_alerts\[0\] must be a dict with a 'kind'"),
        ([{"kind": "queue_dept"}], r"'kind' must be one of failure_ratio, .* not 'queue_dept'"),
        ([{"kind": "queue_depth", "queue": "q"}], "a queue_depth rule needs 'threshold'"),
        (
            [{"kind": "queue_depth", "queue": "q", "threshold": -1, "name": "x"}],
            r"dashboard_alerts\[0\] \('x'\): 'threshold' must be a whole number, 0 or more, not -1",
        ),
        ([{"kind": "failure_ratio", "threshold": 1.5}], "'threshold' must be a ratio"),
        ([{"kind": "queue_age", "queue": "q", "seconds": "5"}], "positive number of seconds"),
        (
            [{"kind": "queue_age", "queue": "q", "seconds": 5, "treshold": 1}],
            r"unknown key\(s\) 'treshold' \(a queue_age rule takes queue, seconds",
        ),
        ([{"kind": "task_lost", "channels": ["pager"]}], r"unknown: \['pager'\]"),
        ([{"kind": "task_lost", "severity": "huge"}], "'severity' must be one of info"),
        ([{"kind": "task_lost"}, {"kind": "task_lost"}], "another rule is named 'task_lost'"),
        ([{"kind": "task_lost", "name": ""}], "'name' must be a non-empty text"),
    ],
)
def test_bad_rules_are_refused_clearly(rules: Any, error: str) -> None:
    with pytest.raises(ImproperlyConfigured, match=error):
        load_rules(rules)


@pytest.mark.parametrize(
    ("channels", "error"),
    [
        (["log"], "must be a dict of channels by name"),
        ({"x": "webhook"}, r"\['x'\] must be a dict with a 'type'"),
        ({"x": {"type": "pigeon"}}, "'type' must be one of webhook, email, log, not 'pigeon'"),
        ({"x": {"type": "webhook", "url": "ftp://h"}}, "'url' must be an http"),
        ({"x": {"type": "webhook", "url": "http://h", "secret": 1}}, r"unknown key\(s\) 'secret'"),
        ({"x": {"type": "email", "host": "h", "from": "a@b"}}, "'to' must be an email address"),
        ({"x": {"type": "email", "from": "a@b", "to": "c@d"}}, "'host'"),
        ({"x": {"type": "email", "host": "h", "from": "a@b", "to": "c@d", "port": 0}}, "'port'"),
        ({"x": {"type": "log", "level": "loud"}}, "'level' must be one of"),
        ({"x": {"type": "webhook", "url": "http://h", "timeout": 0}}, "'timeout'"),
    ],
)
def test_bad_channels_are_refused_clearly(channels: Any, error: str) -> None:
    with pytest.raises(ImproperlyConfigured, match=error):
        load_channels(channels)


def test_a_wrong_setting_fails_when_alerts_are_made(app: Celery, store: EventStore) -> None:
    app.conf.dashboard_alerts = [{"kind": "queue_depth", "queue": QUEUE}]
    with pytest.raises(ImproperlyConfigured, match="needs 'threshold'"):
        Alerts(app, store)
    app.conf.dashboard_alerts = [{"kind": "task_lost"}]
    assert [r["description"] for r in Alerts(app, store).rules()] == [
        "all tasks lost with their worker (started within 3600 s)"
    ]
