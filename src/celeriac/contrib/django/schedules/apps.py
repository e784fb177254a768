"""The Django app ``celeriac.contrib.django.schedules`` (label ``celeriac_schedules``)."""

from __future__ import annotations

from django.apps import AppConfig


class SchedulesConfig(AppConfig):
    """Periodic tasks kept in the project's database and edited in Django's admin."""

    name = "celeriac.contrib.django.schedules"
    label = "celeriac_schedules"
    verbose_name = "Periodic tasks"
    default_auto_field = "django.db.models.AutoField"

    def ready(self) -> None:
        from . import models

        models.connect_change_tracking()
