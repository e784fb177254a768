"""Celery's ``celery.worker.state``, as far as a project's code and tests reach into it.

A Celery worker keeps its revoked ids and stamps in its own memory; celeriac keeps them in
the result backend, shared by every worker (see :mod:`celeriac.control`). So
``revoked_stamps`` here is a view of the current app's stamped-header revocations
(``app.control.revoke_by_stamped_headers``), whichever process reads it, and
``revoked_stamps.clear()`` forgets them for every worker.

The rest are views of the worker running in this process (its main process, where a
project's remote-control commands and ``worker_*`` signal handlers run), read at each use,
empty where no worker runs: ``total_count`` (tasks run, by name), ``revoked`` (the revoked
ids it holds), ``active_requests`` and ``reserved_requests`` (its tasks running and
received), and ``requests`` (both, by id). A task is seen as a :class:`RequestInfo`.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from collections.abc import Set as AbstractSet
from typing import TYPE_CHECKING, Any

from .._state import get_current_app

if TYPE_CHECKING:
    from .pools.base import Job
    from .worker import Worker

__all__ = [
    "RequestInfo",
    "active_requests",
    "requests",
    "reserved_requests",
    "revoked",
    "revoked_stamps",
    "total_count",
]

#: the worker running in this process (set while it runs)
_worker: Worker | None = None


def set_worker(worker: Worker | None) -> None:
    """Record the worker running in this process (None once it has stopped)."""
    global _worker
    _worker = worker


class RevokedStamps(Mapping[str, list[Any]]):
    """``{stamp: [value, ...]}`` of the revocations by stamped header in force, read from
    the current app's result backend at each use."""

    def _read(self) -> dict[str, list[Any]]:
        return get_current_app().control.revoked_stamps()

    def __getitem__(self, name: str) -> list[Any]:
        return self._read()[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._read())

    def __len__(self) -> int:
        return len(self._read())

    def clear(self) -> None:
        """Forget every revocation by stamped header: tasks with those stamps run again."""
        get_current_app().control.forget_revoked_stamps()

    def __repr__(self) -> str:
        return repr(self._read())


revoked_stamps = RevokedStamps()


class RequestInfo:
    """A task the worker holds, with Celery's request fields: ``id``, ``name``, ``args``,
    ``kwargs``, ``hostname``, ``time_start``, ``worker_pid``, ``delivery_info``,
    ``acknowledged``; ``info()`` is what ``inspect().active()`` tells of it."""

    id: str
    name: str

    def __init__(self, info: dict[str, Any]) -> None:
        self._info = info
        self.__dict__.update(info)
        self.task_name = self.task = info["name"]

    def info(self, safe: bool = False) -> dict[str, Any]:
        return dict(self._info)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, RequestInfo) and other.id == self.id

    def __hash__(self) -> int:
        return hash(self.id)

    def __repr__(self) -> str:
        return f"<Request: {self.name}[{self.id}]>"


def _jobs(kind: str) -> list[Job]:
    worker = _worker
    if worker is None:
        return []
    return worker.running() if kind == "active" else worker.reserved()


def _infos(kind: str) -> set[RequestInfo]:
    worker = _worker
    if worker is None:
        return set()
    return {RequestInfo(worker.remote.task_info(job)) for job in _jobs(kind)}


class _RequestSet(AbstractSet[RequestInfo]):
    """The worker's tasks of one kind (``active`` or ``reserved``), read at each use."""

    def __init__(self, kind: str) -> None:
        self.kind = kind

    def __contains__(self, item: object) -> bool:
        return item in _infos(self.kind)

    def __iter__(self) -> Iterator[RequestInfo]:
        return iter(_infos(self.kind))

    def __len__(self) -> int:
        return len(_jobs(self.kind))


class _Requests(Mapping[str, RequestInfo]):
    """The worker's tasks, running or received, by id."""

    def _read(self) -> dict[str, RequestInfo]:
        return {r.id: r for r in (*_infos("reserved"), *_infos("active"))}

    def __getitem__(self, task_id: str) -> RequestInfo:
        return self._read()[task_id]

    def __iter__(self) -> Iterator[str]:
        return iter(self._read())

    def __len__(self) -> int:
        return len(self._read())


class _TotalCount(Mapping[str, int]):
    """How many of each task the worker has run, by name."""

    def __getitem__(self, name: str) -> int:
        if _worker is None or name not in _worker.total:
            raise KeyError(name)
        return _worker.total[name]

    def __iter__(self) -> Iterator[str]:
        return iter(dict(_worker.total) if _worker is not None else {})

    def __len__(self) -> int:
        return len(_worker.total) if _worker is not None else 0


class _Revoked(AbstractSet[str]):
    """The revoked task ids the worker holds (as last read from the result backend)."""

    def _read(self) -> frozenset[str]:
        return _worker.revoked if _worker is not None else frozenset()

    def __contains__(self, task_id: object) -> bool:
        return task_id in self._read()

    def __iter__(self) -> Iterator[str]:
        return iter(self._read())

    def __len__(self) -> int:
        return len(self._read())


active_requests = _RequestSet("active")
reserved_requests = _RequestSet("reserved")
requests = _Requests()
total_count = _TotalCount()
revoked = _Revoked()
