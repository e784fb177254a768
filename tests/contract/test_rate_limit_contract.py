"""Rate limits on every broker: per worker (Celery's meaning), global across workers, and
changed at run time. Only lower bounds on time are asserted: a limit makes things slower."""

from __future__ import annotations

import threading
import time

import pytest

from celeriac import Celery
from celeriac.rates import Rate, parse_rate
from celeriac.worker.ratelimit import GlobalWindow, TokenBucket
from contract.test_worker_contract import worker


def test_parse_rate() -> None:
    assert parse_rate("10/s") == Rate(10, 1)
    assert parse_rate("100/m") == Rate(100, 60)
    assert parse_rate("1000/h") == Rate(1000, 3600)
    assert parse_rate(5) == Rate(5, 1)
    assert parse_rate(None) is None and parse_rate("0/m") is None
    with pytest.raises(ValueError, match="bad rate limit"):
        parse_rate("ten per minute")


def test_a_bad_rate_is_an_error_where_the_task_is_defined() -> None:
    app = Celery("t", broker="memory://", backend="memory://")
    with pytest.raises(ValueError, match="bad rate limit"):

        @app.task(rate_limit="fast")
        def t() -> None: ...


def test_token_bucket_spaces_executions() -> None:
    now = [100.0]
    bucket = TokenBucket(Rate(4, 1), clock=lambda: now[0])
    assert bucket.wait() == 0.0
    assert bucket.wait() == pytest.approx(0.25)
    now[0] += 0.25
    assert bucket.wait() == 0.0
    now[0] += 10  # idle time does not bank a burst
    assert bucket.wait() == 0.0
    assert bucket.wait() > 0


def test_rate_limited_task_does_not_block_others(app: Celery) -> None:
    started: list[tuple[str, float]] = []

    @app.task(rate_limit="5/s")
    def slow_lane(i: int) -> int:
        started.append(("limited", time.monotonic()))
        return i

    @app.task
    def fast_lane(i: int) -> int:
        started.append(("free", time.monotonic()))
        return i

    limited = [slow_lane.delay(i) for i in range(6)]
    free = [fast_lane.delay(i) for i in range(6)]
    begin = time.monotonic()
    with worker(app, concurrency=2, prefetch_multiplier=2):
        assert [r.get(timeout=30) for r in free] == list(range(6))
        free_done = time.monotonic() - begin
        assert [r.get(timeout=30) for r in limited] == list(range(6))
    times = [t for kind, t in started if kind == "limited"]
    assert times[-1] - times[0] >= 5 * 0.2 * 0.9  # five gaps of 1/5 s
    assert free_done < times[-1] - begin  # the free tasks did not queue behind the limited ones


def test_global_rate_limit_is_shared_by_all_workers(app: Celery) -> None:
    started: list[float] = []
    lock = threading.Lock()

    def call_api(i: int) -> int:
        with lock:
            started.append(time.time())
        return i

    # three workers, each with its own app (own connections), as on three hosts
    apps = [
        Celery("node", broker=app.conf.broker_url, backend=app.conf.result_backend)
        for _ in range(3)
    ]
    for each in (app, *apps):
        each.task(name="api.call", global_rate_limit="20/s")(call_api)
    results = [app.send_task("api.call", (i,)) for i in range(40)]
    try:
        with worker(apps[0]), worker(apps[1]), worker(apps[2]):
            assert [r.get(timeout=60) for r in results] == list(range(40))
    finally:
        for each in apps:
            each.close()
    started.sort()
    assert started[-1] - started[0] >= 1.0  # 40 calls at 20/s need at least 1.5 s
    window = GlobalWindow(app, "x", Rate(20, 1))
    for i, t in enumerate(started):  # no sliding second holds more than the limit plus a share
        assert sum(1 for u in started[i:] if u - t < 1.0) <= 20 + window.share


def test_rate_limit_changed_at_run_time(app: Celery) -> None:
    @app.task
    def ping(i: int) -> float:
        return time.monotonic()

    app.control.rate_limit(ping.name, "4/s")
    with worker(app, concurrency=2) as w:
        w.rate_limits.refresh()  # what every heartbeat does
        times = [ping.delay(i).get(timeout=20) for i in range(1)]
        times += [r.get(timeout=20) for r in [ping.delay(i) for i in range(4)]]
        assert max(times) - min(times) >= 4 * 0.25 * 0.9
        w.set_rate_limit(ping.name, "1000/s")  # the in-process hook
        app.control.rate_limit(ping.name, None)
        fast = [r.get(timeout=20) for r in [ping.delay(i) for i in range(4)]]
        assert max(fast) - min(fast) < 1.0
