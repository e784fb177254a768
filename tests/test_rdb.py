"""celeriac.contrib.rdb: a task stopped by rdb.set_trace() is debugged over a socket."""

from __future__ import annotations

import socket
import threading
import time

import pytest

from celeriac.contrib import rdb


def _connect(port: int, timeout: float = 10) -> socket.socket:
    deadline = time.monotonic() + timeout
    while True:
        try:
            return socket.create_connection(("127.0.0.1", port), timeout=5)
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)


def _taken_before_a_free_port() -> socket.socket:
    """A listening socket on a port whose next one is free (another process's connection
    may hold any port)."""
    while True:
        taken = socket.socket()
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        probe = socket.socket()
        try:
            probe.bind(("127.0.0.1", taken.getsockname()[1] + 1))
            return taken
        except OSError:
            taken.close()
        finally:
            probe.close()


def _read_until(conn: socket.socket, marker: bytes) -> bytes:
    data = b""
    while marker not in data:
        chunk = conn.recv(4096)
        if not chunk:
            break
        data += chunk
    return data


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_a_client_debugs_the_stopped_frame_and_the_task_goes_on(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    port = _free_port()
    monkeypatch.setenv("CELERY_RDB_PORT", str(port))
    results: list[int] = []

    def task(x: int) -> None:
        y = x * 2
        rdb.set_trace()
        results.append(y)

    thread = threading.Thread(target=task, args=(21,))
    thread.start()
    conn = _connect(port)
    try:
        assert b"(Rdb)" in _read_until(conn, b"(Rdb) ")
        conn.sendall(b"p y\n")
        assert b"42" in _read_until(conn, b"(Rdb) ")
        conn.sendall(b"y = 7\n")
        _read_until(conn, b"(Rdb) ")
        conn.sendall(b"c\n")
    finally:
        thread.join(10)
        conn.close()
    assert not thread.is_alive()
    assert results == [7]


def test_it_binds_to_this_machine_and_takes_the_next_free_port(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    taken = _taken_before_a_free_port()
    port = taken.getsockname()[1]
    monkeypatch.setenv("CELERY_RDB_PORT", str(port))
    monkeypatch.delenv("CELERY_RDB_HOST", raising=False)
    done = threading.Event()

    def task() -> None:
        rdb.set_trace()
        done.set()

    thread = threading.Thread(target=task)
    thread.start()
    try:
        conn = _connect(port + 1)
        assert conn.getpeername()[0] == "127.0.0.1"
        _read_until(conn, b"(Rdb) ")
        conn.close()  # the client goes away: the task goes on
        assert done.wait(10)
    finally:
        thread.join(10)
        taken.close()
