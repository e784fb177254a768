"""A Django project using celeriac's results app (tests/djresults/test_results_project.py).

``RESULTSPROJ_DATA`` is the test's own directory; ``RESULTSPROJ_DB`` is ``sqlite`` or a
PostgreSQL schema name (database ``test`` on 127.0.0.1)."""

import os

import djsite
from djsite import ADMIN_APPS

DATA = os.environ["RESULTSPROJ_DATA"]
DB = os.environ.get("RESULTSPROJ_DB", "sqlite")

SECRET_KEY = "test-only"
DEBUG = False
ALLOWED_HOSTS = ["127.0.0.1", "localhost", "testserver"]
USE_TZ = True
INSTALLED_APPS = [
    *ADMIN_APPS,
    "celeriac.contrib.django",
    "celeriac.contrib.django.results",
    "orders",
]
MIDDLEWARE = djsite.MIDDLEWARE
TEMPLATES = djsite.TEMPLATES
DATABASES = {"default": djsite.database(DATA, None if DB == "sqlite" else DB)}
DEFAULT_AUTO_FIELD = "django.db.models.AutoField"
ROOT_URLCONF = "resultsproj.urls"
STATIC_URL = "/static/"

CELERY_BROKER_URL = f"sqlite:///{os.path.join(DATA, 'broker.db')}"
CELERY_RESULT_BACKEND = "django-db"
CELERY_RESULT_EXTENDED = True
CELERY_DASHBOARD_STORE = f"sqlite:///{os.path.join(DATA, 'events.db')}"
