"""What only the RabbitMQ broker does: URL rules, the delay ladder, parking long deliveries
(so RabbitMQ's consumer_timeout never closes a channel under a long task), and workers killed
while their delivery is parked."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from celeriac import Celery
from celeriac.brokers.base import Broker, Outgoing, create_broker
from celeriac.exceptions import OperationalError
from conftest import wait_until
from services import AMQP, AMQP_VHOST

Q = "amqp-specifics"
Maker = Callable[..., Any]


@pytest.fixture
def make() -> Iterator[Maker]:
    """Brokers on the tests' virtual host; their queues are deleted afterwards."""
    AMQP.prepare()
    made: list[Broker] = []

    def factory(**options: Any) -> Any:
        broker = create_broker(AMQP.url, options)
        made.append(broker)
        return broker

    yield factory
    for broker in made:
        broker.close()
    AMQP.cleanup(AMQP.url, made)


def test_url_rules() -> None:
    from celeriac.connections.amqp import connection_parameters

    def vhost(url: str) -> str:
        return str(connection_parameters(url, {}).virtual_host)

    assert vhost("amqp://h") == vhost("amqp://h/") == vhost("amqp://h//") == "/"
    assert vhost("amqp://h/%2F") == "/" and vhost("amqp://h/a%2Fb") == "a/b"
    params = connection_parameters("pyamqp://u:p%40ss@h:1234/v", {"heartbeat": 7})
    assert (params.host, params.port, params.virtual_host, params.heartbeat) == ("h", 1234, "v", 7)
    assert params.credentials.password == "p@ss"
    assert connection_parameters("amqps://h", {}).port == 5671


def test_errors_name_the_server_without_its_password() -> None:
    broker = create_broker("amqp://guest:s3cret@127.0.0.1:1//", {"connect_timeout": 2})
    with pytest.raises(OperationalError) as raised:
        broker.publish([Outgoing(b"x", Q)])
    assert "guest:***@127.0.0.1:1" in str(raised.value)
    assert "s3cret" not in str(raised.value)


def test_a_failed_connection_is_reported_once_by_its_cause(caplog: Any) -> None:
    """The cause pika wraps in three layers is the error's text, and pika's own ERROR lines
    for the attempt go to DEBUG (the worker logs the failure once, and when it retries)."""
    broker = create_broker("amqp://guest:guest@127.0.0.1:1//", {"connect_timeout": 2})
    with caplog.at_level("INFO"), pytest.raises(OperationalError) as raised:
        broker.queue_length(Q)
    assert "ConnectionRefusedError" in str(raised.value)
    assert not [r for r in caplog.records if r.name.startswith("pika") and r.levelname == "ERROR"]
    with caplog.at_level("DEBUG", logger="pika"), pytest.raises(OperationalError):
        broker.queue_length(Q)
    assert any(r.name.startswith("pika") and "failed" in r.getMessage() for r in caplog.records)


def test_a_lost_connection_is_replaced_and_its_leases_are_void(make: Maker) -> None:
    broker = make()
    broker.publish([Outgoing(b"job", Q)])
    [d] = broker.fetch([Q], 1, 0)
    broker._link.kill("cut for the test")  # as if the server dropped the connection
    broker.ack(d)  # that lease went with the connection: nothing to do
    [again] = broker.fetch([Q], 1, 3.0)  # reconnects; RabbitMQ requeued the message
    assert again.body == b"job" and again.delivery_count == 2
    broker.ack(again)
    broker.close()
    assert broker.queue_length(Q) == 0  # usable again after close()


def test_a_large_fetch_from_one_queue_takes_a_batch_in_priority_order(make: Maker) -> None:
    """A fetch of many from one queue takes them in one push (a consumer with a prefetch
    window of that size, cancelled once they came): never more than asked, in the queue's
    priority order, and the rest stays for the next fetch; waiting afterwards still works."""
    broker = make()
    broker.publish([Outgoing(f"p{n % 3}-{n}".encode(), Q, priority=n % 3) for n in range(30)])
    wait_until(lambda: broker.queue_length(Q) == 30)
    first = broker.fetch([Q], 16, 5.0)
    assert len(first) == 16
    priorities = [d.priority for d in first]
    assert priorities == sorted(priorities, reverse=True) and priorities[:10] == [2] * 10
    rest = broker.fetch([Q], 16, 5.0, acks=first)
    assert len(rest) == 14 and {d.priority for d in rest} == {0, 1}
    bodies = {d.body for d in first + rest}
    assert len(bodies) == 30  # each once
    broker.publish([Outgoing(b"later", Q)])
    [late] = broker.fetch([Q], 16, 5.0, acks=rest)  # a wait, with the usual consumers
    broker.ack(late)
    assert broker.queue_length(Q) == 0


def test_acknowledgements_cover_only_what_was_finished(make: Maker) -> None:
    """Runs of finished deliveries are acknowledged with one multiple ack, which never
    covers a delivery still held or given back: what was not acknowledged comes back when
    the connection ends, and only that."""
    from celeriac.connections import amqp

    broker = make()
    broker.publish([Outgoing(f"m{n}".encode(), Q) for n in range(8)])
    wait_until(lambda: broker.queue_length(Q) == 8)
    got = broker.fetch([Q], 8, 5.0)
    assert [d.body for d in got] == [f"m{n}".encode() for n in range(8)]
    sent: list[tuple[int, list[int]]] = []
    real = amqp._send_acks

    def spy(conn: Any, channel: Any, upto: int, tags: list[int]) -> None:
        sent.append((upto, list(tags)))
        real(conn, channel, upto, tags)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(amqp, "_send_acks", spy)
        broker.ack_many([got[1], got[2], got[4]])  # m0 still held: no run to cover
        broker.release(got[3])  # given back
        broker.ack_many([got[0], got[6]])  # m0..m4 settled: one frame up to m4's tag
        wait_until(lambda: len(sent) == 2)  # acknowledgements are not waited for
    assert [(upto > 0, len(tags)) for upto, tags in sent] == [(False, 3), (True, 1)]
    broker.close()  # m3 (given back), m5 and m7 (held) are back in the queue
    other = make()
    wait_until(lambda: other.queue_length(Q) == 3)
    back = other.fetch([Q], 8, 5.0)
    assert sorted(d.body for d in back) == [b"m3", b"m5", b"m7"]
    other.ack_many(back)


def test_the_run_a_multiple_ack_covers() -> None:
    from celeriac.connections.amqp import _Unsettled

    unsettled = _Unsettled()
    for tag in range(1, 11):
        unsettled.add(tag)
    assert unsettled.acks([2, 3]) == (0, [2, 3])  # 1 is held
    assert unsettled.acks([3]) == (0, [])  # settled already: never acknowledged twice
    unsettled.drop([1])  # requeued
    assert unsettled.acks([4, 6]) == (4, [6])  # 1-4 settled; 5 is held
    assert unsettled.acks([5, 7, 8]) == (8, [])
    assert unsettled.acks([10]) == (0, [10])
    assert unsettled.acks([9]) == (9, [])


def test_a_worker_s_fetches_stream_from_one_consumer(make: Maker, monkeypatch: Any) -> None:
    """With a worker's prefetch window (``prefetch``), fetches from one queue take what a
    consumer kept open received, and RabbitMQ sends more as deliveries are acknowledged.
    What it holds while nobody takes goes back to the queue, where another consumer gets
    it, and its delivery count is not raised by having been held."""
    from celeriac.connections import amqp

    monkeypatch.setattr(amqp, "STREAM_IDLE", 0.3)
    broker = make()
    broker.publish([Outgoing(f"m{n}".encode(), Q) for n in range(12)])
    wait_until(lambda: broker.queue_length(Q) == 12)
    broker.prefetch(4)
    taken: list[Any] = []
    while len(taken) < 4:
        taken += broker.fetch([Q], 4 - len(taken), 5.0)
    assert [d.body for d in taken] == [b"m0", b"m1", b"m2", b"m3"]
    stream = broker._link._stream
    assert stream is not None and not stream.ended
    more = broker.fetch([Q], 2, 5.0, acks=taken[:2])  # two acknowledged: two come
    while len(more) < 2:
        more += broker.fetch([Q], 2 - len(more), 5.0)
    assert [d.body for d in more] == [b"m4", b"m5"]
    broker.ack_many(taken[2:] + more)  # four acknowledged: four more stream in, untaken
    wait_until(lambda: stream.ended, timeout=5)  # ... so the stream ends, giving them back
    broker.prefetch(0)
    back = broker.fetch([Q], 2, 5.0)  # a claim, as without a window
    assert [d.body for d in back] == [b"m6", b"m7"]
    assert [d.delivery_count for d in back] == [1, 1]  # held, then given back: not delivered
    broker.ack_many(back)
    other = make()
    elsewhere = other.fetch([Q], 12, 5.0)
    assert [d.body for d in elsewhere] == [f"m{n}".encode() for n in range(8, 12)]
    other.ack_many(elsewhere)
    assert broker.queue_length(Q) == 0


def test_pushed_messages_of_any_size_arrive_whole(make: Maker) -> None:
    """Deliveries are read frame by frame by the connection's own reader: an empty body, one
    split over several frames (larger than frame_max) and small ones, in one push; the
    acknowledgements of a batch go out together."""
    broker = make()
    bodies = [b"", b"x" * 300_000, *(f"m{n}".encode() * 50 for n in range(10)), b"y" * 131_064]
    broker.publish([Outgoing(body, Q, message_id=f"id{n}") for n, body in enumerate(bodies)])
    wait_until(lambda: broker.queue_length(Q) == len(bodies))
    got = broker.fetch([Q], 32, 5.0)
    assert [d.body for d in got] == bodies
    broker.ack_many(got)
    assert broker.fetch([Q], 32, 0.2) == []
    assert broker.queue_length(Q) == 0


def test_a_long_delay_does_not_block_a_short_one(make: Maker) -> None:
    broker = make()
    now = time.time()
    broker.publish([Outgoing(b"in a minute", Q, eta=now + 60)])
    broker.publish([Outgoing(b"soon", Q, eta=now + 0.3)])
    [d] = broker.fetch([Q], 5, 5.0)
    assert d.body == b"soon"
    assert now + 0.3 <= time.time() < now + 2.0
    broker.ack(d)
    assert broker.queue_length(Q) == 1  # still waiting in the ladder
    assert broker.purge(Q) == 1


def test_delays_are_exact_and_in_eta_order(make: Maker) -> None:
    broker = make()
    now = time.time()
    delays = [0.7, 0.05, 0.45, 0.2, 0.333]
    broker.publish([Outgoing(f"{s}".encode(), Q, eta=now + s) for s in delays])
    seen: list[tuple[float, float]] = []  # (delay, arrived after)
    while len(seen) < len(delays):
        for d in broker.fetch([Q], 5, 3.0):
            seen.append((float(d.body), time.time() - now))
            broker.ack(d)
    assert [s for s, _ in seen] == sorted(delays)
    assert all(s <= arrived < s + 0.5 for s, arrived in seen), seen


def test_parked_delivery_outlives_its_lease_until_settled(make: Maker) -> None:
    holder = make(visibility_timeout=0.6, park_after=0.2)
    other = make(visibility_timeout=0.6)
    holder.publish([Outgoing(b"long", Q, 4)])
    [d] = holder.fetch([Q], 1, 0)
    until = time.monotonic() + 2.0
    while time.monotonic() < until:  # well past park_after and the visibility timeout
        time.sleep(0.15)
        holder.extend([d])
        assert other.fetch([Q], 1, 0) == []
    assert holder._leases[d.tag].parked  # the original was acked; a copy is parked
    holder.ack(d)
    assert other.fetch([Q], 1, 1.2) == []  # the parked copy went with the ack
    assert other.queue_length(Q) == 0


def test_parked_delivery_comes_back_when_its_holder_is_gone(make: Maker) -> None:
    holder = make(visibility_timeout=0.5, park_after=0.1)
    other = make(visibility_timeout=5.0)
    holder.publish([Outgoing(b"job", Q, 7)])
    [d] = holder.fetch([Q], 1, 0)
    time.sleep(0.2)
    holder.extend([d])
    assert holder._leases[d.tag].parked
    holder.close()  # as if the process died: nobody refreshes the parked copy
    [again] = other.fetch([Q], 1, 3.0)
    assert (again.body, again.priority, again.delivery_count) == (b"job", 7, 2)
    other.ack(again)


def test_stale_settles_of_a_parked_delivery_do_not_disturb_the_new_holder(make: Maker) -> None:
    holder = make(visibility_timeout=0.4, park_after=0.1)
    other = make(visibility_timeout=5.0)
    holder.publish([Outgoing(b"job", Q)])
    [old] = holder.fetch([Q], 1, 0)
    time.sleep(0.15)
    holder.extend([old])  # parked; then no more extends: the copy expires into the queue
    [new] = other.fetch([Q], 1, 3.0)
    assert new.body == b"job" and new.delivery_count == 2
    holder.extend([old])
    holder.ack(old)
    holder.release(old)
    holder.dead_letter(old, "stale")
    assert other.queue_length(Q) == 1 and other.dead_letters(Q) == []
    other.ack(new)
    assert other.queue_length(Q) == 0


def test_release_and_dead_letter_of_parked_deliveries(make: Maker) -> None:
    broker = make(visibility_timeout=1.0, park_after=0.1)
    broker.publish([Outgoing(b"again", Q, 3), Outgoing(b"dead", Q, 2)])
    again, dead = broker.fetch([Q], 2, 0)
    time.sleep(0.15)
    broker.extend([again, dead])
    broker.release(again, delay=0.2)
    broker.dead_letter(dead, "gave up")
    [back] = broker.fetch([Q], 5, 3.0)
    assert (back.body, back.priority, back.delivery_count) == (b"again", 3, 2)
    broker.ack(back)
    [letter] = broker.dead_letters(Q)
    assert (letter.body, letter.reason) == (b"dead", "gave up")
    assert broker.fetch([Q], 5, 1.5) == []  # no parked copy comes back


# -- worker processes ---------------------------------------------------------------------------

APP = """
import os, time
from celeriac import Celery

app = Celery("parkproj", broker=os.environ["PARK_BROKER"], backend=os.environ["PARK_BACKEND"])
app.conf.broker_transport_options = {"visibility_timeout": 1.0, "park_after": 0.3}
app.conf.worker_prefetch_multiplier = 1


def record(*fields):
    with open(os.environ["PARK_RUNS"], "a") as f:
        f.write(" ".join(map(str, fields)) + "\\n")


@app.task
def slow(tag, seconds):
    record("start", tag, os.getpid())
    time.sleep(seconds)
    record("end", tag, os.getpid())
    return tag
"""


class Deployment:
    """Workers of a small app whose deliveries park after 0.3s (visibility timeout 1s)."""

    def __init__(self, tmp_path: Path) -> None:
        (tmp_path / "parkproj.py").write_text(textwrap.dedent(APP))
        self.runs = tmp_path / "runs.txt"
        self.env = {
            **os.environ,
            "PARK_BROKER": AMQP.url,
            "PARK_BACKEND": f"sqlite:///{tmp_path}/results.db",
            "PARK_RUNS": str(self.runs),
            "PYTHONPATH": os.pathsep.join([str(tmp_path), os.environ.get("PYTHONPATH", "")]),
        }
        self.cwd = tmp_path
        self.workers: list[subprocess.Popen[str]] = []
        os.environ.update({k: self.env[k] for k in ("PARK_BROKER", "PARK_BACKEND", "PARK_RUNS")})
        sys.path.insert(0, str(tmp_path))
        import parkproj

        self.app: Celery = parkproj.app

    def worker(self, name: str) -> subprocess.Popen[str]:
        cmd = [sys.executable, "-m", "celeriac", "-A", "parkproj", "worker", "-l", "info"]
        proc = subprocess.Popen(
            [*cmd, "-c", "1", "-P", "threads", "-n", f"{name}@%h"],
            cwd=self.cwd,
            env=self.env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,
        )
        self.workers.append(proc)
        return proc

    def lines(self, kind: str) -> list[list[str]]:
        if not self.runs.exists():
            return []
        rows = [line.split() for line in self.runs.read_text().splitlines()]
        return [row[1:] for row in rows if row[0] == kind]

    def close(self) -> None:
        for proc in self.workers:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(10)
            if proc.stdout is not None:
                proc.stdout.close()
        self.app.close()
        sys.path.remove(str(self.cwd))
        sys.modules.pop("parkproj", None)


def queues_holding() -> dict[str, tuple[int, int]]:
    """(ready, unacknowledged) per queue of the tests' virtual host, from rabbitmqctl."""
    ctl = shutil.which("rabbitmqctl") or "/usr/sbin/rabbitmqctl"
    out = subprocess.run(
        [
            ctl,
            "-q",
            "list_queues",
            "-p",
            AMQP_VHOST,
            "name",
            "messages_ready",
            "messages_unacknowledged",
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    ).stdout
    rows = [line.split("\t") for line in out.splitlines() if line.count("\t") == 2]
    return {n: (int(r), int(u)) for n, r, u in rows if r.isdigit() and u.isdigit()}


def parked_copies() -> int:
    """Messages in lease queues, with the main queue holding nothing ready or unacked."""
    held = queues_holding()
    if held.get("celery", (0, 0)) != (0, 0):
        return 0
    return sum(r for name, (r, _) in held.items() if name.startswith("celeriac.lease."))


@pytest.fixture
def deployment(tmp_path: Path) -> Iterator[Deployment]:
    AMQP.prepare()
    d = Deployment(tmp_path)
    yield d
    d.close()
    # the queues the producer declared; lease queues delete themselves (x-expires)
    AMQP.cleanup(AMQP.url, [d.app.broker])


@pytest.mark.slow
def test_a_task_longer_than_park_after_and_the_lease_runs_once(deployment: Deployment) -> None:
    deployment.worker("a")
    deployment.worker("b")
    result = deployment.app.send_task("parkproj.slow", ["long", 4.0])
    wait_until(lambda: parked_copies() == 1, timeout=10, interval=0.2)
    assert result.get(timeout=30) == "long"
    time.sleep(1.5)  # a duplicate would have started by now
    assert len(deployment.lines("start")) == 1
    assert len(deployment.lines("end")) == 1


@pytest.mark.slow
def test_a_worker_killed_while_its_delivery_is_parked_loses_nothing(
    deployment: Deployment,
) -> None:
    first = deployment.worker("first")
    result = deployment.app.send_task("parkproj.slow", ["k", 5.0])
    wait_until(lambda: deployment.lines("start"), timeout=30)
    wait_until(lambda: parked_copies() == 1, timeout=10, interval=0.2)
    os.killpg(first.pid, signal.SIGKILL)
    first.wait(10)
    deployment.worker("second")
    assert result.get(timeout=30) == "k"
    starts = deployment.lines("start")
    assert len(starts) == 2 and starts[0][1] != starts[1][1]  # run again, by the other worker
    assert len(deployment.lines("end")) == 1


def test_a_message_with_a_bad_eta_header_is_dead_lettered_with_the_reason(make: Maker) -> None:
    import pika

    from contract.test_worker_contract import worker

    app = Celery("bad-eta", broker=AMQP.url, backend="memory://bad-eta")

    @app.task
    def add(x, y):
        return x + y

    broker = make()
    app._broker = broker  # queues declared through it are deleted after the test
    app.conf.task_default_queue = Q
    good = add.delay(1, 2)
    params = pika.URLParameters(AMQP.url)
    conn = pika.BlockingConnection(params)
    try:
        body = b'{"id": "x", "task": "%s", "args": [1, 1]}' % add.name.encode()
        props = pika.BasicProperties(headers={"x-celeriac-eta": "soon"}, priority=1)
        conn.channel().basic_publish("", Q, body, props)
    finally:
        conn.close()
    with worker(app):
        assert good.get(timeout=15) == 3
        [letter] = wait_until(lambda: broker.dead_letters(Q))
    assert letter.reason == "bad x-celeriac-eta header: 'soon'"


HEADER_VALUES = st.one_of(  # what pika can send (it has no floats: celeriac sends text)
    st.none(),
    st.text(max_size=12),
    st.sampled_from(["nan", "inf", "-inf", "1e400", "0", "-5", "1.5"]),
    st.integers(-(2**31), 2**31 - 1),
    st.booleans(),
    st.lists(st.integers(0, 9), max_size=2),
)


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    headers=st.dictionaries(
        st.sampled_from(["x-celeriac-eta", "x-celeriac-deliveries", "x-celeriac-id"]),
        HEADER_VALUES,
        max_size=3,
    ),
    priority=st.integers(0, 255),
)
def test_any_celeriac_headers_are_claimed_and_settled(
    make: Maker, headers: dict[str, Any], priority: int
) -> None:
    import pika

    broker = make()
    broker.purge(Q)  # declares the queue, and empties it
    conn = pika.BlockingConnection(pika.URLParameters(AMQP.url))
    try:
        props = pika.BasicProperties(headers=headers, priority=priority)
        conn.channel().basic_publish("", Q, b"{}", props)
    finally:
        conn.close()
    got = broker.fetch([Q], 10, 2.0)
    eta = headers.get("x-celeriac-eta")
    if eta is not None and not got:  # a valid eta to come: it waits in the delay ladder
        assert broker.queue_length(Q) == 1
        broker.purge(Q)
        return
    [delivery] = got
    broker.dead_letter(delivery, delivery.defect or "fuzz")
    assert broker.queue_length(Q) == 0
    broker.purge_dead_letters(Q)


def test_a_queue_celery_declared_is_used_as_it_is(make: Maker, caplog: Any) -> None:
    """A queue that exists without ``x-max-priority`` (Celery declares them so) is used as
    it is, with one warning, instead of every publish failing."""
    import pika

    queue = f"celery-made-{os.getpid()}"
    params = pika.URLParameters(AMQP.url)
    connection = pika.BlockingConnection(params)
    try:
        connection.channel().queue_declare(queue, durable=True)
    finally:
        connection.close()
    broker = make()
    broker.declared_queues.add(queue)  # deleted after the test
    with caplog.at_level("WARNING", logger="celeriac.brokers.amqp"):
        broker.publish([Outgoing(b"low", queue, priority=0), Outgoing(b"high", queue, priority=9)])
        broker.publish([Outgoing(b"later", queue)])
    warnings = [r for r in caplog.records if "exists without x-max-priority" in r.message]
    assert len(warnings) == 1
    got = broker.fetch([queue], 10, 2.0)
    assert [d.body for d in got] == [b"low", b"high", b"later"]  # the order they came
    broker.ack_many(got)
    assert broker.queue_length(queue) == 0


def test_publishing_without_waiting_for_confirms(make: Maker, caplog: Any) -> None:
    """``confirm_publish=False`` (Celery's default): a publish returns once its message is
    handed to the connection; the confirms are still awaited in the background, a refusal is
    logged, and closing waits for them."""
    with pytest.raises(ValueError, match="expected True or False"):
        make(confirm_publish="perhaps")
    broker = make(confirm_publish="false")
    assert broker.confirm_publish is False
    for n in range(200):
        broker.publish([Outgoing(f"m{n}".encode(), Q)])
    assert broker._link.wait_confirms(10)
    assert broker.queue_length(Q) == 200
    got = broker.fetch([Q], 200, 5.0)
    assert len(got) == 200
    broker.ack_many(got)
    link = broker._link
    link.call(link.delete(Q))  # unroutable from now on: its confirm reports a refusal
    with caplog.at_level("ERROR", logger="celeriac.brokers.amqp"):
        broker.publish([Outgoing(b"lost", Q)])
        wait_until(lambda: any("without waiting" in r.getMessage() for r in caplog.records))
    assert any("could not be routed" in r.getMessage() for r in caplog.records)


def test_moving_a_message_waits_for_its_copy_even_without_confirm_publish(make: Maker) -> None:
    """A release with a delay publishes a copy, then acknowledges the original: the copy is
    confirmed first whatever ``confirm_publish`` says, or a lost copy would lose the task."""
    broker = make(confirm_publish=False)
    broker.publish([Outgoing(b"job", Q)])
    assert broker._link.wait_confirms(10)
    [d] = broker.fetch([Q], 1, 5.0)
    broker.release(d, delay=0.3)
    assert not broker._link._unconfirmed
    [again] = broker.fetch([Q], 1, 5.0)
    assert again.body == b"job"
    broker.ack(again)


def test_a_producer_that_does_not_wait_for_confirms_waits_for_them_at_exit(
    make: Maker, tmp_path: Path
) -> None:
    """A script that publishes without waiting for confirms and exits at once loses
    nothing: at exit the broker waits for its confirms."""
    broker = make()
    broker.publish([Outgoing(b"declare", Q)])  # declared here, so the cleanup deletes it
    broker.ack_many(broker.fetch([Q], 1, 5.0))
    script = tmp_path / "produce.py"
    script.write_text(
        textwrap.dedent(
            f"""
            from celeriac.brokers.base import Outgoing, create_broker
            broker = create_broker({AMQP.url!r}, {{"confirm_publish": False}})
            for n in range(300):
                broker.publish([Outgoing(b"x" * 2000, {Q!r})])
            """
        )
    )
    subprocess.run([sys.executable, str(script)], check=True, timeout=60)
    assert broker.queue_length(Q) == 300


def test_closing_a_stream_reader_while_events_flow_logs_no_error(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """pika rejects what reaches a consumer being cancelled; a stream takes no reject and
    RabbitMQ closes the reader's connection, which was closing anyway: no error logged."""
    import logging
    import threading

    from celeriac.eventlogs.amqp import AMQPEventLog
    from celeriac.eventlogs.base import OLDEST
    from services import amqp_delete_queues

    AMQP.prepare()
    queue = f"celeriac.events.test-closing-{os.getpid()}"
    log = AMQPEventLog(AMQP.url, {"queue": queue})
    log.append([b"first"])  # the stream made, and readable, before the flow starts
    first = log.reader(OLDEST)
    wait_until(lambda: first.read(1, 0.2) != [], timeout=10)
    first.close()
    stop = threading.Event()

    def flow() -> None:
        while not stop.is_set():
            log.append([b"x" * 100] * 20)

    writer = threading.Thread(target=flow)
    writer.start()
    try:
        with caplog.at_level(logging.WARNING):
            for _ in range(10):
                reader = log.reader(OLDEST)
                reader.read(5, 1.0)  # a window of 5: more are on their way when it closes
                reader.close()
    finally:
        stop.set()
        writer.join()
        log.close()
        amqp_delete_queues(AMQP.url, [queue])
    assert [r.getMessage() for r in caplog.records if r.name.startswith("pika")] == []


def test_the_event_log_closes_the_connection_of_a_thread_that_ended() -> None:
    """Each appending thread has a connection of its own: threads that come and go (a
    broadcast from each request's thread, say) do not pile connections up."""
    import threading

    from celeriac.eventlogs.amqp import AMQPEventLog
    from services import amqp_delete_queues

    AMQP.prepare()
    queue = f"celeriac.events.test-threads-{os.getpid()}"
    log = AMQPEventLog(AMQP.url, {"queue": queue})
    try:
        conns = []
        for _ in range(4):
            thread = threading.Thread(target=log.append, args=([b"e"],))
            thread.start()
            thread.join()
            conns.append(log._publishers[-1][2])
        log.append([b"here"])  # this thread's: the ended threads' connections are closed
        assert [c.is_open for c in conns] == [False, False, False, False]
        assert len(log._publishers) == 1
    finally:
        log.close()
        amqp_delete_queues(AMQP.url, [queue])
