"""Result backends: one module per technology, each implementing
:class:`~celeriac.backends.base.ResultBackend`."""

from .base import BACKENDS, ResultBackend, create_backend

__all__ = ["BACKENDS", "ResultBackend", "create_backend"]
