"""The worker: consumer, pools and executor."""

from .worker import WorkController, Worker

__all__ = ["WorkController", "Worker"]
