"""The dashboard inside a Django project, for its staff: in the project's ``asgi.py``::

    from django.core.asgi import get_asgi_application
    from celeriac.contrib.django.dashboard import with_dashboard
    from proj.celery import app as celery_app

    application = with_dashboard(get_asgi_application(), celery_app, prefix="/dashboard")

served by an ASGI server (``uvicorn proj.asgi:application``). Requests under ``prefix`` go to
the dashboard when the Django session cookie belongs to an active staff user; others are
sent to the login page (``login_url``, the admin's by default) or refused with 403. Every
other request, and Django's own views, go to Django. ``runserver`` (WSGI) does not serve the
dashboard: use an ASGI server, or ``manage.py celeriac dashboard`` on its own port.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, MutableMapping
from http.cookies import SimpleCookie
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

if TYPE_CHECKING:
    from ...app import Celeriac
    from ...dashboard import DashboardConfig

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


def is_staff_session(session_key: str | None) -> bool:
    """Does the Django session ``session_key`` belong to an active staff user? (Django's
    ``get_user`` checks the session's auth hash, so a changed password logs it out.)"""
    if not session_key:
        return False
    from importlib import import_module

    from django.conf import settings
    from django.contrib.auth import get_user
    from django.http import HttpRequest

    request = HttpRequest()
    request.session = import_module(settings.SESSION_ENGINE).SessionStore(session_key)
    user = get_user(request)
    return bool(user.is_active and user.is_staff)


def _session_key(scope: Scope) -> str | None:
    from django.conf import settings

    raw = b"; ".join(v for k, v in scope.get("headers", ()) if k == b"cookie")
    cookie: SimpleCookie = SimpleCookie()
    try:
        cookie.load(raw.decode("latin-1"))
    except Exception:
        return None
    morsel = cookie.get(settings.SESSION_COOKIE_NAME)
    return morsel.value if morsel is not None else None


def with_dashboard(
    django_app: ASGIApp,
    app: Celeriac,
    prefix: str = "/dashboard",
    login_url: str = "/admin/login/",
    config: DashboardConfig | None = None,
) -> ASGIApp:
    """``django_app`` with ``app``'s dashboard at ``prefix``, for staff users only.

    ``config`` defaults to the app's ``dashboard_*`` settings with ``url_prefix=prefix``;
    the dashboard's own auth (basic auth, a token), when configured, applies as well."""
    from asgiref.sync import sync_to_async

    from ...dashboard import DashboardConfig, create_app

    prefix = "/" + prefix.strip("/")
    config = config or DashboardConfig.from_app(app, url_prefix=prefix)
    dashboard = create_app(app, config)
    allowed = sync_to_async(lambda scope: is_staff_session(_session_key(scope)))

    async def router(scope: Scope, receive: Receive, send: Send) -> None:
        kind, path = scope["type"], scope.get("path", "")
        if kind == "lifespan":  # Django has none: the dashboard's threads start and stop
            await dashboard(scope, receive, send)
            return
        if path != prefix and not path.startswith(prefix + "/"):
            await django_app(scope, receive, send)
            return
        if await allowed(scope):
            await dashboard(scope, receive, send)
            return
        if kind != "http":
            await send({"type": "websocket.close", "code": 4403})
            return
        if scope.get("method") in ("GET", "HEAD"):
            status, headers = 302, [(b"location", f"{login_url}?next={quote(path)}".encode())]
        else:
            status, headers = 403, []
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": b""})

    return router
