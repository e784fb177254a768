"""The in-process "server" of ``memory://`` URLs: one store per URL, shared by every broker
and backend object of that URL in this process."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Generic, TypeVar

T = TypeVar("T")


class PerURL(Generic[T]):
    """Objects shared by every client of one URL in this process (the memory stores)."""

    def __init__(self, factory: Callable[[], T]) -> None:
        self._factory = factory
        self._items: dict[str, T] = {}
        self._lock = threading.Lock()

    def get(self, url: str) -> T:
        with self._lock:
            item = self._items.get(url)
            if item is None:
                item = self._items[url] = self._factory()
            return item

    def reset(self, url: str | None = None) -> None:
        """Forget ``url``'s object (every URL's when None). For tests."""
        with self._lock:
            if url is None:
                self._items.clear()
            else:
                self._items.pop(url, None)
