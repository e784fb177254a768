"""The dashboard's pages: server-rendered shells that ``static/app.js`` fills from the JSON API.

Each page is a Jinja2 template extending ``base.html`` (the left navigation, the header
with the user, the read-only mark and the live indicator). The template carries the page's
structure: its tables, forms and chart panels; the data comes from ``/api/dash/...``,
polled every few seconds while the tab is visible, so a page never needs a reload.

Nothing is inline: the Content-Security-Policy allows scripts and styles from the dashboard
itself only, so the templates hold no ``<script>`` body, ``style`` attribute or event
handler attribute, and the JavaScript never evaluates text. Links and the API are found
from the request's ``root_path``, so the pages work under ``--url-prefix``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.templating import Jinja2Templates

from .. import __version__

__all__ = ["NAVIGATION", "routes"]

HERE = Path(__file__).resolve().parent
TEMPLATES = HERE / "templates"
STATIC = HERE / "static"

#: The left navigation: (path, page name, label), in order.
NAVIGATION: tuple[tuple[str, str, str], ...] = (
    ("/", "overview", "Overview"),
    ("/workers", "workers", "Workers"),
    ("/tasks", "tasks", "Tasks"),
    ("/queues", "queues", "Queues"),
    ("/deadletters", "deadletters", "Dead letters"),
    ("/schedules", "schedules", "Schedules"),
    ("/charts", "charts", "Charts"),
    ("/alerts", "alerts", "Alerts"),
)

_templates = Jinja2Templates(directory=str(TEMPLATES))


def _root(request: Request) -> str:
    """The URL prefix the dashboard is served under, without a trailing slash ("" at /)."""
    return str(request.scope.get("root_path", "")).rstrip("/")


def _render(request: Request, template: str, page: str, **context: Any) -> Response:
    root = _root(request)
    response = _templates.TemplateResponse(
        request,
        template,
        {
            "root": root,
            "page": page,
            "navigation": NAVIGATION,
            "version": __version__,
            **context,
        },
    )
    # the shells hold no data, but a shared cache must not keep a page behind auth
    response.headers["Cache-Control"] = "no-store"
    return response


def _page(template: str, page: str) -> Any:
    async def endpoint(request: Request) -> Response:
        return _render(request, template, page)

    endpoint.__name__ = f"page_{page}"
    return endpoint


async def _worker(request: Request) -> Response:
    return _render(request, "worker.html", "workers", hostname=request.path_params["hostname"])


async def _task(request: Request) -> Response:
    return _render(request, "task.html", "tasks", task_id=request.path_params["task_id"])


def routes() -> list[BaseRoute]:
    """The pages and the static files (``/static``), to include in the dashboard's app.

    The routes are relative: mounted under a prefix, the pages link to each other and call
    the API under it.
    """
    pages: list[BaseRoute] = [
        Route(path, _page(f"{name}.html", name), methods=["GET"], name=f"page-{name}")
        for path, name, _label in NAVIGATION
    ]
    pages += [
        Route("/worker/{hostname:str}", _worker, methods=["GET"], name="page-worker"),
        Route("/task/{task_id:str}", _task, methods=["GET"], name="page-task"),
        Mount("/static", app=StaticFiles(directory=str(STATIC)), name="static"),
    ]
    return pages
