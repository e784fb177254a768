"""Result backends: one module per technology, each implementing
:class:`~celeriac.backends.base.ResultBackend`."""

from .base import ResultBackend, create_backend

__all__ = ["ResultBackend", "create_backend"]
