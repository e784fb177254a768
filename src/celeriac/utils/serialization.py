"""Celery's ``celery.utils.serialization`` names that a project imports."""

from __future__ import annotations

from ..exceptions import UnpickleableExceptionWrapper

__all__ = ["UnpickleableExceptionWrapper"]
