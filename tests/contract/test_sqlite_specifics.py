"""What only the SQLite broker and backend promise: URL rules, error translation, fork safety."""

from __future__ import annotations

import multiprocessing
import os
import socket
import sqlite3
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from celeriac import Celery
from celeriac.backends.sqlite import SQLiteBackend
from celeriac.brokers.base import Outgoing
from celeriac.brokers.sqlite import SQLiteBroker
from celeriac.connections.sqlite import sqlite_path
from celeriac.exceptions import ImproperlyConfigured, OperationalError
from conftest import wait_until


def test_url_paths(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "sub").mkdir()
    assert sqlite_path("sqlite://") == str(tmp_path / "celeriac.db")
    assert sqlite_path("sqlite:///") == str(tmp_path / "celeriac.db")
    assert sqlite_path("sqlite:///sub/x.db") == str(tmp_path / "sub" / "x.db")
    assert sqlite_path(f"sqlite:///{tmp_path}/abs.db") == str(tmp_path / "abs.db")
    assert sqlite_path("sqlite:///x.db?mode=rw") == str(tmp_path / "x.db")


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("sqlite:///:memory:", "cannot be shared|cannot be used"),
        ("sqlite://host/x.db", "host part"),
        ("sqlite:///no/such/dir/x.db", "does not exist"),
        ("redis://localhost", "not a sqlite"),
    ],
)
def test_bad_urls(url: str, message: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ImproperlyConfigured, match=message):
        SQLiteBroker(url, {})


def test_driver_errors_are_operational_errors(tmp_path: Path) -> None:
    (tmp_path / "dir.db").mkdir()  # a directory where the database file should be
    broker = SQLiteBroker(f"sqlite:///{tmp_path}/dir.db", {})
    with pytest.raises(OperationalError, match=r"dir\.db"):
        broker.queue_length("q")
    backend = SQLiteBackend(f"sqlite:///{tmp_path}/dir.db", {})
    with pytest.raises(OperationalError, match=r"dir\.db"):
        backend.load("t")


def test_broker_and_backend_share_a_file(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/app.db"
    broker, backend = SQLiteBroker(url, {}), SQLiteBackend(url, {})
    broker.publish([Outgoing(b"x", "q")])
    backend.store("t", "SUCCESS", b"r", None)
    assert broker.queue_length("q") == 1
    assert backend.load("t") == b"r"
    broker.close()
    backend.close()
    assert broker.queue_length("q") == 1  # reconnects after close


def _child(broker: SQLiteBroker, backend: SQLiteBackend) -> None:
    [d] = broker.fetch(["q"], 1, 5.0)
    broker.ack(d)
    backend.store("t", "SUCCESS", d.body, None)
    broker.close()  # closes the child's own connections only


def test_objects_inherited_over_fork_keep_working(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/fork.db"
    broker, backend = SQLiteBroker(url, {}), SQLiteBackend(url, {})
    broker.publish([Outgoing(b"from parent", "q")])
    assert backend.load("t") is None
    child = multiprocessing.get_context("fork").Process(target=_child, args=(broker, backend))
    child.start()
    assert backend.wait_for("t", 10.0) == b"from parent"
    child.join(10)
    assert child.exitcode == 0
    assert broker.queue_length("q") == 0
    broker.publish([Outgoing(b"again", "q")])
    assert [d.body for d in broker.fetch(["q"], 1, 0)] == [b"again"]


def test_worker_deletes_expired_results(sqlite_app: Celery, tmp_path: Path) -> None:
    sqlite_app.conf.update(
        result_expires=0.2,
        worker_result_cleanup_interval=0.2,
        broker_transport_options={"visibility_timeout": 0.9},  # heartbeat every 0.3 s
    )

    @sqlite_app.task
    def add(x, y):
        return x + y

    worker = sqlite_app.Worker(pool="threads", concurrency=1, install_signal_handlers=False)
    thread = threading.Thread(target=worker.start)
    thread.start()
    try:
        assert add.delay(1, 2).get(timeout=10) == 3
        db = sqlite3.connect(tmp_path / "app.db")

        def rows() -> int:
            return int(db.execute("SELECT COUNT(*) FROM celeriac_results").fetchone()[0])

        deadline = time.monotonic() + 10
        while rows() and time.monotonic() < deadline:
            time.sleep(0.1)
        assert rows() == 0
        db.close()
    finally:
        worker.stop()
        thread.join(10)


def test_a_publish_rings_the_waiting_consumers_doorbells(tmp_path: Path) -> None:
    """An idle fetch waits on a doorbell (a unix socket per process) that every publish
    rings, instead of only polling the file; a doorbell left by a killed process is removed
    by the next ring."""
    url = f"sqlite:///{tmp_path}/bells.db"
    consumer, producer = SQLiteBroker(url), SQLiteBroker(url)
    bells = consumer._bell.directory
    got: list[Any] = []
    waiting = threading.Thread(target=lambda: got.extend(consumer.fetch(["q"], 1, 60.0)))
    try:
        waiting.start()
        wait_until(lambda: os.path.isdir(bells) and os.listdir(bells))
        [listening] = os.listdir(bells)
        stale = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        stale.bind(os.path.join(bells, "1-dead"))  # as a SIGKILLed worker leaves it
        stale.close()
        producer._bell.REFRESH = 0.0  # list the directory at every ring
        producer.publish([Outgoing(b"{}", "q")])
        waiting.join(30)
        assert [d.queue for d in got] == ["q"]
        assert os.listdir(bells) == [listening]  # the dead one was removed by the ring
    finally:
        consumer.close()
        producer.close()
    assert not os.path.exists(os.path.join(bells, listening))  # close() removes its own
