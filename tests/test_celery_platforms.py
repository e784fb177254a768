"""Celery's celery.platforms, celery.concurrency (asynpool) and celery.utils.nodenames names:
the signal registry (real signals sent to this process), pid locks (real files, a real
running process), dropping root, node names."""

from __future__ import annotations

import os
import pwd
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path
from types import FrameType

import pytest

from celeriac import Celery
from celeriac.cli.base import CLIError
from celeriac.cli.daemon import expand_path, write_pidfile
from celeriac.concurrency import asynpool, get_implementation
from celeriac.exceptions import ImproperlyConfigured
from celeriac.platforms import (
    EX_CANTCREAT,
    EX_OK,
    EX_SOFTWARE,
    EX_USAGE,
    IS_WINDOWS,
    LockFailed,
    Pidfile,
    create_pidlock,
    get_fdmax,
    isatty,
    lock_pidfile,
    pyimplementation,
    set_mp_process_title,
    set_process_title,
    shellsplit,
    signals,
)
from celeriac.utils.nodenames import (
    anon_nodename,
    default_nodename,
    gethostname,
    host_format,
    nodename,
    nodesplit,
    worker_direct,
)
from celeriac.worker.pools import FedPool, SoloPool, ThreadPool
from celeriac.worker.worker import expand_hostname
from conftest import WorkerProcess, wait_until

# -- signals ---------------------------------------------------------------------------------


@pytest.fixture
def restore_signals() -> Iterator[None]:
    saved = {s: signal.getsignal(s) for s in (signal.SIGUSR1, signal.SIGUSR2, signal.SIGHUP)}
    yield
    for s, handler in saved.items():
        signal.signal(s, handler)


def test_a_handler_set_by_name_gets_the_signal(restore_signals: None) -> None:
    got: list[int] = []

    def handler(signum: int, frame: FrameType | None) -> None:
        got.append(signum)

    signals["USR1"] = handler
    assert signals["SIGUSR1"] is handler
    os.kill(os.getpid(), signal.SIGUSR1)
    wait_until(lambda: got)
    assert got == [signal.SIGUSR1]
    assert signals.signum("USR1") == signals.signum("SIGUSR1") == signal.SIGUSR1
    assert signals.supported("INT") and not signals.supported("NOSUCHSIGNAL")
    with pytest.raises(TypeError):
        signals.signum("usr1")


def test_ignored_signals_do_not_stop_the_process(restore_signals: None) -> None:
    signals.ignore("USR1")
    signals.update(USR2="SIG_IGN", HUP=signal.SIG_IGN)
    for sig in (signal.SIGUSR1, signal.SIGUSR2, signal.SIGHUP):
        os.kill(os.getpid(), sig)  # the test process would end here, were they not ignored
    assert signals["USR1"] == signals["USR2"] == signals["HUP"] == signal.SIG_IGN
    signals.reset("USR1", "USR2")
    assert signals["USR1"] == signals["USR2"] == signal.SIG_DFL
    signals["NOSUCHSIGNAL"] = signal.SIG_IGN  # a signal this platform lacks: skipped


def test_update_takes_a_mapping_and_names(restore_signals: None) -> None:
    got: list[str] = []
    signals.update({"USR1": lambda *_: got.append("1")}, USR2=lambda *_: got.append("2"))
    os.kill(os.getpid(), signal.SIGUSR1)
    os.kill(os.getpid(), signal.SIGUSR2)
    wait_until(lambda: len(got) == 2)
    assert sorted(got) == ["1", "2"]


def test_arm_alarm_sends_sigalrm(restore_signals: None) -> None:
    saved = signal.getsignal(signal.SIGALRM)
    got: list[int] = []
    signals["ALRM"] = lambda signum, frame: got.append(signum)
    try:
        signals.arm_alarm(0.05)
        wait_until(lambda: got, timeout=5)
        signals.arm_alarm(10)
        signals.reset_alarm()
        assert signal.getitimer(signal.ITIMER_REAL) == (0.0, 0.0)
    finally:
        signal.signal(signal.SIGALRM, saved)


# -- pid files -------------------------------------------------------------------------------


def _finished_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_create_pidlock_writes_this_process_id(tmp_path: Path) -> None:
    path = tmp_path / "app.pid"
    lock = create_pidlock(str(path))
    try:
        assert path.read_text() == f"{os.getpid()}\n"
        assert lock.is_locked() and lock.read_pid() == os.getpid()
    finally:
        lock.release()
    assert not path.exists()


def test_a_stale_or_broken_pidfile_is_replaced(tmp_path: Path) -> None:
    path = tmp_path / "app.pid"
    for stale in (f"{_finished_pid()}\n", "garbage\n", ""):
        path.write_text(stale)
        lock = create_pidlock(str(path))
        assert path.read_text() == f"{os.getpid()}\n"
        lock.release()


def test_a_pidfile_naming_a_running_process_refuses(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "app.pid"
    other = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        path.write_text(f"{other.pid}\n")
        with pytest.raises(SystemExit) as exit_:
            create_pidlock(str(path))
        assert exit_.value.code == EX_CANTCREAT
        assert f"names a running process ({other.pid})" in capsys.readouterr().err
        with pytest.raises(LockFailed, match="names a running process"):
            lock_pidfile(str(path))
        with pytest.raises(CLIError, match="is it running"):
            write_pidfile(str(path))
        assert path.read_text() == f"{other.pid}\n"  # left alone
    finally:
        other.kill()
        other.wait()
    lock_pidfile(str(path)).release()  # gone now: stale


def test_the_pidlock_is_removed_at_exit_and_locks_out_a_second_process(tmp_path: Path) -> None:
    path = tmp_path / "app.pid"
    script = textwrap.dedent(f"""
        import sys, time
        from celeriac.platforms import create_pidlock
        create_pidlock({str(path)!r})
        print("locked", flush=True)
        time.sleep(float(sys.argv[1]))
    """)
    first = subprocess.Popen(
        [sys.executable, "-c", script, "30"], stdout=subprocess.PIPE, text=True
    )
    try:
        assert first.stdout is not None and first.stdout.readline() == "locked\n"
        assert path.read_text() == f"{first.pid}\n"
        second = subprocess.run(
            [sys.executable, "-c", script, "0"], capture_output=True, text=True, timeout=60
        )
        assert second.returncode == EX_CANTCREAT
        assert "ERROR: pid file" in second.stderr and str(first.pid) in second.stderr
    finally:
        first.terminate()  # SIGTERM's default ends it without atexit: the file stays
        first.wait()
    third = subprocess.run([sys.executable, "-c", script, "0"], capture_output=True, text=True)
    assert third.returncode == EX_OK, third.stderr
    assert not path.exists()  # removed at exit


def test_pidfile_is_a_context_manager(tmp_path: Path) -> None:
    path = tmp_path / "ctx.pid"
    with Pidfile(str(path)) as lock:
        assert lock.read_pid() == os.getpid()
        with pytest.raises(LockFailed, match="cannot create pid file"):
            Pidfile(str(path)).acquire()
    assert not path.exists() and Pidfile(str(path)).read_pid() is None


# -- privileges, process title, the rest ------------------------------------------------------


def _run(code: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True, timeout=60
    )


@pytest.mark.skipif(os.geteuid() != 0, reason="dropping privileges needs root")
def test_maybe_drop_privileges_runs_as_another_user() -> None:
    done = _run("""
        import os, pwd
        from celeriac.platforms import maybe_drop_privileges
        nobody = pwd.getpwnam("nobody")
        maybe_drop_privileges(uid="nobody")
        assert (os.getuid(), os.geteuid()) == (nobody.pw_uid, nobody.pw_uid)
        assert os.getgid() == nobody.pw_gid
        maybe_drop_privileges(uid=0)  # no longer root: nothing to do
        print(os.getuid())
    """)
    assert done.returncode == 0, done.stderr
    assert int(done.stdout) == pwd.getpwnam("nobody").pw_uid


def test_process_title_is_set_with_setproctitle_when_installed(tmp_path: Path) -> None:
    assert set_process_title("celeriac", info="-A proj") == "[celeriac] -A proj"
    assert set_mp_process_title("celeriac", hostname="w1@h") == "[celeriac: w1@h:MainProcess]"
    (tmp_path / "setproctitle.py").write_text(  # a stand-in for the optional package
        "titles = []\ndef setproctitle(title):\n    titles.append(title)\n"
    )
    sys.path.insert(0, str(tmp_path))
    try:
        set_process_title("worker")
        assert sys.modules["setproctitle"].titles == ["[worker]"]
    finally:
        sys.path.remove(str(tmp_path))
        sys.modules.pop("setproctitle", None)


def test_close_open_fds_keeps_only_what_it_is_told() -> None:
    done = _run("""
        import os, sys
        from celeriac.platforms import close_open_fds
        extra = os.open(os.devnull, os.O_RDONLY)
        close_open_fds(keep=[sys.stdout])
        closed = []
        for fd in (0, 1, 2, extra):
            try:
                os.fstat(fd)
            except OSError:
                closed.append(fd)
        print(closed == [0, 2, extra])
    """)
    assert done.stdout == "True\n" and done.stderr == ""  # stderr was closed too


def test_small_helpers() -> None:
    assert (EX_OK, EX_USAGE, EX_SOFTWARE, EX_CANTCREAT) == (0, 64, 70, 73)
    assert not IS_WINDOWS
    assert shellsplit("worker -n 'a b'") == ["worker", "-n", "a b"]
    assert pyimplementation() == "CPython"
    assert isatty(object()) is False
    assert (get_fdmax() or 0) > 0


# -- concurrency -----------------------------------------------------------------------------


def test_get_implementation_names_celeriacs_pools() -> None:
    assert get_implementation("prefork") is FedPool
    assert get_implementation("solo") is SoloPool
    assert get_implementation("gevent") is ThreadPool  # as -P gevent runs
    with pytest.raises(ImproperlyConfigured, match="celeriac has prefork"):
        get_implementation("custom")
    assert asynpool.PROC_ALIVE_TIMEOUT == 4.0


SLOW_APP = """
import os, time
from celeriac import Celery, signals
from celeriac.concurrency import asynpool

asynpool.PROC_ALIVE_TIMEOUT = 60.0  # what projects write; nothing needs it here
app = Celery("slowinit", broker=os.environ["SLOW_BROKER"])
if os.environ.get("SLOW_FED"):
    from celeriac.brokers.sqlite import SQLiteBroker

    SQLiteBroker.local_leases = True  # the prefork pool whose parent feeds its children


@signals.worker_process_init.connect
def slow_start(**kwargs):
    with open(os.environ["SLOW_LOG"], "a") as f:
        f.write(f"{os.getpid()}\\n")
    time.sleep(5.5)  # longer than Celery's PROC_ALIVE_TIMEOUT (4 s)


@app.task
def pid():
    return os.getpid()
"""


@pytest.mark.parametrize("kind", ["consuming", "fed"])
def test_a_child_whose_start_is_slow_is_not_replaced(tmp_path: Path, kind: str) -> None:
    (tmp_path / "slowinit.py").write_text(SLOW_APP)
    broker, log = f"sqlite:///{tmp_path}/broker.db", tmp_path / "started.txt"
    env = {
        **os.environ,
        "SLOW_BROKER": broker,
        "SLOW_LOG": str(log),
        "SLOW_FED": "1" if kind == "fed" else "",
        "PYTHONPATH": os.pathsep.join([str(tmp_path), os.environ.get("PYTHONPATH", "")]),
    }
    worker = WorkerProcess(env, ["-P", "prefork", "-c", "1"], app="slowinit", cwd=tmp_path)
    try:
        worker.wait_ready()
        started = time.monotonic()
        result = Celery("producer", broker=broker).send_task("slowinit.pid")
        child = result.get(timeout=30)
        assert log.read_text().split() == [str(child)]  # one child, never replaced
        assert time.monotonic() - started < 25
    finally:
        worker.kill()


# -- node names ------------------------------------------------------------------------------


def test_node_names() -> None:
    host = gethostname()
    assert nodename("w1", "example.com") == "w1@example.com"
    assert nodesplit("w1@example.com") == ("w1", "example.com")
    assert nodesplit("example.com") == (None, "example.com")
    assert default_nodename(None) == f"celeriac@{host}"
    assert default_nodename("w1@example.com") == "w1@example.com"
    assert default_nodename("example.com") == "celeriac@example.com"
    assert anon_nodename() == f"gen{os.getpid()}@{host}"
    assert anon_nodename("h", prefix="x") == f"x{os.getpid()}@h"


def test_host_format_expands_as_the_cli_does() -> None:
    assert host_format("%h|%n|%d|%i|%I|%%n|%z", host="w.example.com") == (
        "w.example.com|w|example.com|0||%n|%z"
    )
    assert host_format("%n-%p", host="a.b", name="w1", p="w1@a.b") == "w1-w1@a.b"
    assert host_format("%h") == gethostname()
    # the CLI's two expansions are made with it
    assert expand_path("%h/%n/%d%I.log", "w1@box.lan") == "w1@box.lan/w1/lan.log"
    assert expand_path("%n.pid", "box.lan") == "box.pid"
    assert expand_hostname(None) == f"celeriac@{gethostname()}"
    assert expand_hostname("w1") == f"w1@{gethostname()}"
    assert expand_hostname("w1@%n.%d") == "w1@" + ".".join(gethostname().partition(".")[::2])


def test_worker_direct_says_what_to_use() -> None:
    with pytest.raises(NotImplementedError, match=r"no queue of their own.*remote control"):
        worker_direct("w1@example.com")
