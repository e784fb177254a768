"""A Django project laid out as Celery's Django guide and cookiecutter-django lay it out, with
its pytest-django suite: tests switch eager mode on with the ``settings`` fixture or
``override_settings``, count users through the ORM in a task, and reach a real worker through
a view when eager mode is off."""

from __future__ import annotations

import pytest

from .conftest import Site

pytest.importorskip("django")
pytest.importorskip("pytest_django")

pytest_plugins = ["pytester"]

PROJECT = {
    "pytest.ini": """
        [pytest]
        DJANGO_SETTINGS_MODULE = mysite.test_settings
    """,
    "mysite/test_settings.py": """
        from celeriac.schedules import crontab

        from .settings import *  # noqa: F403

        PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
        CELERY_BEAT_SCHEDULE = {
            "nightly-count": {"task": "shop.tasks.get_users_count", "schedule": crontab(hour=3)},
        }
    """,
    "mysite/__init__.py": """
        from .celery import app as celery_app

        __all__ = ("celery_app",)
    """,
    "mysite/celery.py": """
        import os

        from celeriac import Celery

        os.environ.setdefault("DJANGO_SETTINGS_MODULE", "mysite.settings")

        app = Celery("mysite")
        app.config_from_object("django.conf:settings", namespace="CELERY")
        app.autodiscover_tasks()
    """,
    "mysite/settings.py": """
        import os
        from pathlib import Path

        BASE_DIR = Path(__file__).resolve().parent.parent
        SECRET_KEY = "compat"
        DEBUG = True
        ALLOWED_HOSTS = ["*"]
        USE_TZ = True
        INSTALLED_APPS = [
            "django.contrib.auth",
            "django.contrib.contenttypes",
            "shop",
        ]
        ROOT_URLCONF = "mysite.urls"
        DATABASES = {
            "default": {"ENGINE": "django.db.backends.sqlite3", "NAME": BASE_DIR / "db.sqlite3"}
        }
        CELERY_BROKER_URL = os.environ["COMPAT_BROKER"]
        CELERY_RESULT_BACKEND = os.environ["COMPAT_BACKEND"]
        CELERY_TASK_DEFAULT_QUEUE = os.environ["COMPAT_QUEUE"]
        CELERY_TIMEZONE = "UTC"
        CELERY_TASK_TRACK_STARTED = True
    """,
    "mysite/urls.py": """
        from django.urls import path

        from shop import views

        urlpatterns = [path("total/<int:n>/", views.total_view)]
    """,
    "shop/__init__.py": "",
    "shop/tasks.py": """
        import os

        from celeriac import shared_task
        from django.contrib.auth import get_user_model


        @shared_task
        def get_users_count():
            return get_user_model().objects.count()


        @shared_task
        def total(n):
            return {"sum": sum(range(n + 1)), "pid": os.getpid()}


        @shared_task
        def broken():
            raise ValueError("broken on purpose")
    """,
    "shop/views.py": """
        from django.http import JsonResponse

        from .tasks import total


        def total_view(request, n):
            result = total.delay(n)
            value = result.result if result.ready() else None
            return JsonResponse({"id": result.id, "value": value})
    """,
    "shop/tests/__init__.py": "",
    "shop/tests/test_tasks.py": """
        import os

        import pytest
        from celeriac.result import AsyncResult, EagerResult
        from django.contrib.auth import get_user_model
        from django.test import override_settings

        from shop.tasks import broken, get_users_count, total

        pytestmark = pytest.mark.django_db


        def test_user_count(settings):
            # cookiecutter-django's generated test
            for n in range(3):
                get_user_model().objects.create(username=f"user{n}")
            settings.CELERY_TASK_ALWAYS_EAGER = True
            task_result = get_users_count.delay()
            assert isinstance(task_result, EagerResult)
            assert task_result.result == 3


        def test_the_settings_fixture_reaches_the_view(settings, client):
            settings.CELERY_TASK_ALWAYS_EAGER = True
            assert client.get("/total/4/").json()["value"]["pid"] == os.getpid()


        @override_settings(CELERY_TASK_ALWAYS_EAGER=True, CELERY_TASK_EAGER_PROPAGATES=True)
        def test_override_settings():
            assert total.delay(3).get()["sum"] == 6
            with pytest.raises(ValueError, match="on purpose"):
                broken.delay()


        def test_delay_on_commit_waits_for_the_commit(django_capture_on_commit_callbacks):
            with django_capture_on_commit_callbacks(execute=False) as callbacks:
                assert total.delay_on_commit(2) is None
            assert len(callbacks) == 1


        def test_a_real_worker_runs_what_the_view_sends(client):
            task_id = client.get("/total/10/").json()["id"]
            value = AsyncResult(task_id).get(timeout=30)
            assert value["sum"] == 55
            assert value["pid"] != os.getpid()


        def test_a_failure_on_the_worker_comes_back(settings):
            result = broken.delay()
            with pytest.raises(ValueError, match="on purpose"):
                result.get(timeout=30)
            assert result.state == "FAILURE"
    """,
}


@pytest.mark.slow
def test_a_django_project_and_its_pytest_django_suite(
    site: Site, pytester: pytest.Pytester
) -> None:
    site.check(pytester, PROJECT, "mysite", passed=6)
