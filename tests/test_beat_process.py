"""Beat as a real process on every broker: it feeds a real worker, restarts without sending
anything twice, and two beats together send each run once."""

from __future__ import annotations

import datetime as dt
import itertools
import re
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


SENT = re.compile(r"beat: sent tick \((\S+)\) as ")


def assert_no_duplicates(project: Project, *beats: WorkerProcess) -> None:
    """Each scheduled run was sent once, by one beat, and the worker ran each message once.

    Judged by the runs' scheduled times (from the beats' logs), not by when the worker happened
    to run them: a worker still starting up runs the first ticks late, close together.
    """
    sent = [m[1] for beat in beats for line in beat.lines if (m := SENT.search(line))]
    assert len(sent) == len(set(sent)), sent
    scheduled = sorted(dt.datetime.fromisoformat(w).timestamp() for w in sent if w != "first")
    gaps = [b - a for a, b in itertools.pairwise(scheduled)]
    assert all(g > INTERVAL * 0.5 for g in gaps), gaps
    wait_until(lambda: len(ticks(project)) >= len(sent), timeout=30)
    ids = [r[1] for r in project.runs("tick")]
    assert len(ids) == len(set(ids)), ids


def test_beat_feeds_a_worker_and_restarts_without_duplicates(dist: Project) -> None:  # noqa: F811
    dist.set(CELERIAC_TEST_BEAT=str(INTERVAL))
    dist.worker("-c", "2")
    beat = dist.beat()
    wait_until(lambda: len(ticks(dist)) >= 4, timeout=30)
    beat.signal(signal.SIGTERM)
    assert beat.wait(20) == 0
    before = len(ticks(dist))
    time.sleep(1.2)  # down for two intervals: one catch-up run, not two
    again = dist.beat()
    wait_until(lambda: len(ticks(dist)) >= before + 4, timeout=30)
    assert_no_duplicates(dist, beat, again)


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
    assert_no_duplicates(dist, *beats)
