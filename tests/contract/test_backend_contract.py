"""The result backend contract (see :mod:`celeriac.backends.base`), run against every backend."""

from __future__ import annotations

import multiprocessing
import threading
import time

import pytest

from celeriac import states
from celeriac.backends.base import ResultBackend, create_backend

from .conftest import BackendSetup


def test_is_a_result_backend(backend: ResultBackend, backend_setup: BackendSetup) -> None:
    assert isinstance(backend, ResultBackend)
    assert backend.url == backend_setup.url


def test_store_and_load(backend: ResultBackend) -> None:
    assert backend.load("t1") is None
    payload = bytes(range(256))
    backend.store("t1", states.SUCCESS, payload, None)
    assert backend.load("t1") == payload
    backend.store("t1", states.FAILURE, b"second", None)
    assert backend.load("t1") == b"second"


def test_load_many(backend: ResultBackend) -> None:
    for i in range(5):
        backend.store(f"t{i}", states.SUCCESS, f"r{i}".encode(), None)
    backend.store("gone", states.SUCCESS, b"x", 0.05)
    time.sleep(0.1)
    assert backend.load_many(["t0", "t3", "missing", "gone", "t3"]) == {"t0": b"r0", "t3": b"r3"}
    assert backend.load_many([]) == {}
    many = [f"t{i % 5}" if i % 2 else f"none{i}" for i in range(1200)]
    assert backend.load_many(many) == {f"t{i}": f"r{i}".encode() for i in range(5)}


def test_shared_between_instances(backend_setup: BackendSetup) -> None:
    one, two = backend_setup.make(), backend_setup.make()
    one.store("t", states.SUCCESS, b"hi", None)
    assert two.load("t") == b"hi"


def test_wait_for_returns_when_ready(backend_setup: BackendSetup) -> None:
    waiter, writer = backend_setup.make(), backend_setup.make()
    started = time.monotonic()
    threading.Timer(0.3, lambda: writer.store("t", states.SUCCESS, b"done", None)).start()
    assert waiter.wait_for("t", 10.0) == b"done"
    assert 0.25 <= time.monotonic() - started < 2.0


def test_wait_for_already_ready(backend: ResultBackend) -> None:
    backend.store("t", states.FAILURE, b"err", None)
    assert backend.wait_for("t", 0) == b"err"
    assert backend.wait_for("t", None) == b"err"


def test_wait_for_times_out(backend: ResultBackend) -> None:
    started = time.monotonic()
    assert backend.wait_for("never", 0.3) is None
    assert 0.25 <= time.monotonic() - started < 1.5


def test_wait_for_ignores_states_that_are_not_ready(backend_setup: BackendSetup) -> None:
    waiter, writer = backend_setup.make(), backend_setup.make()
    writer.store("t", states.PENDING, b"pending", None)
    threading.Timer(0.1, lambda: writer.store("t", states.STARTED, b"started", None)).start()
    assert waiter.wait_for("t", 0.4) is None
    threading.Timer(0.2, lambda: writer.store("t", states.REVOKED, b"revoked", None)).start()
    assert waiter.wait_for("t", 10.0) == b"revoked"


def test_forget(backend: ResultBackend) -> None:
    backend.store("t", states.SUCCESS, b"x", None)
    backend.forget("t")
    assert backend.load("t") is None
    backend.forget("never-stored")


def test_expiry_and_cleanup(backend: ResultBackend, backend_setup: BackendSetup) -> None:
    backend.store("short", states.SUCCESS, b"x", 0.2)
    backend.store("long", states.SUCCESS, b"y", 60)
    backend.store("forever", states.SUCCESS, b"z", None)
    backend.set_value("k-short", b"v", expires_in=0.2)
    backend.set_value("k-long", b"v", expires_in=60)
    assert backend.load("short") == b"x"
    assert backend.get_value("k-short") == b"v"
    time.sleep(0.3)
    assert backend.load("short") is None
    assert backend.wait_for("short", 0) is None
    assert backend.get_value("k-short") is None
    # Redis and Django's cache delete expired keys by themselves: cleanup finds nothing
    assert backend.cleanup() == (0 if backend_setup.name in ("redis", "django-cache") else 2)
    assert backend.cleanup() == 0
    assert backend.load("long") == b"y"
    assert backend.load("forever") == b"z"
    assert backend.get_value("k-long") == b"v"


def test_store_refreshes_expiry(backend: ResultBackend) -> None:
    backend.store("t", states.STARTED, b"a", 0.2)
    backend.store("t", states.SUCCESS, b"b", None)
    time.sleep(0.3)
    assert backend.load("t") == b"b"


def test_incr(backend: ResultBackend) -> None:
    assert backend.incr("c") == 1
    assert backend.incr("c", 5) == 6
    assert backend.incr("c", -2) == 4
    assert backend.get_value("c") == b"4"
    backend.set_value("n", b"10")
    assert backend.incr("n") == 11
    backend.delete_value("c")
    assert backend.incr("c") == 1


def test_incr_expiry(backend: ResultBackend) -> None:
    assert backend.incr("c", expires_in=0.2) == 1
    assert backend.incr("c") == 2  # keeps its expiry
    time.sleep(0.3)
    assert backend.get_value("c") is None
    assert backend.incr("c") == 1  # an expired counter starts again at 0
    time.sleep(0.3)
    assert backend.incr("c", expires_in=0.2) == 2  # the restarted one has no expiry
    time.sleep(0.3)
    assert backend.get_value("c") is None


def test_incr_is_atomic_across_threads(backend_setup: BackendSetup) -> None:
    def bump() -> None:
        backend = backend_setup.make()
        for _ in range(200):
            backend.incr("counter")

    threads = [threading.Thread(target=bump) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert backend_setup.make().get_value("counter") == b"1200"


def _bump(url: str, times: int) -> None:
    backend = create_backend(url, {})
    for _ in range(times):
        backend.incr("counter")


def test_incr_is_atomic_across_processes(backend_setup: BackendSetup) -> None:
    if not backend_setup.kind.cross_process:
        pytest.skip(f"{backend_setup.name} backends are private to one process")
    ctx = multiprocessing.get_context("fork")
    parent = backend_setup.make()
    parent.incr("counter", 0)  # the parent has a connection open while forking
    procs = [ctx.Process(target=_bump, args=(backend_setup.url, 150)) for _ in range(3)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
        assert p.exitcode == 0
    assert parent.get_value("counter") == b"450"


def test_add_to_set_counts_each_member_once(backend: ResultBackend) -> None:
    assert backend.add_to_set("s", "a") == 1
    assert backend.add_to_set("s", "b") == 2
    assert backend.add_to_set("s", "a") == 2  # again: counted once
    assert backend.add_to_set("other", "a") == 1
    backend.delete_value("s")
    assert backend.add_to_set("s", "c") == 1


def test_set_members(backend: ResultBackend) -> None:
    assert backend.set_members("s") == []
    for member in ("b", "a", "b"):
        backend.add_to_set("s", member)
    assert sorted(backend.set_members("s")) == ["a", "b"]
    backend.add_to_set("gone", "x", expires_in=0.2)
    time.sleep(0.3)
    assert backend.set_members("gone") == []


def test_add_to_set_expiry(backend: ResultBackend) -> None:
    assert backend.add_to_set("s", "a", expires_in=0.2) == 1
    assert backend.add_to_set("s", "b") == 2  # keeps its expiry
    time.sleep(0.3)
    assert backend.add_to_set("s", "c") == 1  # an expired set starts empty
    assert backend.cleanup() >= 0


def test_add_to_set_has_one_last_adder(backend_setup: BackendSetup) -> None:
    """Racing members all finish; exactly one of them sees the full count."""
    barrier = threading.Barrier(8)
    counts: list[int] = []

    def add(n: int) -> None:
        backend = backend_setup.make()
        barrier.wait()
        counts.append(backend.add_to_set("chord", str(n), 60.0))

    threads = [threading.Thread(target=add, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert sorted(counts) == list(range(1, 9))


def test_set_get_delete_value(backend: ResultBackend) -> None:
    assert backend.get_value("k") is None
    assert backend.set_value("k", b"one") is True
    assert backend.get_value("k") == b"one"
    assert backend.set_value("k", b"two") is True
    assert backend.get_value("k") == b"two"
    backend.delete_value("k")
    assert backend.get_value("k") is None
    backend.delete_value("k")


def test_set_value_only_if_absent(backend: ResultBackend) -> None:
    assert backend.set_value("lock", b"a", only_if_absent=True) is True
    assert backend.set_value("lock", b"b", only_if_absent=True) is False
    assert backend.get_value("lock") == b"a"
    backend.delete_value("lock")
    assert backend.set_value("lock", b"c", expires_in=0.2, only_if_absent=True) is True
    assert backend.set_value("lock", b"d", only_if_absent=True) is False
    time.sleep(0.3)
    assert backend.set_value("lock", b"e", only_if_absent=True) is True  # expired: absent
    assert backend.get_value("lock") == b"e"
    time.sleep(0.3)
    assert backend.get_value("lock") == b"e"  # the new value has no expiry


def test_set_value_only_if_absent_has_one_winner(backend_setup: BackendSetup) -> None:
    barrier = threading.Barrier(8)
    wins: list[bool] = []

    def race(n: int) -> None:
        backend = backend_setup.make()
        barrier.wait()
        wins.append(backend.set_value("lock", str(n).encode(), 5.0, only_if_absent=True))

    threads = [threading.Thread(target=race, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert sorted(wins) == [False] * 7 + [True]


def test_close_and_reuse(backend: ResultBackend) -> None:
    backend.store("t", states.SUCCESS, b"x", None)
    backend.close()
    assert backend.load("t") == b"x"
