"""celeriac, on Redis (the main comparison) and on SQLite, RabbitMQ and PostgreSQL."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import common
from systems import postgres
from systems.base import BIN, CeleryAPI
from systems.rabbitmq import drop_vhost, fresh_vhost

# Applied by tasks/celeriac_tasks.py. Results are off except for the results workload's
# task (``echo``), which opts back in and keeps them in the broker's own store.
SETTINGS: dict[str, Any] = {
    "task_default_queue": "celeriac-bench",
    "task_ignore_result": True,
    # the same as Celery's here: many short tasks (docs/performance.md, "Tuning")
    "worker_prefetch_multiplier": 64,
}

TMP = Path(__file__).resolve().parent.parent / ".tmp"
# BENCH_SLOT=name: a vhost, schema and SQLite file of the run's own (see common.REDIS_PORT)
SLOT = "".join(c for c in os.environ.get("BENCH_SLOT", "").lower() if c.isalnum())
SQLITE_FILE = TMP / (f"celeriac-{SLOT}.db" if SLOT else "celeriac.db")
AMQP_VHOST = f"celeriac-bench-{SLOT}" if SLOT else "celeriac-bench"
PG_SCHEMA = f"celeriac_bench_{SLOT}" if SLOT else "celeriac_bench"

URLS = {
    "redis": common.redis_url(common.DB["celeriac"]),
    "sqlite": f"sqlite:///{SQLITE_FILE}",
    "amqp": f"amqp://guest:guest@127.0.0.1:5672/{AMQP_VHOST}",
    "postgres": postgres.schema_url(PG_SCHEMA),
}


class Celeriac(CeleryAPI):
    tasks_module = "tasks.celeriac_tasks"
    canvas_module = "celeriac"

    dist = "celeriac"
    concurrency_note = "prefork pool, -c 2 (one parent and two child processes)"
    asyncio = True  # -P asyncio

    def __init__(self, broker: str = "redis") -> None:
        self.name = "celeriac" if broker == "redis" else f"celeriac-{broker}"
        self.label = "celeriac" if broker == "redis" else f"celeriac ({broker})"
        # amqp-unconfirmed: RabbitMQ with confirm_publish off (publishing does not wait)
        self.unconfirmed = broker == "amqp-unconfirmed"
        if self.unconfirmed:
            broker, self.label = "amqp", "celeriac (amqp, no confirms)"
        self.broker = broker
        self.url = URLS[broker]
        self.amqp_fallback = False

    def env(self) -> dict[str, str]:
        env = {**super().env(), "BENCH_CELERIAC_BROKER": self.url}
        if self.unconfirmed:
            env["BENCH_CELERIAC_UNCONFIRMED"] = "1"
        source = os.environ.get("BENCH_CELERIAC_SRC")
        if source:  # another checkout's src/, to compare before and after a change
            env["PYTHONPATH"] = os.pathsep.join([source, str(Path(__file__).parent.parent)])
        return env

    def config(self) -> dict[str, Any]:
        shown = self.url if self.broker != "amqp" else self.url.replace("guest:guest@", "")
        settings = SETTINGS
        if self.unconfirmed:
            settings = {**SETTINGS, "broker_transport_options": {"confirm_publish": False}}
        return {
            "broker": shown,
            "settings": settings,
            "results": "kept in the broker's store, for the results workload's task only",
            "prefetch": "worker_prefetch_multiplier 64, as Celery's here (the default is 4)",
            "worker": " ".join(self.worker_command()[1:]),
            "concurrency": self.concurrency_note,
        }

    def worker_command(
        self,
        concurrency: int = 2,
        pool: str | None = None,
        results: bool = False,
        name: str | None = None,
    ) -> list[str]:
        """``name``: the node name (``-n``), for several workers side by side."""
        return [
            str(BIN / "celeriac"), "-A", "tasks.celeriac_tasks", "worker",
            "-c", str(concurrency), "-P", pool or "prefork", "-q", "-l", "WARNING",
            *(["-n", name] if name else []),
        ]  # fmt: skip

    # -- lifecycle on each broker ---------------------------------------------------------

    def prepare(self) -> None:
        if self.broker == "redis":
            super().prepare()
            return
        self.clear_counters()
        if self.broker == "sqlite":
            TMP.mkdir(parents=True, exist_ok=True)
            for suffix in ("", "-wal", "-shm"):
                Path(f"{SQLITE_FILE}{suffix}").unlink(missing_ok=True)
        elif self.broker == "postgres":
            postgres.fresh_schema(PG_SCHEMA)
        elif self.broker == "amqp":
            self._fresh_vhost()

    def cleanup(self) -> None:
        self.clear_counters()
        if self.broker == "redis":
            super().cleanup()
        elif self.broker == "postgres":
            postgres.fresh_schema(PG_SCHEMA, create=False)
        elif self.broker == "amqp" and not self.amqp_fallback:
            drop_vhost(AMQP_VHOST)
        elif self.broker == "sqlite":
            for suffix in ("", "-wal", "-shm"):
                Path(f"{SQLITE_FILE}{suffix}").unlink(missing_ok=True)

    def _fresh_vhost(self) -> None:
        """A vhost of its own, made anew each run; without rabbitmqctl, the default vhost
        with the queue purged (the queue name is already prefixed: celeriac-bench)."""
        if not self.amqp_fallback and fresh_vhost(AMQP_VHOST):
            return
        self.amqp_fallback = True
        self.url = "amqp://guest:guest@127.0.0.1:5672//"
        from celeriac import Celery

        app = Celery("bench-purge", broker=self.url)
        try:
            app.broker.purge(str(SETTINGS["task_default_queue"]))
        finally:
            app.broker.close()

    # -- producer side (the rest is CeleryAPI's) ---------------------------------------------

    def fill(self, n: int, task: str = "incr") -> None:
        from celeriac import group

        signature = self._task(task).s
        for start in range(0, n, 10_000):
            group(signature(i) for i in range(start, min(n, start + 10_000))).apply_async()
