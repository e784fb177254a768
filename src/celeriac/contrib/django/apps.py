"""The Django app ``celeriac.contrib.django``: listed in ``INSTALLED_APPS`` it adds the
``manage.py celeriac`` command (``worker``, ``beat``, ``dashboard``, any celeriac command)."""

from __future__ import annotations

from django.apps import AppConfig


class CeleriacConfig(AppConfig):
    """celeriac's management command, with no models."""

    name = "celeriac.contrib.django"
    label = "celeriac"
    verbose_name = "celeriac"
