"""Celery's ``celery.contrib.migrate``: moving waiting tasks between queues and brokers
(see :mod:`celeriac.app.migrate`)."""

from ..app.migrate import *  # noqa: F403
from ..app.migrate import __all__ as __all__
