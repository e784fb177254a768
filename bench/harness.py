"""Processes, counters, memory and progress lines for the orchestrator."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

import common
from systems import System

BENCH = Path(__file__).resolve().parent
TMP = BENCH / ".tmp"
LOGS = TMP / "logs"
STARTED = time.monotonic()
POLL = 0.002  # seconds between reads of a completion counter
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


class Failed(Exception):
    """A run that did not complete; the message is the reason shown in the table."""


class NotApplicable(Exception):
    """The system has no API for this workload."""


def progress(message: str) -> None:
    print(f"[{time.monotonic() - STARTED:7.1f}s] {message}", flush=True)


def env_for(system: System, **extra: str) -> dict[str, str]:
    env = {**os.environ, "PYTHONPATH": str(BENCH), **system.env(), **extra}
    env.pop("PYTHONSTARTUP", None)
    return env


def _tail(text: str, lines: int = 1) -> str:
    kept = [line.strip() for line in text.strip().splitlines() if line.strip()]
    return " | ".join(kept[-lines:])[:300] or "no output"


# -- producers ------------------------------------------------------------------------------


def produce(
    system: System | str, action: str, *args: object, timeout: float, **env: str
) -> dict[str, Any]:
    """Run ``bench/producer.py`` for one measurement and return its JSON answer."""
    name = system if isinstance(system, str) else system.name
    cmd = [sys.executable, str(BENCH / "producer.py"), name, action, *map(str, args)]
    if isinstance(system, str):
        environ = {**os.environ, "PYTHONPATH": str(BENCH), **env}
    else:
        environ = env_for(system, **env)
    try:
        done = subprocess.run(
            cmd, cwd=BENCH, env=environ, capture_output=True, text=True, timeout=timeout
        )
    except subprocess.TimeoutExpired:
        raise Failed(f"producer '{action}' timed out after {timeout:.0f} s") from None
    if done.returncode != 0:
        LOGS.mkdir(parents=True, exist_ok=True)
        kept = LOGS / f"{name}-producer-{action}.log"
        kept.write_text(done.stderr)
        raise Failed(f"producer '{action}' failed (its output: {kept}): {_tail(done.stderr)}")
    try:
        return json.loads(done.stdout.strip().splitlines()[-1])  # type: ignore[no-any-return]
    except (IndexError, json.JSONDecodeError):
        raise Failed(f"producer '{action}' printed no result: {_tail(done.stderr)}") from None


# -- workers --------------------------------------------------------------------------------


class Worker:
    """A worker started in a session of its own, so it and its children stop together."""

    def __init__(self, system: System, cmd: list[str], log_name: str, **env: str) -> None:
        LOGS.mkdir(parents=True, exist_ok=True)
        self.log_path = LOGS / f"{log_name}.log"
        self._log: IO[bytes] = self.log_path.open("wb")
        self.proc = subprocess.Popen(
            cmd,
            cwd=BENCH,
            env=env_for(system, **env),
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def check(self) -> None:
        code = self.proc.poll()
        if code is not None:
            raise Failed(f"worker exited with code {code}: {self.log_tail()}")

    def log_tail(self) -> str:
        try:
            return _tail(self.log_path.read_text(errors="replace"))
        except OSError:
            return "no log"

    def stop(self) -> None:
        """SIGTERM to the worker's process group, then SIGKILL whatever is left of it."""
        for sig, grace in ((signal.SIGTERM, 8.0), (signal.SIGKILL, 5.0)):
            try:
                os.killpg(self.proc.pid, sig)
            except (ProcessLookupError, PermissionError):
                break
            try:
                self.proc.wait(grace)
            except subprocess.TimeoutExpired:
                continue
            if sig == signal.SIGTERM:
                time.sleep(0.2)  # let children finish exiting, then sweep the group
        try:
            self.proc.wait(5)
        except subprocess.TimeoutExpired:
            pass
        self._log.close()

    def cpu_seconds(self) -> float:
        """CPU time (user and system) used so far by the worker and all its descendants."""
        return sum(process_cpu(pid) for pid in [self.proc.pid, *descendants(self.proc.pid)])

    def memory(self) -> dict[str, float]:
        """RSS and PSS in MB of the worker process and all its descendants."""
        pids = [self.proc.pid, *descendants(self.proc.pid)]
        rss = sum(_status_kb(pid, "VmRSS:") for pid in pids)
        pss = sum(_rollup_kb(pid, "Pss:") for pid in pids)
        return {"rss_mb": rss / 1024, "pss_mb": pss / 1024, "processes": len(pids)}


@contextmanager
def worker(system: System, log_name: str, **kwargs: Any) -> Iterator[Worker]:
    env = kwargs.pop("env", {})
    running = Worker(system, system.worker_command(**kwargs), log_name, **env)
    try:
        yield running
    finally:
        running.stop()


def descendants(root: int) -> list[int]:
    parents: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        parents[int(entry.name)] = int(stat.rsplit(")", 1)[1].split()[1])
    found: list[int] = []
    frontier = [root]
    while frontier:
        pid = frontier.pop()
        children = [child for child, parent in parents.items() if parent == pid]
        found.extend(children)
        frontier.extend(children)
    return found


def process_cpu(pid: int) -> float:
    """CPU seconds (user and system, waited-for children included) of a process; 0 if gone."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return sum(int(value) for value in fields[11:15]) / CLOCK_TICKS


def redis_pid() -> int | None:
    """The local redis-server's process, for its CPU time; None when it is not here."""
    for entry in Path("/proc").iterdir():
        try:
            cmdline = (entry / "cmdline").read_bytes() if entry.name.isdigit() else b""
        except OSError:
            continue
        if cmdline.startswith(b"redis-server") and f":{common.REDIS_PORT}".encode() in cmdline:
            return int(entry.name)
    return None


def _status_kb(pid: int, field: str) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(field):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def _rollup_kb(pid: int, field: str) -> int:
    try:
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
            if line.startswith(field):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


# -- completion counters --------------------------------------------------------------------


class Counter:
    """The ``bench:<tag>:done`` key the tasks INCR, read by polling."""

    def __init__(self, system: System) -> None:
        self.key = common.done_key(system.name)
        self.client = common.counter_client()

    def value(self) -> int:
        return int(self.client.get(self.key) or 0)

    def wait(self, target: int, timeout: float, running: Worker) -> float:
        """Poll until the counter reaches ``target``; returns the perf_counter() then."""
        now, count = self.wait_at_most(target, timeout, running)
        if count < target:
            raise Failed(f"timed out after {timeout:.0f} s with {count}/{target} tasks run")
        return now

    def wait_at_most(self, target: int, budget: float, running: Worker) -> tuple[float, int]:
        """Poll until the counter reaches ``target`` or ``budget`` seconds pass; returns
        the perf_counter() and the count then."""
        deadline = time.perf_counter() + budget
        checks = 0
        while True:
            now = time.perf_counter()
            count = self.value()
            if count >= target or now > deadline:
                return now, count
            checks += 1
            if checks % 50 == 0:
                running.check()
            time.sleep(POLL)

    def close(self) -> None:
        self.client.close()


# -- a guard for whole runs -----------------------------------------------------------------


@contextmanager
def time_limit(seconds: float) -> Iterator[None]:
    """Raise Failed in the orchestrator if one run takes longer than ``seconds``."""

    def expire(signum: int, frame: Any) -> None:
        raise Failed(f"run exceeded its {seconds:.0f} s limit")

    previous = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
