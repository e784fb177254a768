"""What the API's endpoints share: the dashboard's state, one request's arguments, JSON
answers and errors, and asking the workers several questions at once.

An endpoint is a plain function ``(dashboard, call) -> JSON-able value`` run in a worker
thread (the store, the broker and control block); :func:`endpoint` makes it a Starlette
endpoint: it reads the body first, maps :class:`ApiError` and outages to ``{"error": ...}``
answers, and renders the value as JSON.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response

from ..control import flatten_reply
from ..exceptions import OperationalError
from ..monitor.ingest import Redactor
from ..utils import yes_or_no
from .config import DashboardConfig
from .security import ANONYMOUS, audit, redact_row

if TYPE_CHECKING:
    from ..app import Celeriac
    from ..monitor.store import EventStore
    from .service import DashboardService

logger = logging.getLogger("celeriac.dashboard")

#: the largest request body read (JSON or form)
MAX_BODY = 1 << 20


class ApiError(Exception):
    """An answer ``{"error": message}`` with ``status``."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def _default(value: Any) -> Any:
    if isinstance(value, set | frozenset | tuple):
        return list(value)
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return repr(value)


def _finite(value: Any) -> Any:
    """``value`` with NaN and infinities as None (JSON has neither)."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(v) for v in value]
    return value


class JSONResponse(Response):
    """JSON of anything: values JSON lacks are shown by repr, never refused."""

    media_type = "application/json"

    def render(self, content: Any) -> bytes:
        try:
            text = json.dumps(content, default=_default, allow_nan=False)
        except ValueError:
            text = json.dumps(_finite(content), default=_default)
        return text.encode()


def json_response(content: Any, status: int = 200) -> JSONResponse:
    response = JSONResponse(content, status_code=status)
    response.headers["Cache-Control"] = "no-store"
    return response


@dataclass
class Dashboard:
    """What every endpoint reaches: the app, the options, the background service."""

    app: Celeriac
    config: DashboardConfig
    service: DashboardService
    redactor: Redactor | None = None
    #: the pool :func:`ask` puts its questions in
    pool: ThreadPoolExecutor = field(
        default_factory=lambda: ThreadPoolExecutor(16, thread_name_prefix="celeriac-dashboard")
    )

    @property
    def store(self) -> EventStore:
        return self.service.store

    def task_row(self, task_id: str) -> dict[str, Any]:
        """The event store's row of ``task_id``; a 404 when it keeps none."""
        row = self.store.task(task_id)
        if row is None:
            raise ApiError(404, f"Unknown task '{task_id}'")
        return row

    def redact(self, row: dict[str, Any]) -> dict[str, Any]:
        return redact_row(row, self.redactor)

    def redact_request(self, request: Any) -> Any:
        """A task as inspect tells it (``active``, ``reserved``, ``scheduled``), its
        arguments through the redaction hook."""
        if self.redactor is None or not isinstance(request, dict):
            return request
        inner = request.get("request")
        target = dict(inner if isinstance(inner, dict) else request)
        row = {
            "name": target.get("name"),
            "payload": {"args": target.get("args"), "kwargs": target.get("kwargs")},
        }
        payload = self.redact(row)["payload"]
        target["args"], target["kwargs"] = payload["args"], payload["kwargs"]
        return {**request, "request": target} if isinstance(inner, dict) else target

    def alive_workers(self) -> list[str]:
        return [w["hostname"] for w in self.store.workers() if w.get("alive")]


@dataclass
class Call:
    """One request's arguments: path parameters, query string and body (JSON or form)."""

    request: Request
    user: str
    path: dict[str, Any]
    query: dict[str, str]
    body: dict[str, Any]

    def get(self, name: str, default: Any = None) -> Any:
        """An argument from the body, else the query string."""
        if name in self.body:
            return self.body[name]
        return self.query.get(name, default)

    def text(self, name: str, default: str | None = None) -> str | None:
        value = self.get(name)
        if value is None or value == "":
            return default
        return str(value)

    def number(self, name: str, default: float | None = None) -> float | None:
        value = self.get(name)
        if value is None or value == "":
            return default
        try:
            number = float(value)
        except (TypeError, ValueError):
            raise ApiError(400, f"{name} must be a number, not {value!r}") from None
        if not math.isfinite(number):
            raise ApiError(400, f"{name} must be a finite number")
        return number

    def integer(self, name: str, default: int, low: int = 0, high: int = 1 << 31) -> int:
        value = self.number(name)
        if value is None:
            return default
        if not value.is_integer():
            raise ApiError(400, f"{name} must be a whole number")
        return max(low, min(int(value), high))

    def flag(self, name: str, default: bool = False) -> bool:
        value = self.get(name)
        if value is None or value == "":
            return default
        return yes_or_no(value) is True

    def audit(self, action: str, target: str, **details: Any) -> None:
        audit(self.user, action, target, **details)


async def _body(request: Request) -> dict[str, Any]:
    if request.method in ("GET", "HEAD"):
        return {}
    raw = await request.body()
    if len(raw) > MAX_BODY:
        raise ApiError(413, "request body too large")
    kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if not raw.strip():
        return {}
    if kind in ("application/x-www-form-urlencoded", "multipart/form-data"):
        form = await request.form()
        return {k: v for k, v in form.items() if isinstance(v, str)}
    try:
        body = json.loads(raw)
    except ValueError:
        raise ApiError(400, "the body is not JSON") from None
    if not isinstance(body, dict):
        raise ApiError(400, "the body must be a JSON object")
    return body


Handler = Callable[[Dashboard, Call], Any]


def endpoint(handler: Handler) -> Callable[[Request], Any]:
    """``handler`` as a Starlette endpoint (see the module's docstring)."""

    async def run(request: Request) -> Response:
        dashboard: Dashboard = request.app.state.dashboard
        try:
            call = Call(
                request,
                str(request.scope.get("state", {}).get("user") or ANONYMOUS),
                dict(request.path_params),
                dict(request.query_params),
                await _body(request),
            )
            result = await run_in_threadpool(handler, dashboard, call)
        except ApiError as exc:
            return json_response({"error": exc.message}, exc.status)
        except OperationalError as exc:
            logger.warning("dashboard: %s %s: %s", request.method, request.url.path, exc)
            return json_response({"error": f"a service is unavailable: {exc}"}, 503)
        except Exception as exc:  # an answer, and the details in the log only
            logger.exception("dashboard: %s %s failed", request.method, request.url.path)
            return json_response({"error": f"internal error ({type(exc).__name__})"}, 500)
        if isinstance(result, Response):
            return result
        return json_response(result)

    run.__name__ = handler.__name__
    run.__doc__ = handler.__doc__
    return run


def ask(
    dashboard: Dashboard,
    commands: Iterable[str | tuple[str, dict[str, Any]]],
    destination: list[str] | None = None,
    timeout: float | None = None,
) -> dict[str, dict[str, Any] | None]:
    """Ask the workers several inspect questions at once: ``{command: {hostname: reply}
    or None}``. Each waits until every worker expected has answered (those named, else
    those alive in the store), or ``timeout`` (the ``inspect_timeout`` option)."""
    wait = dashboard.config.inspect_timeout if timeout is None else timeout
    expected = len(destination) if destination else len(dashboard.alive_workers()) or None
    control = dashboard.app.control

    def one(command: str, arguments: dict[str, Any]) -> dict[str, Any] | None:
        replies = control.broadcast(
            command, arguments, destination, reply=True, timeout=wait, limit=expected
        )
        return flatten_reply(replies) or None

    futures = {}
    for item in commands:
        command, arguments = (item, {}) if isinstance(item, str) else item
        futures[command] = dashboard.pool.submit(one, command, arguments)
    return {command: future.result() for command, future in futures.items()}
