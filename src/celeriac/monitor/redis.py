"""An event store in Redis, under the keys ``<prefix>monitor:*`` (``key_prefix`` option,
``celeriac:`` by default).

Keys: ``t:<uuid>`` a task's row (JSON), ``w:<hostname>`` a worker's; ``tasks`` every task
by ``updated`` (a sorted set), and as much by state (``s:<state>``), name (``n:<name>``)
and worker (``h:<hostname>``) for the queries; ``counts`` (a hash of tasks by state and
name), ``workers`` (a set of hostnames) and ``cursors`` (a hash). Time series:
``samples:<kind>:<key>`` (a sorted set of JSON samples by time), ``series:<kind>`` (a set
of keys) and ``series`` (a set of kinds); ``alerts`` (a hash of alert states, JSON, by id).

Searches, sorts other than by ``updated`` and the time-series queries of tasks
(throughput, runtimes) read the rows of the narrowest index and filter them here: a
``since`` keeps what they read small.

A batch is two round trips on one connection: ``WATCH`` the rows it touches and read them,
then write them, the indexes and the cursor in one ``MULTI``/``EXEC``. When another monitor
changed one of the rows in between, the ``EXEC`` does nothing and the batch is read and
merged again, so several monitors may feed one store.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from ..connections.redis import RedisClient, ResponseError
from ..exceptions import OperationalError
from .queries import (
    check_sort,
    clean_samples,
    count_finished,
    finished_in,
    matches,
    runtime_of,
    runtime_rows,
    sample_out,
    sort_rows,
    throughput_rows,
)
from .rows import is_lost, task_out, worker_out
from .store import DEFAULT_SOURCE, Batch, Retention

Command = tuple[Any, ...]

_CHUNK = 1000  # rows per prune transaction, rows per read of a query
_WATCH_TRIES = 10


class RedisEventStore:
    """Tasks and workers as JSON values in Redis, with sorted sets for the queries."""

    def __init__(self, url: str, options: dict[str, Any] | None = None) -> None:
        options = dict(options or {})
        self.url = url
        self.retention = Retention(options)
        self.max_age = self.retention.max_age
        self.max_tasks = self.retention.max_tasks
        self.max_samples = self.retention.max_samples
        self._client = RedisClient(url, options)
        self.prefix = f"{self._client.prefix}monitor:"

    # -- keys -------------------------------------------------------------------------------

    def _task(self, uuid: str) -> str:
        return f"{self.prefix}t:{uuid}"

    def _worker(self, hostname: str) -> str:
        return f"{self.prefix}w:{hostname}"

    def _index(self, kind: str, value: str) -> str:
        return f"{self.prefix}{kind}:{value}"

    @property
    def _all(self) -> str:
        return f"{self.prefix}tasks"

    # -- transactions -----------------------------------------------------------------------

    def _transaction(self, keys: Sequence[str], reads: Sequence[Command], plan: Any) -> Any:
        """``WATCH keys`` and send ``reads``; ``plan(replies)`` gives ``(writes, result)``;
        the writes are made in one ``MULTI``/``EXEC``, again from the start when a watched
        key changed meanwhile. Returns the result of the plan that was written."""

        def attempt() -> Any:
            with self._client.wait_connection() as conn:
                for _ in range(_WATCH_TRIES):
                    commands = [("WATCH", *keys), *reads] if keys else list(reads)
                    replies = _exchange(conn, commands) if commands else []
                    writes, result = plan(replies[1:] if keys else replies)
                    if not writes:
                        if keys:
                            _exchange(conn, [("UNWATCH",)])
                        return result
                    done = _exchange(conn, [("MULTI",), *writes, ("EXEC",)])[-1]
                    if done is not None:
                        return result
                raise OperationalError(
                    f"{self._client.safe_url}: the event store's rows kept changing under a batch"
                )

        return self._client.call(attempt)

    # -- writing ----------------------------------------------------------------------------

    def apply(
        self,
        events: Sequence[dict[str, Any]],
        cursor: str | None = None,
        source: str = DEFAULT_SOURCE,
    ) -> None:
        batch = Batch.of(events)
        if not batch.tasks and not batch.workers and cursor is None:
            return
        uuids, hosts = list(batch.tasks), list(batch.workers)
        keys = [*map(self._task, uuids), *map(self._worker, hosts)]
        reads: list[Command] = []
        if uuids:
            reads.append(("MGET", *map(self._task, uuids)))
        if hosts:
            reads.append(("MGET", *map(self._worker, hosts)))

        def plan(replies: list[Any]) -> tuple[list[Command], int]:
            found = list(replies)
            tasks = _rows(uuids, found.pop(0)) if uuids else {}
            workers = _rows(hosts, found.pop(0)) if hosts else {}
            before = {uuid: dict(row) for uuid, row in tasks.items()}
            task_rows, worker_rows, created = batch.merge(tasks, workers)
            writes: list[Command] = []
            for uuid, row in task_rows.items():
                writes += self._task_writes(before.get(uuid), row)
            for host, row in worker_rows.items():
                writes.append(("SET", self._worker(host), _dump(row)))
                writes.append(("SADD", f"{self.prefix}workers", host))
            if cursor is not None:
                writes.append(("HSET", f"{self.prefix}cursors", source, cursor))
            return writes, created

        created = self._transaction(keys, reads, plan)
        if self.retention.due(created):
            self.prune()

    def _task_writes(self, old: dict[str, Any] | None, row: dict[str, Any]) -> list[Command]:
        uuid, updated = row["uuid"], row["updated"]
        writes: list[Command] = [
            ("SET", self._task(uuid), _dump(row)),
            ("ZADD", self._all, updated, uuid),
        ]
        for kind, column in (("s", "state"), ("n", "name"), ("h", "worker")):
            value = row[column]
            if old is not None and old[column] is not None and old[column] != value:
                writes.append(("ZREM", self._index(kind, old[column]), uuid))
            if value is not None:
                writes.append(("ZADD", self._index(kind, value), updated, uuid))
        counts = f"{self.prefix}counts"
        if old is None or (old["state"], old["name"]) != (row["state"], row["name"]):
            if old is not None:
                writes.append(("HINCRBY", counts, _count_field(old), -1))
            writes.append(("HINCRBY", counts, _count_field(row), 1))
        return writes

    def cursor(self, source: str = DEFAULT_SOURCE) -> str | None:
        value = self._client.command("HGET", f"{self.prefix}cursors", source)
        return None if value is None else _text(value)

    def prune(self, now: float | None = None) -> None:
        retention = self.retention
        cutoff = retention.cutoff(now)
        doomed: dict[str, float] = {}  # uuid -> its updated time when chosen
        if cutoff is not None:
            found = self._client.command(
                "ZRANGE", self._all, "-inf", f"({cutoff!r}", "BYSCORE", "WITHSCORES"
            )
            doomed.update(_scores(found))
        if retention.max_tasks is not None:
            excess = int(self._client.command("ZCARD", self._all)) - retention.max_tasks
            if excess > 0:
                found = self._client.command("ZRANGE", self._all, 0, excess - 1, "WITHSCORES")
                doomed.update(_scores(found))
        chosen = list(doomed.items())
        for start in range(0, len(chosen), _CHUNK):
            self._forget(dict(chosen[start : start + _CHUNK]))
        if cutoff is not None:
            self._forget_workers(cutoff)
            self._forget_samples(cutoff)
        retention.done()

    def _forget(self, doomed: dict[str, float]) -> None:
        """Delete these tasks, but those updated since they were chosen."""
        uuids = list(doomed)
        keys = list(map(self._task, uuids))

        def plan(replies: list[Any]) -> tuple[list[Command], None]:
            writes: list[Command] = []
            counts = f"{self.prefix}counts"
            rows = _rows(uuids, replies[0])
            for uuid, row in rows.items():
                if row["updated"] > doomed[uuid]:
                    continue
                writes += [("DEL", self._task(uuid)), ("ZREM", self._all, uuid)]
                for kind, column in (("s", "state"), ("n", "name"), ("h", "worker")):
                    if row[column] is not None:
                        writes.append(("ZREM", self._index(kind, row[column]), uuid))
                writes.append(("HINCRBY", counts, _count_field(row), -1))
            missing = [u for u in uuids if u not in rows]
            if missing:  # an index entry without its row: dropped
                writes.append(("ZREM", self._all, *missing))
            return writes, None

        self._transaction(keys, [("MGET", *keys)], plan)

    def _forget_workers(self, cutoff: float) -> None:
        hosts = sorted(map(_text, self._client.command("SMEMBERS", f"{self.prefix}workers")))
        if not hosts:
            return
        keys = list(map(self._worker, hosts))

        def plan(replies: list[Any]) -> tuple[list[Command], None]:
            rows = _rows(hosts, replies[0])
            gone = [h for h in hosts if h not in rows or rows[h]["updated"] < cutoff]
            writes: list[Command] = [("DEL", self._worker(h)) for h in gone]
            if gone:
                writes.append(("SREM", f"{self.prefix}workers", *gone))
            return writes, None

        self._transaction(keys, [("MGET", *keys)], plan)

    # -- queries ----------------------------------------------------------------------------

    def task(self, uuid: str) -> dict[str, Any] | None:
        value = self._client.command("GET", self._task(uuid))
        return None if value is None else task_out(json.loads(value))

    def tasks(
        self,
        state: str | None = None,
        name: str | None = None,
        worker: str | None = None,
        since: float | None = None,
        until: float | None = None,
        limit: int = 100,
        offset: int = 0,
        *,
        search: str | None = None,
        sort: str = "updated",
        order: str = "desc",
    ) -> list[dict[str, Any]]:
        descending = check_sort(sort, order)
        index, exact = self._narrowest(state, name, worker, search)
        wanted, skip = max(int(limit), 0), max(int(offset), 0)
        if wanted == 0:
            return []
        if sort != "updated":  # every match read, sorted here
            rows = [
                row
                for row in self._scan(index, since, until)
                if matches(row, state, name, worker, since, until, search)
            ]
            return [task_out(r) for r in sort_rows(rows, sort, descending)[skip : skip + wanted]]
        start = 0
        if exact:
            start, skip = skip, 0  # the index alone answers: the server skips
        found: list[dict[str, Any]] = []
        for row in self._scan(index, since, until, descending, start):
            if not matches(row, state, name, worker, since, until, search):
                continue
            if skip:
                skip -= 1
                continue
            found.append(row)
            if len(found) == wanted:
                break
        return [task_out(row) for row in sort_rows(found, "updated", descending)]

    def count_tasks(
        self,
        state: str | None = None,
        name: str | None = None,
        worker: str | None = None,
        since: float | None = None,
        until: float | None = None,
        *,
        search: str | None = None,
    ) -> int:
        index, exact = self._narrowest(state, name, worker, search)
        if exact:
            return int(self._client.command("ZCOUNT", index, *_range(since, until)))
        return sum(
            1
            for row in self._scan(index, since, until)
            if matches(row, state, name, worker, since, until, search)
        )

    def _narrowest(
        self, state: str | None, name: str | None, worker: str | None, search: str | None
    ) -> tuple[str, bool]:
        """The narrowest index of the filters given, and whether it answers them alone."""
        if worker is not None:
            index = self._index("h", worker)
        elif name is not None:
            index = self._index("n", name)
        elif state is not None:
            index = self._index("s", state)
        else:
            index = self._all
        exact = sum(v is not None for v in (state, name, worker)) <= 1 and not search
        return index, exact

    def _scan(
        self,
        index: str,
        since: float | None,
        until: float | None,
        descending: bool = True,
        start: int = 0,
    ) -> Iterator[dict[str, Any]]:
        """The rows of the tasks in ``index`` updated between ``since`` and ``until``, in
        that order, from the ``start``-th on (read a chunk at a time)."""
        bottom, top = _range(since, until)
        ends = (top, bottom, "BYSCORE", "REV") if descending else (bottom, top, "BYSCORE")
        position = start
        while True:
            found = self._client.command("ZRANGE", index, *ends, "LIMIT", position, _CHUNK)
            uuids = [_text(u) for u in found]
            if not uuids:
                return
            position += len(uuids)
            rows = _rows(uuids, self._client.command("MGET", *map(self._task, uuids)))
            for uuid in uuids:
                if uuid in rows:
                    yield rows[uuid]

    def throughput(self, since: float, until: float, bucket: float = 60.0) -> list[dict[str, Any]]:
        # a task's finishing time is never after its ``updated``
        counts = count_finished(self._scan(self._all, since, None), since, until, bucket)
        return throughput_rows(since, until, bucket, counts)

    def runtimes(
        self, since: float, until: float, names: Sequence[str] | None = None
    ) -> list[dict[str, Any]]:
        wanted = None if names is None else set(names)
        return runtime_rows(
            (row["name"], runtime_of(row))
            for row in self._scan(self._all, since, None)
            if (wanted is None or row["name"] in wanted) and finished_in(row, since, until)
        )

    # -- samples and alerts -----------------------------------------------------------------

    def _series(self, kind: str, key: str) -> str:
        return f"{self.prefix}samples:{kind}:{key}"

    def record_samples(
        self, kind: str, t: float, values: Mapping[str, Mapping[str, float | None]]
    ) -> None:
        kind, cleaned = clean_samples(kind, values)
        if not cleaned:
            return
        t = float(t)
        cutoff = self.retention.cutoff(t)
        writes: list[Command] = [("SADD", f"{self.prefix}series", kind)]
        for key, fields in cleaned.items():
            series = self._series(kind, key)
            member = json.dumps({**fields, "t": t}, separators=(",", ":"))
            writes += [
                ("ZREMRANGEBYSCORE", series, repr(t), repr(t)),
                ("ZADD", series, repr(t), member),
                ("ZREMRANGEBYRANK", series, 0, -self.max_samples - 1),
                ("SADD", f"{self.prefix}series:{kind}", key),
            ]
            if cutoff is not None:
                writes.append(("ZREMRANGEBYSCORE", series, "-inf", f"({cutoff!r}"))
        self._transaction([], [], lambda _: (writes, None))

    def samples(
        self,
        kind: str,
        since: float | None = None,
        until: float | None = None,
        keys: Sequence[str] | None = None,
    ) -> dict[str, list[dict[str, Any]]]:
        if keys is None:
            keys = sorted(
                map(_text, self._client.command("SMEMBERS", f"{self.prefix}series:{kind}"))
            )
        if not keys:
            return {}
        bottom, top = _range(since, until)
        replies = self._client.execute(
            *[("ZRANGE", self._series(kind, key), bottom, top, "BYSCORE") for key in keys]
        )
        out: dict[str, list[dict[str, Any]]] = {}
        for key, members in zip(keys, replies, strict=True):
            points = [json.loads(m) for m in members]
            if points:
                out[key] = [sample_out(float(p.pop("t")), p) for p in points]
        return out

    def _forget_samples(self, cutoff: float) -> None:
        for kind in sorted(map(_text, self._client.command("SMEMBERS", f"{self.prefix}series"))):
            listed = f"{self.prefix}series:{kind}"
            keys = sorted(map(_text, self._client.command("SMEMBERS", listed)))
            if not keys:
                continue
            series = [self._series(kind, key) for key in keys]
            self._client.execute(*[("ZREMRANGEBYSCORE", s, "-inf", f"({cutoff!r}") for s in series])
            sizes = self._client.execute(*[("ZCARD", s) for s in series])
            empty = [key for key, size in zip(keys, sizes, strict=True) if not int(size)]
            if empty:
                self._client.command("SREM", listed, *empty)

    def alert_states(self) -> dict[str, dict[str, Any]]:
        found = self._client.command("HGETALL", f"{self.prefix}alerts")
        if not isinstance(found, dict):
            found = dict(zip(found[::2], found[1::2], strict=True))
        return {_text(id): json.loads(state) for id, state in found.items()}

    def save_alert_states(self, changes: Mapping[str, dict[str, Any] | None]) -> None:
        key = f"{self.prefix}alerts"
        writes: list[Command] = []
        for id, state in changes.items():
            if state is None:
                writes.append(("HDEL", key, id))
            else:
                writes.append(("HSET", key, id, json.dumps(state, separators=(",", ":"))))
        if writes:
            self._transaction([], [], lambda _: (writes, None))

    def _workers(self) -> list[dict[str, Any]]:
        hosts = sorted(map(_text, self._client.command("SMEMBERS", f"{self.prefix}workers")))
        if not hosts:
            return []
        values = self._client.command("MGET", *map(self._worker, hosts))
        return list(_rows(hosts, values).values())

    def workers(self, now: float | None = None) -> list[dict[str, Any]]:
        now = time.time() if now is None else now
        return [worker_out(row, now) for row in self._workers()]

    def counts(self) -> dict[str, Any]:
        by_state: dict[str, int] = {}
        by_name: dict[str, dict[str, int]] = {}
        found = self._client.command("HGETALL", f"{self.prefix}counts")
        if not isinstance(found, dict):
            found = dict(zip(found[::2], found[1::2], strict=True))
        for field, value in found.items():
            count = int(value)
            if count <= 0:
                continue
            state, _, name = _text(field).partition("\t")
            by_state[state] = by_state.get(state, 0) + count
            named = by_name.setdefault(name, {})
            named[state] = named.get(state, 0) + count
        return {"states": by_state, "names": by_name}

    def lost_tasks(self, now: float | None = None) -> list[dict[str, Any]]:
        now = time.time() if now is None else now
        workers = {row["hostname"]: row for row in self._workers()}
        started = self.tasks(state="STARTED", limit=2**31)
        return [t for t in started if is_lost(t, workers.get(t["worker"] or ""), now)]

    def task_names(self) -> list[str]:
        return sorted(name for name in self.counts()["names"] if name)

    def stats(self) -> dict[str, Any]:
        count, oldest, newest, workers = self._client.execute(
            ("ZCARD", self._all),
            ("ZRANGE", self._all, 0, 0, "WITHSCORES"),
            ("ZRANGE", self._all, -1, -1, "WITHSCORES"),
            ("SCARD", f"{self.prefix}workers"),
        )
        return {
            "tasks": int(count),
            "workers": int(workers),
            "oldest": float(oldest[1]) if oldest else None,
            "newest": float(newest[1]) if newest else None,
        }

    def close(self) -> None:
        self._client.close()


def _exchange(conn: Any, commands: Sequence[Command]) -> list[Any]:
    """Send ``commands`` in one write and read every reply (the first error is raised once
    all are read, so the connection stays in step)."""
    conn.send_packed_command(conn.pack_commands(commands))
    replies: list[Any] = []
    error: Exception | None = None
    for _ in commands:
        try:
            replies.append(conn.read_response())
        except ResponseError as exc:
            error = error or exc
            replies.append(None)
    if error is not None:
        raise error
    return replies


def _range(since: float | None, until: float | None) -> tuple[str, str]:
    """The scores from ``since`` to ``until`` (inclusive), for ``ZRANGE ... BYSCORE``."""
    bottom = "-inf" if since is None else repr(float(since))
    top = "+inf" if until is None else repr(float(until))
    return bottom, top


def _count_field(row: dict[str, Any]) -> str:
    return f"{row['state']}\t{row['name'] or ''}"


def _dump(row: dict[str, Any]) -> str:
    return json.dumps(row, separators=(",", ":"))


def _rows(keys: Sequence[str], values: Sequence[Any]) -> dict[str, dict[str, Any]]:
    found: dict[str, dict[str, Any]] = {}
    for key, value in zip(keys, values, strict=True):
        if value is not None:
            try:
                found[key] = json.loads(value)
            except ValueError:
                continue  # not ours: written over as if absent
    return found


def _scores(reply: Sequence[Any]) -> dict[str, float]:
    """``ZRANGE ... WITHSCORES`` as {member: score}."""
    if reply and isinstance(reply[0], list | tuple):  # RESP3 pairs
        return {_text(m): float(s) for m, s in reply}
    return {_text(m): float(s) for m, s in zip(reply[::2], reply[1::2], strict=True)}


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)
