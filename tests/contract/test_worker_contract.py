"""The worker in-process on every broker, each paired with a result backend: the core
contract a Celery user relies on (results, retries, dead letters, priorities, delays,
revocation, signals, links, serializers, time limits)."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest

from celeriac import Celery, Task, shared_task, signals, states
from celeriac.brokers.base import Outgoing
from celeriac.exceptions import SoftTimeLimitExceeded, TimeLimitExceeded
from conftest import wait_until


class AppError(Exception):
    """Raised by a task; get() must re-raise this very type."""


@contextmanager
def worker(app: Celery, **options: Any) -> Iterator[Any]:
    """A worker running in a thread for the duration of the block, then stopped (warm)."""
    options.setdefault("pool", "threads")
    options.setdefault("concurrency", 2)
    w = app.Worker(install_signal_handlers=False, **options)
    thread = threading.Thread(target=w.start, name="test-worker")
    thread.start()
    try:
        yield w
    finally:
        w.stop()
        thread.join(30)
        assert not thread.is_alive()


def reasons(app: Celery, queue: str = "celery") -> list[str]:
    return [dl.reason for dl in app.broker.dead_letters(queue)]


def wait_for_reason(app: Celery, text: str) -> None:
    wait_until(lambda: any(text in r for r in reasons(app)), timeout=15)


def test_broker_and_backend_combine_freely(matrix_app: Celery) -> None:
    @matrix_app.task
    def add(x, y):
        return x + y

    @matrix_app.task
    def fail():
        raise AppError("broken")

    ok, bad = add.delay(2, 3), fail.delay()
    with worker(matrix_app):
        assert ok.get(timeout=15) == 5
        with pytest.raises(AppError):
            bad.get(timeout=15)


@pytest.mark.parametrize("pool", ["threads", "solo", "asyncio"])
def test_results_failures_and_async_tasks(app: Celery, pool: str) -> None:
    @app.task
    def add(x, y):
        return x + y

    @app.task
    def fail():
        raise AppError("broken")

    @app.task
    async def async_mul(x, y):
        return x * y

    ok, bad, coro = add.delay(2, 3), fail.delay(), async_mul.delay(4, 5)
    with worker(app, pool=pool):
        assert ok.get(timeout=15) == 5 and ok.state == states.SUCCESS and ok.date_done
        assert coro.get(timeout=15) == 20
        with pytest.raises(AppError, match="broken"):
            bad.get(timeout=15)
        assert bad.failed() and "AppError" in (bad.traceback or "")


def test_retries_then_dead_letter(app: Celery) -> None:
    tries: list[int] = []

    @app.task(
        bind=True,
        autoretry_for=(ConnectionError,),
        retry_backoff=0.05,
        retry_jitter=False,
        max_retries=3,
    )
    def flaky(self):
        tries.append(self.request.retries)
        if self.request.retries < 2:
            raise ConnectionError("down")
        return "ok"

    @app.task(bind=True, max_retries=1, default_retry_delay=0.05)
    def doomed(self):
        raise self.retry(exc=AppError("never"))

    good, bad = flaky.delay(), doomed.delay()
    with worker(app):
        assert good.get(timeout=15) == "ok" and tries == [0, 1, 2]
        with pytest.raises(AppError):
            bad.get(timeout=15)
        wait_for_reason(app, "max retries")


def test_bad_input_goes_to_the_dead_letter_queue_and_the_worker_goes_on(app: Celery) -> None:
    @app.task
    def add(x, y):
        return x + y

    app.broker.publish([Outgoing(b"\x00not a message", "celery")])
    app.send_task("no.such.task", [1])
    after = add.delay(1, 1)
    with worker(app):
        assert after.get(timeout=15) == 2
        wait_for_reason(app, "invalid message")
        wait_for_reason(app, "unknown task 'no.such.task'")


def test_priority_9_runs_first(app: Celery) -> None:
    order: list[int] = []

    @app.task
    def t1(p):
        order.append(p)

    sent = [t1.apply_async(args=[p], priority=p) for p in (5, 6, 7, 9, 0, 3)]
    app.conf.worker_prefetch_multiplier = 1
    with worker(app, concurrency=1):
        for result in sent:
            result.get(timeout=15)
    assert order == [9, 7, 6, 5, 3, 0]


def test_countdown_is_held_by_the_broker(app: Celery) -> None:
    ran_at: list[float] = []

    @app.task
    def stamp():
        ran_at.append(time.time())

    sent = time.time()
    result = stamp.apply_async(countdown=0.5)
    with worker(app):
        result.get(timeout=15)
    assert ran_at[0] - sent >= 0.45


def test_revoked_and_expired_tasks_do_not_run(app: Celery) -> None:
    ran: list[str] = []

    @app.task
    def work(tag):
        ran.append(tag)

    revoked = work.delay("revoked")
    revoked.revoke()
    expired = work.apply_async(args=["expired"], expires=0.01)
    time.sleep(0.05)
    kept = work.delay("kept")
    with worker(app, concurrency=1):
        kept.get(timeout=15)
    assert ran == ["kept"]
    assert revoked.state == states.REVOKED and expired.state == states.REVOKED


def test_a_received_task_revoked_or_expired_before_it_starts_does_not_run(app: Celery) -> None:
    # prefetched behind a busy slot, as Celery's worker reserves them; revoked (or expired)
    # meanwhile, they are dropped instead of run when their turn comes
    app.conf.worker_prefetch_multiplier = 4
    ran: list[str] = []
    started = threading.Event()

    @app.task
    def busy():
        started.set()
        time.sleep(1.5)

    @app.task
    def work(tag):
        ran.append(tag)

    busy.delay()
    doomed = work.delay("revoked")
    expiring = work.apply_async(args=["expired"], expires=0.6)
    kept = work.delay("kept")
    with worker(app, concurrency=1):
        assert started.wait(15)
        doomed.revoke()
        kept.get(timeout=15)
    assert ran == ["kept"]
    assert doomed.state == states.REVOKED and expiring.state == states.REVOKED


def test_soft_time_limit_raises_inside_the_task(app: Celery) -> None:
    @app.task(soft_time_limit=0.2)
    def slow():
        try:
            for _ in range(100):
                time.sleep(0.02)
        except SoftTimeLimitExceeded:
            return "cleaned up"
        return "finished"

    result = slow.delay()
    with worker(app):
        assert result.get(timeout=15) == "cleaned up"


def test_hard_time_limit_in_the_threads_pool(app: Celery) -> None:
    @app.task(time_limit=0.2)
    def busy():
        for _ in range(200):
            time.sleep(0.01)

    result = busy.delay()
    with worker(app, pool="threads"), pytest.raises(TimeLimitExceeded):
        result.get(timeout=15)


def test_worker_signals(app: Celery) -> None:
    seen: list[str] = []

    @app.task
    def ok():
        return 1

    receivers = {
        signals.task_received: lambda **kw: seen.append("received"),
        signals.task_prerun: lambda **kw: seen.append("prerun"),
        signals.task_success: lambda **kw: seen.append("success"),
        signals.task_postrun: lambda **kw: seen.append("postrun"),
        signals.task_unknown: lambda **kw: seen.append(f"unknown:{kw['name']}"),
        signals.worker_ready: lambda **kw: seen.append("ready"),
        signals.worker_shutdown: lambda **kw: seen.append("shutdown"),
    }
    for sig, fn in receivers.items():
        sig.connect(fn)
    try:
        app.send_task("missing.task")
        result = ok.delay()
        with worker(app, concurrency=1):
            result.get(timeout=15)
            wait_until(lambda: "postrun" in seen)
    finally:
        for sig, fn in receivers.items():
            sig.disconnect(fn)
    assert seen[0] == "ready" and seen[-1] == "shutdown"
    assert "unknown:missing.task" in seen
    i = seen.index("received")
    assert seen[i : i + 4] == ["received", "prerun", "success", "postrun"]


def test_a_sent_state_set_on_publish_as_celerys_recipe_does(app: Celery) -> None:
    @app.task
    def add(x, y):
        return x + y

    # Celery's documented recipe: mark a task SENT as soon as it is published
    @signals.after_task_publish.connect
    def update_sent_state(sender=None, headers=None, **kwargs: Any) -> None:
        task = app.tasks.get(sender)
        backend = task.backend if task else app.backend
        assert backend is not None
        backend.store_result(headers["id"], None, "SENT")

    backend = app.backend
    assert backend is not None
    try:
        result = add.delay(2, 3)
        assert result.state == "SENT" and backend.get_state(result.id) == "SENT"
        with worker(app):
            assert result.get(timeout=15) == 5
    finally:
        signals.after_task_publish.disconnect(update_sent_state)
    assert result.backend.get_task_meta(result.id)["status"] == states.SUCCESS
    assert add.backend.get_result(result.id) == 5
    add.backend.mark_as_done("done", 7, request=add.request)  # a request names its task
    assert app.AsyncResult("done").get(timeout=5) == 7
    assert add.backend.get_task_meta("done")["name"] == add.name
    backend.mark_as_started("other", progress=1)
    assert backend.get_status("other") == states.STARTED
    backend.mark_as_failure("other", AppError("no"), traceback="tb")
    failed = app.AsyncResult("other")
    assert failed.state == states.FAILURE and isinstance(failed.result, AppError)
    assert backend.get_traceback("other") == "tb"
    backend.mark_as_revoked("third")
    assert app.AsyncResult("third").state == states.REVOKED
    assert backend.get_state("never-sent") == states.PENDING


def test_inspect_and_control_reach_the_running_workers(app: Celery) -> None:
    gate = threading.Event()

    @app.task
    def slow(n):
        gate.wait(60)
        return n

    @app.task
    def add(x, y):
        return x + y

    inspect = app.control.inspect(timeout=5, limit=1)  # one worker: no need to wait longer
    assert app.control.inspect(timeout=0.2).ping() is None  # no worker yet
    first = slow.delay(1)
    try:
        with worker(app, concurrency=1, hostname="w1@%h", prefetch_multiplier=2) as w:
            wait_until(lambda: bool((inspect.active() or {}).get(w.hostname)))
            queued = slow.delay(2)
            host = w.hostname
            assert inspect.ping() == {host: {"ok": "pong"}}
            assert app.control.ping(timeout=5, limit=1) == [{host: {"ok": "pong"}}]
            active = inspect.active()[host]
            assert [(t["id"], t["name"], t["args"]) for t in active] == [(first.id, slow.name, [1])]
            assert active[0]["time_start"] is not None and active[0]["hostname"] == host
            wait_until(lambda: [t["id"] for t in inspect.reserved()[host]] == [queued.id])
            stats = inspect.stats()[host]
            assert stats["pool"]["max-concurrency"] == 1 and stats["prefetch_count"] == 2
            assert {slow.name, add.name} <= set(inspect.registered()[host])
            assert f"{add.name} [rate_limit=None]" in inspect.registered("rate_limit")[host]
            assert inspect.conf()[host]["broker_url"] == app.broker.url.replace(
                "guest:guest@", "guest:***@"
            )
            assert inspect.clock()[host]["clock"] > 0
            assert host in inspect.report()[host]["ok"]
            assert [q["name"] for q in inspect.active_queues()[host]] == ["celery"]
            assert inspect.scheduled() == {host: []}
            found = inspect.query_task(first.id, queued.id)[host]
            assert found[first.id][0] == "active" and found[queued.id][0] == "reserved"
            queued.revoke()
            wait_until(lambda: queued.id in inspect.revoked()[host])
            other = app.control.inspect(destination=["nobody@nowhere"], timeout=0.3)
            assert other.ping() is None
            gate.set()
            assert first.get(timeout=15) == 1
            assert app.control.shutdown(reply=True, timeout=5, limit=1) == [
                {host: {"ok": "shutting down"}}
            ]
            wait_until(lambda: w._stop_requested)
    finally:
        gate.set()


def test_progress_link_and_errback(app: Celery) -> None:
    calls: list[Any] = []

    @app.task(bind=True)
    def progress(self):
        self.update_state(state="PROGRESS", meta={"done": 1})
        return 10

    @app.task
    def after(value):
        calls.append(("after", value))

    @app.task
    def broken():
        raise AppError("x")

    @app.task
    def on_error(request, exc, traceback):
        calls.append(("errback", request.id, type(exc).__name__))

    first = progress.apply_async(link=after.s())
    failing = broken.apply_async(link_error=on_error.s())
    with worker(app):
        assert first.get(timeout=15) == 10
        wait_until(lambda: ("after", 10) in calls)
        wait_until(lambda: ("errback", failing.id, "AppError") in calls)


def test_acks_early_opt_out(app: Celery) -> None:
    @app.task(acks_late=False)
    def quick():
        return "done"

    result = quick.delay()
    with worker(app):
        assert result.get(timeout=15) == "done"


def test_msgpack_and_pickle_only_when_accepted(app: Celery) -> None:
    app.conf.accept_content = ["json", "msgpack"]

    @app.task(serializer="msgpack")
    def packed(x):
        return x * 2

    @app.task(serializer="pickle")
    def pickled(x):
        return x

    refused = pickled.delay(1)
    ok = packed.delay(21)
    with worker(app):
        assert ok.get(timeout=15) == 42
        wait_for_reason(app, "refusing to decode")
    assert refused.state == states.PENDING


def test_a_custom_task_class_wraps_every_run(app: Celery) -> None:
    """Flask's documented pattern: a base class whose ``__call__`` opens a context around
    the task, made the app's default (``app.Task = ...``), with hooks of its own; the worker
    runs tasks through it on every broker, as Celery does."""
    seen: list[tuple[str, Any]] = []
    context = threading.local()

    class ContextTask(app.Task):  # type: ignore[name-defined]
        def __call__(self, *args: Any, **kwargs: Any) -> Any:
            context.inside = True
            try:
                return self.run(*args, **kwargs)
            finally:
                context.inside = False

        def on_success(self, retval: Any, task_id: str, args: Any, kwargs: Any) -> None:
            seen.append(("success", retval))

    app.Task = ContextTask

    @app.task
    def inside(x: int) -> tuple[int, bool]:
        return x, getattr(context, "inside", False)

    assert isinstance(inside, ContextTask)
    result = inside.delay(7)
    with worker(app):
        assert result.get(timeout=15) == [7, True]
    wait_until(lambda: ("success", [7, True]) in seen or ("success", (7, True)) in seen)
    assert inside.apply(args=(8,)).get() == (8, True)  # eager runs go through it too


@shared_task(max_retries=3, default_retry_delay=0)
def shared_flaky(x: int) -> tuple[int, str | None, int]:
    """A shared task that uses its own module-level name, as Celery projects do."""
    if shared_flaky.request.retries < 1:
        raise shared_flaky.retry(countdown=0)
    return x, shared_flaky.request.id, shared_flaky.request.retries


def test_a_shared_task_used_by_its_module_name_in_the_worker(app: Celery) -> None:
    """``@shared_task`` stands for the current app's task instance, the one the worker runs:
    ``retry`` through the module-level name retries, ``request`` is the running one."""
    assert isinstance(shared_flaky, Task)
    result = shared_flaky.delay(5)
    with worker(app):
        assert result.get(timeout=15) == [5, result.id, 1]


def test_a_retry_that_runs_at_once_is_not_overwritten_by_its_retry_state(app: Celery) -> None:
    """``retry(countdown=0)`` records RETRY before it sends the new message: the new run,
    on another thread, may finish first, and its result must stay."""
    tries: list[int] = []

    @app.task(bind=True, default_retry_delay=0)
    def once_more(self: Any) -> int:
        tries.append(self.request.retries)
        if self.request.retries == 0:
            raise self.retry(countdown=0)
        return self.request.retries

    def linger(sender: Any = None, **kwargs: Any) -> None:
        if tries == [0]:  # the retry was just sent: let the new run finish meanwhile
            wait_until(lambda: len(tries) == 2, timeout=5)
            time.sleep(0.2)

    retried: list[str] = []

    def on_retry(request: Any = None, **kwargs: Any) -> None:
        retried.append(request.id)

    signals.after_task_publish.connect(linger)
    signals.task_retry.connect(on_retry)
    try:
        result = once_more.delay()
        with worker(app, concurrency=2):
            assert result.get(timeout=15) == 1
            wait_until(lambda: retried == [result.id])  # the first run is over too
            assert app.AsyncResult(result.id).state == states.SUCCESS
    finally:
        signals.after_task_publish.disconnect(linger)
        signals.task_retry.disconnect(on_retry)


def test_a_beat_run_records_the_name_of_its_entry(app: Celery) -> None:
    """Beat sends each run with the ``periodic_task_name`` header (as Celery's beat does);
    the result records it (django-db shows it in the admin)."""

    @app.task
    def ping() -> str:
        return "pong"

    with worker(app, hostname="beatrun@%h"):
        result = ping.apply_async(headers={"periodic_task_name": "every-minute"})
        assert result.get(timeout=15) == "pong"
        assert app.results.meta(result.id)["periodic_task_name"] == "every-minute"
        plain = ping.delay()
        assert plain.get(timeout=15) == "pong"
        assert "periodic_task_name" not in app.results.meta(plain.id)


def test_solo_pool_runs_prefetched_jobs_back_to_back(app: Celery) -> None:
    """The solo pool runs its jobs in the consumer's own thread: between two prefetched jobs
    it does not wait for room in the prefetch window (a wait of up to 0.5 s each)."""
    app.conf.worker_prefetch_multiplier = 16
    ran: list[int] = []

    @app.task
    def note(i: int) -> None:
        ran.append(i)

    for i in range(40):
        note.delay(i)
    started = time.monotonic()
    with worker(app, pool="solo", concurrency=1):
        wait_until(lambda: len(ran) == 40, timeout=30)
        took = time.monotonic() - started
    assert took < 5, f"40 tasks took {took:.1f} s"  # one wait per job took about 17 s
