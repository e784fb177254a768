"""The results app's configuration."""

from __future__ import annotations

from django.apps import AppConfig


class ResultsConfig(AppConfig):
    """``celeriac.contrib.django.results``: task and group results in the database."""

    name = "celeriac.contrib.django.results"
    label = "celeriac_results"
    verbose_name = "Task results"
    default_auto_field = "django.db.models.BigAutoField"
