"""PgQueuer on PostgreSQL (schema ``pgqueuer_bench``): one worker process (what ``pgq run``
starts), at most two jobs at once."""

from __future__ import annotations

import subprocess
import sys
from typing import Any

from systems.base import BIN, AsyncSystem
from systems.postgres import DSN, fresh_schema

SCHEMA = "pgqueuer_bench"
# dequeue batch and the worker's cap; PgQueuer wants the cap at least twice the batch
BATCH_SIZE = 1


class PgQueuer(AsyncSystem):
    name = "pgqueuer"
    label = "PgQueuer"
    dist = "pgqueuer"
    concurrency_note = (
        "one asyncio process, max_concurrent_tasks=2 with batch_size=1 (the cap must be at "
        "least twice the batch)"
    )

    def env(self) -> dict[str, str]:
        # PgQueuer's own setting: every object it installs and queries lives in this schema
        return {**super().env(), "PGQUEUER_SCHEMA": SCHEMA, "PGDSN": DSN}

    def config(self) -> dict[str, Any]:
        return {
            "broker": f"{DSN} (schema {SCHEMA}, installed with `pgq install`)",
            "driver": "AsyncpgDriver on one asyncpg connection (worker and producer)",
            "results": "none (PgQueuer logs each job's final status, as it always does)",
            "worker": " ".join(self.worker_command()[1:]),
            "concurrency": self.concurrency_note,
            "bulk": "Queries.enqueue with lists (one INSERT for the batch)",
        }

    def worker_command(
        self, concurrency: int = 2, pool: str | None = None, results: bool = False
    ) -> list[str]:
        # pgq run's options as arguments (see tasks/pgqueuer_tasks.py)
        return [sys.executable, "-m", "tasks.pgqueuer_tasks", str(BATCH_SIZE), str(concurrency)]

    # -- lifecycle ------------------------------------------------------------------------

    def prepare(self) -> None:
        """A fresh schema with PgQueuer's tables, made by its own ``pgq install``."""
        self.clear_counters()
        fresh_schema(SCHEMA, create=False)  # `pgq install` makes it
        subprocess.run(
            [str(BIN / "pgq"), "--pg-dsn", DSN, "--schema", SCHEMA, "install"],
            check=True,
            capture_output=True,
            timeout=120,
        )

    def cleanup(self) -> None:
        self.clear_counters()
        fresh_schema(SCHEMA, create=False)

    # -- producer side --------------------------------------------------------------------

    async def _queries(self) -> Any:
        if getattr(self, "_q", None) is None:
            import asyncpg
            from pgqueuer.db import AsyncpgDriver
            from pgqueuer.queries import Queries

            self._q = Queries(AsyncpgDriver(await asyncpg.connect(DSN)))
        return self._q

    async def send_incr(self, i: int) -> Any:
        return await (await self._queries()).enqueue("incr", str(i).encode())

    async def send_stamp(self, sent: float) -> Any:
        return await (await self._queries()).enqueue("stamp", repr(sent).encode())

    def send_batch(self, n: int) -> None:
        async def batch() -> Any:
            payloads: list[bytes | None] = [str(i).encode() for i in range(n)]
            return await (await self._queries()).enqueue(["incr"] * n, payloads, [0] * n)

        self.run(batch())
