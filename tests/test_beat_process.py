"""Beat as a real process on every broker: it feeds a real worker, restarts without sending
anything twice, and two beats together send each run once."""

from __future__ import annotations

import itertools
import signal
import time

import pytest

from conftest import Project, WorkerProcess, wait_until
from test_distributed import dist  # noqa: F401  (the fixture: a project on each broker)

pytestmark = pytest.mark.slow
INTERVAL = 0.5


def ticks(project: Project) -> list[float]:
    return sorted(float(r[0]) for r in project.runs("tick"))


def leads(beat: WorkerProcess) -> bool:
    return any(line.rstrip().endswith(" leads") for line in beat.lines)


def assert_no_duplicates(times: list[float]) -> None:
    gaps = [b - a for a, b in itertools.pairwise(times)]
    assert all(g > INTERVAL * 0.5 for g in gaps), gaps  # a run sent twice shows as a tiny gap


def test_beat_feeds_a_worker_and_restarts_without_duplicates(dist: Project) -> None:  # noqa: F811
    dist.set(CELERIAC_TEST_BEAT=str(INTERVAL))
    dist.worker("-c", "2")
    beat = dist.beat()
    wait_until(lambda: len(ticks(dist)) >= 4, timeout=30)
    beat.signal(signal.SIGTERM)
    assert beat.wait(20) == 0
    before = len(ticks(dist))
    time.sleep(1.2)  # down for two intervals: one catch-up run, not two
    dist.beat()
    wait_until(lambda: len(ticks(dist)) >= before + 4, timeout=30)
    assert_no_duplicates(ticks(dist))


def test_two_beats_send_each_run_once_and_one_takes_over(dist: Project) -> None:  # noqa: F811
    dist.set(CELERIAC_TEST_BEAT=str(INTERVAL), CELERIAC_TEST_BEAT_LEASE="1.5")
    dist.worker("-c", "2")
    beats = [dist.beat("-s", str(dist.tmp_path / f"{n}.json")) for n in "ab"]
    wait_until(lambda: len(ticks(dist)) >= 6, timeout=30)
    [leader] = [b for b in beats if leads(b)]
    leader.kill()  # SIGKILL: no goodbye; its lease must run out
    count = len(ticks(dist))
    wait_until(lambda: len(ticks(dist)) >= count + 4, timeout=30)
    [standby] = [b for b in beats if b is not leader]
    assert leads(standby)
    assert_no_duplicates(ticks(dist))
