"""The built-in dashboard: ``celeriac -A proj dashboard``.

An ASGI app (Starlette, served by uvicorn) over the event store, remote control, the broker,
the beat schedule and the alerts: server-rendered pages (:mod:`.pages`), Flower's HTTP API
(:mod:`.api`), the pages' own API (:mod:`.dash`), ``/metrics``, an OpenAPI document
(:mod:`.openapi`), all behind the protections of :mod:`.security`. The background threads
(event ingestion, metrics, samples, alerts) are in :mod:`.service`.

    from celeriac.dashboard import create_app
    asgi = create_app(app)  # options from the app's dashboard_* settings
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING

try:
    import jinja2  # noqa: F401  (the pages)
    import uvicorn  # noqa: F401
    from starlette.applications import Starlette
    from starlette.middleware import Middleware
    from starlette.requests import Request
    from starlette.responses import RedirectResponse, Response
    from starlette.routing import BaseRoute, Mount, Route
except ImportError as exc:  # pragma: no cover - the ``dashboard`` extra is not installed
    raise ImportError(
        f"the dashboard needs its extra: pip install 'celeriac[dashboard]' ({exc})"
    ) from exc

from . import api, dash, openapi, pages
from .config import DashboardConfig
from .security import SecurityMiddleware
from .service import DashboardService
from .web import Dashboard

if TYPE_CHECKING:
    from ..app import Celeriac

__all__ = ["DashboardConfig", "DashboardService", "create_app"]


def create_app(
    app: Celeriac,
    config: DashboardConfig | None = None,
    service: DashboardService | None = None,
) -> Starlette:
    """The dashboard of ``app`` as an ASGI app. ``config`` defaults to the app's
    ``dashboard_*`` settings. Without ``service``, one is made, started when the server
    starts and stopped when it stops; a ``service`` given is started if it is not running
    and left to its owner to stop."""
    config = config or DashboardConfig.from_app(app)
    owned = service is None
    service = service or DashboardService(app, config)
    dashboard = Dashboard(app, config, service, config.redactor())
    api_routes = [*api.routes(), *dash.routes()]
    routes: list[BaseRoute] = [*api_routes, *openapi.routes(api_routes), *pages.routes()]

    @asynccontextmanager
    async def lifespan(_: Starlette) -> AsyncIterator[None]:
        service.start()
        try:
            yield
        finally:
            if owned:
                service.stop()
            dashboard.pool.shutdown(wait=False, cancel_futures=True)

    if config.url_prefix:
        inner = Starlette(routes=routes)
        inner.state.dashboard = dashboard
        prefix = config.url_prefix

        async def to_prefix(request: Request) -> Response:
            return RedirectResponse(f"{prefix}/")

        routes = [Route("/", to_prefix), Mount(prefix, app=inner)]
    asgi = Starlette(
        routes=routes,
        middleware=[Middleware(SecurityMiddleware, config=config)],
        lifespan=lifespan,
    )
    asgi.state.dashboard = dashboard
    return asgi
