"""Celery's ``celery.security``: message signing, which celeriac does not offer."""

from __future__ import annotations

from typing import Any

from .exceptions import ImproperlyConfigured

__all__ = ["setup_security"]


def setup_security(*args: Any, **kwargs: Any) -> None:
    """Refused at once: celeriac does not sign messages (Celery's ``auth`` serializer)."""
    raise ImproperlyConfigured(
        "setup_security(): celeriac does not sign messages (Celery's auth serializer); "
        "remove the call and the security_* settings, and keep the broker private instead "
        "(credentials, and TLS with a rediss:// or amqps:// broker URL)"
    )
