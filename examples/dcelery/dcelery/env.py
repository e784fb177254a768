"""Settings from ``.env``: a few lines instead of a dependency.

``KEY=VALUE`` per line; blank lines and ``#`` comments are skipped, an ``export `` prefix and
quotes around the value are dropped. A variable already in the environment wins, so
``docker compose``'s ``environment:`` and a shell's ``FOO=bar python manage.py ...`` override
the file.
"""

from __future__ import annotations

import os
from pathlib import Path
from urllib.parse import unquote, urlsplit

BASE_DIR = Path(__file__).resolve().parent.parent


def read_env(path: Path = BASE_DIR / ".env") -> None:
    """Put the variables of ``path`` (when it exists) into ``os.environ``."""
    if not path.is_file():
        return
    found: dict[str, str] = {}  # a variable set twice: the last line wins
    for raw in path.read_text(encoding="utf-8").splitlines():
        line = raw.strip()
        if not line or line.startswith("#") or "=" not in line:
            continue
        key, _, value = line.removeprefix("export ").partition("=")
        value = value.strip()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
            value = value[1:-1]
        found[key.strip()] = value
    for key, value in found.items():
        os.environ.setdefault(key, value)


def env_bool(name: str, default: bool) -> bool:
    value = os.environ.get(name)
    return default if value is None else value.strip().lower() in ("1", "true", "yes", "on")


def env_list(name: str, default: str) -> list[str]:
    return [item.strip() for item in os.environ.get(name, default).split(",") if item.strip()]


def database(url: str) -> dict[str, object]:
    """Django's ``DATABASES["default"]`` from ``sqlite:///relative/or//absolute.db`` or
    ``postgresql://user:password@host:port/name``."""
    parts = urlsplit(url)
    if parts.scheme == "sqlite":
        name = parts.path[1:] if parts.path.startswith("/") else parts.path
        # a busy timeout: the workers store results while the admin reads them
        return {
            "ENGINE": "django.db.backends.sqlite3",
            "NAME": str(BASE_DIR / name) if name else str(BASE_DIR / "db.sqlite3"),
            "OPTIONS": {"timeout": 20},
        }
    if parts.scheme in ("postgres", "postgresql"):
        return {
            "ENGINE": "django.db.backends.postgresql",
            "NAME": parts.path.lstrip("/"),
            "USER": unquote(parts.username or ""),
            "PASSWORD": unquote(parts.password or ""),
            "HOST": parts.hostname or "",
            "PORT": str(parts.port or ""),
        }
    raise ValueError(f"DATABASE_URL: unsupported scheme {parts.scheme!r} (sqlite or postgresql)")
