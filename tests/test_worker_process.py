"""The CLI worker as a real process on the SQLite broker: signals, limits, the CLI.

Crashes and many workers are tested on every broker in test_distributed.py."""

from __future__ import annotations

import json
import os
import pickle
import signal
import socket
import subprocess
import sys
import time
from typing import Any

import pytest

from celeriac import states
from celeriac.exceptions import TaskError, TimeLimitExceeded, WorkerLostError
from conftest import Project, run_cli, wait_until

pytestmark = pytest.mark.slow


def test_prefork_worker_runs_tasks_and_shuts_down_warm(project: Project) -> None:
    worker = project.worker("-c", "2")
    assert project.send("add", 2, 3).get(timeout=20) == 5
    long = project.send("sleep_record", "long", 1.0)
    wait_until(lambda: project.runs("start"))
    worker.signal(signal.SIGTERM)
    assert worker.wait() == 0
    assert [r[0] for r in project.runs("end")] == ["long"]  # it was allowed to finish
    assert long.get(timeout=5) == "long"
    assert "Warm shutdown" in worker.output


@pytest.fixture(params=["consuming", "queue", "datagrams"])
def prefork_project(request: pytest.FixtureRequest, project: Project) -> Project:
    """The project with each kind of prefork pool: children that consume by themselves (the
    kind on this broker), and children fed by their parent through a queue (on brokers whose
    leases live in one process), on each socket type that queue may use."""
    if request.param != "consuming":
        project.set(CELERIAC_TEST_PREFORK=request.param)
    return project


def test_the_parent_is_told_before_each_fork(prefork_project: Project) -> None:
    """``worker_before_create_process`` in the parent before each child is forked (on both
    kinds of prefork pool), then ``worker_process_init`` in the child."""
    project = prefork_project
    worker = project.worker("-c", "2")
    assert project.send("add", 1, 1).get(timeout=20) == 2
    wait_until(lambda: len(project.runs("child")) == 2)
    forks, children = project.runs("fork"), project.runs("child")
    assert [pid for pid, _ in forks] == [str(worker.proc.pid)] * 2
    fed = project.env.get("CELERIAC_TEST_PREFORK") in ("queue", "datagrams")
    assert {pool for _, pool in forks} == {"FedPool" if fed else "ConsumingPool"}
    assert [parent for _, parent in children] == [str(worker.proc.pid)] * 2
    lines = project.runs_file.read_text().splitlines()
    assert lines.index(next(x for x in lines if x.startswith("fork"))) < lines.index(
        next(x for x in lines if x.startswith("child"))
    )


def test_a_long_task_does_not_hold_up_short_ones(prefork_project: Project) -> None:
    project = prefork_project
    project.worker("-c", "2")
    project.send("sleep_record", "long", 4.0)
    wait_until(lambda: project.runs("start"))
    results = [project.send("record", str(n)) for n in range(8)]
    assert [r.get(timeout=3) for r in results] == [str(n) for n in range(8)]
    assert not project.runs("end")  # all ran in the other child while the long one ran


def test_a_task_revoked_while_queued_for_the_children_does_not_run(
    prefork_project: Project,
) -> None:
    project = prefork_project
    project.set(CELERIAC_TEST_PREFETCH="4")
    project.worker("-c", "1")
    project.send("sleep_record", "long", 2.0)
    wait_until(lambda: project.runs("start"))
    doomed, kept = project.send("record", "doomed"), project.send("record", "kept")
    time.sleep(0.3)  # received, and queued in the pool behind the running task
    doomed.revoke()
    assert kept.get(timeout=20) == "kept"
    assert [r[0] for r in project.runs("run")] == ["kept"]
    assert doomed.state == states.REVOKED


def test_pool_restart_runs_a_reloaded_modules_new_code(
    prefork_project: Project, tmp_path: Any
) -> None:
    """``control pool_restart -M mod`` imports a module in the worker's process, and with
    ``--reload`` reloads it there; both replace the prefork children, which run the new
    code, while without a restart the children keep what they have."""
    project = prefork_project
    helper = tmp_path / "restart_helper.py"
    helper.write_text("def value():\n    return 1\n")
    path = os.pathsep.join([str(tmp_path), project.env["PYTHONPATH"]])
    project.set(PYTHONPATH=path, CELERIAC_TEST_CONF='{"worker_pool_restarts": true}')
    project.worker("-c", "2", "-n", "restart@%h")

    def pool_restart(*flags: str) -> subprocess.CompletedProcess[str]:
        args = ("-A", "proj", "control", "pool_restart", *flags, "-M", "restart_helper")
        return run_cli(*args, "-t", "5", "-d", f"restart@{socket.gethostname()}", env=project.env)

    def value() -> int:
        return int(project.send("module_value", "restart_helper").get(timeout=20))

    imported = pool_restart()
    assert imported.returncode == 0 and "reload started" in imported.stdout
    wait_until(lambda: value() == 1)
    before = {project.send("pid").get(timeout=20) for _ in range(6)}
    helper.write_text("def value():\n    return 22\n")
    assert {value() for _ in range(4)} == {1}  # the children keep the module they have
    reloaded = pool_restart("--reload")
    assert reloaded.returncode == 0 and "reload started" in reloaded.stdout
    wait_until(lambda: value() == 22)  # a replaced child may finish one more task first
    assert {value() for _ in range(4)} == {22}
    after = {project.send("pid").get(timeout=20) for _ in range(6)}
    assert not before & after


def test_a_job_larger_than_the_pools_queue_takes(prefork_project: Project) -> None:
    project = prefork_project
    project.worker("-c", "2")
    big = "x" * 6_000_000
    assert project.send("add", big, "y").get(timeout=30) == big + "y"


def test_a_killed_childs_task_goes_back_to_its_queue_and_runs_again(
    prefork_project: Project,
) -> None:
    project = prefork_project
    project.worker("-c", "1")
    victim = project.send("sleep_record", "victim", 2.0)
    wait_until(lambda: project.runs("start"))
    queued = [project.send("record", str(n)) for n in range(5)]
    time.sleep(0.3)  # queued for the pool behind the running task
    os.kill(int(project.runs("start")[0][1]), signal.SIGKILL)  # as the OOM killer would
    assert victim.get(timeout=30) == "victim"
    assert [r[0] for r in project.runs("start")] == ["victim", "victim"]
    assert [r[0] for r in project.runs("end")] == ["victim"]
    assert [r.get(timeout=20) for r in queued] == [str(n) for n in range(5)]
    assert sorted(r[0] for r in project.runs("run")) == [str(n) for n in range(5)]  # once each


def test_a_task_that_keeps_killing_its_process_is_dead_lettered(
    prefork_project: Project,
) -> None:
    project = prefork_project
    project.set(CELERIAC_TEST_CONF='{"worker_max_deliveries": 3}')
    project.worker("-c", "1")
    doomed = project.send("crash", "doomed")
    with pytest.raises(WorkerLostError, match="delivered 4 times"):
        doomed.get(timeout=30)
    assert len(project.runs("start")) == 3
    [letter] = wait_until(lambda: project.app.broker.dead_letters("celery"))
    assert "worker_max_deliveries=3" in letter.reason
    assert project.send("add", 1, 2).get(timeout=20) == 3  # and the worker goes on


def test_a_task_raising_systemexit_fails_and_its_child_goes_on(prefork_project: Project) -> None:
    project = prefork_project
    project.worker("-c", "1")
    exits, interrupted = project.send("exits", 3), project.send("interrupted")
    for result, name in ((exits, "SystemExit: 3"), (interrupted, "KeyboardInterrupt")):
        with pytest.raises(TaskError, match=f"^{name}$"):
            result.get(timeout=20)
    pids = {project.send("pid").get(timeout=20) for _ in range(3)}
    assert len(pids) == 1  # the same child: it did not die of it


def test_celerys_task_reject_on_worker_lost_off_fails_a_killed_childs_task(
    project: Project,
) -> None:
    project.set(CELERIAC_TEST_CONF='{"task_reject_on_worker_lost": false}')
    project.worker("-c", "1")
    doomed = project.send("crash", "doomed")
    with pytest.raises(WorkerLostError, match="killed by SIGKILL"):
        doomed.get(timeout=20)
    assert len(project.runs("start")) == 1


def test_inspect_sees_what_the_prefork_children_run_and_hold(prefork_project: Project) -> None:
    project = prefork_project
    project.set(CELERIAC_TEST_PREFETCH="2")
    project.worker("-c", "1", "-n", "inspected@%h")
    long = project.send("sleep_record", "long", 60.0)
    wait_until(lambda: project.runs("start"))
    waiting = project.send("record", "waiting")
    inspect = project.app.control.inspect(timeout=5, limit=1)
    host = next(iter(inspect.ping() or {}))
    assert host.startswith("inspected@")
    child = int(project.runs("start")[0][1])
    active = inspect.active()[host]
    assert [(t["id"], t["args"]) for t in active] == [(long.id, ["long", 60.0])]
    assert active[0]["worker_pid"] == child  # the child that runs it, and since when
    assert time.time() - 30 < active[0]["time_start"] <= time.time()
    if "CELERIAC_TEST_PREFORK" in project.env:  # a consuming child gives a held-up job back
        wait_until(lambda: [t["id"] for t in inspect.reserved()[host]] == [waiting.id])
    stats = inspect.stats()[host]
    assert stats["pool"]["processes"] == [child] and stats["pid"] != child

    if "CELERIAC_TEST_PREFORK" not in project.env:  # the command line, once
        _check_the_inspect_commands(project, host, long.id)
    long.revoke(terminate=True)
    assert waiting.get(timeout=20) == "waiting"


def _check_the_inspect_commands(project: Project, host: str, running: str) -> None:
    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        command = [sys.executable, "-m", "celeriac", "-A", "proj", *args, "-t", "3"]
        return subprocess.run(command, env=project.env, capture_output=True, text=True)

    active_out = cli("inspect", "active", "--json")
    assert [t["id"] for t in json.loads(active_out.stdout)[host]] == [running]
    status = cli("status")
    assert status.returncode == 0 and f"-> {host}: OK" in status.stdout
    assert "1 node online." in status.stdout
    nobody = cli("inspect", "ping", "-d", "nobody@nowhere")
    assert nobody.returncode == 1 and "No nodes replied" in nobody.stderr


def test_jobs_held_up_behind_a_long_task_go_to_another_worker(project: Project) -> None:
    project.set(CELERIAC_TEST_PREFETCH="4")
    project.send("sleep_record", "long", 8.0)
    shorts = [project.send("record", str(n)) for n in range(3)]
    project.worker("-c", "1")  # claims all four at once
    wait_until(lambda: project.runs("start"))
    project.worker("-c", "1", "-n", "second@%h")
    assert [r.get(timeout=6) for r in shorts] == ["0", "1", "2"]
    assert not project.runs("end")
    long_pid = project.runs("start")[0][1]
    assert all(pid != long_pid for _, pid, _ in project.runs("run"))


def test_a_killed_child_does_not_run_again_what_it_finished(project: Project) -> None:
    # eight claimed at once, and room for more only once four are done: the two quick tasks'
    # acknowledgements are still to go when the child running the third is killed
    project.set(CELERIAC_TEST_PREFETCH="8")
    for n in range(2):
        project.send("record", f"quick{n}", ignore_result=True)  # no result tells it ran
    victim = project.send("sleep_record", "victim", 2.0)
    rest = [project.send("record", f"rest{n}") for n in range(5)]
    project.worker("-c", "1")
    wait_until(lambda: project.runs("start"))
    os.kill(int(project.runs("start")[0][1]), signal.SIGKILL)
    assert victim.get(timeout=30) == "victim"
    assert [r.get(timeout=20) for r in rest] == [f"rest{n}" for n in range(5)]
    ran = sorted(r[0] for r in project.runs("run"))
    assert ran == ["quick0", "quick1", *(f"rest{n}" for n in range(5))]  # once each


def test_warm_shutdown_gives_back_what_a_child_prefetched(project: Project) -> None:
    project.set(CELERIAC_TEST_PREFETCH="4")
    project.send("sleep_record", "long", 1.5)
    for n in range(3):
        project.send("record", str(n))
    worker = project.worker("-c", "1")  # claims all four at once
    wait_until(lambda: project.runs("start"))
    worker.signal(signal.SIGTERM)
    assert worker.wait() == 0
    assert [r[0] for r in project.runs("end")] == ["long"]
    assert not project.runs("run")
    assert project.app.broker.queue_length("celery") == 3


def test_rate_limits_hold_across_the_prefork_children(project: Project) -> None:
    project.worker("-c", "2")
    # more than one child holds back for its turn (ten each, at prefetch 1): both take some
    results = [project.send("limited", n) for n in range(30)]
    assert sorted(r.get(timeout=20) for r in results) == list(range(30))
    started = sorted(float(r[1]) for r in project.runs("limited"))
    assert len({r[2] for r in project.runs("limited")}) == 2
    # 20/s for the worker, not for each child: 30 starts span about 1.5 s, not 0.75
    assert started[-1] - started[0] >= 1.1


@pytest.fixture(params=["SOCK_SEQPACKET", "SOCK_DGRAM"])
def pool_queue(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Any:
    """A prefork pool's job queue (of one slot) on each socket type it may use."""
    from celeriac.worker.pools import fed as prefork

    kind = getattr(socket, request.param)
    monkeypatch.setattr(prefork, "SOCKET_TYPES", (kind,))
    queue = prefork._Queue(1)
    assert queue.recv_end.type == kind
    return queue


def test_a_job_over_the_sockets_real_limit_goes_through_a_file(pool_queue: Any) -> None:
    # a system whose datagrams are smaller than the socket's buffer says (macOS): the send
    # is refused, and the job goes through a file instead
    pool_queue.max_datagram = 1 << 30
    job = (1, "x" * (12 << 20))
    assert pool_queue.put(pickle.dumps(job))
    assert pool_queue.max_datagram < 1 << 30
    assert pool_queue.take(0, pool_queue.generation()) == job
    assert pool_queue.slot(0)[0] == 1


def test_a_child_stops_when_the_pool_parent_dies(pool_queue: Any) -> None:
    # where the system cannot kill children with their parent, a child sees the parent's
    # death as the end of a pipe only the parent holds open (and of the queue, on sockets
    # that tell: each child drops its copy of the sending end)
    pool_queue.child_side()  # as a child does: with no parent left, no sending end is open
    assert pool_queue.take(0, pool_queue.generation()) is None
    assert pool_queue.slot(0)[0] == 0


def test_hard_time_limit_kills_the_child_and_the_worker_goes_on(project: Project) -> None:
    project.worker("-c", "1")
    limited = project.send("hard_limited", 10)
    with pytest.raises(TimeLimitExceeded):
        limited.get(timeout=20)
    assert limited.state == states.FAILURE
    assert project.send("add", 1, 1).get(timeout=20) == 2


def test_second_signal_is_a_cold_shutdown_that_requeues(project: Project) -> None:
    worker = project.worker("-c", "1")
    project.send("sleep_record", "cold", 5.0)
    wait_until(lambda: project.runs("start"))
    worker.signal(signal.SIGTERM)
    wait_until(lambda: "Warm shutdown" in worker.output)
    worker.signal(signal.SIGTERM)
    assert worker.wait() == 1
    assert "Cold shutdown" in worker.output
    assert project.app.broker.queue_length("celery") == 1  # back in the queue, not lost


def test_cold_shutdown_returns_the_jobs_queued_for_the_children(project: Project) -> None:
    worker = project.worker("-c", "1")
    project.send("sleep_record", "cold", 30.0)
    wait_until(lambda: project.runs("start"))
    for n in range(4):
        project.send("record", str(n))
    time.sleep(0.3)  # queued in the pool for the child, or prefetched by the worker
    worker.signal(signal.SIGTERM)
    wait_until(lambda: "Warm shutdown" in worker.output)
    worker.signal(signal.SIGTERM)
    assert worker.wait(10) == 1
    assert project.app.broker.queue_length("celery") == 5  # the running one and all queued
    assert not project.runs("run")


def test_cli_errors_are_one_clear_line(project: Project) -> None:
    assert run_cli("--version").stdout.startswith("celeriac ")
    bad_app = run_cli("-A", "no_such_project", "worker", env=project.env)
    assert bad_app.returncode == 2
    assert bad_app.stderr.strip().splitlines() == [
        "Error: Unable to load app 'no_such_project': No module named 'no_such_project'"
    ]
    bad_url = run_cli(
        "-A", "proj", "--broker", "nosuch://x", "call", "proj.tasks.add", env=project.env
    )
    assert bad_url.returncode == 1
    assert "unknown broker URL 'nosuch://x'" in bad_url.stderr


def test_cli_call_and_result(project: Project) -> None:
    project.worker("-c", "1")
    sent = run_cli("-A", "proj", "call", "proj.tasks.add", "--args", "[4, 5]", env=project.env)
    assert sent.returncode == 0, sent.stderr
    task_id = sent.stdout.strip()
    shown = run_cli("-A", "proj", "result", task_id, "--wait", "20", env=project.env)
    assert '"state": "SUCCESS"' in shown.stdout and '"result": 9' in shown.stdout


def test_max_tasks_per_child_replaces_the_process(project: Project) -> None:
    project.worker("-c", "1", "--max-tasks-per-child", "1")
    pids = {project.send("pid").get(timeout=20) for _ in range(3)}
    assert len(pids) == 3


def test_cli_purge_and_dead_letter_commands(project: Project) -> None:
    for i in range(3):
        project.send("add", i, i)
    purged = run_cli("-A", "proj", "purge", "-f", env=project.env)
    assert purged.stdout.strip() == "Purged 3 messages from 1 queue."
    project.app.send_task("proj.tasks.nope")
    burst = run_cli("-A", "proj", "worker", "--burst", "-P", "solo", "-q", env=project.env)
    assert burst.returncode == 0, burst.stderr
    listed = run_cli("-A", "proj", "dlq", "list", env=project.env)
    assert "unknown task 'proj.tasks.nope'" in listed.stdout
    requeued = run_cli("-A", "proj", "dlq", "requeue", env=project.env)
    assert requeued.stdout.strip() == "Requeued 1 message(s) to celery."
    assert project.app.broker.queue_length("celery") == 1
    run_cli("-A", "proj", "worker", "--burst", "-P", "solo", "-q", env=project.env)
    dropped = run_cli("-A", "proj", "dlq", "purge", env=project.env)
    assert dropped.stdout.strip() == "Deleted 1 message(s) from celery.dlq."


def test_burst_mode_with_consuming_children(project: Project) -> None:
    for n in range(6):
        project.send("record", str(n))
    burst = run_cli("-A", "proj", "worker", "--burst", "-c", "2", "-q", env=project.env)
    assert burst.returncode == 0, burst.stderr
    assert sorted(r[0] for r in project.runs("run")) == [str(n) for n in range(6)]
    assert project.app.broker.queue_length("celery") == 0


def test_exclude_queues(project: Project) -> None:
    project.worker("-Q", "a,b", "-X", "b", "-c", "1")
    in_a = project.send("add", 1, 2, queue="a")
    project.send("add", 3, 4, queue="b")
    assert in_a.get(timeout=20) == 3
    assert project.app.broker.queue_length("b") == 1


def test_revoke_terminate_kills_the_running_task_and_the_worker_goes_on(project: Project) -> None:
    worker = project.worker("-c", "1")
    result = project.send("forever", "f")
    wait_until(lambda: project.runs("start"))
    result.revoke(terminate=True, signal="SIGKILL")
    wait_until(lambda: result.state == states.REVOKED)
    try:
        assert project.send("add", 1, 2).get(timeout=20) == 3  # a new child took over
    except Exception as exc:
        raise AssertionError(worker.output) from exc
    assert "Terminating revoked task" in worker.output
    assert len(project.runs("start")) == 1  # not redelivered


def test_celerys_start_up_flags_are_accepted(project: Project, tmp_path: Any) -> None:
    """A start-up script's Celery flags: the ones that matter here work (pid file, time
    limits, memory per child, purge), the rest are accepted and say why they are not
    needed."""
    project.send("add", 0, 0)  # waiting before start: --purge deletes it
    pidfile = tmp_path / "w-%n.pid"
    worker = project.worker(
        "-c", "1", "-E", "--without-gossip", "--without-mingle", "--without-heartbeat",
        "-O", "fair", "--autoscale", "1,1", "--statedb", str(tmp_path / "state"),
        "--pidfile", str(pidfile), "--time-limit", "1", "--soft-time-limit", "0.5",
        "--max-memory-per-child", "1", "--purge",
    )  # fmt: skip
    written = tmp_path / "w-celeriac.pid"
    assert int(written.read_text()) == worker.proc.pid
    slow = project.send("sleep_record", "slow", 3.0)
    with pytest.raises(Exception, match="time limit"):
        slow.get(timeout=20)
    # a child over --max-memory-per-child (1 KB: every one) is replaced after each task
    assert len({project.send("pid").get(timeout=20) for _ in range(3)}) == 3
    assert "--without-gossip is accepted and not needed" in worker.output
    assert "--purge: deleted 1 waiting message(s)" in worker.output
    twice = run_cli("-A", "proj", "worker", "--pidfile", str(pidfile), env=project.env)
    assert twice.returncode == 1 and "names a running process" in twice.stderr
    worker.signal(signal.SIGTERM)
    assert worker.wait() == 0
    assert not written.exists()  # removed at exit


def test_detach_runs_the_worker_in_the_background(project: Project, tmp_path: Any) -> None:
    pidfile, logfile = tmp_path / "worker.pid", tmp_path / "worker.log"
    started = run_cli(
        "-A", "proj", "worker", "-c", "1", "--detach", "--pidfile", str(pidfile),
        "--logfile", str(logfile), "-l", "info", env=project.env,
    )  # fmt: skip
    assert started.returncode == 0, started.stderr
    wait_until(lambda: pidfile.exists() and pidfile.read_text().strip(), timeout=20)
    pid = int(pidfile.read_text())
    try:
        assert project.send("add", 2, 2).get(timeout=20) == 4
        wait_until(lambda: " ready: " in logfile.read_text())
    finally:
        os.kill(pid, signal.SIGTERM)
    wait_until(lambda: not pidfile.exists(), timeout=30)


def test_a_celery_only_scheduler_stops_beat_with_what_to_use(project: Project) -> None:
    beat = run_cli(
        "-A", "proj", "beat", "-S", "django_celery_beat.schedulers:DatabaseScheduler",
        env=project.env,
    )  # fmt: skip
    assert beat.returncode == 1
    assert "use celeriac's Django scheduler instead (-S django" in beat.stderr
    custom = run_cli("-A", "proj", "beat", "--scheduler", "no.such:Scheduler", env=project.env)
    assert custom.returncode == 1 and "cannot import scheduler 'no.such:Scheduler'" in custom.stderr
