"""The dashboard's protections, as one ASGI middleware in front of every route.

* **Authentication**: HTTP basic auth (several users) and a bearer token
  (``Authorization: Bearer <token>``), compared in constant time; a request without valid
  credentials gets 401 with ``WWW-Authenticate``. ``/healthcheck`` is open; everything
  else (``/metrics`` included) needs them when any are configured.
* **CSRF**: a request that changes something (any method but GET, HEAD, OPTIONS) must come
  from this origin (``Origin``, else ``Referer``, must match ``Host`` when present;
  ``Sec-Fetch-Site: cross-site`` is refused) and either carry the ``X-CSRF-Token`` header
  equal to the ``celeriac_csrf`` cookie (the double-submit token the pages get from
  ``/api/dash/me``) or carry no cookie at all (a script: Flower's API users keep theirs).
* **Read-only mode**: every such request is refused with 403.
* **Headers**: a Content-Security-Policy allowing this origin only, ``nosniff``, a
  same-origin referrer policy, no framing; no CORS header is ever sent.

The user a request was authenticated as is put in ``scope["state"]["user"]``
(``"anonymous"`` without auth) for the audit log (:func:`audit`).
"""

from __future__ import annotations

import base64
import binascii
import hmac
import json
import logging
import secrets
from collections.abc import Awaitable, Callable, MutableMapping
from http.cookies import SimpleCookie
from typing import Any
from urllib.parse import urlsplit

from ..monitor.ingest import Redactor, redact_arguments
from .config import DashboardConfig

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

audit_logger = logging.getLogger("celeriac.dashboard.audit")

ANONYMOUS = "anonymous"
TOKEN_USER = "token"
CSRF_COOKIE = "celeriac_csrf"
CSRF_HEADER = "x-csrf-token"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
#: paths (below the URL prefix) served without authentication
OPEN_PATHS = frozenset({"/healthcheck"})

CSP = (
    "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; "
    "frame-ancestors 'none'"
)
SECURITY_HEADERS = [
    (b"content-security-policy", CSP.encode()),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"same-origin"),
    (b"x-frame-options", b"DENY"),
]


def audit(user: str, action: str, target: str, **details: Any) -> None:
    """Log one action: who did it, what, to what (and a few details, never secrets or task
    arguments)."""
    extra = "".join(f" {k}={v}" for k, v in details.items() if v is not None)
    audit_logger.info("user=%s action=%s target=%s%s", user, action, target, extra)


def new_csrf_token() -> str:
    return secrets.token_urlsafe(32)


def cookies(scope: Scope) -> dict[str, str]:
    """The request's cookies."""
    jar: SimpleCookie = SimpleCookie()
    for name, value in scope.get("headers", ()):
        if name == b"cookie":
            try:
                jar.load(value.decode("latin-1"))
            except Exception:  # a malformed cookie header is no cookie
                continue
    return {key: morsel.value for key, morsel in jar.items()}


def csrf_cookie_header(token: str, path: str) -> str:
    """The ``Set-Cookie`` value of the double-submit token (readable by the pages' script:
    it is not a credential, only proof that a request comes from a page of this origin)."""
    return f"{CSRF_COOKIE}={token}; Path={path or '/'}; SameSite=Strict"


class Authenticator:
    """Checks the ``Authorization`` header against the configured users and token."""

    def __init__(self, config: DashboardConfig) -> None:
        self.users = {u: p.encode() for u, p in config.basic_auth.items()}
        self.token = config.auth.encode() if config.auth else None

    @property
    def enabled(self) -> bool:
        return bool(self.users or self.token)

    def user(self, authorization: str | None) -> str | None:
        """The user the header authenticates (``"anonymous"`` when no auth is configured),
        or None."""
        if not self.enabled:
            return ANONYMOUS
        if not authorization:
            return None
        scheme, _, credentials = authorization.partition(" ")
        scheme = scheme.lower()
        if scheme == "bearer" and self.token is not None:
            given = credentials.strip().encode()
            return TOKEN_USER if hmac.compare_digest(given, self.token) else None
        if scheme == "basic" and self.users:
            try:
                decoded = base64.b64decode(credentials.strip(), validate=True).decode()
            except (binascii.Error, UnicodeDecodeError):
                return None
            name, sep, password = decoded.partition(":")
            expected = self.users.get(name)
            # compared even for an unknown user, so the time taken tells nothing
            ok = hmac.compare_digest(password.encode(), expected or b"\0" * 16)
            return name if sep and expected is not None and ok else None
        return None

    def challenge(self) -> str:
        return (
            'Basic realm="celeriac", charset="UTF-8"' if self.users else 'Bearer realm="celeriac"'
        )


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope.get("headers", ()):
        if key == name:
            return str(value.decode("latin-1"))
    return None


def same_origin(scope: Scope) -> bool:
    """Does the request come from a page of this origin, as far as the browser tells?
    (Requests without ``Origin`` and ``Referer`` come from scripts, not cross-site pages:
    browsers send ``Origin`` on every cross-origin POST.)"""
    if _header(scope, b"sec-fetch-site") == "cross-site":
        return False
    host = _header(scope, b"host")
    source = _header(scope, b"origin") or _header(scope, b"referer")
    if source is None:
        return True
    if source == "null" or host is None:
        return False
    return urlsplit(source).netloc.lower() == host.lower()


async def _send_json(
    send: Send, status: int, body: str, headers: list[tuple[bytes, bytes]]
) -> None:
    payload = body.encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(payload)).encode()),
                (b"cache-control", b"no-store"),
                *SECURITY_HEADERS,
                *headers,
            ],
        }
    )
    await send({"type": "http.response.body", "body": payload})


def _error(message: str) -> str:
    return json.dumps({"error": message})


class SecurityMiddleware:
    """Authentication, CSRF, read-only mode and the security headers (see the module's
    docstring), around ``app``."""

    def __init__(self, app: ASGIApp, config: DashboardConfig) -> None:
        self.app = app
        self.config = config
        self.auth = Authenticator(config)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        relative = str(scope.get("path", ""))
        for prefix in (str(scope.get("root_path", "")), self.config.url_prefix):
            if prefix and relative.startswith(prefix):
                relative = relative[len(prefix) :]
        user = self.auth.user(_header(scope, b"authorization"))
        if user is None and relative not in OPEN_PATHS:
            await _send_json(
                send,
                401,
                _error("authentication required"),
                [(b"www-authenticate", self.auth.challenge().encode())],
            )
            return
        scope.setdefault("state", {})["user"] = user or ANONYMOUS
        method = str(scope.get("method", "GET")).upper()
        if method not in SAFE_METHODS:
            refusal = self._refuse(scope)
            if refusal is not None:
                audit(user or ANONYMOUS, "refused", relative, reason=refusal.replace(" ", "-"))
                await _send_json(send, 403, _error(refusal), [])
                return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                present = {k.lower() for k, _ in headers}
                headers += [(k, v) for k, v in SECURITY_HEADERS if k not in present]
                message["headers"] = headers
            await send(message)

        await self.app(scope, receive, send_with_headers)

    def _refuse(self, scope: Scope) -> str | None:
        """Why a state-changing request is refused, or None."""
        if self.config.read_only:
            return "the dashboard is read-only"
        if not same_origin(scope):
            return "cross-origin request refused"
        jar = cookies(scope)
        token = _header(scope, CSRF_HEADER.encode())
        expected = jar.get(CSRF_COOKIE)
        if token is not None or expected is not None:
            if not token or not expected or not hmac.compare_digest(token, expected):
                return (
                    "missing or wrong CSRF token (X-CSRF-Token must match the celeriac_csrf cookie)"
                )
            return None
        if jar:  # a browser with cookies of this host, without the token
            return "missing CSRF token (send X-CSRF-Token, from /api/dash/me)"
        return None


def redact_row(row: dict[str, Any], redactor: Redactor | None) -> dict[str, Any]:
    """A task row with its arguments passed through ``redactor`` (a copy; the row as is when
    there is none). The arguments as sent (``payload``) are given to the hook and the shown
    ``args``/``kwargs`` texts rebuilt from what it returns; a row without them shows
    ``[redacted]``, since the hook cannot see what it would hide."""
    if redactor is None:
        return row
    out = dict(row)
    payload = out.get("payload")
    if isinstance(payload, dict):
        args, kwargs = redact_arguments(
            redactor, str(out.get("name") or ""), payload.get("args"), payload.get("kwargs")
        )
        out["payload"] = {**payload, "args": args, "kwargs": kwargs}
        out["args"], out["kwargs"] = repr(tuple(args)), repr(kwargs)
    else:
        for key in ("args", "kwargs"):
            if out.get(key) not in (None, "", "()", "[]", "{}"):
                out[key] = "[redacted]"
    return out
