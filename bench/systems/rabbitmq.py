"""What the RabbitMQ systems share: a vhost of their own, made anew with ``rabbitmqctl``."""

from __future__ import annotations

import subprocess


def rabbitmqctl(*args: str) -> None:
    subprocess.run(["rabbitmqctl", *args], check=True, capture_output=True, timeout=60)


def drop_vhost(name: str) -> None:
    """Delete vhost ``name`` if it is there (and rabbitmqctl is)."""
    try:
        rabbitmqctl("delete_vhost", name)
    except (OSError, subprocess.SubprocessError):
        pass


def fresh_vhost(name: str) -> bool:
    """Vhost ``name``, empty, open to guest; False when rabbitmqctl cannot make it (the
    system then falls back to the default vhost)."""
    drop_vhost(name)
    try:
        rabbitmqctl("add_vhost", name)
        rabbitmqctl("set_permissions", "-p", name, "guest", ".*", ".*", ".*")
    except (OSError, subprocess.SubprocessError):
        return False
    return True
