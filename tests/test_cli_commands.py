"""The commands Celery projects start with besides the worker: multi, control (every
subcommand), shell, report, events and migrate; and celeriac's queues."""

from __future__ import annotations

import ast
import json
import os
import signal
import socket
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest

from celeriac import Celery
from celeriac.brokers.base import Outgoing
from celeriac.cli import main
from celeriac.cli.messages import age
from celeriac.cli.multi import parse_nodes
from celeriac.monitor.store import create_store
from conftest import Project, WorkerProcess, run_cli, wait_until
from services import RedisServer, free_port, require_redis_server


def _run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as exit_:
        main(list(args))
    out, err = capsys.readouterr()
    return int(exit_.value.code or 0), out, err


# -- multi ---------------------------------------------------------------------------------


def test_multi_names_nodes_and_their_options_as_celery_does(tmp_path: Path) -> None:
    nodes, common, glob = parse_nodes(
        ["3", "-A", "proj", "-l", "info", "-c:1", "4", "-Q:2-3", "a,b",
         f"--pidfile={tmp_path}/%n.pid", "--logfile", f"{tmp_path}/%n%I.log"]
    )  # fmt: skip
    assert [n.short for n in nodes] == ["celery1", "celery2", "celery3"]
    assert common == ["-l", "info"]
    assert glob == ["-A", "proj"]
    assert nodes[0].args == ["-c", "4"] and nodes[1].args == nodes[2].args == ["-Q", "a,b"]
    assert nodes[0].pidfile == f"{tmp_path}/celery1.pid"
    assert nodes[2].logfile == f"{tmp_path}/celery3.log"  # %I: empty in the main process
    on_host, _, _ = parse_nodes(["2", "--hostname=worker.example.com", "-c", "3"])
    assert [n.name for n in on_host] == ["celery1@worker.example.com", "celery2@worker.example.com"]
    named, _, _ = parse_nodes(["w1", "w2@example.com", "-c:w2", "2"])
    assert [n.name.partition("@")[0] for n in named] == ["w1", "w2"]
    assert named[1].name == "w2@example.com" and named[1].args == ["-c", "2"]
    assert named[0].pidfile == os.path.join(os.getcwd(), "w1.pid")


def test_multi_show_names_and_expand(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = _run(capsys, "multi", "names", "2")
    assert code == 0 and [line.partition("@")[0] for line in out.split()] == ["celery1", "celery2"]
    code, out, _ = _run(capsys, "multi", "expand", "/var/log/%n.log", "w1", "w2")
    assert out.split() == ["/var/log/w1.log", "/var/log/w2.log"]
    code, out, _ = _run(capsys, "multi", "show", "2", "-A", "proj", "-c:2", "3")
    first, second = out.strip().splitlines()
    assert " -A proj worker --detach -n celery1@" in first and "-c 3" not in first
    assert second.endswith("-c 3") and "--pidfile=" in second and "--logfile=" in second
    code, out, _ = _run(capsys, "multi", "get", "w2", "w1", "w2", "-A", "proj")
    assert out.count("\n") == 1 and "-n w2@" in out
    code, _, err = _run(capsys, "multi", "start")
    assert code == 2 and "name the nodes" in err
    code, out, _ = _run(
        capsys, "multi", "stop", "w1", "-KILL", "--nosplash", "--pidfile=/nonexistent/%n.pid"
    )
    assert code == 0 and "multi v" not in out and "w1@" in out and ": DOWN" in out


@pytest.mark.slow
def test_multi_starts_stops_and_restarts_detached_workers(project: Project, tmp_path: Path) -> None:
    files = [f"--pidfile={tmp_path}/%n.pid", f"--logfile={tmp_path}/%n%I.log"]
    started = run_cli("multi", "start", "w1", "w2", "-A", "proj", "-c", "1", "-l", "info", *files,
                   env=project.env)  # fmt: skip
    pids = [tmp_path / "w1.pid", tmp_path / "w2.pid"]
    try:
        assert started.returncode == 0, started.stdout + started.stderr
        assert started.stdout.count(": OK (pid ") == 2
        assert all(p.exists() for p in pids)
        assert [project.send("add", i, i).get(timeout=30) for i in range(4)] == [0, 2, 4, 6]
        status = run_cli("-A", "proj", "status", "-t", "1.5", env=project.env)
        assert "2 nodes online." in status.stdout, status.stdout + status.stderr
        again = run_cli("multi", "start", "w1", "w2", "-A", "proj", *files, env=project.env)
        assert again.stdout.count("already running") == 2
        first = [int(p.read_text()) for p in pids]
        restarted = run_cli("multi", "restart", "w1", "w2", "-A", "proj", "-c", "1", *files,
                         env=project.env)  # fmt: skip
        assert restarted.returncode == 0, restarted.stdout + restarted.stderr
        assert restarted.stdout.count(": OK (pid ") == 2
        assert [int(p.read_text()) for p in pids] != first
        assert project.send("add", 1, 1).get(timeout=30) == 2
    finally:
        stopped = run_cli("multi", "stopwait", "w1", *files, env=project.env)
        killed = run_cli("multi", "kill", "w2", *files, env=project.env)
    assert stopped.returncode == 0 and stopped.stdout.count("TERM -> ") == 1
    assert killed.returncode == 0 and "Killing nodes" in killed.stdout
    assert killed.stdout.count("KILL -> ") == 1
    assert not any(p.exists() for p in pids)
    assert "Warm shutdown" in (tmp_path / "w1.log").read_text()
    down = run_cli("multi", "stop", "w1", "w2", *files, env=project.env)
    assert down.stdout.count(": DOWN") == 2


# -- control, inspect ----------------------------------------------------------------------


@pytest.mark.slow
def test_every_control_command_from_the_command_line(project: Project) -> None:
    project.worker("-c", "1", "-n", "cli@%h", "-P", "threads")
    # named, so that each call returns once that worker replied
    only = ("-d", f"cli@{socket.gethostname()}", "-t", "5")

    def control(*args: str) -> subprocess.CompletedProcess[str]:
        return run_cli("-A", "proj", "control", *args, *only, env=project.env)

    def replies(*args: str) -> Any:
        done = run_cli("-A", "proj", "control", *args, *only, "--json", env=project.env)
        return next(iter(json.loads(done.stdout).values()))

    grow = control("pool_grow", "2")
    assert grow.returncode == 0 and "pool will grow to 3" in grow.stdout
    assert "pool will shrink to 2" in control("pool_shrink").stdout
    assert "max=4" in control("autoscale", "4", "1").stdout
    assert replies("add_consumer", "extra") == {"ok": "add consumer extra"}
    assert project.send("add", 2, 3, queue="extra").get(timeout=20) == 5
    assert "no longer consuming" in replies("cancel_consumer", "extra")["ok"]
    assert replies("time_limit", "proj.tasks.add", "5", "10") == {
        "ok": "time limits set successfully"
    }
    assert "leases renewed" in replies("heartbeat")["ok"]
    assert replies("enable_events") == {"ok": "task events enabled"}
    assert replies("disable_events") == {"ok": "task events disabled"}
    assert "Pool restarts not enabled" in control("pool_restart").stdout
    assert "-M/--module and --reload are pool_restart's" in control("ping", "--reload").stderr
    assert "pong" in json.dumps(replies("ping"))
    election = control("election", "id", "topic")
    assert election.returncode == 0 and "not needed" in election.stdout
    assert "every worker" in control("rate_limit", "proj.tasks.add", "10/s").stdout
    revoked = control("revoke", "id-1", "id-2")
    assert revoked.returncode == 0 and "id-1, id-2" in revoked.stdout
    assert "SIGKILL" in control("terminate", "KILL", "id-3").stdout
    stamped = control("revoke_by_stamped_headers", "batch=b-1")
    assert stamped.returncode == 0 and "stamped batch=b-1" in stamped.stdout
    assert project.app.control.revoked_stamps() == {"batch": ["b-1"]}
    assert "is name=value" in control("revoke_by_stamped_headers", "b-1").stderr
    inspect = run_cli("-A", "proj", "inspect", "memsample", "-t", "1.5", env=project.env)
    assert inspect.returncode == 0 and ": OK\n    worker " in inspect.stdout
    dump = run_cli("-A", "proj", "inspect", "memdump", "5", "-t", "1.5", env=project.env)
    assert dump.returncode == 0 and "- rss (end): worker " in dump.stdout
    stats = run_cli("-A", "proj", "inspect", "stats", "-t", "1.5", "-j", env=project.env)
    assert next(iter(json.loads(stats.stdout).values()))["pool"]["max-concurrency"] == 4
    usage = control("time_limit", "proj.tasks.add")
    assert usage.returncode == 2 and "task_name soft [hard]" in usage.stderr
    own = run_cli("-A", "proj", "inspect", "queue_names", "-t", "1.5", "-j", env=project.env)
    assert next(iter(json.loads(own.stdout).values())) == {"queues": ["celery"]}
    assert replies("bump", "3") == {"ok": "bumped by 3"}
    assert "takes: [N=1]" in control("bump", "1", "2").stderr
    assert "unknown command 'nosuch'" in control("nosuch").stderr
    down = control("shutdown")
    assert "shutting down" in down.stdout
    assert project.workers[0].wait() == 0


@pytest.mark.slow
def test_prefork_children_follow_the_changes_and_the_pool_resizes(
    project: Project,
) -> None:
    """The prefork children consume by themselves: they learn the changes within a
    heartbeat (the lease is short here, so the heartbeat is too); the pool grows and
    shrinks."""
    project.set(CELERIAC_TEST_VT="3")
    project.worker("-c", "1", "-n", "pf@%h")

    def ask(command: str, **arguments: Any) -> Any:
        got = project.app.control.broadcast(command, arguments, reply=True, timeout=5, limit=1)
        assert got, f"no reply to {command}"
        return next(iter(got[0].values()))

    assert ask("add_consumer", queue="extra") == {"ok": "add consumer extra"}
    assert project.send("add", 1, 2, queue="extra").get(timeout=20) == 3
    inspect = project.app.control.inspect(timeout=5, limit=1)

    def processes() -> list[int]:
        return next(iter((inspect.stats() or {None: {}}).values()))["pool"]["processes"]

    first = processes()
    assert ask("pool_grow", n=2) == {"ok": "pool will grow to 3"}
    wait_until(lambda: len(processes()) == 3)
    assert ask("pool_shrink", n=2) == {"ok": "pool will shrink to 1"}
    wait_until(lambda: len(processes()) == 1)
    assert processes() == first  # the first child stays; the new ones stopped
    assert "1 to 256" in ask("pool_grow", n=1000)["error"]
    assert project.send("soft_limited", 1.0).get(timeout=20) == "cleaned up"
    assert ask("time_limit", task_name="proj.tasks.soft_limited") == {
        "ok": "time limits set successfully"
    }
    time.sleep(1.5)  # the child reads the change with its next heartbeat (every second here)
    assert project.send("soft_limited", 1.0).get(timeout=20) == "finished"


@pytest.mark.slow
def test_a_prefork_pool_fed_by_its_parent_grows_and_shrinks(project: Project) -> None:
    """The pool RabbitMQ and memory use: new children are forked; one fewer stops after the
    jobs queued before the shrink, and the tasks go on."""
    project.set(CELERIAC_TEST_PREFORK="queue")
    project.worker("-c", "1")
    inspect = project.app.control.inspect(timeout=5, limit=1)

    def ask(command: str, **arguments: Any) -> Any:
        got = project.app.control.broadcast(command, arguments, reply=True, timeout=5, limit=1)
        assert got, f"no reply to {command}"
        return next(iter(got[0].values()))

    def processes() -> list[int]:
        return next(iter((inspect.stats() or {None: {}}).values()))["pool"]["processes"]

    first = processes()
    assert ask("pool_grow", n=2) == {"ok": "pool will grow to 3"}
    wait_until(lambda: len(processes()) == 3)
    assert sorted(project.send("add", i, i).get(timeout=20) for i in range(6)) == [
        0,
        2,
        4,
        6,
        8,
        10,
    ]
    assert ask("pool_shrink", n=2) == {"ok": "pool will shrink to 1"}
    wait_until(lambda: len(processes()) == 1)
    assert project.send("add", 2, 3).get(timeout=20) == 5
    assert len(processes()) == 1 and len(first) == 1
    assert "1 to 256" in ask("pool_grow", n=1000)["error"]


# -- queues --------------------------------------------------------------------------------


def test_queues_shows_the_apps_queues_as_a_table_and_as_json(project: Project) -> None:
    routes = {"proj.tasks.add": "math", "proj.tasks.*": {"queue": "routed", "priority": 1}}
    project.set(CELERIAC_TEST_CONF=json.dumps({"task_queues": ["high"], "task_routes": routes}))
    broker = project.app.broker
    broker.publish([Outgoing(b"1", "celery"), Outgoing(b"2", "celery"), Outgoing(b"3", "math")])
    broker.publish([Outgoing(b"later", "high", eta=time.time() + 60)])
    assert len(broker.fetch(["celery"], 1, 0)) == 1
    [bad] = broker.fetch(["math"], 1, 0)
    broker.dead_letter(bad, "no")
    done = run_cli("-A", "proj", "queues", env=project.env)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert len({len(line) for line in lines}) == 1  # aligned
    rows = [line.split() for line in lines]
    assert rows[0] == ["queue", "waiting", "in-flight", "delayed", "dead", "oldest"]
    assert [row[:5] for row in rows[1:]] == [
        ["celery", "1", "1", "0", "0"],
        ["high", "0", "0", "1", "0"],
        ["math", "0", "0", "0", "1"],
        ["routed", "0", "0", "0", "0"],
    ]
    assert rows[1][5].endswith("s") and float(rows[1][5][:-1]) < 30
    assert [row[5] for row in rows[2:]] == ["-", "-", "-"]  # nothing waiting
    chosen = run_cli("-A", "proj", "queues", "-Q", "high,celery", "--json", env=project.env)
    assert chosen.returncode == 0, chosen.stderr
    high, celery = json.loads(chosen.stdout)
    assert high == {
        "queue": "high",
        "waiting": 0,
        "in_flight": 0,
        "delayed": 1,
        "dead_lettered": 0,
        "oldest_age": None,
    }
    assert celery["queue"] == "celery" and 0 <= celery["oldest_age"] < 30


def test_queues_on_redis_shows_what_it_cannot_tell_as_a_dash(tmp_path: Path) -> None:
    require_redis_server()
    server = RedisServer(tmp_path)
    server.start()
    project = Project(tmp_path, server.url)
    try:
        broker = project.app.broker
        broker.publish([Outgoing(b"1", "celery"), Outgoing(b"2", "celery")])
        broker.publish([Outgoing(b"later", "celery", eta=time.time() + 60)])
        assert len(broker.fetch(["celery"], 1, 0)) == 1
        done = run_cli("-A", "proj", "queues", "--json", env=project.env)
        assert done.returncode == 0, done.stderr
        assert json.loads(done.stdout) == [
            {
                "queue": "celery",
                "waiting": 1,
                "in_flight": 1,
                "delayed": 1,
                "dead_lettered": 0,
                "oldest_age": None,  # Redis cannot tell
            }
        ]
        table = run_cli("-A", "proj", "queues", "-Q", "celery", env=project.env)
        assert table.stdout.splitlines()[1].split() == ["celery", "1", "1", "1", "0", "-"]
    finally:
        project.close()
        server.stop()


def test_queues_says_in_one_line_when_the_broker_cannot_be_reached(project: Project) -> None:
    down = f"redis://127.0.0.1:{free_port()}/0"
    done = run_cli("-A", "proj", "-b", down, "queues", env=project.env)
    assert done.returncode == 1 and done.stdout == ""
    [line] = done.stderr.splitlines()
    assert line.startswith("Error: redis://127.0.0.1:") and "Connection refused" in line


def test_ages_are_short() -> None:
    assert [age(s) for s in (None, 0.04, 12.34, 59.96, 61, 3599, 7300, 200_000)] == [
        "-", "0.0s", "12.3s", "1m", "1m", "59m", "2h", "2d",
    ]  # fmt: skip


# -- shell, report, events -----------------------------------------------------------------


def test_shell_has_the_app_and_its_tasks(project: Project) -> None:
    code = "print(app.main, celery is app, add.name, 'chain' in dir())\n"
    done = run_cli("-A", "proj", "shell", "--python", env=project.env, input=code)
    assert done.returncode == 0, done.stderr
    assert "proj True proj.tasks.add True" in done.stdout + done.stderr
    bare = run_cli("-A", "proj", "shell", "--python", "--without-tasks", env=project.env,
                input="print('add' in dir())\n")  # fmt: skip
    assert "False" in bare.stdout + bare.stderr


def test_report_shows_versions_and_masked_settings(project: Project) -> None:
    env = {**project.env, "CELERIAC_TEST_CONF": json.dumps({"redis_password": "hunter2"})}
    done = run_cli("-A", "proj", "report", "-b", "redis://u:sekrit@localhost:6379/0", env=env)
    assert done.returncode == 0, done.stderr
    out = done.stdout
    assert out.startswith("software -> celeriac:") and "platform -> system:" in out
    assert "sekrit" not in out and "hunter2" not in out
    assert "redis_password: '********'" in out and "broker_url: 'redis://u:***@" in out


def events_process(project: Project, *args: str) -> WorkerProcess:
    """``celeriac -A proj events *args``, reading from the oldest event the log keeps."""
    p = WorkerProcess(project.env, ["--from", "oldest", *args], command="events")
    project.workers.append(p)
    return p


@pytest.mark.slow
def test_events_dumps_shows_and_photographs_the_cluster(project: Project, tmp_path: Path) -> None:
    project.set(CELERIAC_TEST_CAMERA=str(tmp_path / "camera.txt"))
    project.worker("-c", "1", "-n", "ev@%h", "-P", "threads", "-E", "--heartbeat-interval", "0.3")
    dump = events_process(project, "--dump")
    store_url = f"sqlite:///{tmp_path}/events.db"
    live = events_process(project, "-F", "0.2", "--store", store_url)
    camera = events_process(project, "-c", "proj.camera.Camera", "-F", "0.2")
    polaroid = events_process(project, "-c", "proj.camera.DumpCam", "-F", "0.2")
    ok = project.send("add", 1, 2)
    assert ok.get(timeout=20) == 3

    def dumped() -> list[dict[str, Any]]:
        return [json.loads(line) for line in dump.output.splitlines() if line.startswith("{")]

    wait_until(
        lambda: any(e.get("uuid") == ok.id for e in dumped() if e["type"] == "task-succeeded")
    )
    wait_until(lambda: ok.id in live.output and "SUCCESS" in live.output)
    wait_until(lambda: '"SUCCESS"' in (tmp_path / "camera.txt").read_text()
               if (tmp_path / "camera.txt").exists() else False)  # fmt: skip
    shots = tmp_path / "camera.txt.polaroid"  # clear_after: only what is new in each
    wait_until(lambda: shots.exists() and '["SUCCESS"]' in shots.read_text())
    wait_until(lambda: shots.read_text().splitlines()[-1] == "[]")
    for p in (dump, live, camera, polaroid):
        p.signal(signal.SIGINT)
        assert p.wait() == 0
    lines = dumped()
    mine = [e["type"] for e in lines if e.get("uuid") == ok.id]
    assert mine == ["task-received", "task-started", "task-succeeded"]
    assert any(e["type"] == "worker-online" and e["hostname"].startswith("ev@") for e in lines)
    assert "ev@" in live.output and "online" in live.output
    store = create_store(store_url)  # --store kept them
    try:
        kept = store.task(ok.id)
        assert kept is not None and kept["state"] == "SUCCESS" and kept["payload"]["args"] == [1, 2]
        assert any(w["hostname"].startswith("ev@") for w in store.workers())
    finally:
        store.close()


def test_a_polaroid_is_held_to_its_maxrate_and_cleans_up() -> None:
    from celeriac.events.snapshot import Polaroid
    from celeriac.events.state import State

    shots: list[int] = []

    class Counting(Polaroid):
        def on_shutter(self, state: State) -> None:
            shots.append(len(state.tasks))

        def on_cleanup(self) -> None:
            shots.append(-1)

    state = State()
    state.event({"type": "task-received", "uuid": "a", "timestamp": 1.0, "name": "t"})
    with Counting(state, maxrate="1/s", cleanup_freq=0.0) as camera:
        camera.capture()
        camera.capture()  # too soon after the first: no photograph, the clean-up is due
    assert shots == [1, -1, -1]


def test_flower_says_what_to_use(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = _run(capsys, "flower", "--port=5555", "--basic-auth=a:b", "--persistent")
    assert code == 1 and "Flower is a Celery add-on" in err and "celeriac -A proj dashboard" in err


@pytest.mark.parametrize(
    ("argv", "instead"),
    [
        (["amqp", "queue.declare", "q"], "rabbitmqadmin"),
        (["list", "bindings"], "celeriac -A proj queues"),
        (["graph", "bootsteps"], "inspect stats"),
        (["logtool", "stats", "worker.log"], "events --dump"),
        (["upgrade", "settings", "proj/settings.py", "--django"], "old upper-case setting names"),
    ],
)
def test_celerys_other_commands_say_what_to_use(
    capsys: pytest.CaptureFixture[str], argv: list[str], instead: str
) -> None:
    code, _, err = _run(capsys, *argv)
    assert code in (1, 2) and instead in err
    assert "celeriac has no" in err or "not in celeriac" in err


# -- migrate -------------------------------------------------------------------------------


SAMPLE = {
    "proj/__init__.py": "from .celery import app as celery_app\n\n__all__ = ('celery_app',)\n",
    "proj/celery.py": (
        "import os\n"
        "import celery\n"
        "from celery import Celery, shared_task\n"
        "from celery.schedules import crontab\n"
        "from kombu import Queue, Exchange\n"
        "from kombu.common import Broadcast\n"
        "import celery as c, os.path\n"
        "\n"
        "app = Celery('proj')\n"
        "app.config_from_object('django.conf:settings', namespace='CELERY')\n"
        "app.conf.task_queues = [Queue('default', Exchange('default'))]\n"
        "CELERY_BROKER_URL = 'redis://localhost'\n"
    ),
    "proj/tasks.py": (
        "from celery import (\n"
        "    shared_task,\n"
        "    group,  # fan out\n"
        ")\n"
        "from celery.utils.log import get_task_logger\n"
        "from celery.result import AsyncResult, NoSuchThing\n"
        "import celery.exceptions\n"
        "from django_celery_beat.models import PeriodicTask\n"
    ),
    "conftest.py": 'pytest_plugins = ("celery.contrib.pytest",)\n',
    "flower_conf.py": "import flower\n",
    ".venv/lib/celery_stuff.py": "from celery import Celery\n",
}


def _sample(root: Path) -> None:
    for name, text in SAMPLE.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)


def test_migrate_rewrites_a_projects_imports(tmp_path: Path) -> None:
    _sample(tmp_path)
    dry = run_cli("migrate", str(tmp_path), "--dry-run")
    assert "+from celeriac import Celery, shared_task" in dry.stdout
    assert (tmp_path / "proj/celery.py").read_text() == SAMPLE["proj/celery.py"]  # unchanged

    done = run_cli("migrate", str(tmp_path))
    assert done.returncode == 1  # some imports are left for the user
    celery_py = (tmp_path / "proj/celery.py").read_text()
    assert "import celeriac as celery\n" in celery_py
    assert "from celeriac import Celery, shared_task\n" in celery_py
    assert "from celeriac.schedules import crontab\n" in celery_py
    assert "from celeriac import Queue, Exchange\n" in celery_py
    assert "from celeriac import Broadcast\n" in celery_py
    assert "import celeriac as c, os.path\n" in celery_py
    assert "namespace='CELERY'" in celery_py and "CELERY_BROKER_URL" in celery_py
    tasks = (tmp_path / "proj/tasks.py").read_text()
    assert tasks.startswith("from celeriac import (\n    shared_task,\n    group,  # fan out\n")
    assert "from celeriac.utils.log import get_task_logger" in tasks
    assert "from celery.result import AsyncResult, NoSuchThing" in tasks  # left: NoSuchThing
    assert "import celeriac.exceptions\nimport celeriac as celery\n" in tasks
    assert (
        tmp_path / "conftest.py"
    ).read_text() == 'pytest_plugins = ("celeriac.contrib.pytest",)\n'
    assert (tmp_path / "proj/__init__.py").read_text() == SAMPLE["proj/__init__.py"]
    assert (tmp_path / ".venv/lib/celery_stuff.py").read_text() == "from celery import Celery\n"
    out = done.stdout
    assert "celeriac.result has no NoSuchThing" in out
    assert "django_celery_beat" in out and "beat -S django" in out
    assert "import flower" in out and "celeriac inspect" in out
    for name in ("proj/celery.py", "proj/tasks.py"):  # what was rewritten still parses
        ast.parse((tmp_path / name).read_text())
    again = run_cli("migrate", str(tmp_path / "proj/celery.py"))
    assert again.returncode == 0 and "0 imports rewritten" in again.stdout


def test_migrate_says_what_it_is_when_given_a_broker_url() -> None:
    done = run_cli("migrate", "amqp://localhost//")
    assert done.returncode == 2 and "rewrites a project's imports" in done.stderr
    assert "SOURCE_URL DEST_URL" in done.stderr


def test_migrate_moves_waiting_tasks_between_brokers(tmp_path: Path) -> None:
    """Celery's ``migrate SOURCE DEST``, with ``-Q`` and ``-T``."""
    old, new = f"sqlite:///{tmp_path}/old.db", f"sqlite:///{tmp_path}/new.db"
    app = Celery("old", broker=old)
    for queue, name in (("celery", "a"), ("celery", "b"), ("celery", "a"), ("other", "a")):
        app.send_task(name, queue=queue)
    done = run_cli("migrate", old, new, "-Q", "celery", "-T", "a")
    assert done.returncode == 0, done.stderr
    assert "moved 2 of the 3 waiting tasks" in done.stdout
    moved = Celery("new", broker=new)
    assert moved.broker.queue_length("celery") == 2 and app.broker.queue_length("celery") == 1
    assert app.broker.queue_length("other") == 1
    app.close()
    moved.close()


def test_a_projects_options_in_each_form_celery_took() -> None:
    """``app.user_options``: a function given the argparse parser (Celery 4) and optparse
    options (Celery 3); click options (Celery 5) are in test_bootsteps."""
    import argparse
    import optparse

    from celeriac.cli.base import CLIError, add_user_options, user_option_values

    calls: list[argparse.ArgumentParser] = []

    def celery4(parser: argparse.ArgumentParser) -> None:
        calls.append(parser)
        parser.add_argument("--ini", default="development.ini")

    options = [
        celery4,
        optparse.make_option("-d", "--data_dir", default=""),
        optparse.make_option("--fast", action="store_true"),
        optparse.make_option("--level", type="int"),
    ]
    parser = argparse.ArgumentParser()
    dests = add_user_options(parser, options)
    assert dests == ["ini", "data_dir", "fast", "level"]
    args = parser.parse_args(["-d", "/db", "--fast", "--level", "3"])
    assert user_option_values(args, dests) == {
        "ini": "development.ini",
        "data_dir": "/db",
        "fast": True,
        "level": 3,
    }
    assert calls == [parser]  # the function is given the parser once, and only that one
    with pytest.raises(CLIError, match="not an option celeriac can read"):
        add_user_options(argparse.ArgumentParser(), ["--nope"])


def test_the_worker_command_imports_only_what_a_worker_needs() -> None:
    """Beat's modules, the shell's and migrate's come only with their commands (or ``-B``):
    every module a prefork worker imports is memory its children share or copy."""
    import sys

    code = (
        "import sys, celeriac.cli, celeriac.worker.worker\n"
        "print(sorted(m for m in sys.modules if m.startswith('celeriac.beat')"
        " or m in ('code', 'difflib')))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
