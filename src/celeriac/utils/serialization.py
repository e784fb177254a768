"""Celery's ``celery.utils.serialization`` names that a project imports."""

from __future__ import annotations

from typing import Any

from ..exceptions import UnpickleableExceptionWrapper
from . import yes_or_no

__all__ = ["UnpickleableExceptionWrapper", "strtobool"]


def strtobool(term: Any, table: dict[str, bool] | None = None) -> Any:
    """A yes/no word (``true``, ``no``, ``1``, ``off`` ..., any case) as a bool; a value
    that is not text is given back as it is; TypeError for other words. ``table`` maps
    words of a project's own."""
    if not isinstance(term, str):
        return term
    if table is not None and term.lower() in table:
        return table[term.lower()]
    value = yes_or_no(term)
    if value is None:
        raise TypeError(f"Cannot coerce {term!r} to type bool")
    return value
