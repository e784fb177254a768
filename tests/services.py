"""The real services the tests use, each isolated from other data on the machine.

Redis tests use their own database numbers, PostgreSQL tests their own schemas (chosen with
``search_path`` in the URL) and RabbitMQ tests their own virtual host. Each :class:`Service`
gives a URL, a ``prepare`` that skips (fails in CI) when the server is down and empties what
an earlier run left, and a ``cleanup`` that empties what a test left.
"""

from __future__ import annotations

import atexit
import functools
import os
import re
import shutil
import socket
import subprocess
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")
SERVICES = {"redis": 6379, "amqp": 5672, "postgresql": 5432}


def service_up(port: int, host: str = "127.0.0.1") -> bool:
    try:
        with socket.create_connection((host, port), timeout=1):
            return True
    except OSError:
        return False


def require_service(name: str) -> None:
    """Skip when ``name`` is not running here; in CI a missing service is a failure."""
    if not service_up(SERVICES[name]):
        message = f"{name} is not answering on 127.0.0.1:{SERVICES[name]}"
        if IN_CI:
            pytest.fail(f"{message} (CI=true: services are required)")
        pytest.skip(message)


def _slot() -> str:
    """Where this test process keeps its data: "" (the shared places), or a name of its own
    when pytest-xdist runs it beside others (``gw1``...; ``gw0`` keeps the shared places) or
    ``CELERIAC_TEST_SLOT`` names one. A slot has its own Redis server, schemas and vhost."""
    slot = os.environ.get("CELERIAC_TEST_SLOT") or os.environ.get("PYTEST_XDIST_WORKER", "")
    return "" if slot == "gw0" else re.sub(r"\W", "", slot).lower()


SLOT = _slot()
POSTGRES = "postgresql://postgres@127.0.0.1:5432/test"
AMQP_VHOST = f"celeriac-test-{SLOT}" if SLOT else "celeriac-test"


def _slot_redis() -> str:
    """A private redis-server for this slot (kept nothing on disk, stopped at exit); the
    processes a test starts inherit its URL."""
    known = os.environ.get("CELERIAC_TEST_REDIS")
    if known:
        return known
    port = free_port()
    proc = subprocess.Popen(
        [
            *(shutil.which("redis-server") or "redis-server", "--port", str(port)),
            *("--bind", "127.0.0.1", "--save", "", "--appendonly", "no"),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    atexit.register(proc.terminate)
    deadline = time.monotonic() + 10
    while not service_up(port):
        if time.monotonic() > deadline or proc.poll() is not None:
            raise RuntimeError(f"the test slot's redis-server did not start on port {port}")
        time.sleep(0.05)
    url = os.environ["CELERIAC_TEST_REDIS"] = f"redis://127.0.0.1:{port}"
    return url


@dataclass(frozen=True)
class Service:
    """One isolated place on a real server."""

    url: str
    prepare: Callable[[], None]
    cleanup: Callable[[str, list[Any]], None]


def _redis(db: int) -> Service:
    url = f"{REDIS}/{db}"

    def flush(*_: Any) -> None:
        import redis

        client = redis.Redis.from_url(url)
        try:
            client.flushdb()
        finally:
            client.close()

    def prepare() -> None:
        require_service("redis")
        flush()

    return Service(url, prepare, flush)


def _postgres(schema: str) -> Service:
    schema = f"{schema}_{SLOT}" if SLOT else schema
    # application_name lets a test find (and terminate) this schema's connections
    url = f"{POSTGRES}?application_name={schema}&options=-csearch_path%3D{schema}"

    def reset(*_: Any) -> None:
        import psycopg

        with psycopg.connect(POSTGRES, autocommit=True) as conn:
            conn.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")
            conn.execute(f"CREATE SCHEMA {schema}")

    def prepare() -> None:
        require_service("postgresql")
        reset()

    return Service(url, prepare, reset)


@functools.cache
def _ensure_vhost() -> None:
    """Create the tests' virtual host once per session (rabbitmqctl needs to run as root)."""
    ctl = shutil.which("rabbitmqctl") or "/usr/sbin/rabbitmqctl"
    for args in (["add_vhost", AMQP_VHOST], ["set_permissions", "-p", AMQP_VHOST, "guest"]):
        if args[0] == "set_permissions":
            args += [".*", ".*", ".*"]
        subprocess.run([ctl, "-q", *args], capture_output=True, timeout=60)


def amqp_delete_queues(url: str, names: Sequence[str]) -> None:
    """Delete ``names`` (and their dead-letter queues) from the tests' virtual host."""
    import pika

    conn = pika.BlockingConnection(pika.URLParameters(url))
    try:
        channel = conn.channel()
        for name in names:
            for queue in (name, f"{name}.dlq"):
                channel.queue_delete(queue)
    finally:
        conn.close()


def _amqp() -> Service:
    url = f"amqp://guest:guest@127.0.0.1:5672/{AMQP_VHOST}"

    def prepare() -> None:
        require_service("amqp")
        _ensure_vhost()

    def cleanup(url: str, made: list[Any]) -> None:
        names: set[str] = set()
        for broker in made:
            names |= set(getattr(broker, "declared_queues", ()))
        # worker processes declare every delay rung of their queues (q.delay.0 ... q.delay.31)
        names |= {f"{q}.delay.{n}" for q in list(names) if f"{q}.dlq" in names for n in range(32)}
        if names:
            names.add("celeriac.events")  # the event log's stream, made by workers
            amqp_delete_queues(url, sorted(names))

    return Service(url, prepare, cleanup)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def require_redis_server() -> None:
    """Skip when the redis-server program is missing; in CI that is a failure."""
    if shutil.which("redis-server") is None:
        if IN_CI:
            pytest.fail("redis-server is not installed (CI=true: services are required)")
        pytest.skip("redis-server is not installed")


class RedisServer:
    """A private redis-server that keeps its data (append-only file) across restarts."""

    def __init__(self, directory: Path, bind: str = "127.0.0.1", port: int = 0) -> None:
        self.directory = directory
        self.bind = bind
        self.port = port or free_port()
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://{self.bind.split()[0]}:{self.port}/0"

    def start(self) -> None:
        self.proc = subprocess.Popen(
            [
                shutil.which("redis-server") or "redis-server",
                *("--port", str(self.port), "--bind", *self.bind.split()),
                *("--dir", str(self.directory), "--save", ""),
                *("--appendonly", "yes", "--appendfsync", "always"),
                *("--protected-mode", "no"),  # clients in other namespaces are not loopback
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        host = self.bind.split()[0]

        def up() -> bool:
            try:
                socket.create_connection((host, self.port), timeout=0.5).close()
                return True
            except OSError:
                return False

        deadline = time.monotonic() + 10
        while not up():
            if time.monotonic() > deadline:
                raise RuntimeError(f"redis-server did not start on port {self.port}")
            time.sleep(0.05)

    def restart(self, down_for: float = 1.5) -> None:
        self.stop()
        time.sleep(down_for)
        self.start()

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()  # redis-server flushes the append-only file on SIGTERM
            self.proc.wait(10)

    def calls(self, command: str) -> int:
        """How many times ``command`` ran on this server since it started."""
        import redis

        client = redis.Redis(port=self.port)
        try:
            return int(client.info("commandstats").get(f"cmdstat_{command}", {}).get("calls", 0))
        finally:
            client.close()

    def kill(self) -> None:
        """SIGKILL it (its append-only file is written at every command: nothing is lost)."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)


REDIS = _slot_redis() if SLOT and shutil.which("redis-server") else "redis://127.0.0.1:6379"
if REDIS != "redis://127.0.0.1:6379":
    SERVICES["redis"] = int(REDIS.rsplit(":", 1)[1])
REDIS_BROKER = _redis(10)
REDIS_BACKEND = _redis(11)
REDIS_PROCESS = _redis(12)  # worker-process tests
REDIS_PROCESS_RESULTS = _redis(13)
POSTGRES_BROKER = _postgres("celeriac_test_broker")
POSTGRES_BACKEND = _postgres("celeriac_test_backend")
POSTGRES_PROCESS = _postgres("celeriac_test_process")
POSTGRES_BEAT = _postgres("celeriac_test_beat")
REDIS_EVENTS = _redis(2)  # the event store contract (15 holds the benchmarks' counters)
POSTGRES_EVENTS = _postgres("celeriac_test_events")
AMQP = _amqp()
