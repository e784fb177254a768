"""Celery's ``celery.utils.saferepr``: a repr that never raises, cut to a length."""

from __future__ import annotations

from typing import Any

from . import safe_repr

__all__ = ["saferepr"]


def saferepr(o: Any, maxlen: int | None = None, maxlevels: int = 3, seen: Any = None) -> str:
    """``repr(o)`` cut to ``maxlen`` characters; a failing ``__repr__`` shows the type.
    ``maxlevels`` and ``seen`` are accepted (the whole repr is made, then cut)."""
    return safe_repr(o, maxlen)
