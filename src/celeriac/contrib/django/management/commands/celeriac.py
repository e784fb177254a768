"""``manage.py celeriac worker|beat|dashboard|...``: the ``celeriac`` command for this
project's app. The app is ``-A`` when given, else the ``CELERIAC_APP`` (or ``CELERY_APP``)
setting, else the package of the settings module (``proj`` for ``proj.settings``, whose
``proj/celery.py`` defines it, as in Django's layout)."""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand


def app_arguments(argv: Sequence[str]) -> list[str]:
    """``-A <app>`` unless ``argv`` names one."""
    if any(a in ("-A", "--app") or a.startswith(("--app=", "-A")) for a in argv):
        return []
    name = getattr(settings, "CELERIAC_APP", None) or getattr(settings, "CELERY_APP", None)
    if not name:
        name = str(settings.SETTINGS_MODULE or "").rpartition(".")[0]
    return ["-A", str(name)] if name else []


class Command(BaseCommand):
    help = "Run a celeriac command for this project's app: worker, beat, dashboard, ..."

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("argv", nargs=argparse.REMAINDER, help="the celeriac command")

    def run_from_argv(self, argv: list[str]) -> None:
        """Everything after ``manage.py celeriac`` goes to celeriac's own parser."""
        self._run(argv[2:])

    def handle(self, *args: Any, **options: Any) -> None:
        """For ``call_command("celeriac", "worker", ...)``."""
        self._run([*args, *options.get("argv", [])])

    def _run(self, argv: list[str]) -> None:
        from celeriac.cli import main

        main([*app_arguments(argv), *argv])
