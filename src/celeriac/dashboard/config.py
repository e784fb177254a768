"""The dashboard's options: from the command line, else the app's ``dashboard_*`` settings.

Every option has a setting of the same name prefixed with ``dashboard_`` (``--basic-auth``
is ``dashboard_basic_auth``, ``--auth`` is ``dashboard_auth``...); a command-line value wins.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from typing import TYPE_CHECKING, Any

from ..exceptions import ImproperlyConfigured
from ..monitor.ingest import Redactor, load_redactor

if TYPE_CHECKING:
    from ..app import Celeriac

DEFAULT_PORT = 5555
DEFAULT_ADDRESS = "127.0.0.1"


def parse_basic_auth(value: Any) -> dict[str, str]:
    """Users and passwords from ``"user:pass,user2:pass2"``, a list of ``"user:pass"`` or a
    mapping; ValueError when an entry has no ``:`` or no user name."""
    if not value:
        return {}
    if isinstance(value, Mapping):
        pairs = [(str(k), str(v)) for k, v in value.items()]
    else:
        items = value.split(",") if isinstance(value, str) else list(value)
        pairs = []
        for item in items:
            user, sep, password = str(item).strip().partition(":")
            if not sep or not user:
                raise ValueError("basic auth takes user:password[,user2:password2]")
            pairs.append((user, password))
    for user, password in pairs:
        if not user or not password:
            raise ValueError(f"basic auth: user {user!r} needs a non-empty password")
    return dict(pairs)


def is_loopback(address: str) -> bool:
    """Does ``address`` only accept connections from this host?"""
    if address == "localhost":
        return True
    try:
        return ipaddress.ip_address(address.strip("[]")).is_loopback
    except ValueError:
        return False


@dataclass
class DashboardConfig:
    """What the dashboard serves and how it is protected (see docs/monitoring.md)."""

    port: int = DEFAULT_PORT
    address: str = DEFAULT_ADDRESS
    #: user -> password, for HTTP basic auth
    basic_auth: dict[str, str] = field(default_factory=dict)
    #: a bearer token (``Authorization: Bearer <token>``)
    auth: str | None = None
    url_prefix: str = ""
    read_only: bool = False
    #: the event store's URL (None: ``sqlite://``, celeriac-events.db in the working dir)
    store: str | None = None
    store_options: dict[str, Any] = field(default_factory=dict)
    unsafe_no_auth: bool = False
    #: dotted path to ``redact(task_name, args, kwargs) -> (args, kwargs)``, or the function
    redact: str | Redactor | None = None
    #: seconds to wait for workers' replies to inspect and control requests
    inspect_timeout: float = 2.0
    #: seconds between two samples of the queues and workers
    sample_interval: float = 10.0
    #: seconds between two evaluations of the alert rules
    alert_interval: float = 15.0

    def __post_init__(self) -> None:
        prefix = (self.url_prefix or "").strip("/")
        self.url_prefix = f"/{prefix}" if prefix else ""
        self.basic_auth = parse_basic_auth(self.basic_auth)
        self.auth = self.auth or None

    @classmethod
    def from_app(cls, app: Celeriac, **options: Any) -> DashboardConfig:
        """The app's ``dashboard_*`` settings, overridden by ``options`` that are not None
        (the command line's)."""
        values: dict[str, Any] = {}
        conf = app.conf
        for f in fields(cls):
            value = options.get(f.name)
            if value is None:
                value = conf.get(f"dashboard_{f.name}")
            if value is not None:
                values[f.name] = value
        try:
            return cls(**values)
        except ValueError as exc:
            raise ImproperlyConfigured(str(exc)) from None

    @property
    def has_auth(self) -> bool:
        return bool(self.basic_auth or self.auth)

    def check_bind(self) -> None:
        """Refuse to listen on another interface than loopback without auth (unless
        ``unsafe_no_auth``): ImproperlyConfigured saying what to do."""
        if self.has_auth or self.unsafe_no_auth or is_loopback(self.address):
            return
        raise ImproperlyConfigured(
            f"the dashboard would listen on {self.address}, reachable from other hosts, "
            "without authentication: give --basic-auth user:password or --auth TOKEN "
            "(settings dashboard_basic_auth / dashboard_auth), listen on 127.0.0.1, or pass "
            "--unsafe-no-auth if another layer (a proxy, a firewall) protects it"
        )

    def redactor(self) -> Redactor | None:
        """The redaction hook, imported when named by its dotted path."""
        return load_redactor(self.redact)
