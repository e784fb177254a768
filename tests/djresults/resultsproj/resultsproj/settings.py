"""A Django project using celeriac's results app (tests/djresults/test_results_project.py).

``RESULTSPROJ_DATA`` is the test's own directory; ``RESULTSPROJ_DB`` is ``sqlite`` or a
PostgreSQL schema name (database ``test`` on 127.0.0.1)."""

import os
from typing import Any

DATA = os.environ["RESULTSPROJ_DATA"]
DB = os.environ.get("RESULTSPROJ_DB", "sqlite")

SECRET_KEY = "test-only"
DEBUG = False
ALLOWED_HOSTS = ["127.0.0.1", "localhost", "testserver"]
USE_TZ = True
INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "celeriac.contrib.django",
    "celeriac.contrib.django.results",
    "orders",
]
MIDDLEWARE = [
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
]
TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ]
        },
    }
]
DATABASES: dict[str, dict[str, Any]]
if DB == "sqlite":
    DATABASES = {
        "default": {"ENGINE": "django.db.backends.sqlite3", "NAME": os.path.join(DATA, "site.db")}
    }
else:
    DATABASES = {
        "default": {
            "ENGINE": "django.db.backends.postgresql",
            "NAME": "test",
            "USER": "postgres",
            "HOST": "127.0.0.1",
            "PORT": "5432",
            "OPTIONS": {"options": f"-c search_path={DB}"},
        }
    }
DEFAULT_AUTO_FIELD = "django.db.models.AutoField"
ROOT_URLCONF = "resultsproj.urls"
STATIC_URL = "/static/"

CELERY_BROKER_URL = f"sqlite:///{os.path.join(DATA, 'broker.db')}"
CELERY_RESULT_BACKEND = "django-db"
CELERY_RESULT_EXTENDED = True
CELERY_DASHBOARD_STORE = f"sqlite:///{os.path.join(DATA, 'events.db')}"
