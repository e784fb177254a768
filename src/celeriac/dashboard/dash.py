"""The API the dashboard's own pages use (``/api/dash/...``): JSON shaped for the pages, over
the event store, remote control, the broker, the beat schedule and the alerts.

The paths and shapes are listed in docs/monitoring.md ("Dashboard HTTP API").
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import time
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from .. import states
from ..beat.database import PeriodicTasks
from ..beat.scheduler import open_store
from ..brokers.base import DeadLetter
from ..exceptions import ImproperlyConfigured, InvalidTaskError
from ..message import Message
from ..schedules import crontab, schedule
from ..serialization import content_types
from .security import CSRF_COOKIE, cookies, csrf_cookie_header, new_csrf_token
from .web import ApiError, Call, Dashboard, ask, endpoint, json_response

#: the most tasks a bulk action touches at once
BULK_LIMIT = 10_000
#: the most nodes a task's graph shows
GRAPH_LIMIT = 60
#: the longest window a series can be asked for, in minutes (a week)
SERIES_LIMIT = 7 * 24 * 60
#: the schedules edited here (the Django schedule is edited in the Django admin)
_DATABASE_SCHEDULERS = {"db", "database", "celeriac.beat.database:DatabaseStore"}
#: the time column of each state in a task's timeline, in the order of a task's life
TIMELINE = (
    ("sent", "SENT"),
    ("received", states.RECEIVED),
    ("started", states.STARTED),
    ("retried", states.RETRY),
    ("rejected", states.REJECTED),
    ("revoked", states.REVOKED),
    ("failed", states.FAILURE),
    ("succeeded", states.SUCCESS),
)


def _count(d: Dashboard, **filters: Any) -> int | None:
    count = getattr(d.store, "count_tasks", None)
    return int(count(**filters)) if count is not None else None


# -- overview, me --------------------------------------------------------------------------


def me(d: Dashboard, call: Call) -> Any:
    """``GET /api/dash/me``: the user, the read-only mode and the CSRF token (set as the
    ``celeriac_csrf`` cookie too, when the browser has none yet)."""
    token = cookies(call.request.scope).get(CSRF_COOKIE)
    fresh = token is None
    token = token or new_csrf_token()
    response = json_response(
        {"user": call.user, "read_only": d.config.read_only, "csrf_token": token}
    )
    if fresh:
        root = str(call.request.scope.get("root_path", "")) or "/"
        response.headers.append("set-cookie", csrf_cookie_header(token, root))
    return response


def overview(d: Dashboard, call: Call) -> Any:
    """``GET /api/dash/overview``."""
    workers = d.store.workers()
    alive = sum(1 for w in workers if w.get("alive"))
    firing = 0
    if d.service.alerts is not None:
        firing = sum(1 for a in d.service.alerts.alerts() if _alert(a).get("state") == "firing")
    return {
        "states": d.store.counts().get("states", {}),
        "workers": {"alive": alive, "offline": len(workers) - alive},
        "queues": queues(d, call),
        "alerts": {"firing": firing},
        "now": time.time(),
    }


# -- workers -------------------------------------------------------------------------------


def worker_row(d: Dashboard, row: dict[str, Any], now: float) -> dict[str, Any]:
    """A worker as the workers page shows it."""
    hostname = row["hostname"]
    _, stats, memory = d.service.worker_info.get(hostname, (0.0, None, None))
    pool = (stats or {}).get("pool") or {}
    last = row.get("last_heartbeat")
    return {
        "hostname": hostname,
        "alive": bool(row.get("alive")),
        "pool": pool.get("implementation"),
        "concurrency": pool.get("max-concurrency"),
        "load": row.get("loadavg") or [],
        "active": row.get("active"),
        "processed": row.get("processed"),
        "failed": _count(d, state=states.FAILURE, worker=hostname),
        "heartbeat_age": None if last is None else max(now - last, 0.0),
        "memory_rss": memory,
        "sw_ver": row.get("sw_ver"),
        "pid": row.get("pid"),
    }


def workers(d: Dashboard, call: Call) -> Any:
    """``GET /api/dash/workers``."""
    now = time.time()
    return [worker_row(d, row, now) for row in d.store.workers(now)]


def _limits(registered: Any) -> tuple[list[str] | None, dict[str, dict[str, str]] | None]:
    """Task names and their limits from ``registered("rate_limit", ...)`` answers
    (``"name [rate_limit=10/s time_limit=None ...]"``)."""
    if not isinstance(registered, list):
        return None, None
    names, limits = [], {}
    for item in registered:
        name, _, rest = str(item).partition(" [")
        names.append(name)
        fields = dict(part.split("=", 1) for part in rest.rstrip("]").split() if "=" in part)
        limits[name] = {k: v for k, v in fields.items() if v != "None"}
    return names, limits


def worker_detail(d: Dashboard, call: Call) -> Any:
    """``GET /api/dash/worker/<hostname>``: the worker's row and its inspect answers (None
    for those it did not give in time)."""
    hostname = str(call.path["hostname"])
    now = time.time()
    row = next((w for w in d.store.workers(now) if w["hostname"] == hostname), None)
    if row is None:
        raise ApiError(404, f"Unknown worker '{hostname}'")
    questions: list[Any] = ["stats", "active", "reserved", "scheduled", "active_queues", "conf"]
    questions.append(
        ("registered", {"taskinfoitems": ["rate_limit", "time_limit", "soft_time_limit"]})
    )
    answers = {c: (r or {}).get(hostname) for c, r in ask(d, questions, [hostname]).items()}
    for key in ("active", "reserved", "scheduled"):
        listed = answers.get(key)
        if isinstance(listed, list):
            answers[key] = [d.redact_request(r) for r in listed]
    if isinstance(answers.get("stats"), dict):  # fresher than the sampler's
        info = d.service.worker_info.get(hostname, (now, None, None))
        d.service.worker_info[hostname] = (now, answers["stats"], info[2])
    registered, limits = _limits(answers.pop("registered"))
    return {
        "worker": worker_row(d, row, now),
        **answers,
        "registered": registered,
        "limits": limits,
    }


# -- tasks ---------------------------------------------------------------------------------


def _filters(source: dict[str, Any]) -> dict[str, Any]:
    """The store's task filters from a request's (or a bulk action's) arguments."""

    def number(name: str) -> float | None:
        value = source.get(name)
        if value in (None, ""):
            return None
        try:
            return float(value)
        except (TypeError, ValueError):
            raise ApiError(400, f"{name} must be a Unix time") from None

    def text(name: str) -> str | None:
        value = source.get(name)
        return str(value) if value not in (None, "") else None

    filters: dict[str, Any] = {
        "state": text("state"),
        "name": text("name"),
        "worker": text("worker"),
        "since": number("since"),
        "until": number("until"),
    }
    if text("search"):
        filters["search"] = text("search")
    return filters


def tasks(d: Dashboard, call: Call) -> Any:
    """``GET /api/dash/tasks``: ``{"total", "tasks"}``."""
    filters = _filters({**call.query})
    sort = call.text("sort", "updated") or "updated"
    order = call.text("order", "desc") or "desc"
    limit = call.integer("limit", 50, low=1, high=1000)
    offset = call.integer("offset", 0)
    try:
        rows = d.store.tasks(**filters, limit=limit, offset=offset, sort=sort, order=order)
        total = _count(d, **filters)
    except ValueError as exc:
        raise ApiError(400, str(exc)) from None
    return {
        "total": total if total is not None else len(rows),
        "tasks": [d.redact(r) for r in rows],
    }


def _timeline(row: dict[str, Any]) -> list[dict[str, Any]]:
    details = {
        "received": f"on {row.get('worker')}" if row.get("worker") else None,
        "retried": f"retry {row.get('retries')}" if row.get("retries") else None,
        "failed": row.get("exception"),
        "succeeded": f"in {row['runtime']:.3f}s" if row.get("runtime") is not None else None,
    }
    found = [
        {"state": label, "time": row[column], "detail": details.get(column)}
        for column, label in TIMELINE
        if row.get(column) is not None
    ]
    if row.get("state") not in {e["state"] for e in found} and row.get("timestamp"):
        found.append({"state": row["state"], "time": row["timestamp"], "detail": None})
    return sorted(found, key=lambda e: e["time"])


def _children(d: Dashboard, task_id: str) -> list[str]:
    try:
        return [child.id for child in d.app.AsyncResult(task_id).children]
    except Exception:  # no result backend, or one that keeps no children
        return []


def _graph(d: Dashboard, row: dict[str, Any], children: list[str]) -> dict[str, Any]:
    """The task, its ancestors up to the root and its descendants (two levels), as nodes
    and ``parent``/``child`` edges."""
    nodes: dict[str, dict[str, Any]] = {}
    edges: list[dict[str, str]] = []

    def node(task_id: str) -> None:
        if task_id not in nodes and len(nodes) < GRAPH_LIMIT:
            found = d.store.task(task_id) or {}
            nodes[task_id] = {"id": task_id, "name": found.get("name"), "state": found.get("state")}

    node(row["uuid"])
    current = row
    while (
        current.get("parent_id") and current["parent_id"] not in nodes and len(nodes) < GRAPH_LIMIT
    ):
        parent = current["parent_id"]
        node(parent)
        edges.append({"from": parent, "to": current["uuid"], "kind": "child"})
        current = d.store.task(parent) or {"uuid": parent}
    level = [(row["uuid"], children)]
    for _ in range(2):
        following = []
        for task_id, kids in level:
            for kid in kids:
                if len(nodes) >= GRAPH_LIMIT:
                    break
                node(kid)
                edges.append({"from": task_id, "to": kid, "kind": "child"})
                following.append((kid, _children(d, kid)))
        level = following
    return {"nodes": list(nodes.values()), "edges": edges}


def task_detail(d: Dashboard, call: Call) -> Any:
    """``GET /api/dash/task/<id>``."""
    task_id = str(call.path["task_id"])
    row = d.task_row(task_id)
    children = _children(d, task_id)
    return {
        "task": d.redact(row),
        "timeline": _timeline(row),
        "parent": row.get("parent_id"),
        "root": row.get("root_id"),
        "children": children,
        "graph": _graph(d, row, children),
    }


def _resendable(row: dict[str, Any]) -> bool:
    payload = row.get("payload")
    return isinstance(payload, dict) and not payload.get("redacted")


def _resend(d: Dashboard, row: dict[str, Any]) -> str:
    """Send ``row``'s task again with its original arguments (from the stored payload),
    to its queue with its priority; the new task's id."""
    payload = row.get("payload")
    if not isinstance(payload, dict) or not row.get("name"):
        raise ApiError(409, f"task {row['uuid']} cannot be retried: its arguments were not kept")
    if payload.get("redacted"):
        raise ApiError(
            409,
            f"task {row['uuid']} cannot be retried: dashboard_redact changed its arguments "
            "before they were stored",
        )
    options: dict[str, Any] = {}
    if row.get("queue"):
        options["queue"] = row["queue"]
    if row.get("priority") is not None:
        options["priority"] = row["priority"]
    result = d.app.send_task(
        row["name"], payload.get("args") or [], payload.get("kwargs") or {}, **options
    )
    return str(result.id)


def task_retry(d: Dashboard, call: Call) -> Any:
    """``POST /api/dash/task/<id>/retry``: ``{"task-id": new id}``."""
    task_id = str(call.path["task_id"])
    row = d.task_row(task_id)
    new_id = _resend(d, row)
    call.audit("task.retry", task_id, new_task=new_id)
    return {"task-id": new_id}


def bulk(d: Dashboard, call: Call) -> Any:
    """``POST /api/dash/tasks/bulk``: retry or revoke the tasks ``ids`` or those matching
    ``filter``; with ``preview``, only how many."""
    action = call.body.get("action")
    if action not in ("retry", "revoke"):
        raise ApiError(400, "action must be 'retry' or 'revoke'")
    ids, filter_ = call.body.get("ids"), call.body.get("filter")
    if isinstance(ids, list):
        rows = [r for r in (d.store.task(str(i)) for i in ids[:BULK_LIMIT]) if r is not None]
        described = f"{len(ids)} ids"
    elif isinstance(filter_, dict):
        filters = _filters(filter_)
        if call.body.get("preview"):
            count = _count(d, **filters)
            if count is not None:
                return {"count": count}
        rows = d.store.tasks(**filters, limit=BULK_LIMIT)
        described = "filter " + ",".join(f"{k}={v}" for k, v in filters.items() if v is not None)
    else:
        raise ApiError(400, "give ids (a list) or filter (an object)")
    if call.body.get("preview"):
        return {"count": len(rows)}
    new_ids: list[str] = []
    if action == "revoke":
        if rows:
            d.app.control.revoke(
                [r["uuid"] for r in rows], terminate=bool(call.body.get("terminate"))
            )
    else:
        new_ids = [_resend(d, r) for r in rows if _resendable(r)]
    call.audit(f"tasks.bulk-{action}", described, count=len(rows))
    return {"done": len(new_ids) if action == "retry" else len(rows), "task-ids": new_ids}


# -- queues and dead letters ---------------------------------------------------------------


def queues(d: Dashboard, call: Call) -> Any:
    """``GET /api/dash/queues``."""
    broker = d.app.broker
    found = []
    for name in d.service.known_queues():
        stats = dataclasses.asdict(broker.queue_stats(name))
        stats["name"] = stats.pop("queue")
        found.append(stats)
    return found


def purge_queue(d: Dashboard, call: Call) -> Any:
    """``POST /api/dash/queue/<name>/purge`` with ``{"confirm": name}``."""
    name = str(call.path["name"])
    if call.body.get("confirm") != name:
        raise ApiError(400, f'to purge, confirm with the queue\'s name: {{"confirm": "{name}"}}')
    purged = d.app.broker.purge(name)
    call.audit("queue.purge", name, purged=purged)
    return {"purged": purged}


def _letter(d: Dashboard, letter: DeadLetter, accepted: frozenset[str]) -> dict[str, Any]:
    shown: dict[str, Any] = {
        "id": letter.id,
        "queue": letter.queue,
        "reason": letter.reason,
        "dead_at": letter.dead_at,
        "task": None,
        "task_id": None,
        "args": None,
        "kwargs": None,
    }
    try:
        message = Message.decode(letter.body, accepted)
    except (InvalidTaskError, ValueError, TypeError):
        return shown
    row = {"name": message.task, "payload": {"args": message.args, "kwargs": message.kwargs}}
    payload = d.redact(row)["payload"]
    shown.update(
        task=message.task, task_id=message.id, args=payload["args"], kwargs=payload["kwargs"]
    )
    return shown


def _queue_arg(d: Dashboard, call: Call) -> str:
    return call.text("queue") or str(d.app.conf.task_default_queue)


def dead_letters(d: Dashboard, call: Call) -> Any:
    """``GET /api/dash/deadletters?queue=&limit=`` (every known queue's without ``queue``)."""
    limit = call.integer("limit", 100, low=1, high=1000)
    names = [call.text("queue")] if call.text("queue") else d.service.known_queues()
    accepted = content_types(d.app.conf.accept_content)
    found = []
    for name in names:
        for letter in d.app.broker.dead_letters(str(name), limit):
            found.append(_letter(d, letter, accepted))
    return found[:limit]


def requeue_dead_letters(d: Dashboard, call: Call) -> Any:
    """``POST /api/dash/deadletters/requeue`` with ``{"queue", "ids"}`` or ``{"queue",
    "all": true}``."""
    queue = _queue_arg(d, call)
    ids = call.body.get("ids")
    if call.body.get("all") is True:
        count = d.app.broker.requeue_dead_letters(queue)
    elif isinstance(ids, list) and ids:
        count = d.app.broker.requeue_dead_letters(queue, ids)
    else:
        raise ApiError(400, "give ids (a non-empty list) or all: true")
    call.audit("deadletters.requeue", queue, requeued=count)
    return {"requeued": count}


def purge_dead_letters(d: Dashboard, call: Call) -> Any:
    """``POST /api/dash/deadletters/purge`` with ``{"queue"}``."""
    queue = _queue_arg(d, call)
    count = d.app.broker.purge_dead_letters(queue)
    call.audit("deadletters.purge", queue, purged=count)
    return {"purged": count}


# -- schedules -----------------------------------------------------------------------------


def _editable(d: Dashboard) -> bool:
    return str(d.app.conf.beat_scheduler or "file") in _DATABASE_SCHEDULERS


def _iso(value: dt.datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def _schedule_text(schedule: Any) -> str:
    human = getattr(schedule, "human", None)
    return str(human()) if callable(human) else repr(schedule)


def _entry(d: Dashboard, entry: Any, now: dt.datetime) -> dict[str, Any]:
    next_run = None
    try:
        due, wait = entry.schedule.is_due(entry.last_run_at or now)
        next_run = now if due else now + dt.timedelta(seconds=float(wait))
    except Exception:  # a schedule that cannot tell
        next_run = None
    outcome = None
    if entry.recent:
        last = d.store.task(entry.recent[-1])
        outcome = last["state"] if last else d.app.AsyncResult(entry.recent[-1]).state
    return {
        "name": entry.name,
        "task": entry.task,
        "schedule": _schedule_text(entry.schedule),
        "args": entry.args,
        "kwargs": entry.kwargs,
        "enabled": entry.enabled,
        "last_run_at": _iso(entry.last_run_at),
        "next_run_at": _iso(next_run) if entry.enabled else None,
        "total_run_count": entry.total_run_count,
        "last_outcome": outcome,
    }


def schedules(d: Dashboard, call: Call) -> Any:
    """``GET /api/dash/schedules``."""
    now = dt.datetime.now(dt.UTC)
    if _editable(d):
        table = PeriodicTasks(d.app)
        try:
            entries = table.all()
        finally:
            table.close()
    else:
        try:
            store = open_store(d.app)
        except ImproperlyConfigured as exc:
            raise ApiError(409, str(exc)) from None
        try:
            entries = list(store.entries().values())
        finally:
            store.close()
    return {"editable": _editable(d), "entries": [_entry(d, e, now) for e in entries]}


def schedule_action(d: Dashboard, call: Call) -> Any:
    """``POST /api/dash/schedule/<name>/enable|disable|run|edit`` (the database schedule
    only). ``edit`` takes ``args``, ``kwargs`` and ``every`` (seconds) or ``cron``."""
    name, action = str(call.path["name"]), str(call.path["action"])
    if not _editable(d):
        raise ApiError(
            409,
            "the schedule is not the database schedule (beat_scheduler = 'db'): its entries "
            "are read-only here; change them in the app's beat_schedule, or in the Django "
            "admin with the Django schedule",
        )
    table = PeriodicTasks(d.app)
    try:
        detail: dict[str, Any] = {}
        if action == "enable":
            table.enable(name)
        elif action == "disable":
            table.disable(name)
        elif action == "run":
            detail["task_id"] = table.run_now(name).id
        elif action == "edit":
            _edit(d, table, name, call)
        else:
            raise ApiError(404, f"no schedule action {action!r}")
    except KeyError as exc:
        raise ApiError(404, str(exc.args[0])) from None
    except ValueError as exc:
        raise ApiError(400, str(exc)) from None
    finally:
        table.close()
    call.audit(f"schedule.{action}", name, **detail)
    return {"ok": f"{name}: {action}", **detail}


def _edit(d: Dashboard, table: PeriodicTasks, name: str, call: Call) -> None:
    entry = table.get(name)
    args = call.body.get("args", entry.args)
    kwargs = call.body.get("kwargs", entry.kwargs)
    if not isinstance(args, list) or not isinstance(kwargs, dict):
        raise ApiError(400, "args must be a JSON list and kwargs a JSON object")
    sched = entry.schedule
    if call.body.get("every") is not None:
        sched = schedule(float(call.body["every"]), app=d.app)
    elif call.body.get("cron"):
        sched = crontab.from_string(str(call.body["cron"]), app=d.app)
    table.add(
        name,
        str(call.body.get("task") or entry.task),
        sched,
        args,
        kwargs,
        entry.options,
        enabled=bool(call.body.get("enabled", entry.enabled)),
        one_off=entry.one_off,
        start_time=entry.start_time,
        expires=entry.expires,
        max_active=entry.max_active,
    )


# -- series and alerts ---------------------------------------------------------------------


def _window(call: Call) -> tuple[float, float]:
    minutes = call.integer("minutes", 60, low=1, high=SERIES_LIMIT)
    now = time.time()
    return now - minutes * 60, now


def series(d: Dashboard, call: Call) -> Any:
    """``GET /api/dash/series/<kind>?minutes=60`` (throughput, runtimes, queues, workers);
    empty where the store keeps no series."""
    kind = str(call.path["kind"])
    since, until = _window(call)
    store = d.store
    if kind == "throughput":
        method = getattr(store, "throughput", None)
        return method(since, until, 60.0) if method else []
    if kind == "runtimes":
        method = getattr(store, "runtimes", None)
        return method(since, until) if method else []
    if kind in ("queues", "workers"):
        method = getattr(store, "samples", None)
        return method(kind, since, until) if method else {}
    raise ApiError(404, f"no series {kind!r}: throughput, runtimes, queues or workers")


def _alert(alert: Any) -> dict[str, Any]:
    if dataclasses.is_dataclass(alert) and not isinstance(alert, type):
        return dataclasses.asdict(alert)
    return dict(alert) if isinstance(alert, dict) else {"value": alert}


def alerts(d: Dashboard, call: Call) -> Any:
    """``GET /api/dash/alerts``: ``{"rules", "alerts"}`` (empty without alert rules)."""
    manager = d.service.alerts
    if manager is None:
        return {"rules": [], "alerts": []}
    return {
        "rules": [_alert(r) for r in manager.rules()],
        "alerts": [_alert(a) for a in manager.alerts()],
    }


def alert_action(d: Dashboard, call: Call) -> Any:
    """``POST /api/dash/alert/<id>/silence`` (``minutes``) or ``.../acknowledge``."""
    alert_id, action = str(call.path["alert_id"]), str(call.path["action"])
    manager = d.service.alerts
    if manager is None:
        raise ApiError(404, f"Unknown alert '{alert_id}': no alert rules are configured")
    try:
        if action == "silence":
            minutes = call.number("minutes", 60.0)
            alert = manager.silence(alert_id, (minutes or 0.0) * 60, call.user)
        elif action == "acknowledge":
            alert = manager.acknowledge(alert_id, call.user)
        else:
            raise ApiError(404, f"no alert action {action!r}")
    except KeyError:
        raise ApiError(404, f"Unknown alert '{alert_id}'") from None
    call.audit(
        f"alert.{action}", alert_id, minutes=call.get("minutes") if action == "silence" else None
    )
    return {"ok": f"{alert_id}: {action}", "alert": alert}


async def _not_found(request: Request) -> Response:
    return json_response({"error": f"no such API path: {request.url.path}"}, 404)


def routes() -> list[BaseRoute]:
    """The pages' API, under ``/api/dash``."""
    get, post = ["GET"], ["POST"]
    base = "/api/dash"
    return [
        Route(f"{base}/me", endpoint(me), methods=get),
        Route(f"{base}/overview", endpoint(overview), methods=get),
        Route(f"{base}/workers", endpoint(workers), methods=get),
        Route(f"{base}/worker/{{hostname:str}}", endpoint(worker_detail), methods=get),
        Route(f"{base}/tasks", endpoint(tasks), methods=get),
        Route(f"{base}/tasks/bulk", endpoint(bulk), methods=post),
        Route(f"{base}/task/{{task_id:str}}", endpoint(task_detail), methods=get),
        Route(f"{base}/task/{{task_id:str}}/retry", endpoint(task_retry), methods=post),
        Route(f"{base}/queues", endpoint(queues), methods=get),
        Route(f"{base}/queue/{{name:str}}/purge", endpoint(purge_queue), methods=post),
        Route(f"{base}/deadletters", endpoint(dead_letters), methods=get),
        Route(f"{base}/deadletters/requeue", endpoint(requeue_dead_letters), methods=post),
        Route(f"{base}/deadletters/purge", endpoint(purge_dead_letters), methods=post),
        Route(f"{base}/schedules", endpoint(schedules), methods=get),
        Route(
            f"{base}/schedule/{{name:str}}/{{action:str}}", endpoint(schedule_action), methods=post
        ),
        Route(f"{base}/series/{{kind:str}}", endpoint(series), methods=get),
        Route(f"{base}/alerts", endpoint(alerts), methods=get),
        Route(
            f"{base}/alert/{{alert_id:str}}/{{action:str}}", endpoint(alert_action), methods=post
        ),
        Route(f"{base}/{{rest:path}}", _not_found, methods=["GET", "POST"]),
    ]
