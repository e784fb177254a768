"""Rate limits as written: ``"10/s"``, ``"100/m"``, ``"1000/h"``, parsed into a :class:`Rate`
(by :func:`celeriac.utils.time.parse_rate`);
and the limits changed at run time (``app.control.rate_limit``), which are kept in the result
backend for every worker (they are enforced in :mod:`celeriac.worker.ratelimit`)."""

from __future__ import annotations

import logging
from typing import Any

from .keys import RATE_OVERRIDES_KEY
from .serialization import json_dumps, json_loads
from .utils.time import Rate as Rate
from .utils.time import parse_rate as parse_rate

logger = logging.getLogger("celeriac.worker")


def read_overrides(raw: bytes | None) -> dict[str, Any]:
    """The run-time rate limits stored as ``raw``, keeping only those that parse (anyone
    who can write to the result backend can write there)."""
    try:
        stored = json_loads(raw) if raw else {}
    except ValueError:
        stored = None
    if not isinstance(stored, dict):
        logger.error("rate limits: %s is not a JSON object; ignored", RATE_OVERRIDES_KEY)
        return {}
    overrides = {}
    for name, rate in stored.items():
        try:
            parse_rate(rate)
        except (ValueError, TypeError):
            logger.error("rate limits: ignored a bad limit for %s: %r", name, rate)
            continue
        overrides[str(name)] = rate
    return overrides


def publish_override(backend: Any, name: str, rate: str | None) -> None:
    """Change ``name``'s rate limit on every worker (None: back to the task's own). Workers
    pick it up within a heartbeat."""
    parse_rate(rate)
    overrides = read_overrides(backend.get_value(RATE_OVERRIDES_KEY))
    if rate is None:
        overrides.pop(name, None)
    else:
        overrides[name] = rate
    backend.set_value(RATE_OVERRIDES_KEY, json_dumps(overrides))
