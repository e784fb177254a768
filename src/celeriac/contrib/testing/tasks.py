"""The task a test worker answers to show it is up (Celery's ``celery.ping``)."""

from __future__ import annotations

from ...app import shared_task


@shared_task(name="celery.ping")
def ping() -> str:
    """Return ``"pong"``."""
    return "pong"
