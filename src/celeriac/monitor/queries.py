"""What every event-store technology answers alike beyond a row: how a search matches, how
rows are sorted, throughput buckets, runtime percentiles and time-series samples.

The SQL stores do the filtering and sorting in their database, the memory and Redis stores
with these functions; the contract tests hold them to the same answers.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from .rows import KEY_LIMIT, _float, _text

#: the columns :meth:`EventStore.tasks` sorts by
SORTABLE = (
    "updated",
    "name",
    "state",
    "worker",
    "queue",
    "sent",
    "received",
    "started",
    "succeeded",
    "failed",
    "runtime",
    "retries",
    "uuid",
)
#: the columns a search looks in
SEARCHED = ("name", "uuid", "args", "kwargs", "result", "exception")
#: the default of the ``max_samples`` option: samples kept per series (a day and more at
#: one every ten seconds)
DEFAULT_MAX_SAMPLES = 10_000
#: buckets a throughput query may ask for at most
MAX_BUCKETS = 100_000
#: the percentiles :meth:`EventStore.runtimes` gives
PERCENTILES = (50, 95, 99)

_ASCII_LOWER = str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZ", "abcdefghijklmnopqrstuvwxyz")


def check_sort(sort: str, order: str) -> bool:
    """Check a ``sort`` column and an ``order``; True for a descending order."""
    if sort not in SORTABLE:
        raise ValueError(f"cannot sort tasks by {sort!r}: one of {', '.join(SORTABLE)}")
    if order not in ("asc", "desc"):
        raise ValueError(f"order must be 'asc' or 'desc', not {order!r}")
    return order == "desc"


def lower(text: str) -> str:
    """``text`` with ASCII letters lowered (as SQLite's ``lower()``: every store matches
    alike)."""
    return text.translate(_ASCII_LOWER)


def matches(
    row: Mapping[str, Any],
    state: str | None = None,
    name: str | None = None,
    worker: str | None = None,
    since: float | None = None,
    until: float | None = None,
    search: str | None = None,
) -> bool:
    """Does a stored task ``row`` pass the filters of :meth:`EventStore.tasks`?"""
    if (
        (state is not None and row["state"] != state)
        or (name is not None and row["name"] != name)
        or (worker is not None and row["worker"] != worker)
        or (since is not None and row["updated"] < since)
        or (until is not None and row["updated"] > until)
    ):
        return False
    if search:
        needle = lower(search)
        return any(needle in lower(str(row[c])) for c in SEARCHED if row.get(c) is not None)
    return True


def sort_rows(rows: Iterable[dict[str, Any]], sort: str, descending: bool) -> list[dict[str, Any]]:
    """``rows`` sorted by ``sort``, ties by ``updated`` then ``uuid``, all in one direction;
    rows without a value last either way."""
    valued: list[dict[str, Any]] = []
    empty: list[dict[str, Any]] = []
    for row in rows:
        (empty if row.get(sort) is None else valued).append(row)
    valued.sort(key=lambda r: (r[sort], r["updated"], r["uuid"]), reverse=descending)
    empty.sort(key=lambda r: (r["updated"], r["uuid"]), reverse=descending)
    return valued + empty


# -- throughput and runtimes ------------------------------------------------------------------


def bucket_index(t: float, bucket: float) -> int:
    """The bucket a time falls in (``floor(t / bucket)``: the SQL stores compute it alike)."""
    return math.floor(t / bucket)


def check_buckets(since: float, until: float, bucket: float) -> tuple[int, int]:
    """The first and last bucket index of a throughput query; ValueError when ``bucket``
    is not positive or there would be more than :data:`MAX_BUCKETS`."""
    if not bucket > 0:
        raise ValueError("the bucket must be a positive number of seconds")
    first, last = bucket_index(since, bucket), bucket_index(until, bucket)
    if last - first >= MAX_BUCKETS:
        raise ValueError(f"at most {MAX_BUCKETS} buckets: use a larger bucket")
    return first, last


def throughput_rows(
    since: float, until: float, bucket: float, counts: Mapping[tuple[int, str], int]
) -> list[dict[str, Any]]:
    """Every bucket from ``since`` to ``until`` as ``{"t", "succeeded", "failed"}``, given
    the counts by ``(bucket index, "succeeded" | "failed")``."""
    first, last = check_buckets(since, until, bucket)
    return [
        {
            "t": k * bucket,
            "succeeded": counts.get((k, "succeeded"), 0),
            "failed": counts.get((k, "failed"), 0),
        }
        for k in range(first, last + 1)
    ]


def count_finished(
    rows: Iterable[Mapping[str, Any]], since: float, until: float, bucket: float
) -> dict[tuple[int, str], int]:
    """Counts for :func:`throughput_rows` from task rows (their succeeded and failed times)."""
    check_buckets(since, until, bucket)
    counts: dict[tuple[int, str], int] = {}
    for row in rows:
        for column in ("succeeded", "failed"):
            when = row.get(column)
            if when is not None and since <= when <= until:
                key = (bucket_index(when, bucket), column)
                counts[key] = counts.get(key, 0) + 1
    return counts


def runtime_of(row: Mapping[str, Any]) -> float | None:
    """A finished task's runtime: the one its worker reported, else from its start to its
    failure."""
    if row.get("runtime") is not None:
        return float(row["runtime"])
    if row.get("failed") is not None and row.get("started") is not None:
        return max(float(row["failed"]) - float(row["started"]), 0.0)
    return None


def finished_in(row: Mapping[str, Any], since: float, until: float) -> bool:
    """Did the task succeed or fail between ``since`` and ``until``?"""
    return any(row.get(c) is not None and since <= row[c] <= until for c in ("succeeded", "failed"))


def percentile(ordered: Sequence[float], p: float) -> float:
    """The nearest-rank ``p``-th percentile of a sorted, non-empty sequence."""
    rank = max(math.ceil(p / 100 * len(ordered)), 1)
    return ordered[rank - 1]


def runtime_rows(found: Iterable[tuple[str | None, float | None]]) -> list[dict[str, Any]]:
    """``[{"name", "count", "p50", "p95", "p99"}]`` by name, from ``(name, runtime)`` pairs
    (a pair without a runtime is left out; a task without a name counts under ``""``)."""
    by_name: dict[str, list[float]] = {}
    for name, runtime in found:
        if runtime is not None:
            by_name.setdefault(name or "", []).append(runtime)
    out = []
    for name in sorted(by_name):
        values = sorted(by_name[name])
        row: dict[str, Any] = {"name": name, "count": len(values)}
        for p in PERCENTILES:
            row[f"p{p}"] = percentile(values, p)
        out.append(row)
    return out


# -- samples --------------------------------------------------------------------------------


def clean_samples(
    kind: str, values: Mapping[str, Mapping[str, Any]]
) -> tuple[str, dict[str, dict[str, float | None]]]:
    """A kind and samples as a store keeps them: keys cut to :data:`KEY_LIMIT`, values
    numbers or None."""
    if not isinstance(kind, str) or not kind:
        raise ValueError("a sample kind is a non-empty text")
    cleaned: dict[str, dict[str, float | None]] = {}
    for key, fields in values.items():
        cleaned[_text(key, KEY_LIMIT)] = {
            _text(field, KEY_LIMIT): _float(value) for field, value in fields.items()
        }
    return _text(kind, KEY_LIMIT), cleaned


def sample_out(t: float, fields: Mapping[str, Any]) -> dict[str, Any]:
    """A sample as :meth:`EventStore.samples` gives it."""
    return {**fields, "t": t}
