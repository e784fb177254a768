"""Periodic tasks in the Django admin: the app ``celeriac.contrib.django.schedules``.

List it in ``INSTALLED_APPS``, run ``manage.py migrate``, and start beat with
``celeriac -A proj beat -S django`` (or ``-S celeriac.contrib.django.schedules:DatabaseScheduler``,
or ``CELERY_BEAT_SCHEDULER = "django"``). The models (:mod:`.models`) keep
django-celery-beat's names and fields; :mod:`.admin` edits them; beat reads them through
:class:`~.scheduler.DatabaseScheduler` and picks a change up within
``beat_db_sync_interval`` seconds. ``manage.py import_django_celery_beat`` copies the rows of
an existing django-celery-beat table set.

Importing this package does not import Django's models (Django imports it while it sets
itself up); :class:`DatabaseScheduler` is loaded on first use.
"""

from __future__ import annotations

from typing import Any

__all__ = ["DatabaseScheduler"]


def __getattr__(name: str) -> Any:
    if name == "DatabaseScheduler":
        from .scheduler import DatabaseScheduler

        return DatabaseScheduler
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
