"""Django in celeriac's workers, as Celery's Django fix-up does it.

An app created while ``DJANGO_SETTINGS_MODULE`` is set (the ``proj/celery.py`` of Django's
layout) installs it (:class:`DjangoFixup`, a ``celeriac.fixups`` plug-in):

* the worker and beat call ``django.setup()`` before they import the tasks, so task modules
  may import models, and ``app.autodiscover_tasks()`` finds the installed apps' ``tasks``;
* the worker runs Django's system checks at start, which import the URLconf and the tasks
  that only views import (``--skip-checks`` skips them);
* the worker closes the database connections its start-up opened before it forks its pool,
  so no two processes share one;
* before and after each task, connections that are broken or past ``CONN_MAX_AGE`` are
  closed (``django.db.close_old_connections``), as Django does around each request.
"""

from __future__ import annotations

import importlib.util
import os
from typing import TYPE_CHECKING, Any

from ... import signals

if TYPE_CHECKING:
    from ...app import Celeriac

_installed = False


def fixup(app: Celeriac) -> bool:
    """Install the Django hooks if ``DJANGO_SETTINGS_MODULE`` is set and Django is there;
    whether they are (once per process, whichever app asks first)."""
    global _installed
    if not os.environ.get("DJANGO_SETTINGS_MODULE") or importlib.util.find_spec("django") is None:
        return False
    if not _installed:
        _installed = True
        signals.import_modules.connect(_setup, dispatch_uid="celeriac.django.setup")
        signals.worker_init.connect(_run_checks, dispatch_uid="celeriac.django.checks")
        signals.beat_init.connect(_setup, dispatch_uid="celeriac.django.setup-beat")
        signals.celeryd_after_setup.connect(_close_all, dispatch_uid="celeriac.django.close")
        signals.task_prerun.connect(_close_old, dispatch_uid="celeriac.django.prerun")
        signals.task_postrun.connect(_close_old, dispatch_uid="celeriac.django.postrun")
    return True


def installed_apps() -> list[str]:
    """The names of Django's installed apps (setting Django up first if it is configured and
    not set up yet); empty without Django."""
    try:
        from django.apps import apps
    except ImportError:
        return []
    if not apps.ready:
        if not os.environ.get("DJANGO_SETTINGS_MODULE"):
            return []  # Django is installed, but this is not a Django project
        _setup()
    return [config.name for config in apps.get_app_configs()]


class DjangoFixup:
    """The ``celeriac.fixups`` plug-in every app applies when it is created."""

    install = staticmethod(fixup)
    packages = staticmethod(installed_apps)


def _setup(**_: Any) -> None:
    import django
    from django.apps import apps

    if not apps.ready:
        django.setup()


def _run_checks(**_: Any) -> None:
    """Django's system checks, as Celery's worker runs them at start: they import the
    URLconf, and with it the tasks only views import. ``--skip-checks`` (or
    ``CELERY_SKIP_CHECKS``) skips them."""
    if os.environ.get("CELERIAC_SKIP_CHECKS") or os.environ.get("CELERY_SKIP_CHECKS"):
        return
    from django.core.checks import run_checks

    _setup()
    run_checks()


def _close_all(**_: Any) -> None:
    from django.apps import apps

    if apps.ready:
        from django.db import connections

        connections.close_all()


def _close_old(**_: Any) -> None:
    from django.apps import apps

    if apps.ready:
        from django.db import close_old_connections

        close_old_connections()
