"""A Django project whose periodic tasks live in celeriac.contrib.django.schedules.

DJBEAT_DATA: the test's directory (SQLite database, runs log); DJBEAT_PG_SCHEMA: use that
PostgreSQL schema instead of SQLite; DJBEAT_BROKER / DJBEAT_BACKEND: the broker and results.
"""

import os

import djsite
from djsite import ADMIN_APPS

DATA = os.environ["DJBEAT_DATA"]

SECRET_KEY = "test-only"
DEBUG = False
ALLOWED_HOSTS = ["127.0.0.1", "localhost"]
USE_TZ = True
TIME_ZONE = "UTC"
INSTALLED_APPS = [*ADMIN_APPS, "celeriac.contrib.django.schedules", "ticks"]
MIDDLEWARE = djsite.MIDDLEWARE
TEMPLATES = djsite.TEMPLATES
ROOT_URLCONF = "site_beat.urls"
DEFAULT_AUTO_FIELD = "django.db.models.AutoField"
DATABASES = {"default": djsite.database(DATA, os.environ.get("DJBEAT_PG_SCHEMA"))}

CELERY_BROKER_URL = os.environ.get("DJBEAT_BROKER", f"sqlite:///{os.path.join(DATA, 'broker.db')}")
CELERY_RESULT_BACKEND = os.environ.get("DJBEAT_BACKEND") or None
CELERY_BEAT_SCHEDULER = "django"
CELERY_BEAT_DB_SYNC_INTERVAL = float(os.environ.get("DJBEAT_SYNC", "0.5"))
CELERY_BEAT_LEADER_LEASE = float(os.environ.get("DJBEAT_LEASE", "3"))

if os.environ.get("DJBEAT_CONFIGURED"):  # entries in the settings, copied in by beat
    from celeriac.schedules import crontab

    CELERY_BEAT_SCHEDULE = {
        "nightly": {
            "task": "ticks.tasks.tick",
            "schedule": crontab(hour=3, minute=0, tz="Europe/Paris"),
            "args": ["n"],
            "options": {"queue": "night", "expires": 60, "priority": 2},
        },
        "often": {"task": "ticks.tasks.tick", "schedule": 2.5},
    }
