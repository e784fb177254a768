"""The worker: consumer, pools and executor."""

from .worker import Worker

__all__ = ["Worker"]
