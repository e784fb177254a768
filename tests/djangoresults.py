"""Django configured for the result backend contract (``django-db``, ``django-cache``), in a
process of its own: tests/contract/conftest.py calls :func:`configure` when
``CELERIAC_CONTRACT_DJANGO`` names the database (``sqlite`` or ``postgresql``)."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import djsite
from services import _postgres, require_service

POSTGRES_DJANGO = _postgres("celeriac_test_django")
TESTS = Path(__file__).resolve().parent


def _database(kind: str) -> dict[str, Any]:
    if kind == "sqlite":
        path = Path(tempfile.mkdtemp(prefix="celeriac-django-")) / "results.sqlite3"
        # WAL, as celeriac's own SQLite files: a commit without an fsync of the whole file,
        # so the contract's short expiries are not outrun by slow writes on a busy machine
        init = "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;"
        return {
            "ENGINE": "django.db.backends.sqlite3",
            "NAME": str(path),
            "OPTIONS": {"init_command": init},
        }
    if kind == "postgresql":
        require_service("postgresql")
        POSTGRES_DJANGO.prepare()
        schema = POSTGRES_DJANGO.url.rpartition("search_path%3D")[2]
        return djsite.postgres(schema)
    raise ValueError(f"CELERIAC_CONTRACT_DJANGO must be sqlite or postgresql, not {kind!r}")


def configure(kind: str) -> None:
    """Configure Django with the results app on ``kind``'s database and migrate it."""
    import django
    from django.conf import settings
    from django.core.management import call_command

    settings.configure(
        SECRET_KEY="contract",
        USE_TZ=True,
        INSTALLED_APPS=["django.contrib.contenttypes", "celeriac.contrib.django.results"],
        DATABASES={"default": _database(kind)},
        CACHES={
            "default": {
                "BACKEND": "django.core.cache.backends.locmem.LocMemCache",
                # the default (300 entries) evicts a large chord's header
                "OPTIONS": {"MAX_ENTRIES": 1_000_000},
            }
        },
    )
    django.setup()
    call_command("migrate", verbosity=0)


def empty(kind: str) -> None:
    """Delete what an earlier test left (``kind``: ``db`` or ``cache``)."""
    if kind == "cache":
        from django.core.cache import cache

        cache.clear()
        return
    from celeriac.contrib.django.results import models

    for model in (models.TaskResult, models.GroupResult, models.KeyValue, models.SetMember):
        model.objects.all().delete()


def run_contract(database: str, files: list[str], select: str) -> None:
    """Run the contract ``files`` (tests selected by ``select``) in a pytest process with
    Django configured on ``database``; fail with its output unless all pass."""
    env = {**os.environ, "CELERIAC_CONTRACT_DJANGO": database}
    command = [
        *(sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "no:django"),
        *("-p", "no:xdist", "-k", select, *(str(TESTS / "contract" / f) for f in files)),
    ]
    done = subprocess.run(
        command, env=env, cwd=TESTS.parent, capture_output=True, text=True, timeout=600
    )
    assert done.returncode == 0, done.stdout[-6000:] + done.stderr[-3000:]
    assert " passed" in done.stdout and " failed" not in done.stdout, done.stdout[-3000:]
