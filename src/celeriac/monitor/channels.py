"""Where alert notifications go: a webhook (Slack-compatible JSON ``{"text": ...}``), email
over SMTP, or a log line. Channels come from the ``dashboard_alert_channels`` setting, a
dict of named channel dicts, each with a ``type``::

    dashboard_alert_channels = {
        "slack": {"type": "webhook", "url": "https://hooks.slack.com/services/..."},
        "ops": {"type": "email", "host": "smtp.example.com", "port": 587, "starttls": True,
                "username": "alerts", "password": "...", "from": "alerts@example.com",
                "to": ["ops@example.com"]},
        "log": {"type": "log", "level": "warning"},
    }

With none configured, alerts go to the log. A channel that fails is logged; the alert is
not sent again.
"""

from __future__ import annotations

import json
import logging
import smtplib
import ssl
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass, field
from email.message import EmailMessage
from typing import Any, Protocol

from ..exceptions import ImproperlyConfigured

logger = logging.getLogger("celeriac.alerts")

#: seconds a webhook or SMTP server has to answer
DEFAULT_TIMEOUT = 10.0
_LEVELS = {"debug": 10, "info": 20, "warning": 30, "error": 40, "critical": 50}


class Channel(Protocol):
    """Sends notifications somewhere."""

    def send(self, title: str, text: str) -> None:
        """Send one notification: ``title`` is one line, ``text`` the whole message.
        Raises on failure (the caller logs it)."""


@dataclass(frozen=True)
class Webhook:
    """POSTs ``{"text": text}`` as JSON to ``url`` (a Slack incoming webhook, or anything
    that takes the same: Mattermost, Rocket.Chat, a relay of your own)."""

    url: str
    timeout: float = DEFAULT_TIMEOUT

    def send(self, title: str, text: str) -> None:
        body = json.dumps({"text": text}).encode()
        request = urllib.request.Request(
            self.url,
            data=body,
            method="POST",
            headers={"Content-Type": "application/json", "User-Agent": "celeriac-alerts"},
        )
        with urllib.request.urlopen(request, timeout=self.timeout) as response:
            response.read()


@dataclass(frozen=True)
class Email:
    """Sends a mail through an SMTP server: STARTTLS when ``starttls``, TLS from the start
    when ``ssl``, and a login when ``username`` is given."""

    host: str
    sender: str
    to: tuple[str, ...]
    port: int = 25
    starttls: bool = False
    ssl: bool = False
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    timeout: float = DEFAULT_TIMEOUT

    def send(self, title: str, text: str) -> None:
        message = EmailMessage()
        message["Subject"] = title
        message["From"] = self.sender
        message["To"] = ", ".join(self.to)
        message.set_content(text)
        context = ssl.create_default_context()
        smtp: smtplib.SMTP
        if self.ssl:
            smtp = smtplib.SMTP_SSL(self.host, self.port, timeout=self.timeout, context=context)
        else:
            smtp = smtplib.SMTP(self.host, self.port, timeout=self.timeout)
        with smtp:
            if self.starttls and not self.ssl:
                smtp.starttls(context=context)
            if self.username:
                smtp.login(self.username, self.password or "")
            smtp.send_message(message)


@dataclass(frozen=True)
class Log:
    """Writes one line to the ``celeriac.alerts`` logger."""

    level: int = logging.WARNING

    def send(self, title: str, text: str) -> None:
        logger.log(self.level, "%s", text)


def load_channels(value: Any) -> dict[str, Channel]:
    """The channels of a ``dashboard_alert_channels`` value (a log channel named "log"
    when there is none); ImproperlyConfigured says what is wrong with one."""
    if not value:
        return {"log": Log()}
    if not isinstance(value, Mapping):
        raise ImproperlyConfigured(
            "dashboard_alert_channels must be a dict of channels by name, e.g. "
            '{"slack": {"type": "webhook", "url": "https://..."}}'
        )
    return {str(name): _channel(str(name), spec) for name, spec in value.items()}


def _channel(name: str, spec: Any) -> Channel:
    where = f"dashboard_alert_channels[{name!r}]"
    if not isinstance(spec, Mapping):
        raise ImproperlyConfigured(f"{where} must be a dict with a 'type'")
    kind = spec.get("type")
    known = {"webhook": _WEBHOOK_KEYS, "email": _EMAIL_KEYS, "log": _LOG_KEYS}
    if kind not in known:
        raise ImproperlyConfigured(
            f"{where}: 'type' must be one of webhook, email, log, not {kind!r}"
        )
    unknown = set(spec) - known[kind] - {"type"}
    if unknown:
        raise ImproperlyConfigured(
            f"{where}: unknown key(s) {', '.join(map(repr, sorted(unknown)))} (a {kind} "
            f"channel takes {', '.join(sorted(known[kind]))})"
        )
    timeout = _number(spec.get("timeout", DEFAULT_TIMEOUT), where, "timeout")
    if kind == "webhook":
        url = spec.get("url")
        if not isinstance(url, str) or not url.startswith(("http://", "https://")):
            raise ImproperlyConfigured(f"{where}: 'url' must be an http:// or https:// URL")
        return Webhook(url, timeout)
    if kind == "email":
        return _email(spec, where, timeout)
    level = spec.get("level", "warning")
    if str(level).lower() not in _LEVELS:
        raise ImproperlyConfigured(f"{where}: 'level' must be one of {', '.join(_LEVELS)}")
    return Log(_LEVELS[str(level).lower()])


_WEBHOOK_KEYS = {"url", "timeout"}
_EMAIL_KEYS = {"host", "port", "from", "to", "starttls", "ssl", "username", "password", "timeout"}
_LOG_KEYS = {"level"}


def _email(spec: Mapping[str, Any], where: str, timeout: float) -> Email:
    host, sender, to = spec.get("host"), spec.get("from"), spec.get("to")
    if not isinstance(host, str) or not host:
        raise ImproperlyConfigured(f"{where}: 'host' (the SMTP server) is required")
    if not isinstance(sender, str) or "@" not in sender:
        raise ImproperlyConfigured(f"{where}: 'from' must be an email address")
    recipients = [to] if isinstance(to, str) else to
    if (
        not isinstance(recipients, list | tuple)
        or not recipients
        or not all(isinstance(r, str) and "@" in r for r in recipients)
    ):
        raise ImproperlyConfigured(f"{where}: 'to' must be an email address or a list of them")
    port = spec.get("port", 25)
    if isinstance(port, bool) or not isinstance(port, int) or not 0 < port < 65536:
        raise ImproperlyConfigured(f"{where}: 'port' must be a port number")
    username, password = spec.get("username"), spec.get("password")
    if username is not None and not isinstance(username, str):
        raise ImproperlyConfigured(f"{where}: 'username' must be text")
    if password is not None and not isinstance(password, str):
        raise ImproperlyConfigured(f"{where}: 'password' must be text")
    return Email(
        host=host,
        sender=sender,
        to=tuple(recipients),
        port=port,
        starttls=bool(spec.get("starttls", False)),
        ssl=bool(spec.get("ssl", False)),
        username=username,
        password=password,
        timeout=timeout,
    )


def _number(value: Any, where: str, key: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
        raise ImproperlyConfigured(f"{where}: {key!r} must be a positive number of seconds")
    return float(value)
