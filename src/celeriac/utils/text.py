"""Celery's ``celery.utils.text`` helpers that projects import."""

from __future__ import annotations

__all__ = ["abbr", "indent", "pluralize", "truncate"]


def truncate(s: str, maxlen: int = 128, suffix: str = "...") -> str:
    """``s`` cut at a word boundary before ``maxlen`` characters, with ``suffix``."""
    if not s or len(s) < maxlen:
        return s
    cut = s[:maxlen]
    head, space, _ = cut.rpartition(" ")
    return (head if space else cut) + suffix


def abbr(s: str | None, max: int, ellipsis: str = "...") -> str:
    """``s`` shortened to ``max`` characters, ``ellipsis`` included."""
    if s is None:
        return "???"
    if len(s) <= max:
        return s
    keep = max - len(ellipsis)
    return (s[:keep] + ellipsis) if keep > 0 else s[:max]


def indent(t: str, indent: int = 0, sep: str = "\n") -> str:
    """Each line of ``t`` indented by ``indent`` spaces."""
    return sep.join(" " * indent + line for line in t.split(sep))


def pluralize(n: float, text: str, suffix: str = "s") -> str:
    """``text``, with ``suffix`` unless ``n`` is one."""
    return text if n == 1 else text + suffix
