"""Celery's ``celery.utils.dispatch.signal``: :class:`Signal` (see :mod:`celeriac.signals`)."""

from ...signals import Signal

__all__ = ["Signal"]
