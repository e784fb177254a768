"""URLs as celeriac shows and reads them."""

from __future__ import annotations

from urllib.parse import urlsplit, urlunsplit


def scheme(url: str) -> str:
    """The scheme that selects a technology: ``redis`` for ``redis://...``, ``postgresql``
    for ``postgresql+psycopg://...``; empty when ``url`` has none."""
    return urlsplit(url).scheme.split("+")[0] if "://" in url else ""


def safe_url(url: str) -> str:
    """``url`` with any password replaced by ``***``, for logs and errors."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return "<unparseable URL>"
    if parts.password is None:
        return url
    netloc = parts.netloc.rsplit("@", 1)[1]
    user = parts.username or ""
    return urlunsplit(parts._replace(netloc=f"{user}:***@{netloc}"))
