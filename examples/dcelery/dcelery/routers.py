"""Routing by a task's arguments (the course's "advanced routing")."""

from __future__ import annotations

from typing import Any


def route_by_arguments(
    name: str, args: tuple[Any, ...], kwargs: dict[str, Any], options: dict[str, Any], **_: Any
) -> dict[str, Any] | None:
    """Big images go to the ``bulk`` queue at a low priority; everything else is left to
    the next route (by name), then to the default queue."""
    if name == "newapp.tasks.resize_image" and kwargs.get("megapixels", 0) > 20:
        return {"queue": "bulk", "priority": 2}
    return None
