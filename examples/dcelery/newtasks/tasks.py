"""tp1 to tp4, for the course's group and chain: each adds its name to what it is given."""

from __future__ import annotations

from celeriac import shared_task


def _step(name: str, so_far: list[str] | None) -> list[str]:
    return [*(so_far or []), name]


@shared_task
def tp1(so_far: list[str] | None = None) -> list[str]:
    return _step("tp1", so_far)


@shared_task
def tp2(so_far: list[str] | None = None) -> list[str]:
    return _step("tp2", so_far)


@shared_task
def tp3(so_far: list[str] | None = None) -> list[str]:
    return _step("tp3", so_far)


@shared_task
def tp4(so_far: list[str] | None = None) -> list[str]:
    return _step("tp4", so_far)
