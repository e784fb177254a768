"""Settings of the course's "dcelery" project, read from ``.env`` (see ``.env.example``)."""

from __future__ import annotations

import os

import django

from celeriac.schedules import crontab

from .env import BASE_DIR, database, env_bool, env_list, read_env

read_env()

SECRET_KEY = os.environ.get("DJANGO_SECRET_KEY", "dev-only-not-secret")
DEBUG = env_bool("DJANGO_DEBUG", True)
ALLOWED_HOSTS = env_list("DJANGO_ALLOWED_HOSTS", "localhost,127.0.0.1,[::1]")
CSRF_TRUSTED_ORIGINS = env_list("DJANGO_CSRF_TRUSTED_ORIGINS", "http://localhost:8001")

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "celeriac.contrib.django",  # manage.py celeriac worker|beat|dashboard
    "celeriac.contrib.django.results",  # TaskResult and GroupResult in the admin
    "celeriac.contrib.django.schedules",  # periodic tasks in the admin, beat -S django
    "newapp",
    "newtasks",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "dcelery.urls"
WSGI_APPLICATION = "dcelery.wsgi.application"
TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [],
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

# sqlite:///db.sqlite3 (the default) or postgresql://user:password@host:5432/name
DATABASES = {"default": database(os.environ.get("DATABASE_URL", "sqlite:///db.sqlite3"))}
if DATABASES["default"]["ENGINE"].endswith("sqlite3") and django.VERSION >= (5, 1):
    # several processes write to one file: take the write lock at BEGIN, and let readers be
    DATABASES["default"]["OPTIONS"] = {
        "timeout": 20,
        "transaction_mode": "IMMEDIATE",
        "init_command": "PRAGMA journal_mode=WAL;",
    }
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

LANGUAGE_CODE = "en-us"
TIME_ZONE = os.environ.get("DJANGO_TIME_ZONE", "UTC")
USE_I18N = True
USE_TZ = True
STATIC_URL = "static/"
STATIC_ROOT = BASE_DIR / "staticfiles"

# celeriac reads every CELERY_* setting (namespace="CELERY" in dcelery/celery.py)
CELERY_BROKER_URL = os.environ.get("CELERY_BROKER_URL", "sqlite:///celeriac-broker.db")
CELERY_RESULT_BACKEND = os.environ.get("CELERY_RESULT_BACKEND", "django-db")
CELERY_RESULT_EXTENDED = True  # the task's name, arguments and worker go with its result
CELERY_TIMEZONE = TIME_ZONE
CELERY_TASK_DEFAULT_QUEUE = "celery"
CELERY_TASK_ROUTES = [
    "dcelery.routers.route_by_arguments",  # routing by the task's arguments
    {"dcelery.celery.t*": {"queue": "tasks"}},  # routing by name, to a queue
]
CELERY_WORKER_SEND_TASK_EVENTS = True  # the dashboard shows what the workers do
CELERY_TASK_SEND_SENT_EVENT = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1  # a busy worker leaves the rest to the priorities

# the course's crontab schedules, and a heartbeat every few seconds to see beat at work
CELERY_BEAT_SCHEDULE = {
    "weekly-report": {
        "task": "newapp.tasks.weekly_report",
        "schedule": crontab(hour=7, minute=30, day_of_week=1),
    },
    "daily-cleanup": {
        "task": "newapp.tasks.daily_cleanup",
        "schedule": crontab(hour=8, minute=0),
    },
    "heartbeat": {
        "task": "newapp.tasks.heartbeat",
        "schedule": float(os.environ.get("HEARTBEAT_SECONDS", "30")),
    },
}

# where the home page links to
DASHBOARD_URL = os.environ.get("DASHBOARD_URL", "http://localhost:5555/")
