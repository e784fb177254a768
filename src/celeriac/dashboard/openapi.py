"""The API described: an OpenAPI 3.1 document (``/api/openapi.json``) built from the routes
themselves (each endpoint's docstring is its summary), and ``/api/docs``, a plain page that
lists the endpoints (no script, nothing from a CDN)."""

from __future__ import annotations

import html
import re
from typing import Any

from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.routing import BaseRoute, Route

from .. import __version__
from .web import json_response

#: query parameters, by path
QUERY: dict[str, dict[str, str]] = {
    "/api/workers": {
        "refresh": "ignored: workers are always asked",
        "workername": "only this worker",
        "status": "1: only whether each worker is alive",
    },
    "/api/tasks": {
        "limit": "at most this many (100)",
        "offset": "skip this many",
        "sort_by": "a column, '-' first for descending (e.g. -received)",
        "workername": "run by this worker",
        "taskname": "of this task name",
        "state": "in this state",
        "received_start": "updated at or after (YYYY-MM-DD HH:MM, ISO 8601 or Unix time)",
        "received_end": "updated at or before",
        "search": "text in the name, id, args, kwargs, result or exception",
    },
    "/api/task/result/{taskid}": {"timeout": "seconds to wait for the result"},
    "/api/task/revoke/{taskid}": {"terminate": "true: stop it if it runs", "signal": "SIGTERM"},
    "/api/task/rate-limit/{taskname}": {"ratelimit": "e.g. 10/m", "workername": "ignored"},
    "/api/task/timeout/{taskname}": {
        "soft": "seconds",
        "hard": "seconds",
        "workername": "only this worker",
    },
    "/api/worker/pool/grow/{workername}": {"n": "how many (1)"},
    "/api/worker/pool/shrink/{workername}": {"n": "how many (1)"},
    "/api/worker/pool/autoscale/{workername}": {"min": "processes", "max": "processes"},
    "/api/worker/queue/add-consumer/{workername}": {"queue": "the queue"},
    "/api/worker/queue/cancel-consumer/{workername}": {"queue": "the queue"},
    "/api/dash/tasks": {
        "state": "",
        "name": "",
        "worker": "",
        "since": "Unix time",
        "until": "Unix time",
        "search": "",
        "sort": "a column (updated)",
        "order": "asc or desc",
        "limit": "(50)",
        "offset": "",
    },
    "/api/dash/deadletters": {"queue": "(every known queue)", "limit": "(100)"},
    "/api/dash/series/{kind}": {"minutes": "the window (60)"},
}

_PARAM = re.compile(r"{(\w+)(?::\w+)?}")


def _operations(routes: list[BaseRoute]) -> list[tuple[str, str, str]]:
    """``(method, path, summary)`` of every API route."""
    found = []
    for route in routes:
        if not isinstance(route, Route) or "{rest" in route.path:
            continue
        path = _PARAM.sub(r"{\1}", route.path)
        if not path.startswith(("/api", "/metrics", "/healthcheck")):
            continue
        summary = (route.endpoint.__doc__ or route.name or "").strip().splitlines()[0]
        for method in sorted((route.methods or set()) - {"HEAD"}):
            found.append((method, path, summary))
    return found


def document(routes: list[BaseRoute], prefix: str = "") -> dict[str, Any]:
    """The OpenAPI 3.1 document of ``routes``."""
    paths: dict[str, dict[str, Any]] = {}
    for method, path, summary in _operations(routes):
        parameters = [
            {"name": name, "in": "path", "required": True, "schema": {"type": "string"}}
            for name in _PARAM.findall(path)
        ]
        parameters += [
            {"name": name, "in": "query", "description": text, "schema": {"type": "string"}}
            for name, text in QUERY.get(path, {}).items()
        ]
        operation: dict[str, Any] = {
            "summary": summary.replace("``", "`"),
            "operationId": f"{method.lower()}{re.sub(r'[^A-Za-z0-9]+', '_', path)}",
            "parameters": parameters,
            "responses": {
                "200": {"description": "OK", "content": {"application/json": {}}},
                "401": {"description": "authentication required"},
                "4XX": {"description": '{"error": message}'},
            },
        }
        if method == "POST":
            operation["requestBody"] = {
                "required": False,
                "content": {
                    "application/json": {"schema": {"type": "object"}},
                    "application/x-www-form-urlencoded": {"schema": {"type": "object"}},
                },
            }
            operation["responses"]["403"] = {
                "description": "read-only mode, or refused as cross-site (CSRF)"
            }
        if path in ("/healthcheck", "/metrics"):
            operation["responses"]["200"] = {"description": "OK", "content": {"text/plain": {}}}
        paths.setdefault(path, {})[method.lower()] = operation
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "celeriac dashboard",
            "version": __version__,
            "description": "Flower-compatible API (/api/...), the dashboard's own (/api/dash/...), "
            "/metrics and /healthcheck. POSTs need the X-CSRF-Token header or no cookies.",
        },
        "servers": [{"url": prefix or "/"}],
        "components": {
            "securitySchemes": {
                "basic": {"type": "http", "scheme": "basic"},
                "bearer": {"type": "http", "scheme": "bearer"},
            }
        },
        "security": [{"basic": []}, {"bearer": []}],
        "paths": paths,
    }


def routes(api_routes: list[BaseRoute]) -> list[BaseRoute]:
    """``/api/openapi.json`` and ``/api/docs`` for ``api_routes``."""

    async def openapi(request: Request) -> Response:
        """``GET /api/openapi.json``: this document."""
        return json_response(document(api_routes, str(request.scope.get("root_path", ""))))

    async def docs(request: Request) -> Response:
        """``GET /api/docs``: the endpoints, as a page."""
        root = html.escape(str(request.scope.get("root_path", "")))
        rows = "\n".join(
            f"<tr><td>{m}</td><td><code>{html.escape(p)}</code></td>"
            f"<td>{html.escape(s.replace('``', ''))}</td></tr>"
            for m, p, s in _operations(api_routes)
        )
        page = (
            "<!doctype html><html><head><meta charset='utf-8'><title>celeriac dashboard API"
            "</title></head><body><h1>celeriac dashboard API</h1>"
            f"<p>OpenAPI 3.1: <a href='{root}/api/openapi.json'>{root}/api/openapi.json</a></p>"
            f"<table><thead><tr><th>Method</th><th>Path</th><th>What</th></tr></thead>"
            f"<tbody>{rows}</tbody></table></body></html>"
        )
        return HTMLResponse(page, headers={"Cache-Control": "no-store"})

    return [
        Route("/api/openapi.json", openapi, methods=["GET"]),
        Route("/api/docs", docs, methods=["GET"]),
    ]
