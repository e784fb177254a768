"""The worker in-process, on the in-memory broker and backend, in burst mode."""

from __future__ import annotations

import time
from typing import Any

import pytest

from celeriac import Celery, signals, states
from celeriac.brokers.base import Outgoing
from celeriac.exceptions import SoftTimeLimitExceeded


class AppError(Exception):
    """Raised by a task; get() must re-raise this very type."""


def run_worker(app: Celery, **options: Any) -> None:
    options.setdefault("pool", "threads")
    options.setdefault("concurrency", 2)
    app.Worker(burst=True, install_signal_handlers=False, **options).start()


def reasons(app: Celery, queue: str = "celery") -> list[str]:
    return [dl.reason for dl in app.broker.dead_letters(queue)]


@pytest.mark.parametrize("pool", ["threads", "solo", "asyncio"])
def test_results_failures_and_async_tasks(memory_app: Celery, pool: str) -> None:
    @memory_app.task
    def add(x, y):
        return x + y

    @memory_app.task
    def fail():
        raise AppError("broken")

    @memory_app.task
    async def async_mul(x, y):
        return x * y

    ok, bad, coro = add.delay(2, 3), fail.delay(), async_mul.delay(4, 5)
    run_worker(memory_app, pool=pool)
    assert ok.get(timeout=5) == 5 and ok.state == states.SUCCESS and ok.date_done
    assert coro.get(timeout=5) == 20
    with pytest.raises(AppError, match="broken"):
        bad.get(timeout=5)
    assert bad.failed() and "AppError" in (bad.traceback or "")
    assert memory_app.broker.queue_length("celery") == 0


def test_retries_then_dead_letter(memory_app: Celery) -> None:
    tries: list[int] = []

    @memory_app.task(
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

    @memory_app.task(bind=True, max_retries=1, default_retry_delay=0.05)
    def doomed(self):
        raise self.retry(exc=AppError("never"))

    good, bad = flaky.delay(), doomed.delay()
    run_worker(memory_app)
    assert good.get(timeout=5) == "ok" and tries == [0, 1, 2]
    with pytest.raises(AppError):
        bad.get(timeout=5)
    assert any("max retries" in r for r in reasons(memory_app))


def test_bad_input_goes_to_the_dead_letter_queue_and_the_worker_goes_on(memory_app: Celery) -> None:
    @memory_app.task
    def add(x, y):
        return x + y

    memory_app.broker.publish([Outgoing(b"\x00not a message", "celery")])
    memory_app.send_task("no.such.task", [1])
    after = add.delay(1, 1)
    run_worker(memory_app)
    assert after.get(timeout=5) == 2
    got = reasons(memory_app)
    assert any("invalid message" in r for r in got)
    assert any("unknown task 'no.such.task'" in r for r in got)


def test_priority_9_runs_first(memory_app: Celery) -> None:
    order: list[int] = []

    @memory_app.task
    def t1(p):
        order.append(p)

    for p in (5, 6, 7, 9, 0, 3):
        t1.apply_async(args=[p], priority=p)
    memory_app.conf.worker_prefetch_multiplier = 1
    run_worker(memory_app, pool="solo")
    assert order == [9, 7, 6, 5, 3, 0]


def test_countdown_is_held_by_the_broker(memory_app: Celery) -> None:
    ran_at: list[float] = []

    @memory_app.task
    def stamp():
        ran_at.append(time.time())

    sent = time.time()
    result = stamp.apply_async(countdown=0.4)
    run_worker(memory_app)
    result.get(timeout=5)
    assert ran_at[0] - sent >= 0.35


def test_revoked_and_expired_tasks_do_not_run(memory_app: Celery) -> None:
    ran: list[str] = []

    @memory_app.task
    def work(tag):
        ran.append(tag)

    revoked = work.delay("revoked")
    revoked.revoke()
    expired = work.apply_async(args=["expired"], expires=0.01)
    time.sleep(0.05)
    kept = work.delay("kept")
    run_worker(memory_app)
    kept.get(timeout=5)
    assert ran == ["kept"]
    assert revoked.state == states.REVOKED and expired.state == states.REVOKED


def test_soft_time_limit_raises_inside_the_task(memory_app: Celery) -> None:
    @memory_app.task(soft_time_limit=0.2)
    def slow():
        try:
            for _ in range(100):
                time.sleep(0.02)
        except SoftTimeLimitExceeded:
            return "cleaned up"
        return "finished"

    result = slow.delay()
    run_worker(memory_app)
    assert result.get(timeout=5) == "cleaned up"


def test_worker_signals(memory_app: Celery) -> None:
    seen: list[str] = []

    @memory_app.task
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
        ok.delay()
        memory_app.send_task("missing.task")
        run_worker(memory_app, pool="solo")
    finally:
        for sig, fn in receivers.items():
            sig.disconnect(fn)
    assert seen[0] == "ready" and seen[-1] == "shutdown"
    assert "unknown:missing.task" in seen
    i = seen.index("received")
    assert seen[i : i + 4] == ["received", "prerun", "success", "postrun"]


def test_progress_link_and_errback(memory_app: Celery) -> None:
    calls: list[Any] = []

    @memory_app.task(bind=True)
    def progress(self):
        self.update_state(state="PROGRESS", meta={"done": 1})
        return 10

    @memory_app.task
    def after(value):
        calls.append(("after", value))

    @memory_app.task
    def broken():
        raise AppError("x")

    @memory_app.task
    def on_error(request, exc, traceback):
        calls.append(("errback", request.id, type(exc).__name__))

    first = progress.apply_async(link=after.s())
    failing = broken.apply_async(link_error=on_error.s())
    run_worker(memory_app)
    assert first.get(timeout=5) == 10
    assert ("after", 10) in calls
    assert ("errback", failing.id, "AppError") in calls


def test_acks_early_opt_out(memory_app: Celery) -> None:
    @memory_app.task(acks_late=False)
    def quick():
        return "done"

    result = quick.delay()
    run_worker(memory_app)
    assert result.get(timeout=5) == "done"


def test_msgpack_and_pickle_only_when_accepted(memory_app: Celery) -> None:
    memory_app.conf.accept_content = ["json", "msgpack"]

    @memory_app.task(serializer="msgpack")
    def packed(x):
        return x * 2

    @memory_app.task(serializer="pickle")
    def pickled(x):
        return x

    ok = packed.delay(21)
    refused = pickled.delay(1)
    run_worker(memory_app)
    assert ok.get(timeout=5) == 42
    assert refused.state == states.PENDING
    assert any("refusing to decode" in r for r in reasons(memory_app))


def test_hard_time_limit_in_the_threads_pool(memory_app: Celery) -> None:
    from celeriac.exceptions import TimeLimitExceeded

    @memory_app.task(time_limit=0.2)
    def busy():
        for _ in range(200):
            time.sleep(0.01)

    result = busy.delay()
    run_worker(memory_app, pool="threads")
    with pytest.raises(TimeLimitExceeded):
        result.get(timeout=5)
