"""The small interface every system implements.

The orchestrator calls ``prepare``, ``config``, ``version``, ``env`` and ``worker_command``
in its own process. The producer methods (``enqueue``, ``bulk``, ``fill``, ``latency``,
``results``) run in a separate producer process (``bench/producer.py``), so each system's
client library is imported only where it is used.
"""

from __future__ import annotations

import asyncio
import importlib
import sys
import time
import traceback
from collections.abc import Awaitable, Callable
from importlib import metadata
from pathlib import Path
from typing import Any, TypeVar

import common

BIN = Path(sys.executable).parent
T = TypeVar("T")


class NotAvailable(Exception):
    """The system has no API for this workload (reported as n/a with the reason)."""


class System:
    name = ""  # short id, also the counter tag
    label = ""  # shown in the table
    dist = ""  # distribution name, for the version
    concurrency_note = ""  # how "one worker with concurrency 2" maps onto this system
    asyncio = False  # it has the asyncio workload's task, ``asleep`` (async def)

    @property
    def db(self) -> int:
        return common.DB[self.name.split("-")[0]]

    def version(self) -> str:
        return metadata.version(self.dist)

    def env(self) -> dict[str, str]:
        """Environment for this system's producer and worker processes."""
        return {"BENCH_TAG": self.name}

    def prepare(self) -> None:
        """Start from nothing: flush the system's own Redis database and its counters."""
        client = common.redis.Redis(host=common.REDIS_HOST, port=common.REDIS_PORT, db=self.db)
        try:
            client.flushdb()
        finally:
            client.close()
        self.clear_counters()

    def clear_counters(self) -> None:
        counters = common.counter_client()
        try:
            counters.delete(common.done_key(self.name), common.stamps_key(self.name))
        finally:
            counters.close()

    def cleanup(self) -> None:
        """Called once after the last run of this system: leave nothing behind."""
        self.prepare()

    def config(self) -> dict[str, Any]:
        raise NotImplementedError

    def worker_command(
        self, concurrency: int = 2, pool: str | None = None, results: bool = False
    ) -> list[str]:
        raise NotImplementedError

    # -- producer side -------------------------------------------------------------------

    def incr_sender(self) -> Callable[[int], Any]:
        """A function sending one counting task, ``delay()`` style."""
        raise NotImplementedError

    def stamp_sender(self) -> Callable[[float], Any]:
        """A function sending one latency task carrying its send time."""
        raise NotImplementedError

    def round_tripper(self) -> Callable[[int], Any]:
        """A function sending one task and waiting for its result."""
        raise NotAvailable("no result mechanism")

    def enqueue(self, n: int) -> float:
        """Seconds taken by ``n`` single sends, after one warm-up send."""
        send = self.incr_sender()
        send(-1)
        started = time.perf_counter()
        for i in range(n):
            send(i)
        return time.perf_counter() - started

    def send_batch(self, n: int) -> None:
        """Send ``n`` counting tasks through the system's batch API."""
        raise NotAvailable("no batch API")

    def bulk(self, n: int) -> float:
        """Seconds taken by ``send_batch(n)``, after a warm-up batch of one."""
        self.send_batch(1)
        started = time.perf_counter()
        self.send_batch(n)
        return time.perf_counter() - started

    def task_sender(self, task: str) -> Callable[[int], Any]:
        """A function sending one task named ``task`` (``incr``; ``asleep`` where the
        system has it) with an int argument."""
        if task == "incr":
            return self.incr_sender()
        raise NotAvailable(f"no {task} task")

    def fill(self, n: int, task: str = "incr") -> None:
        """Queue ``n`` counting tasks, untimed (the batch API where there is one)."""
        if task == "incr":
            try:
                self.send_batch(n)
                return
            except NotAvailable:
                pass
        self.send_each(n, task)

    def send_each(self, n: int, task: str) -> None:
        """Send ``n`` tasks named ``task`` one at a time (``fill`` without a batch API)."""
        send = self.task_sender(task)
        for i in range(n):
            send(i)

    def latency(self, n: int, budget: float) -> tuple[list[float], str | None]:
        """Send up to ``n`` stamp tasks one at a time, each after the previous one started;
        returns the enqueue-to-start delays in seconds, as written by the tasks, and the
        error that ended the run early, if one did (what it measured until then stands)."""
        send = self.stamp_sender()
        counters = common.counter_client()
        key = common.stamps_key()
        delays: list[float] = []
        deadline = time.monotonic() + budget
        try:
            while len(delays) < n and time.monotonic() < deadline:
                send(time.time())
                popped = counters.blpop([key], timeout=max(1.0, deadline - time.monotonic()))
                if popped is None:
                    break
                delays.append(float(popped[1]))
        except Exception as exc:  # a peer's client failing mid-run
            traceback.print_exc()
            return delays, f"{type(exc).__name__}: {exc}"[:200]
        return delays, None

    def results(self, n: int, budget: float) -> tuple[int, float]:
        """Up to ``n`` send-and-wait round trips within ``budget`` seconds (after one warm-up
        round trip): returns (round trips done, seconds)."""
        trip = self.round_tripper()
        if trip(-1) != -1:
            raise RuntimeError("warm-up round trip returned a wrong value")
        done = 0
        started = time.perf_counter()
        deadline = started + budget
        while done < n and time.perf_counter() < deadline:
            if trip(done) != done:
                raise RuntimeError(f"round trip {done} returned a wrong value")
            done += 1
        return done, time.perf_counter() - started


class AsyncSystem(System):
    """A system whose client is asyncio-only: producer calls run on one event loop."""

    _loop: asyncio.AbstractEventLoop | None = None

    def run(self, awaitable: Awaitable[T]) -> T:
        if self._loop is None:
            self._loop = asyncio.new_event_loop()
        return self._loop.run_until_complete(awaitable)

    async def send_incr(self, i: int) -> Any:
        raise NotImplementedError

    async def send_stamp(self, sent: float) -> Any:
        raise NotImplementedError

    async def send_task(self, task: str, i: int) -> Any:
        """Send one task named ``task`` (see ``System.task_sender``)."""
        if task == "incr":
            return await self.send_incr(i)
        raise NotAvailable(f"no {task} task")

    def task_sender(self, task: str) -> Callable[[int], Any]:
        return lambda i: self.run(self.send_task(task, i))

    def send_each(self, n: int, task: str) -> None:
        """As ``System.send_each``, inside one coroutine."""

        async def loop() -> None:
            for i in range(n):
                await self.send_task(task, i)

        self.run(loop())

    def incr_sender(self) -> Callable[[int], Any]:
        return lambda i: self.run(self.send_incr(i))

    def stamp_sender(self) -> Callable[[float], Any]:
        return lambda sent: self.run(self.send_stamp(sent))

    def enqueue(self, n: int) -> float:
        """As ``System.enqueue``, but the whole loop runs inside one coroutine."""

        async def loop() -> float:
            await self.send_incr(-1)
            started = time.perf_counter()
            for i in range(n):
                await self.send_incr(i)
            return time.perf_counter() - started

        return self.run(loop())


class CeleryAPI(System):
    """The producer side of a system with Celery's API (Celery itself, and celeriac):
    ``task.delay``, ``.get()`` and ``group``, from ``tasks_module`` and ``canvas_module``."""

    tasks_module = ""
    canvas_module = ""

    def _task(self, name: str) -> Any:
        return getattr(importlib.import_module(self.tasks_module), name)

    def incr_sender(self) -> Callable[[int], Any]:
        return self._task("incr").delay

    def stamp_sender(self) -> Callable[[float], Any]:
        return self._task("stamp").delay

    def round_tripper(self) -> Callable[[int], Any]:
        echo = self._task("echo")
        return lambda i: echo.delay(i).get(timeout=30)

    def send_batch(self, n: int) -> None:
        group = importlib.import_module(self.canvas_module).group
        incr = self._task("incr")
        group(incr.s(i) for i in range(n)).apply_async()
