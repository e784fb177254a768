"""A Django project whose periodic tasks live in celeriac.contrib.django.schedules.

DJBEAT_DATA: the test's directory (SQLite database, runs log); DJBEAT_PG_SCHEMA: use that
PostgreSQL schema instead of SQLite; DJBEAT_BROKER / DJBEAT_BACKEND: the broker and results.
"""

import os

DATA = os.environ["DJBEAT_DATA"]

SECRET_KEY = "test-only"
DEBUG = False
ALLOWED_HOSTS = ["127.0.0.1", "localhost"]
USE_TZ = True
TIME_ZONE = "UTC"
INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "celeriac.contrib.django.schedules",
    "ticks",
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
ROOT_URLCONF = "site_beat.urls"
DEFAULT_AUTO_FIELD = "django.db.models.AutoField"

if os.environ.get("DJBEAT_PG_SCHEMA"):
    DATABASES = {
        "default": {
            "ENGINE": "django.db.backends.postgresql",
            "NAME": "test",
            "USER": "postgres",
            "HOST": "127.0.0.1",
            "PORT": "5432",
            "OPTIONS": {"options": f"-c search_path={os.environ['DJBEAT_PG_SCHEMA']}"},
            "TEST": {"NAME": "test"},
        }
    }
else:
    DATABASES = {
        "default": {
            "ENGINE": "django.db.backends.sqlite3",
            "NAME": os.path.join(DATA, "site.db"),
            "OPTIONS": {"timeout": 30},
        }
    }

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
