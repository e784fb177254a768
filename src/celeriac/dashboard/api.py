"""Flower's HTTP API: the same paths, arguments and JSON shapes as Flower 2.x, so scripts
written for Flower keep working; plus ``/metrics`` and ``/healthcheck``.

Tasks are read from the event store (so they survive a restart of the dashboard), workers
are asked through remote control, and actions go through ``app.control`` and the broker.
Differences from Flower: a ``received_start``/``received_end`` filter is applied to the
time of a task's last event, and errors are JSON (``{"error": ...}``).
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.responses import PlainTextResponse, Response
from starlette.routing import BaseRoute, Route

from .. import states
from ..exceptions import TimeoutError as ResultTimeout
from ..routing import app_queues
from .web import ApiError, Call, Dashboard, ask, endpoint

#: the state ``contrib.abortable`` gives an aborted task (the dashboard cannot import it)
ABORTED = "ABORTED"
#: the inspect answers ``/api/workers`` gives for each worker, as Flower does
WORKER_INFO = (
    "stats",
    "active_queues",
    "registered",
    "scheduled",
    "active",
    "reserved",
    "revoked",
    "conf",
)
#: the options ``/api/task/async-apply`` and ``send-task`` pass on to ``send_task``
SEND_OPTIONS = (
    "countdown",
    "eta",
    "expires",
    "priority",
    "queue",
    "routing_key",
    "headers",
    "task_id",
    "retries",
)
FLOWER_TASK_FIELDS = (
    "uuid",
    "name",
    "state",
    "received",
    "sent",
    "started",
    "rejected",
    "succeeded",
    "failed",
    "retried",
    "revoked",
    "args",
    "kwargs",
    "eta",
    "expires",
    "retries",
    "result",
    "exception",
    "timestamp",
    "runtime",
    "traceback",
    "exchange",
    "routing_key",
    "clock",
    "client",
    "root_id",
    "parent_id",
    "children",
    "worker",
)


def flower_task(row: dict[str, Any]) -> dict[str, Any]:
    """A store row in Flower's shape of a task (``worker`` is the hostname)."""
    task = {name: row.get(name) for name in FLOWER_TASK_FIELDS}
    task.update(
        routing_key=row.get("queue"),
        exchange=None,
        clock=0,
        client=None,
        children=[],
        root=row.get("root_id"),
        parent=row.get("parent_id"),
    )
    return task


def parse_time(value: str | None, what: str) -> float | None:
    """Flower's ``YYYY-MM-DD HH:MM`` (local time), ISO 8601 or a Unix time."""
    if not value:
        return None
    try:
        return float(value)
    except ValueError:
        pass
    for shape in ("%Y-%m-%d %H:%M",):
        try:
            return dt.datetime.strptime(value, shape).timestamp()
        except ValueError:
            pass
    try:
        return dt.datetime.fromisoformat(value).timestamp()
    except ValueError:
        raise ApiError(400, f"{what}: not a time ({value!r}); use YYYY-MM-DD HH:MM") from None


def _known_worker(dashboard: Dashboard, hostname: str) -> None:
    if not any(w["hostname"] == hostname for w in dashboard.store.workers()):
        raise ApiError(404, f"Unknown worker '{hostname}'")


def _reply(replies: list[dict[str, Any]] | None, hostname: str, what: str) -> str:
    """The ``ok`` text of ``hostname``'s reply; ApiError with its error otherwise."""
    for reply in replies or ():
        answer = reply.get(hostname)
        if isinstance(answer, dict):
            if "ok" in answer:
                return str(answer["ok"])
            raise ApiError(403, f"Failed to {what}: {answer.get('error', answer)!r}")
    raise ApiError(503, f"Failed to {what}: worker '{hostname}' did not answer")


# -- workers --------------------------------------------------------------------------------


def list_workers(d: Dashboard, call: Call) -> Any:
    """``GET /api/workers``: every worker's inspect answers, by hostname; with
    ``status=1`` only whether each is alive; ``workername`` for one."""
    name = call.text("workername")
    rows = d.store.workers()
    if call.flag("status"):
        alive = {w["hostname"]: bool(w["alive"]) for w in rows}
        if name is not None:
            if name not in alive:
                raise ApiError(404, f"Unknown worker '{name}'")
            return {name: alive[name]}
        return alive
    if name is not None:
        _known_worker(d, name)
    destination = [name] if name else None
    answers = ask(d, WORKER_INFO, destination)
    now = dt.datetime.now().timestamp()
    found: dict[str, dict[str, Any]] = {}
    for command, replies in answers.items():
        for hostname, reply in (replies or {}).items():
            info = found.setdefault(hostname, {"timestamp": now})
            if command in ("active", "reserved", "scheduled") and isinstance(reply, list):
                reply = [d.redact_request(r) for r in reply]
            info[command] = reply
    return found


def _worker_command(action: str) -> Any:
    def handler(d: Dashboard, call: Call) -> Any:
        hostname = str(call.path["workername"])
        _known_worker(d, hostname)
        control = d.app.control
        options: dict[str, Any] = {
            "destination": [hostname],
            "reply": True,
            "timeout": d.config.inspect_timeout,
        }
        if action == "shutdown":
            control.shutdown(destination=[hostname])
            message = "Shutting down!"
        elif action == "pool-restart":
            _reply(control.pool_restart(**options), hostname, "restart pool")
            message = f"Restarting '{hostname}' worker's pool"
        elif action in ("pool-grow", "pool-shrink"):
            n = call.integer("n", 1, low=1)
            method = control.pool_grow if action == "pool-grow" else control.pool_shrink
            _reply(method(n, **options), hostname, action.replace("-", " "))
            verb = "Growing" if action == "pool-grow" else "Shrinking"
            message = f"{verb} '{hostname}' worker's pool by {n}"
        elif action == "autoscale":
            low = call.integer("min", 0)
            high = call.integer("max", 0)
            if high < low or high < 1:
                raise ApiError(400, "autoscale needs max >= min and max >= 1")
            _reply(control.autoscale(high, low, **options), hostname, "autoscale")
            message = f"Autoscaling '{hostname}' worker (min={low}, max={high})"
        else:
            queue = call.text("queue")
            if not queue:
                raise ApiError(400, "queue is required")
            if action == "add-consumer":
                message = _reply(control.add_consumer(queue, **options), hostname, "add consumer")
            else:
                message = _reply(
                    control.cancel_consumer(queue, **options), hostname, "cancel consumer"
                )
        call.audit(
            f"worker.{action}", hostname, **{k: call.get(k) for k in ("n", "min", "max", "queue")}
        )
        return {"message": message}

    handler.__name__ = f"worker_{action.replace('-', '_')}"
    handler.__doc__ = f"``POST /api/worker/...{action}/<workername>``"
    return handler


# -- tasks ------------------------------------------------------------------------------------


def _sort(call: Call) -> tuple[str, str]:
    sort_by = call.text("sort_by") or "-updated"
    order = "desc" if sort_by.startswith("-") else "asc"
    return sort_by.lstrip("-"), order


def list_tasks(d: Dashboard, call: Call) -> Any:
    """``GET /api/tasks``: tasks by id, filtered and sorted as Flower's."""
    sort, order = _sort(call)
    options: dict[str, Any] = {"sort": sort, "order": order}
    search = call.text("search")
    if search:
        options["search"] = search
    try:
        rows = d.store.tasks(
            state=call.text("state"),
            name=call.text("taskname"),
            worker=call.text("workername"),
            since=parse_time(call.text("received_start"), "received_start"),
            until=parse_time(call.text("received_end"), "received_end"),
            limit=call.integer("limit", 100, low=1, high=10_000),
            offset=call.integer("offset", 0),
            **options,
        )
    except TypeError:  # a store without search and sorting yet
        rows = d.store.tasks(
            state=call.text("state"),
            name=call.text("taskname"),
            worker=call.text("workername"),
            limit=call.integer("limit", 100, low=1, high=10_000),
            offset=call.integer("offset", 0),
        )
    except ValueError as exc:
        raise ApiError(400, str(exc)) from None
    return {row["uuid"]: flower_task(d.redact(row)) for row in rows}


def task_types(d: Dashboard, call: Call) -> Any:
    """``GET /api/task/types``: the task names seen, and those the app registers."""
    names = set(d.store.task_names())
    names |= {n for n in d.app.tasks if not n.startswith(("celery.", "celeriac."))}
    names.discard("")
    return {"task-types": sorted(names)}


def task_info(d: Dashboard, call: Call) -> Any:
    """``GET /api/task/info/<taskid>``."""
    task_id = str(call.path["taskid"])
    row = d.task_row(task_id)
    return flower_task(d.redact(row))


def task_result(d: Dashboard, call: Call) -> Any:
    """``GET /api/task/result/<taskid>[?timeout=seconds]``."""
    task_id = str(call.path["taskid"])
    result = d.app.AsyncResult(task_id)
    timeout = call.number("timeout")
    if timeout is not None:
        try:
            result.get(timeout=min(timeout, 300.0), propagate=False)
        except ResultTimeout:
            raise ApiError(408, f"Timeout waiting for task '{task_id}'") from None
    return _result_body(result)


def _result_body(result: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"task-id": result.id, "state": result.state}
    if result.ready():
        value = result.result
        body["result"] = repr(value) if isinstance(value, BaseException) else value
        if result.state == states.FAILURE:
            body["traceback"] = result.traceback
    return body


def _send_options(call: Call) -> dict[str, Any]:
    given = call.body.get("options") or {}
    if not isinstance(given, dict):
        raise ApiError(400, "options must be a JSON object")
    flat = {k: call.body[k] for k in SEND_OPTIONS if k in call.body}
    options = {k: v for k, v in {**flat, **given}.items() if k in SEND_OPTIONS}
    for key in ("eta", "expires"):
        if isinstance(options.get(key), str):
            try:
                options[key] = dt.datetime.fromisoformat(options[key])
            except ValueError:
                raise ApiError(400, f"{key} must be an ISO 8601 time") from None
    return options


def _arguments(call: Call) -> tuple[list[Any], dict[str, Any]]:
    args = call.body.get("args", [])
    kwargs = call.body.get("kwargs", {})
    if not isinstance(args, list) or not isinstance(kwargs, dict):
        raise ApiError(400, "args must be a JSON list and kwargs a JSON object")
    return args, kwargs


def _send(d: Dashboard, call: Call, action: str) -> Any:
    name = str(call.path["taskname"])
    args, kwargs = _arguments(call)
    options = _send_options(call)
    task = d.app.tasks.get(name)
    if action != "send-task" and task is None and name not in d.store.task_names():
        raise ApiError(404, f"Unknown task '{name}'")
    result = d.app.send_task(name, args, kwargs, **options)
    call.audit(f"task.{action}", name, task_id=result.id)
    if action == "apply":
        try:
            result.get(timeout=call.number("timeout", 60.0), propagate=False)
        except ResultTimeout:
            pass
        return _result_body(result)
    return {"task-id": result.id, "state": result.state}


def async_apply(d: Dashboard, call: Call) -> Any:
    """``POST /api/task/async-apply/<taskname>``: ``{"args", "kwargs", "options"}``."""
    return _send(d, call, "async-apply")


def apply(d: Dashboard, call: Call) -> Any:
    """``POST /api/task/apply/<taskname>``: send and wait for the result."""
    return _send(d, call, "apply")


def send_task(d: Dashboard, call: Call) -> Any:
    """``POST /api/task/send-task/<taskname>``: send by name, registered here or not."""
    return _send(d, call, "send-task")


def revoke(d: Dashboard, call: Call) -> Any:
    """``POST /api/task/revoke/<taskid>[?terminate=true&signal=SIGTERM]``."""
    task_id = str(call.path["taskid"])
    terminate = call.flag("terminate")
    signal = call.text("signal", "SIGTERM") or "SIGTERM"
    try:
        d.app.control.revoke(task_id, terminate=terminate, signal=signal)
    except ValueError as exc:
        raise ApiError(400, str(exc)) from None
    call.audit("task.revoke", task_id, terminate=terminate, signal=signal if terminate else None)
    return {"message": f"Revoked '{task_id}'"}


def abort(d: Dashboard, call: Call) -> Any:
    """``POST /api/task/abort/<taskid>``: ask an abortable task to stop."""
    task_id = str(call.path["taskid"])
    result = d.app.AsyncResult(task_id)
    if not result.ready():
        d.app.results.store(task_id, ABORTED, None)
    call.audit("task.abort", task_id)
    return {"message": f"Aborted '{task_id}'"}


def rate_limit(d: Dashboard, call: Call) -> Any:
    """``POST /api/task/rate-limit/<taskname>`` (``ratelimit``; every worker applies it)."""
    name = str(call.path["taskname"])
    value = call.text("ratelimit")
    if value is None:
        raise ApiError(400, "ratelimit is required (e.g. 10/m; 0 or '' for none)")
    d.app.control.rate_limit(name, value if value not in ("0", "") else None)
    call.audit("task.rate-limit", name, ratelimit=value)
    return {"message": "new rate limit set successfully"}


def time_limit(d: Dashboard, call: Call) -> Any:
    """``POST /api/task/timeout/<taskname>`` (``soft``, ``hard``, ``workername``)."""
    name = str(call.path["taskname"])
    soft, hard = call.number("soft"), call.number("hard")
    worker = call.text("workername")
    destination = [worker] if worker else None
    replies = d.app.control.time_limit(
        name, soft, hard, destination=destination, reply=True, timeout=d.config.inspect_timeout
    )
    call.audit("task.timeout", name, soft=soft, hard=hard, workername=worker)
    for reply in replies or ():
        for answer in reply.values():
            if isinstance(answer, dict) and "error" in answer:
                raise ApiError(403, f"Failed to set timeouts: {answer['error']!r}")
    if not replies:
        raise ApiError(503, "Failed to set timeouts: no worker answered")
    return {"message": "time limits set successfully"}


# -- queues, metrics, health -------------------------------------------------------------------


def queues_length(d: Dashboard, call: Call) -> Any:
    """``GET /api/queues/length``: messages in each known queue."""
    broker = d.app.broker
    names = d.service.known_queues() if d.service else app_queues(d.app)
    return {"active_queues": [{"name": q, "messages": broker.queue_length(q)} for q in names]}


def metrics(d: Dashboard, call: Call) -> Any:
    """``GET /metrics``: Prometheus' text format."""
    body = generate_latest(d.service.metrics.registry)
    return Response(body, media_type=CONTENT_TYPE_LATEST)


async def healthcheck(request: Any) -> Response:
    """``GET /healthcheck``: ``OK`` (no authentication)."""
    return PlainTextResponse("OK")


def routes() -> list[BaseRoute]:
    """Flower's API, /metrics and /healthcheck."""
    get, post = ["GET"], ["POST"]
    found: list[BaseRoute] = [
        Route("/healthcheck", healthcheck, methods=get),
        Route("/metrics", endpoint(metrics), methods=get),
        Route("/api/workers", endpoint(list_workers), methods=get),
        Route("/api/tasks", endpoint(list_tasks), methods=get),
        Route("/api/task/types", endpoint(task_types), methods=get),
        Route("/api/task/info/{taskid:str}", endpoint(task_info), methods=get),
        Route("/api/task/result/{taskid:str}", endpoint(task_result), methods=get),
        Route("/api/task/async-apply/{taskname:str}", endpoint(async_apply), methods=post),
        Route("/api/task/apply/{taskname:str}", endpoint(apply), methods=post),
        Route("/api/task/send-task/{taskname:str}", endpoint(send_task), methods=post),
        Route("/api/task/revoke/{taskid:str}", endpoint(revoke), methods=post),
        Route("/api/task/abort/{taskid:str}", endpoint(abort), methods=post),
        Route("/api/task/rate-limit/{taskname:str}", endpoint(rate_limit), methods=post),
        Route("/api/task/timeout/{taskname:str}", endpoint(time_limit), methods=post),
        Route("/api/queues/length", endpoint(queues_length), methods=get),
        Route(
            "/api/worker/shutdown/{workername:str}",
            endpoint(_worker_command("shutdown")),
            methods=post,
        ),
    ]
    for action in ("restart", "grow", "shrink", "autoscale"):
        handler = _worker_command("autoscale" if action == "autoscale" else f"pool-{action}")
        found.append(
            Route(f"/api/worker/pool/{action}/{{workername:str}}", endpoint(handler), methods=post)
        )
    for action in ("add-consumer", "cancel-consumer"):
        found.append(
            Route(
                f"/api/worker/queue/{action}/{{workername:str}}",
                endpoint(_worker_command(action)),
                methods=post,
            )
        )
    return found
