"""What only the Redis broker and result backend promise: namespaced keys, bounded wake lists,
blocking waits without polling, riding out a server restart, masked passwords."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from celeriac import states
from celeriac.backends.redis import RedisBackend
from celeriac.brokers.base import Outgoing
from celeriac.brokers.redis import TRIM_EVERY, WAKE_TOKENS, RedisBroker
from celeriac.connections.redis import pack
from celeriac.exceptions import ImproperlyConfigured, OperationalError
from conftest import wait_until
from services import REDIS, RedisServer, free_port, require_redis_server, require_service

URL = f"{REDIS}/14"  # a database of its own


def _flush(url: str) -> None:
    import redis

    client = redis.Redis.from_url(url)
    try:
        client.flushdb()
    finally:
        client.close()


@pytest.fixture
def url() -> Iterator[str]:
    require_service("redis")
    _flush(URL)
    yield URL
    _flush(URL)


def _keys(url: str) -> list[str]:
    import redis

    client = redis.Redis.from_url(url)
    try:
        return sorted(k if isinstance(k, str) else k.decode() for k in client.keys("*"))
    finally:
        client.close()


@pytest.fixture
def server(tmp_path: Path) -> Iterator[RedisServer]:
    require_redis_server()
    srv = RedisServer(tmp_path)
    srv.start()
    yield srv
    srv.stop()


def test_keys_are_namespaced(url: str) -> None:
    broker, backend = RedisBroker(url), RedisBackend(url)
    broker.publish([Outgoing(b"a", "q"), Outgoing(b"b", "q", eta=time.time() + 60)])
    [d] = broker.fetch(["q"], 1, 0)
    broker.dead_letter(d, "no")
    backend.store("t", states.SUCCESS, b"r", None)
    backend.incr("n")
    assert all(k.startswith("celeriac:") for k in _keys(url)), _keys(url)
    other = RedisBroker(url, {"key_prefix": "other:"})
    assert other.queue_length("q") == 0 and broker.queue_length("q") == 1
    other.publish([Outgoing(b"c", "q")])
    assert [x.body for x in other.fetch(["q"], 5, 0)] == [b"c"]
    assert {k.split(":")[0] for k in _keys(url)} == {"celeriac", "other"}
    for made in (broker, backend, other):
        made.close()


def test_commands_packed_here_are_what_the_driver_packs() -> None:
    hiredis = pytest.importorskip("hiredis")
    for args in [("RPUSH", "k", b"\x00body\r\n"), ("ZADD", "kéy", 1.5, b""), ("LTRIM", "w", 0, -1)]:
        assert pack(*args) == hiredis.pack_command(args)
    assert pack("RPUSH", "k", more=1) + b"$1\r\nx\r\n" == hiredis.pack_command(("RPUSH", "k", "x"))


def test_wake_lists_stay_small(url: str) -> None:
    broker = RedisBroker(url)
    for i in range(3 * WAKE_TOKENS):
        broker.publish([Outgoing(f"{i}".encode(), "q")])
    import redis

    client = redis.Redis.from_url(url)
    try:
        # trimmed on every TRIM_EVERY-th publish, so at most that many tokens over the cap
        assert WAKE_TOKENS <= client.llen("celeriac:wake:q") < WAKE_TOKENS + TRIM_EVERY
        assert 0 < client.pttl("celeriac:wake:q") <= 60_000
    finally:
        client.close()
    assert len(broker.fetch(["q"], 100, 0)) == 3 * WAKE_TOKENS
    broker.close()


def test_a_batch_is_claimed_and_settled_with_a_few_commands(server: RedisServer) -> None:
    broker = RedisBroker(server.url)
    broker.publish([Outgoing(f"{i}".encode(), "q", priority=i % 3) for i in range(300)])
    before = {c: server.calls(c) for c in ("lmpop", "hset", "hdel", "zadd", "rpush")}
    got = broker.fetch(["q"], 300, 0)
    assert [d.priority for d in got] == sorted((i % 3 for i in range(300)), reverse=True)
    broker.ack_many(got)
    spent = {c: server.calls(c) - n for c, n in before.items()}
    assert spent == {"lmpop": 3, "hset": 1, "hdel": 1, "zadd": 1, "rpush": 0}
    import redis

    client = redis.Redis(port=server.port)
    try:  # the lease ended with its last acknowledgement
        keys = sorted(k if isinstance(k, str) else k.decode() for k in client.keys("*"))
        assert keys == ["celeriac:leaseseq", "celeriac:wake:q"]
    finally:
        client.close()
    broker.close()


def test_errors_name_the_server_without_its_password() -> None:
    broker = RedisBroker(f"redis://:s3cret@127.0.0.1:{free_port()}/0", {"retry_window": 0.3})
    started = time.monotonic()
    with pytest.raises(OperationalError) as raised:
        broker.queue_length("q")
    assert ":***@127.0.0.1" in str(raised.value) and "s3cret" not in str(raised.value)
    assert time.monotonic() - started < 3
    with pytest.raises(OperationalError):  # publishing is never retried by the broker
        broker.publish([Outgoing(b"x", "q")])


@pytest.mark.parametrize("bad", ["redis+sentinel://127.0.0.1:26379/0", "redis://h:port/0"])
def test_bad_urls(bad: str) -> None:
    with pytest.raises(ImproperlyConfigured):
        RedisBroker(bad)


def test_an_idle_fetch_blocks_instead_of_polling(server: RedisServer) -> None:
    broker = RedisBroker(server.url)
    broker.fetch(["q"], 1, 0)  # loads the script
    evals, blpops = server.calls("evalsha") + server.calls("eval"), server.calls("blpop")
    assert broker.fetch(["q"], 1, 1.5) == []
    assert server.calls("evalsha") + server.calls("eval") - evals <= 2
    assert server.calls("blpop") - blpops <= 2
    broker.close()


def test_a_woken_fetch_claims_in_the_same_round_trip_as_its_wait(server: RedisServer) -> None:
    consumer, producer = RedisBroker(server.url), RedisBroker(server.url)
    consumer.fetch(["q"], 1, 0)  # loads the script
    evals = server.calls("evalsha")
    publisher = threading.Timer(0.3, lambda: producer.publish([Outgoing(b"hello", "q")]))
    publisher.start()
    assert [d.body for d in consumer.fetch(["q"], 5, 10)] == [b"hello"]
    publisher.join()
    # the claim before the wait and the one sent along with it; none after it (publishing
    # runs no script)
    assert server.calls("evalsha") - evals == 2
    consumer.close()
    producer.close()


def test_a_wakeup_unblocks_the_wait_and_reads_the_claim_behind_it(server: RedisServer) -> None:
    broker = RedisBroker(server.url)
    broker.fetch(["q"], 1, 0)
    threading.Timer(0.3, broker.wakeup).start()
    started = time.monotonic()
    assert broker.fetch(["q"], 5, 10) == []
    assert time.monotonic() - started < 2
    assert server.calls("client|unblock") == 1
    # the same waiting connection serves the next wait: nothing was left unread on it
    publisher = threading.Timer(0.3, lambda: broker.publish([Outgoing(b"next", "q")]))
    publisher.start()
    assert [d.body for d in broker.fetch(["q"], 5, 10)] == [b"next"]
    publisher.join()
    broker.close()


def test_riding_out_a_server_restart(server: RedisServer) -> None:
    broker, backend = RedisBroker(server.url), RedisBackend(server.url)
    broker.publish([Outgoing(b"before", "q")])
    backend.store("t", states.SUCCESS, b"kept", None)
    got: list[bytes] = []
    fetcher = threading.Thread(target=lambda: got.extend(d.body for d in broker.fetch(["q"], 5, 8)))
    server.stop()
    threading.Timer(1.0, server.start).start()
    fetcher.start()  # its claim waits for the server to come back (the retry window)
    fetcher.join(15)
    assert got == [b"before"]
    assert backend.load("t") == b"kept"  # stale pooled connections are replaced
    broker.publish([Outgoing(b"after", "q")])  # scripts are loaded again (NOSCRIPT)
    assert [d.body for d in broker.fetch(["q"], 5, 1)] == [b"after"]
    broker.close()
    backend.close()


def test_incr_of_a_value_that_is_not_a_number(url: str) -> None:
    backend = RedisBackend(url)
    backend.set_value("k", b"text")
    with pytest.raises(ValueError):
        backend.incr("k")
    backend.close()


def test_bytes_that_are_not_queue_items_are_dead_lettered_and_the_queue_flows(url: str) -> None:
    import redis

    from celeriac import Celery
    from contract.test_worker_contract import worker

    app = Celery("garbage", broker=url, backend=url)

    @app.task
    def add(x, y):
        return x + y

    client = redis.Redis.from_url(url)
    try:
        client.rpush("celeriac:ready:celery:0", b"no header at all")
        client.rpush("celeriac:ready:celery:5", b"9:")
        client.zadd("celeriac:delayed:celery", {b"no tag or header": 0})
        client.zadd("celeriac:leased:celery", {b"999": 0})  # an expired lease...
        client.set("celeriac:lease:celery:999", b"...that is not a hash")
    finally:
        client.close()
    assert app.broker.queue_length("celery") == 3
    result = add.delay(1, 2)
    with worker(app):
        assert result.get(timeout=15) == 3
        wait_until(lambda: len(app.broker.dead_letters("celery")) == 3)
    reasons = sorted(dl.reason for dl in app.broker.dead_letters("celery"))
    assert reasons == [
        "invalid message: message has no content type header and is not JSON",
        "invalid message: message has no content type header and is not JSON",
        "invalid message: message has no content type header and is not JSON",
    ]
    assert app.broker.queue_length("celery") == 0
    app.close()


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    items=st.lists(
        st.tuples(st.sampled_from(["ready", "delayed"]), st.integers(0, 9), st.binary(max_size=24)),
        min_size=1,
        max_size=6,
    )
)
def test_any_bytes_in_a_queues_keys_are_claimed_and_settled(
    url: str, items: list[tuple[str, int, bytes]]
) -> None:
    import redis

    client = redis.Redis.from_url(url)
    broker = RedisBroker(url, {"visibility_timeout": 30})
    try:
        client.flushdb()
        for kind, priority, data in items:
            if kind == "ready":
                client.rpush(f"celeriac:ready:fuzz:{priority}", data)
            else:
                client.zadd("celeriac:delayed:fuzz", {data: 0})
        expected = len({d for k, _, d in items if k == "delayed"})
        expected += sum(1 for k, _, _ in items if k == "ready")
        assert broker.queue_length("fuzz") == expected
        got = broker.fetch(["fuzz"], 100, 0)
        assert len(got) == expected
        for d in got:
            broker.dead_letter(d, "fuzz")
        assert broker.queue_length("fuzz") == 0
        assert len(broker.dead_letters("fuzz", 1000)) == expected
    finally:
        broker.close()
        client.close()
