"""Celery on RabbitMQ (kombu's py-amqp transport), prefork pool, results off.

Two systems: ``celery-amqp`` with Celery's defaults (a publish is written to the socket and
not confirmed) and ``celery-amqp-confirm`` with ``broker_transport_options={"confirm_publish":
True}``, where each publish waits for RabbitMQ's confirm: the guarantee celeriac's RabbitMQ
broker always gives. Each runs on a vhost of its own, made anew before each run with
``rabbitmqctl``; completion counters are in Redis as for every system.
"""

from __future__ import annotations

from typing import Any

import common
from systems.base import NotAvailable
from systems.celery import CelerySystem
from systems.rabbitmq import drop_vhost, fresh_vhost

NAMES = ["celery-amqp", "celery-amqp-confirm"]
QUEUE = "celery-bench"  # task_default_queue (prefixed: the fallback shares the default vhost)


def vhost(name: str) -> str:
    return f"{name}-bench"


def url(name: str, fallback: bool = False) -> str:
    return "amqp://guest:guest@127.0.0.1:5672/" + ("/" if fallback else vhost(name))


def settings(name: str, fallback: bool = False) -> dict[str, Any]:
    """Celery's settings for system ``name`` (applied by tasks/celery_amqp_tasks.py)."""
    conf: dict[str, Any] = {
        "broker_url": url(name, fallback),
        "broker_connection_retry_on_startup": True,
        "task_default_queue": QUEUE,
        "task_ignore_result": True,
        # as on Redis: Celery's optimizing guide for many short tasks (the default is 4)
        "worker_prefetch_multiplier": 64,
    }
    if name == "celery-amqp-confirm":
        conf["broker_transport_options"] = {"confirm_publish": True}
    return conf


class CeleryAMQP(CelerySystem):
    """Celery on RabbitMQ: its worker command and producer side are Celery's on Redis."""

    tasks_module = "tasks.celery_amqp_tasks"

    def __init__(self, name: str = "celery-amqp") -> None:
        if name not in NAMES:
            raise KeyError(name)
        self.name = name
        confirm = name == "celery-amqp-confirm"
        self.label = "Celery (amqp, confirms)" if confirm else "Celery (amqp)"
        self.fallback = False

    @property
    def db(self) -> int:
        return common.DB["celery"]  # not flushed: nothing of this system is in Redis

    def env(self) -> dict[str, str]:
        env = super().env()
        if self.fallback:
            env["BENCH_CELERY_AMQP_FALLBACK"] = "1"
        return env

    def config(self) -> dict[str, Any]:
        shown = {**settings(self.name, self.fallback)}
        shown["broker_url"] = shown["broker_url"].replace("guest:guest@", "")
        return {
            "broker": shown["broker_url"],
            "settings": shown,
            "transport": "kombu pyamqp (py-amqp)",
            "publish": "confirmed (confirm_publish: each publish waits for the broker's ack)"
            if self.name == "celery-amqp-confirm"
            else "unconfirmed (Celery's default)",
            "results": "off (task_ignore_result, no result backend)",
            "prefetch": "worker_prefetch_multiplier 64, as on Redis (default 4)",
            "worker": " ".join(self.worker_command()[1:]),
            "concurrency": self.concurrency_note,
            "bulk": "group(...).apply_async()",
        }

    def round_tripper(self) -> Any:
        raise NotAvailable("results off on RabbitMQ")

    # -- lifecycle --------------------------------------------------------------------------

    def prepare(self) -> None:
        """A fresh vhost; without rabbitmqctl, the default vhost with the queue purged."""
        self.clear_counters()
        if not self.fallback and fresh_vhost(vhost(self.name)):
            return
        self.fallback = True
        from kombu import Connection

        with Connection(url(self.name, fallback=True)) as conn:
            channel = conn.default_channel
            channel.queue_declare(QUEUE, durable=True)
            channel.queue_purge(QUEUE)

    def cleanup(self) -> None:
        self.clear_counters()
        if not self.fallback:
            drop_vhost(vhost(self.name))
