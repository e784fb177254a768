"""What the small Django projects of the tests share (tests/djbeat, tests/djresults): the
admin's apps and middleware, templates, and a database on SQLite or a PostgreSQL schema.
Their settings import it; the tests put this directory on their ``PYTHONPATH``."""

from __future__ import annotations

import os
from typing import Any

ADMIN_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
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


def postgres(schema: str) -> dict[str, Any]:
    """Django's database settings for ``schema`` of the local PostgreSQL's ``test``."""
    return {
        "ENGINE": "django.db.backends.postgresql",
        "NAME": "test",
        "USER": "postgres",
        "HOST": "127.0.0.1",
        "PORT": "5432",
        "OPTIONS": {"options": f"-c search_path={schema}"},
        "TEST": {"NAME": "test"},
    }


def database(data: str, schema: str | None) -> dict[str, Any]:
    """``schema`` of PostgreSQL when given, else an SQLite file in the directory ``data``."""
    if schema:
        return postgres(schema)
    return {
        "ENGINE": "django.db.backends.sqlite3",
        "NAME": os.path.join(data, "site.db"),
        "OPTIONS": {"timeout": 30},
    }
