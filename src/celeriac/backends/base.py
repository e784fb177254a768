"""The result backend contract. Every backend module implements :class:`ResultBackend`; the
shared suite in ``tests/contract`` checks each one.

A backend stores, per task id, the state and an opaque payload (the encoded result meta, see
:mod:`celeriac.result`), and a small key-value store with TTLs and atomic counters used for
chords, revocations, rate limits and locks. It never decodes payloads.

* ``wait_for`` blocks until the task reaches a ready state (SUCCESS, FAILURE, REVOKED) without
  busy polling where the technology allows it (SQLite polls a cheap change counter).
* All methods may be called from any thread; driver errors are raised as
  :class:`celeriac.exceptions.OperationalError`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol, runtime_checkable

from .. import _state, plugins, states
from ..exceptions import TaskRevokedError


@runtime_checkable
class ResultBackend(Protocol):
    url: str

    def store(self, task_id: str, state: str, payload: bytes, expires_in: float | None) -> None:
        """Record ``state`` and ``payload`` for ``task_id``, replacing what was there.

        ``expires_in`` seconds after this write the record may be deleted (None: never)."""

    def load(self, task_id: str) -> bytes | None:
        """The last payload stored for ``task_id``, or None."""

    def load_many(self, task_ids: Sequence[str]) -> dict[str, bytes]:
        """Payloads for those ids that have one, in one round trip where possible."""

    def wait_for(self, task_id: str, timeout: float | None) -> bytes | None:
        """Block until ``task_id`` is in a ready state and return its payload (None on timeout)."""

    def forget(self, task_id: str) -> None:
        """Delete what is stored for ``task_id``."""

    def cleanup(self) -> int:
        """Delete expired records and keys; returns how many. Workers call it now and then."""

    def incr(self, key: str, amount: int = 1, expires_in: float | None = None) -> int:
        """Atomically add ``amount`` to the counter ``key`` (created at 0) and return it."""

    def add_to_set(self, key: str, member: str, expires_in: float | None = None) -> int:
        """Atomically add ``member`` to the set ``key`` and return how many distinct members
        it holds. Adding a member again changes nothing, so a repeated step counts once
        (chord joins rely on this). ``expires_in`` (re)sets the set's expiry."""

    def set_members(self, key: str) -> list[str]:
        """The members of the set ``key`` (empty when missing or expired), in no order."""

    def set_value(
        self, key: str, value: bytes, expires_in: float | None = None, only_if_absent: bool = False
    ) -> bool:
        """Set ``key``; with ``only_if_absent``, only when it is missing or expired.
        Returns whether it was set."""

    def get_value(self, key: str) -> bytes | None:
        """The value of ``key`` unless missing or expired."""

    def delete_value(self, key: str) -> None:
        """Delete ``key`` (a value, counter or set)."""

    def close(self) -> None:
        """Release connections (the backend reconnects if used again)."""

    # Celery's methods, which a backend gets by inheriting :class:`CeleryMethods`.

    #: the app whose settings those methods encode and decode with (set by the app)
    app: Any

    def store_result(
        self,
        task_id: str,
        result: Any,
        state: str,
        traceback: str | None = None,
        request: Any = None,
        **kwargs: Any,
    ) -> Any: ...

    def get_task_meta(self, task_id: str, cache: bool = True) -> dict[str, Any]: ...

    def get_state(self, task_id: str) -> str: ...

    def get_status(self, task_id: str) -> str: ...

    def get_result(self, task_id: str) -> Any: ...

    def get_traceback(self, task_id: str) -> str | None: ...

    def mark_as_started(self, task_id: str, **meta: Any) -> Any: ...

    def mark_as_done(self, task_id: str, result: Any, request: Any = None, **kw: Any) -> Any: ...

    def mark_as_failure(
        self,
        task_id: str,
        exc: BaseException,
        traceback: str | None = None,
        request: Any = None,
        **kw: Any,
    ) -> Any: ...

    def mark_as_retry(
        self,
        task_id: str,
        exc: BaseException,
        traceback: str | None = None,
        request: Any = None,
        **kw: Any,
    ) -> Any: ...

    def mark_as_revoked(
        self, task_id: str, reason: str = "", request: Any = None, **kw: Any
    ) -> Any: ...


class CeleryMethods:
    """Celery's result-backend methods, which every backend has too: ``store_result``,
    ``get_task_meta``, ``get_state`` (``get_status``), ``get_result``, ``get_traceback`` and
    the ``mark_as_*`` family. They encode and decode with the settings of the app the
    backend belongs to (``app``, set by the app that made it; else the current app)."""

    app: Any = None

    def _results(self) -> Any:
        app = self.app or _state.get_current_app()
        return app.results.using(self)  # type: ignore[arg-type]  # a mix-in of a backend

    def store_result(
        self,
        task_id: str,
        result: Any,
        state: str,
        traceback: str | None = None,
        request: Any = None,
        **kwargs: Any,
    ) -> Any:
        """Record ``state`` and ``result`` (an exception for failures) for ``task_id``."""
        task = getattr(request, "task", None)  # a task here, a name in Celery's requests
        name = task if isinstance(task, str) or task is None else task.name
        self._results().store(task_id, state, result, traceback, name, request)
        return result

    def get_task_meta(self, task_id: str, cache: bool = True) -> dict[str, Any]:
        """The stored meta of ``task_id`` (``status``, ``result``, ...); PENDING if none."""
        meta: dict[str, Any] = self._results().meta(task_id)
        return meta

    def ensure_chords_allowed(self) -> None:
        """Raise NotImplementedError where chords cannot be used (a backend that does not
        keep values, rpc://), as Celery's backends do; return otherwise."""
        if not getattr(self, "keeps_values", True):
            raise NotImplementedError(
                "chords need a result backend that keeps values (redis://, sqlite://, ...)"
            )

    def get_state(self, task_id: str) -> str:
        return str(self.get_task_meta(task_id)["status"])

    get_status = get_state

    def get_result(self, task_id: str) -> Any:
        return self.get_task_meta(task_id).get("result")

    def get_traceback(self, task_id: str) -> str | None:
        return self.get_task_meta(task_id).get("traceback")

    def mark_as_started(self, task_id: str, **meta: Any) -> Any:
        return self.store_result(task_id, meta, states.STARTED)

    def mark_as_done(self, task_id: str, result: Any, request: Any = None, **kw: Any) -> Any:
        return self.store_result(task_id, result, states.SUCCESS, request=request)

    def mark_as_failure(
        self,
        task_id: str,
        exc: BaseException,
        traceback: str | None = None,
        request: Any = None,
        **kw: Any,
    ) -> Any:
        return self.store_result(task_id, exc, states.FAILURE, traceback, request)

    def mark_as_retry(
        self,
        task_id: str,
        exc: BaseException,
        traceback: str | None = None,
        request: Any = None,
        **kw: Any,
    ) -> Any:
        return self.store_result(task_id, exc, states.RETRY, traceback, request)

    def mark_as_revoked(
        self, task_id: str, reason: str = "", request: Any = None, **kw: Any
    ) -> Any:
        revoked = TaskRevokedError(reason or "revoked")
        return self.store_result(task_id, revoked, states.REVOKED, request=request)


def create_backend(url: str, options: dict[str, Any] | None = None) -> ResultBackend:
    """Create the result backend for ``url`` (Celery's ``db+``/``cache+`` prefixes and a
    SQLAlchemy driver name, ``db+postgresql+psycopg2://``, work): the class the
    ``celeriac.backends`` entry point of its scheme names."""
    if "://" not in url and url in plugins.entry_points(plugins.BACKENDS):
        url += "://"  # a bare name, as Celery's "django-db"
    if url.startswith("db+"):
        name, sep, rest = url.removeprefix("db+").partition("://")
        url = name.partition("+")[0] + sep + rest
    url = url.removeprefix("cache+")
    cls = plugins.for_url(plugins.BACKENDS, url, "result backend")
    backend: ResultBackend = cls(url, dict(options or {}))
    return backend
