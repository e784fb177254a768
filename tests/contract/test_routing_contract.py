"""Routing, declared queues, priorities and revocation on every broker and result backend."""

from __future__ import annotations

import random
import threading
import time
from typing import Any

import pytest

from celeriac import Broadcast, Celery, Exchange, Queue, signals, states
from celeriac.contrib.routers import LeastLoadedRouter
from celeriac.exceptions import QueueNotFound
from celeriac.routing import BroadcastTargets
from conftest import wait_until
from contract.test_worker_contract import reasons, worker


def test_300_mixed_priorities_run_in_priority_order(app: Celery) -> None:
    ran: list[int] = []

    @app.task
    def job(priority: int) -> None:
        ran.append(priority)

    priorities = [random.randrange(10) for _ in range(300)]
    results = [job.apply_async((p,), priority=p) for p in priorities]
    with worker(app, concurrency=1, prefetch_multiplier=1):
        for r in results:
            r.get(timeout=60)
    assert ran == sorted(priorities, reverse=True)


def test_the_seed_priority_snippet_runs_9_first(app: Celery) -> None:
    ran: list[int] = []

    @app.task(bind=True)
    def t1(self: Any) -> None:
        ran.append(self.request.delivery_info["priority"])

    for p in (5, 6, 7, 9):
        t1.apply_async(priority=p)
    with worker(app, concurrency=1, prefetch_multiplier=1):
        wait_until(lambda: len(ran) == 4)
    assert ran == [9, 7, 6, 5]


def test_queue_per_priority_drained_in_order(app: Celery) -> None:
    ran: list[str] = []

    @app.task
    def job(queue: str) -> None:
        ran.append(queue)

    for _ in range(10):
        for queue in ("low", "default", "high"):
            job.apply_async((queue,), queue=queue)
    app.conf.worker_queue_order = "priority"
    with worker(app, queues="high,default,low", concurrency=1, prefetch_multiplier=1):
        wait_until(lambda: len(ran) == 30)
    assert ran == ["high"] * 10 + ["default"] * 10 + ["low"] * 10


def test_routing_by_arguments_and_precedence(app: Celery) -> None:
    ran: list[tuple[str, str]] = []

    @app.task(bind=True, queue="from-task")
    def resize(self: Any, size: int) -> None:
        ran.append((str(size), self.request.delivery_info["routing_key"]))

    def by_size(name: str, args: Any, kwargs: Any, options: Any, task: Any = None, **kw: Any):
        if name == resize.name and args and args[0] > 1000:
            return {"queue": "big", "priority": 7}
        return None

    app.conf.task_routes = [by_size, {"other.*": {"queue": "unused"}}]
    resize.delay(5000)  # routed on its argument
    resize.delay(10)  # no route: the task's own queue
    resize.apply_async((20,), queue="explicit")  # explicit beats everything
    with worker(app, queues="big,from-task,explicit"):
        wait_until(lambda: len(ran) == 3)
    assert sorted(ran) == [("10", "from-task"), ("20", "explicit"), ("5000", "big")]


def test_declared_queues(app: Celery) -> None:
    seen: list[tuple[str, int]] = []

    @app.task(bind=True)
    def job(self: Any, tag: str) -> str:
        seen.append((tag, self.request.delivery_info["priority"]))
        return tag

    app.conf.task_queues = [
        Queue("urgent", priority=8),
        Queue("capped", queue_arguments={"x-max-priority": 3}),
        Queue("fleeting", message_ttl=0.3),
    ]
    app.conf.task_create_missing_queues = False
    job.apply_async(("urgent",), queue="urgent")
    job.apply_async(("capped",), queue="capped", priority=9)
    stale = job.apply_async(("fleeting",), queue="fleeting")
    with pytest.raises(QueueNotFound):
        job.apply_async(("nowhere",), queue="nowhere")
    time.sleep(0.5)
    with worker(app):  # consumes every declared queue by default
        wait_until(lambda: len(seen) == 2)
        assert stale.get(timeout=15, propagate=False) is not None
    assert sorted(seen) == [("capped", 3), ("urgent", 8)]
    assert stale.state == states.REVOKED
    wait_until(lambda: reasons(app, "fleeting"))
    assert "expired" in reasons(app, "fleeting")[0]


def test_least_loaded_router_spreads_by_backlog(app: Celery) -> None:
    @app.task
    def job(i: int) -> int:
        return i

    app.conf.router_least_loaded_queues = ["a", "b", "c"]
    app.conf.task_routes = ["least-loaded"]  # the plugin, found by its entry point name
    for i in range(5):
        job.apply_async((i,), queue="a")  # a backlog in a
    spread = [job.delay(i) for i in range(9)]
    lengths = {q: app.broker.queue_length(q) for q in "abc"}
    assert lengths["b"] >= 3 and lengths["c"] >= 3, lengths
    with worker(app, queues="a,b,c"):
        assert [r.get(timeout=20) for r in spread] == list(range(9))
    router = LeastLoadedRouter(["x", "y"], ttl=60)
    picks = [router("t", (), {}, {}, task=job)["queue"] for _ in range(6)]  # type: ignore[index]
    assert picks.count("x") == picks.count("y") == 3  # a burst between reads is spread too


def test_revoke_with_terminate_stops_a_running_task(app: Celery) -> None:
    started = threading.Event()
    revoked: list[tuple[str, bool]] = []

    @app.task
    def endless() -> None:
        started.set()
        for _ in range(600):
            time.sleep(0.05)

    def on_revoked(sender: Any = None, request: Any = None, terminated: bool = False, **kw: Any):
        revoked.append((request.id, terminated))

    signals.task_revoked.connect(on_revoked)
    try:
        with worker(app):
            result = endless.delay()
            assert started.wait(15)
            result.revoke(terminate=True)
            with pytest.raises(Exception):  # noqa: B017  (TaskRevokedError)
                result.get(timeout=15)
            assert result.state == states.REVOKED
    finally:
        signals.task_revoked.disconnect(on_revoked)
    assert (result.id, True) in revoked


def test_every_worker_gets_a_copy_from_a_broadcast_queue(app: Celery) -> None:
    ran: list[str] = []
    lock = threading.Lock()

    def refresh_cache(self: Any) -> str:
        with lock:
            ran.append(self.request.hostname)
        return self.request.hostname

    queues = [Broadcast("bcast"), Queue("celery")]
    nodes = [
        Celery("node", broker=app.conf.broker_url, backend=app.conf.result_backend)
        for _ in range(3)
    ]
    for each in (app, *nodes):
        each.conf.task_queues = queues
        each.task(name="cache.refresh", bind=True, queue="bcast")(refresh_cache)
    try:
        with (
            worker(nodes[0], hostname="a@test"),
            worker(nodes[1], hostname="b@test"),
            worker(nodes[2], hostname="c@test"),
        ):
            targets = BroadcastTargets(ttl=0)
            wait_until(lambda: len(targets.queues(app.results.backend, "bcast")) == 3)
            app.send_task("cache.refresh").get(timeout=20)
            wait_until(lambda: len(ran) == 3)
            time.sleep(0.3)
    finally:
        for each in nodes:
            each.close()
    assert sorted(ran) == ["a@test", "b@test", "c@test"]


def test_routing_by_key_as_an_amqp_broker_routes_in_celery(app: Celery) -> None:
    """Celery's routing guide: a topic exchange whose bindings pick the queue from the
    routing key, and a direct exchange given by name; on a direct default exchange a routing
    key alone changes nothing (Celery publishes to the queue by its name)."""
    ran: list[tuple[str, str]] = []

    @app.task(bind=True)
    def job(self: Any, label: str) -> None:
        ran.append((label, self.request.delivery_info["routing_key"]))

    app.conf.task_default_queue = "default"
    app.conf.task_default_exchange = "tasks"
    app.conf.task_default_exchange_type = "topic"
    app.conf.task_default_routing_key = "task.default"
    app.conf.task_queues = (
        Queue("default", routing_key="task.#"),
        Queue("feeds", routing_key="feed.#"),
        Queue("images", Exchange("media", type="direct"), routing_key="media.image"),
        Queue("videos", Exchange("media", type="direct"), routing_key="media.video"),
    )
    app.conf.task_routes = {"*.import_feed": {"routing_key": "feed.import"}}

    @app.task(bind=True)
    def import_feed(self: Any) -> None:
        ran.append(("routed", self.request.delivery_info["routing_key"]))

    job.apply_async(("topic",), routing_key="feed.sports.news")
    job.apply_async(("default",))
    job.apply_async(("direct",), exchange="media", routing_key="media.video")
    job.apply_async(("object",), exchange=Exchange("media"), routing_key="media.image")
    import_feed.delay()
    with pytest.raises(QueueNotFound, match="no queue in task_queues is bound"):
        job.apply_async(("lost",), routing_key="nothing.matches")
    with pytest.raises(QueueNotFound, match="no queue"):
        job.apply_async(("lost",), exchange="media", routing_key="media.audio")
    with worker(app, queues="default,feeds,images,videos"):
        wait_until(lambda: len(ran) == 5)
    assert sorted(ran) == [
        ("default", "default"),
        ("direct", "videos"),
        ("object", "images"),
        ("routed", "feeds"),
        ("topic", "feeds"),
    ]
    # the default setup (a direct exchange): a routing key alone leaves the queue as it was
    plain = Celery("plain", broker="memory://routing-plain")
    assert plain.producer.build_message("t", routing_key="anything").queue == "celery"
