"""Celery's ``celery.worker.state``, as far as a project's code and tests reach into it.

A Celery worker keeps its revoked ids and stamps in its own memory; celeriac keeps them in
the result backend, shared by every worker (see :mod:`celeriac.control`). So
``revoked_stamps`` here is a view of the current app's stamped-header revocations
(``app.control.revoke_by_stamped_headers``), whichever process reads it, and
``revoked_stamps.clear()`` forgets them for every worker.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from .._state import get_current_app

__all__ = ["revoked_stamps"]


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
