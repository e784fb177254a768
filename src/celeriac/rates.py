"""Rate limits as written: ``"10/s"``, ``"100/m"``, ``"1000/h"``, parsed into a :class:`Rate`;
and the limits changed at run time (``app.control.rate_limit``), which are kept in the result
backend for every worker (they are enforced in :mod:`celeriac.worker.ratelimit`)."""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from typing import Any

from .keys import RATE_OVERRIDES_KEY
from .serialization import json_dumps, json_loads

logger = logging.getLogger("celeriac.worker")
_UNITS = {"s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}
_RATE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(?:/\s*([smhd]))?\s*$")


@dataclass(frozen=True, slots=True)
class Rate:
    """``count`` executions per ``period`` seconds."""

    count: float
    period: float

    @property
    def per_second(self) -> float:
        return self.count / self.period


def parse_rate(rate: Any) -> Rate | None:
    """``"10/s"``, ``"100/m"``, ``"1000/h"`` (a bare number is per second); None or 0: no
    limit. Anything else raises ValueError naming the value."""
    if rate is None or rate == "" or rate == 0:
        return None
    if isinstance(rate, int | float) and not isinstance(rate, bool):
        return Rate(float(rate), 1.0) if rate > 0 else None
    match = _RATE.match(str(rate))
    if match is None:
        raise ValueError(f"bad rate limit {rate!r}: use a number per s, m or h, like '10/m'")
    count = float(match.group(1))
    if count <= 0:
        return None
    return Rate(count, _UNITS[match.group(2) or "s"])


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
