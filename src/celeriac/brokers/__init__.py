"""Brokers: one module per technology, each implementing :class:`~celeriac.brokers.base.Broker`."""

from .base import BROKERS, Broker, DeadLetter, Delivery, Outgoing, create_broker, safe_url

__all__ = ["BROKERS", "Broker", "DeadLetter", "Delivery", "Outgoing", "create_broker", "safe_url"]
