"""Logging names at Celery's paths (``celery.app.log``)."""

from ..utils.log import TaskFormatter

__all__ = ["TaskFormatter"]
