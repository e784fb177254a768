"""Brokers: one module per technology, each implementing :class:`~celeriac.brokers.base.Broker`."""

from .base import Broker, DeadLetter, Delivery, Outgoing, create_broker

__all__ = ["Broker", "DeadLetter", "Delivery", "Outgoing", "create_broker"]
