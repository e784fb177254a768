"""Celery's ``celery.utils.dispatch``: the :class:`Signal` class, for a project's own
signals (``order_paid = Signal(name="order_paid")``)."""

from ...signals import Signal

__all__ = ["Signal"]
