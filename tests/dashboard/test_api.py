"""The dashboard's HTTP API against a live worker on every broker, served by uvicorn: Flower's
paths and JSON shapes, the pages' API, /metrics; then its protections (auth, CSRF, read-only,
headers, the bind check), redaction and the audit log."""

from __future__ import annotations

import base64
import logging
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from celeriac import Celery, states
from celeriac.brokers.base import Outgoing
from celeriac.dashboard import DashboardConfig
from celeriac.exceptions import ImproperlyConfigured
from conftest import run_cli, wait_until
from dashboard.conftest import TASKS, LiveCluster, RunningDashboard

pytestmark = pytest.mark.slow

Start = Callable[..., RunningDashboard]

#: the fields of a task in Flower 2.x's /api/tasks and /api/task/info
FLOWER_TASK_KEYS = {
    "uuid", "name", "state", "received", "sent", "started", "rejected", "succeeded",
    "failed", "retried", "revoked", "args", "kwargs", "eta", "expires", "retries", "result",
    "exception", "timestamp", "runtime", "traceback", "exchange", "routing_key", "clock",
    "client", "root_id", "parent_id", "children", "worker",
}  # fmt: skip


def ok(response: httpx.Response, status: int = 200) -> Any:
    assert response.status_code == status, (response.status_code, response.text)
    if response.headers.get("content-type", "").startswith("application/json"):
        return response.json()
    return response.text


# -- every broker ---------------------------------------------------------------------------


def test_flower_api_pages_api_and_metrics_against_a_live_worker(live: LiveCluster) -> None:
    d, host = live.dashboard, live.hostname
    added, failed = live.send("add", 2, 3), live.send("fail", "boom")
    assert added.get(timeout=30) == 5
    assert failed.get(timeout=30, propagate=False) is not None and failed.state == states.FAILURE
    live.wait_for_task(added.id, states.SUCCESS)
    live.wait_for_task(failed.id, states.FAILURE)

    # Flower: workers
    workers = ok(d.get("/api/workers"))
    assert {"stats", "registered", "active_queues", "active", "reserved", "conf"} <= set(
        workers[host]
    )
    assert TASKS["add"] in workers[host]["registered"]
    assert [q["name"] for q in workers[host]["active_queues"]] == ["celery"]
    assert ok(d.get("/api/workers", params={"status": "1"}))[host] is True
    assert set(ok(d.get("/api/workers", params={"workername": host}))) == {host}
    assert ok(d.get("/api/workers", params={"workername": "nobody@nowhere"}), 404)["error"]

    # Flower: tasks
    listed = ok(d.get("/api/tasks", params={"taskname": TASKS["add"]}))
    assert set(listed[added.id]) >= FLOWER_TASK_KEYS
    assert listed[added.id]["worker"] == host and listed[added.id]["state"] == "SUCCESS"
    by_state = ok(d.get("/api/tasks", params={"state": "FAILURE", "limit": "10"}))
    assert list(by_state) == [failed.id]
    assert failed.id in ok(d.get("/api/tasks", params={"search": "boom"}))
    info = ok(d.get(f"/api/task/info/{failed.id}"))
    assert info["state"] == "FAILURE" and "boom" in info["exception"]
    assert ok(d.get("/api/task/info/no-such-task"), 404) == {"error": "Unknown task 'no-such-task'"}
    assert TASKS["add"] in ok(d.get("/api/task/types"))["task-types"]
    result = ok(d.get(f"/api/task/result/{added.id}"))
    assert result == {"task-id": added.id, "state": "SUCCESS", "result": 5}
    failure = ok(d.get(f"/api/task/result/{failed.id}"))
    assert failure["state"] == "FAILURE" and "boom" in failure["traceback"]

    # Flower: actions
    sent = ok(d.post(f"/api/task/async-apply/{TASKS['add']}", json={"args": [1, 2]}))
    assert live.app.AsyncResult(sent["task-id"]).get(timeout=30) == 3
    applied = ok(d.post(f"/api/task/apply/{TASKS['add']}", json={"args": [4, 4]}))
    assert applied["state"] == "SUCCESS" and applied["result"] == 8
    later = live.send("add", 0, 0, countdown=600)
    revoked = ok(d.post(f"/api/task/revoke/{later.id}", data={"terminate": "false"}))
    assert revoked == {"message": f"Revoked '{later.id}'"}
    assert live.app.AsyncResult(later.id).state == states.REVOKED
    added_queue = ok(d.post(f"/api/worker/queue/add-consumer/{host}", params={"queue": "extra"}))
    assert added_queue == {"message": "add consumer extra"}
    ok(d.post(f"/api/worker/queue/cancel-consumer/{host}", params={"queue": "extra"}))
    grown = ok(d.post(f"/api/worker/pool/grow/{host}", params={"n": "1"}))
    assert grown == {"message": f"Growing '{host}' worker's pool by 1"}
    ok(d.post(f"/api/worker/pool/shrink/{host}", params={"n": "1"}))
    limits = ok(d.post(f"/api/task/timeout/{TASKS['sleep']}", data={"soft": "5", "hard": "9"}))
    assert limits == {"message": "time limits set successfully"}
    length = ok(d.get("/api/queues/length"))["active_queues"]
    assert "celery" in [q["name"] for q in length] and all(
        isinstance(q["messages"], int) for q in length
    )

    # the pages' API
    failures = ok(d.get("/api/dash/tasks", params={"state": "FAILURE"}))
    assert failures["total"] == 1 and failures["tasks"][0]["uuid"] == failed.id
    detail = ok(d.get(f"/api/dash/task/{failed.id}"))
    assert [e["state"] for e in detail["timeline"]][-1] == "FAILURE"
    assert detail["graph"]["nodes"][0]["id"] == failed.id
    again = ok(d.post(f"/api/dash/task/{failed.id}/retry"))["task-id"]
    assert live.wait_for_task(again, states.FAILURE)["payload"]["args"] == ["boom"]
    preview = ok(
        d.post(
            "/api/dash/tasks/bulk",
            json={"action": "retry", "filter": {"state": "FAILURE"}, "preview": True},
        )
    )
    assert preview == {"count": 2}
    row = next(w for w in ok(d.get("/api/dash/workers")) if w["hostname"] == host)
    assert row["alive"] and row["heartbeat_age"] is not None
    worker = ok(d.get(f"/api/dash/worker/{host}"))
    assert worker["stats"]["pool"]["implementation"] == "threads"
    assert TASKS["add"] in worker["registered"]
    assert "celery" in [q["name"] for q in ok(d.get("/api/dash/queues"))]
    overview = ok(d.get("/api/dash/overview"))
    assert overview["workers"]["alive"] >= 1 and overview["states"]["SUCCESS"] >= 2

    # dead letters: a message that is not one is dead-lettered by the worker
    live.app.broker.publish([Outgoing(b"not a task message", "celery")])
    letters = wait_until(lambda: ok(d.get("/api/dash/deadletters", params={"queue": "celery"})))
    assert letters[0]["reason"] and letters[0]["task"] is None
    requeued = ok(
        d.post("/api/dash/deadletters/requeue", json={"queue": "celery", "ids": [letters[0]["id"]]})
    )
    assert requeued == {"requeued": 1}
    wait_until(lambda: ok(d.get("/api/dash/deadletters", params={"queue": "celery"})))
    assert ok(d.post("/api/dash/deadletters/purge", json={"queue": "celery"})) == {"purged": 1}

    # /metrics: counted from the events
    def counted() -> bool:
        text = ok(d.get("/metrics"))
        return f'name="{TASKS["add"]}",queue="celery",state="succeeded"' in text

    wait_until(counted, timeout=30)
    assert "celeriac_queue_waiting" in ok(d.get("/metrics"))


# -- one broker -----------------------------------------------------------------------------


@pytest.fixture
def memory_cluster_app(memory_app: Celery) -> Iterator[Celery]:
    """An app with no worker: enough for the protections."""
    yield memory_app


def basic(user: str, password: str) -> dict[str, str]:
    token = base64.b64encode(f"{user}:{password}".encode()).decode()
    return {"Authorization": f"Basic {token}"}


def test_basic_auth_with_several_users_and_a_bearer_token(
    memory_cluster_app: Celery, dashboard: Start
) -> None:
    d = dashboard(memory_cluster_app, basic_auth="alice:wonder,bob:builder", auth="s3cret")
    refused = d.get("/api/workers")
    assert refused.status_code == 401 and refused.headers["www-authenticate"].startswith("Basic")
    assert d.get("/api/dash/me", headers=basic("alice", "wrong")).status_code == 401
    assert d.get("/api/dash/me", headers=basic("mallory", "wonder")).status_code == 401
    assert ok(d.get("/api/dash/me", headers=basic("alice", "wonder")))["user"] == "alice"
    assert ok(d.get("/api/dash/me", headers=basic("bob", "builder")))["user"] == "bob"
    assert ok(d.get("/api/dash/me", headers={"Authorization": "Bearer s3cret"}))["user"] == "token"
    assert d.get("/metrics", headers={"Authorization": "Bearer nope"}).status_code == 401
    assert d.get("/metrics").status_code == 401
    assert ok(d.get("/healthcheck")) == "OK"  # open, for load balancers


def test_csrf_same_origin_read_only_and_headers(
    memory_cluster_app: Celery, dashboard: Start
) -> None:
    d = dashboard(memory_cluster_app)
    me = d.get("/api/dash/me")
    token = ok(me)["csrf_token"]
    assert "SameSite=Strict" in me.headers["set-cookie"]
    cookie = {"Cookie": f"celeriac_csrf={token}"}
    purge = "/api/dash/deadletters/purge"
    # a browser (it has the cookie) must send the token
    assert d.post(purge, headers=cookie).status_code == 403
    assert d.post(purge, headers={**cookie, "X-CSRF-Token": "forged"}).status_code == 403
    assert ok(d.post(purge, headers={**cookie, "X-CSRF-Token": token})) == {"purged": 0}
    # another site's page is refused, whatever it sends
    evil = {"Origin": "https://evil.example", "X-CSRF-Token": token, **cookie}
    assert d.post(purge, headers=evil).status_code == 403
    assert d.post(purge, headers={"Sec-Fetch-Site": "cross-site"}).status_code == 403
    # a script (no cookies, no Origin) and a page of this origin are served
    assert ok(d.post(purge)) == {"purged": 0}
    same = {"Origin": d.url, "X-CSRF-Token": token, **cookie}
    assert ok(d.post(purge, headers=same)) == {"purged": 0}
    # the headers: a CSP, no sniffing, no framing, and never CORS
    answer = d.get("/api/dash/me", headers={"Origin": "https://evil.example"})
    assert answer.headers["content-security-policy"].startswith("default-src 'self'")
    assert "frame-ancestors 'none'" in answer.headers["content-security-policy"]
    assert answer.headers["x-content-type-options"] == "nosniff"
    assert not any(h.lower().startswith("access-control-") for h in answer.headers)
    assert "content-security-policy" in d.get("/healthcheck").headers

    read_only = dashboard(memory_cluster_app, read_only=True)
    assert ok(read_only.get("/api/dash/me"))["read_only"] is True
    assert read_only.post(purge).status_code == 403
    assert read_only.post("/api/task/revoke/x").json()["error"] == "the dashboard is read-only"
    assert read_only.get("/api/dash/queues").status_code == 200


def test_a_non_loopback_address_needs_auth() -> None:
    for address in ("127.0.0.1", "::1", "localhost"):
        DashboardConfig(address=address).check_bind()
    with pytest.raises(ImproperlyConfigured, match="--basic-auth"):
        DashboardConfig(address="0.0.0.0").check_bind()
    DashboardConfig(address="0.0.0.0", basic_auth={"a": "b"}).check_bind()
    DashboardConfig(address="0.0.0.0", unsafe_no_auth=True).check_bind()
    done = run_cli("-A", "proj", "dashboard", "--address", "0.0.0.0", "--port", "1")
    assert done.returncode == 1
    assert "--basic-auth" in done.stderr and "--unsafe-no-auth" in done.stderr


def hide_passwords(name: str, args: list[Any], kwargs: dict[str, Any]) -> tuple[Any, Any]:
    if name == TASKS["login"]:
        return args[:1], {k: "***" if k == "password" else v for k, v in kwargs.items()}
    return args, kwargs


def test_redaction_audit_log_and_url_prefix(
    live_sqlite: LiveCluster,
    dashboard: Start,
    tmp_path: Any,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="celeriac.dashboard.audit")
    login = live_sqlite.app.send_task(TASKS["login"], ["ann"], {"password": "hunter2"})
    assert login.get(timeout=30) == "ann"
    live_sqlite.wait_for_task(login.id, states.SUCCESS)
    d = dashboard(
        live_sqlite.app,
        store=f"sqlite:///{tmp_path}/redacted.db",
        redact=hide_passwords,
        basic_auth="alice:wonder",
        url_prefix="/flower",
    )
    alice = basic("alice", "wonder")
    assert d.url.endswith("/flower")

    def seen() -> Any:
        found = d.get(f"/api/task/info/{login.id}", headers=alice)
        return found.json() if found.status_code == 200 else None

    info = wait_until(seen, timeout=30)
    assert "hunter2" not in str(info) and "***" in info["kwargs"]
    detail = ok(d.get(f"/api/dash/task/{login.id}", headers=alice))
    assert detail["task"]["payload"]["kwargs"] == {"password": "***"}
    assert "hunter2" not in str(ok(d.get("/api/tasks", headers=alice)))
    listed = ok(d.get("/api/dash/tasks", params={"name": TASKS["login"]}, headers=alice))
    assert "hunter2" not in str(listed)

    # the audit log: who did what to what, without secrets
    ok(d.post(f"/api/task/revoke/{login.id}", headers=alice))
    # what the hook hid was never stored, so the task cannot be sent again from the store
    refused = ok(d.post(f"/api/dash/task/{login.id}/retry", headers=alice), 409)
    assert "dashboard_redact" in refused["error"]
    stored = b"".join(p.read_bytes() for p in Path(tmp_path).glob("redacted.db*"))
    assert b"ann" in stored and b"hunter2" not in stored
    lines = [r.getMessage() for r in caplog.records if r.name == "celeriac.dashboard.audit"]
    assert f"user=alice action=task.revoke target={login.id}" in "\n".join(lines)
    assert not any("hunter2" in line or "wonder" in line for line in lines)

    # under the prefix: the OpenAPI document describes Flower's paths
    spec = ok(d.get("/api/openapi.json", headers=alice))
    assert spec["openapi"].startswith("3.1") and spec["servers"] == [{"url": "/flower"}]
    for path in ("/api/workers", "/api/tasks", "/api/task/info/{taskid}", "/api/queues/length"):
        assert path in spec["paths"]
    assert "post" in spec["paths"]["/api/task/revoke/{taskid}"]
    assert "/api/task/info/{taskid}" in ok(d.get("/api/docs", headers=alice))
    assert ok(d.get("/healthcheck")) == "OK"


def test_alerts_fire_and_are_acknowledged_from_the_api(
    memory_cluster_app: Celery, dashboard: Start, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="celeriac.dashboard.audit")
    app = memory_cluster_app
    app.conf.dashboard_alerts = [{"kind": "queue_depth", "queue": "celery", "threshold": 1}]
    app.broker.publish([Outgoing(b"{}", "celery") for _ in range(3)])  # no worker takes them
    d = dashboard(app, alert_interval=0.2)

    def firing() -> list[dict[str, Any]]:
        found = ok(d.get("/api/dash/alerts"))["alerts"]
        return [a for a in found if a["state"] == "firing"]

    alert = wait_until(firing, timeout=30)[0]
    assert ok(d.get("/api/dash/overview"))["alerts"] == {"firing": 1}
    assert ok(d.get("/api/dash/alerts"))["rules"][0]["kind"] == "queue_depth"
    done = ok(d.post(f"/api/dash/alert/{alert['id']}/acknowledge"))
    assert done["alert"]["acknowledged_by"] == "anonymous"
    assert ok(d.post("/api/dash/alert/nope/silence", json={"minutes": 5}), 404)["error"]
    lines = [r.getMessage() for r in caplog.records if r.name == "celeriac.dashboard.audit"]
    assert f"user=anonymous action=alert.acknowledge target={alert['id']}" in lines


def test_the_database_schedule_is_edited_from_the_api(
    memory_app: Celery, dashboard: Start, tmp_path: Path
) -> None:
    from celeriac.beat.database import PeriodicTasks

    app = memory_app
    app.conf.beat_scheduler = "db"
    app.conf.beat_db_url = f"sqlite:///{tmp_path}/schedule.db"

    @app.task(name="dash.tick")
    def tick(n: int) -> int:
        return n

    table = PeriodicTasks(app)
    try:
        table.add("every-minute", "dash.tick", 60.0, [1])
    finally:
        table.close()
    d = dashboard(app)
    found = ok(d.get("/api/dash/schedules"))
    assert found["editable"] is True
    [entry] = found["entries"]
    assert entry["name"] == "every-minute" and entry["enabled"] is True
    ok(d.post("/api/dash/schedule/every-minute/disable"))
    assert ok(d.get("/api/dash/schedules"))["entries"][0]["enabled"] is False
    ok(d.post("/api/dash/schedule/every-minute/enable"))
    edited = {"args": [7], "cron": "*/5 * * * *"}
    ok(d.post("/api/dash/schedule/every-minute/edit", json=edited))
    [entry] = ok(d.get("/api/dash/schedules"))["entries"]
    assert entry["enabled"] is True and entry["args"] == [7] and "5" in entry["schedule"]
    run = ok(d.post("/api/dash/schedule/every-minute/run"))
    assert app.AsyncResult(run["task_id"]).id == run["task_id"]
    assert ok(d.post("/api/dash/schedule/nope/run"), 404)["error"]

    app.conf.beat_scheduler = "file"  # the app's beat_schedule: shown, not changed here
    app.conf.beat_schedule = {"tick": {"task": "dash.tick", "schedule": 30.0, "args": [2]}}
    read_only = dashboard(app)
    found = ok(read_only.get("/api/dash/schedules"))
    assert found["editable"] is False and found["entries"][0]["name"] == "tick"
    assert "read-only" in ok(read_only.post("/api/dash/schedule/tick/disable"), 409)["error"]
