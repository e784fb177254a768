"""Procrastinate on PostgreSQL (schema ``procrastinate_bench``): one worker process running
up to two jobs at once, woken by LISTEN/NOTIFY."""

from __future__ import annotations

import subprocess
from typing import Any

from harness import BENCH, env_for
from systems.base import BIN, AsyncSystem
from systems.postgres import fresh_schema, schema_url

SCHEMA = "procrastinate_bench"
URL = schema_url(SCHEMA)
APP = "tasks.procrastinate_tasks.app"


class Procrastinate(AsyncSystem):
    name = "procrastinate"
    label = "Procrastinate"
    dist = "procrastinate"
    concurrency_note = "one asyncio process, --concurrency 2"

    def config(self) -> dict[str, Any]:
        return {
            "broker": f"{URL} (its schema applied with `procrastinate schema --apply`)",
            "connector": "PsycopgConnector (a psycopg AsyncConnectionPool), in the worker "
            "and the producer",
            "results": "none (jobs stay in the table as succeeded, the default)",
            "worker": " ".join(self.worker_command()[1:]),
            "concurrency": self.concurrency_note,
            "bulk": "task.batch_defer_async(*kwargs) (one INSERT for the batch)",
        }

    def worker_command(
        self, concurrency: int = 2, pool: str | None = None, results: bool = False
    ) -> list[str]:
        return [
            str(BIN / "procrastinate"), "--app", APP, "worker",
            "--concurrency", str(concurrency), "--listen-notify",
        ]  # fmt: skip

    # -- lifecycle ------------------------------------------------------------------------

    def prepare(self) -> None:
        """A fresh schema with Procrastinate's tables, applied by its own CLI."""
        self.clear_counters()
        fresh_schema(SCHEMA)
        subprocess.run(
            [str(BIN / "procrastinate"), "--app", APP, "schema", "--apply"],
            cwd=BENCH,
            env=env_for(self),
            check=True,
            capture_output=True,
            timeout=120,
        )

    def cleanup(self) -> None:
        self.clear_counters()
        fresh_schema(SCHEMA, create=False)

    # -- producer side --------------------------------------------------------------------

    async def _tasks(self) -> Any:
        from tasks import procrastinate_tasks

        if not getattr(self, "_open", False):
            await procrastinate_tasks.app.open_async()
            self._open = True
        return procrastinate_tasks

    async def send_incr(self, i: int) -> Any:
        return await (await self._tasks()).incr.defer_async(i=i)

    async def send_stamp(self, sent: float) -> Any:
        return await (await self._tasks()).stamp.defer_async(sent=sent)

    def send_batch(self, n: int) -> None:
        async def batch() -> Any:
            tasks = await self._tasks()
            return await tasks.incr.batch_defer_async(*({"i": i} for i in range(n)))

        self.run(batch())
