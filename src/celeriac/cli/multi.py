"""``celeriac multi start|stop|stopwait|restart|kill|show|get|names|expand|help``: several
detached workers on one machine, each with its pid file and log file, with Celery's
argument syntax::

    celeriac multi start 3 -A proj -l info              # celery1@host .. celery3@host
    celeriac multi start w1 w2 -A proj -c:1 4           # w1 runs 4 processes
    celeriac multi stopwait w1 w2 --pidfile=/var/run/celeriac/%n.pid

The nodes are a count (``3``: celery1, celery2, celery3) or names (``w1 w2``, ``w1@host``).
Every option after them goes to each worker; ``-X:SELECTOR value`` (or
``--opt:SELECTOR=value``) only to the nodes it selects: a position (``1``), a range
(``1-3``), a list (``1,3``) or a name (``w1``). ``--pidfile`` (default ``%n.pid``) and
``--logfile`` (default ``%n%I.log``) take ``%n`` (node name), ``%h`` (node@host) and
``%d`` (domain); the other commands find the workers by their pid files, so give them the
same ``--pidfile``. ``--hostname=HOST`` is the host part of the node names; ``stop``,
``stopwait`` and ``restart`` take a signal (``-KILL``, ``-9``; SIGTERM by default);
``--nosplash``, ``-q/--quiet``, ``--verbose`` and ``--no-color`` are multi's own.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import re
import shlex
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from typing import Any

from .. import __version__
from ..app import Celeriac
from ..platforms import alive
from ..worker.worker import expand_hostname
from .base import EXIT_USAGE, CLIError
from .daemon import expand_path

ACTIONS = (
    "start",
    "stop",
    "stopwait",
    "stop_verify",  # Celery's old name of stopwait
    "restart",
    "kill",
    "show",
    "get",
    "names",
    "expand",
    "help",
)
#: multi's own flags, anywhere on the line (not passed to the workers)
RESERVED = {"--nosplash": "nosplash", "--quiet": "quiet", "-q": "quiet", "--verbose": "verbose",
            "--no-color": "no_color"}  # fmt: skip
#: How long ``start`` waits for a detached worker to write its pid file.
START_WAIT = 20.0
_PER_NODE = re.compile(r"^(-{1,2}[^:=\s]+):([^=\s]+)(?:=(.*))?$")
#: the global options that go before ``worker`` in each node's command
_GLOBAL = {
    "app": "-A",
    "broker": "-b",
    "result_backend": "--result-backend",
    "workdir": "--workdir",
    "config": "--config",
    "loader": "--loader",
}


@dataclass
class Node:
    name: str  # node@host
    index: int  # 1-based position
    args: list[str] = field(default_factory=list)
    pidfile: str = ""
    logfile: str = ""

    @property
    def short(self) -> str:
        return self.name.partition("@")[0]

    def command(self, prefix: list[str]) -> list[str]:
        return [
            sys.executable,
            "-m",
            "celeriac",
            *prefix,
            "worker",
            "--detach",
            "-n",
            self.name,
            f"--pidfile={self.pidfile}",
            f"--logfile={self.logfile}",
            *self.args,
        ]

    def pid(self) -> int | None:
        """The live process its pid file names (a stale pid file is removed)."""
        try:
            with open(self.pidfile) as f:
                pid = int(f.read().strip() or 0)
        except (OSError, ValueError):
            return None
        if not pid:  # being written
            return None
        if alive(pid):
            return pid
        with contextlib.suppress(OSError):
            os.unlink(self.pidfile)
        return None


def add_parsers(sub: Any, common: argparse.ArgumentParser) -> None:
    m = sub.add_parser(
        "multi",
        help="start, stop or restart several detached workers",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    m.add_argument("action", choices=ACTIONS)
    m.add_argument("argv", nargs=argparse.REMAINDER, help="nodes, then worker options")
    m.set_defaults(func=cmd_multi)


def parse_nodes(argv: list[str]) -> tuple[list[Node], list[str], list[str]]:
    """The nodes named at the start of ``argv``, with their pid files, log files and
    options; the options every node has, and the global options (``-A`` ...)."""
    specs: list[str] = []
    i = 0
    while i < len(argv) and not argv[i].startswith("-"):
        specs.append(argv[i])
        i += 1
    if not specs:
        raise CLIError("multi: name the nodes: a count (3) or names (w1 w2)", EXIT_USAGE)
    if len(specs) == 1 and specs[0].isdigit():
        names = [f"celery{n}" for n in range(1, int(specs[0]) + 1)]
    else:
        names = specs
    host = _hostname_option(argv[i:])  # Celery's --hostname: the host part of the nodes
    nodes = [
        Node(expand_hostname(name if "@" in name or not host else f"{name}@{host}"), n)
        for n, name in enumerate(names, 1)
    ]
    common: list[str] = []
    glob: list[str] = []
    pidfile, logfile, workdir = "%n.pid", "%n%I.log", ""
    rest = argv[i:]
    j = 0
    while j < len(rest):
        arg = rest[j]
        per_node = _PER_NODE.match(arg)
        if per_node:
            option, selector, value = per_node.groups()
            if value is None:
                if j + 1 >= len(rest):
                    raise CLIError(f"multi: {arg} needs a value", EXIT_USAGE)
                value, j = rest[j + 1], j + 1
            chosen = _select(nodes, selector)
            if not chosen:
                raise CLIError(f"multi: {arg} selects no node", EXIT_USAGE)
            for node in chosen:
                node.args += [option, value]
            j += 1
            continue
        option, eq, inline = arg.partition("=")
        takes = {
            "--pidfile": "pidfile",
            "--logfile": "logfile",
            "-f": "logfile",
            "-A": "app",
            "--app": "app",
            "-b": "broker",
            "--broker": "broker",
            "--result-backend": "result_backend",
            "--workdir": "workdir",
            "--config": "config",
            "--loader": "loader",
            "-n": "hostname",
            "--hostname": "hostname",
        }.get(option)
        if takes is None:
            common.append(arg)
            j += 1
            continue
        if takes == "hostname":
            j += 1 if eq else 2
            continue
        if eq:
            value = inline
        else:
            if j + 1 >= len(rest):
                raise CLIError(f"multi: {option} needs a value", EXIT_USAGE)
            value, j = rest[j + 1], j + 1
        j += 1
        if takes == "pidfile":
            pidfile = value
        elif takes == "logfile":
            logfile = value
        else:
            glob += [_GLOBAL[takes], value]
            workdir = value if takes == "workdir" else workdir
    base = os.path.abspath(workdir) if workdir else os.getcwd()
    for node in nodes:
        node.pidfile = os.path.join(base, expand_path(pidfile, node.name))
        node.logfile = os.path.join(base, expand_path(logfile, node.name))
    return nodes, common, glob


def _hostname_option(argv: list[str]) -> str:
    for k, arg in enumerate(argv):
        option, eq, value = arg.partition("=")
        if option in ("-n", "--hostname"):
            return value if eq else (argv[k + 1] if k + 1 < len(argv) else "")
    return ""


def _signal(argv: list[str]) -> tuple[int, list[str]]:
    """Celery's ``stop w1 -KILL`` (or ``-9``): the signal to stop with, and the rest."""
    for k in range(len(argv) - 1, -1, -1):
        arg = argv[k]
        name = arg[1:].upper()
        if not arg.startswith("-") or arg.startswith("--") or not name:
            continue
        if name.isdigit():
            return int(name), argv[:k] + argv[k + 1 :]
        full = name if name.startswith("SIG") else f"SIG{name}"
        if full in signal.Signals.__members__ and len(name) > 1:
            return int(signal.Signals[full]), argv[:k] + argv[k + 1 :]
    return int(signal.SIGTERM), argv


def _select(nodes: list[Node], selector: str) -> list[Node]:
    chosen: set[int] = set()
    for part in selector.split(","):
        low, dash, high = part.partition("-")
        if low.isdigit() and (not dash or high.isdigit()):
            chosen.update(range(int(low), int(high if dash else low) + 1))
        else:
            chosen.update(n.index for n in nodes if part in (n.name, n.short))
    return [n for n in nodes if n.index in chosen]


def cmd_multi(app: Celeriac, args: argparse.Namespace) -> int:
    argv = list(args.argv)
    flags = {RESERVED[a] for a in argv if a in RESERVED}
    argv = [a for a in argv if a not in RESERVED]
    if args.action == "help":
        print(__doc__)
        return 0
    sig = int(signal.SIGTERM)
    if args.action in ("stop", "stopwait", "stop_verify", "restart"):
        sig, argv = _signal(argv)
    template = ""
    if args.action in ("expand", "get"):
        if not argv:
            raise CLIError(f"multi {args.action}: give the template or node first", EXIT_USAGE)
        template, argv = argv[0], argv[1:]
    nodes, common, glob = parse_nodes(argv)
    for name, flag in _GLOBAL.items():  # given before 'multi': every worker has them too
        value = getattr(args, name, None)
        if value and flag not in glob:
            glob += [flag, value]
    for node in nodes:
        node.args = [*common, *node.args]
    action = args.action
    if action == "names":
        print("\n".join(n.name for n in nodes))
        return 0
    if action == "expand":
        print("\n".join(expand_path(template, n.name) for n in nodes))
        return 0
    if action in ("show", "get"):
        shown = [n for n in nodes if action == "show" or template in (n.name, n.short)]
        if not shown:
            raise CLIError(f"multi get: no node {template!r}", EXIT_USAGE)
        print("\n".join(shlex.join(n.command(glob)) for n in shown))
        return 0
    if "nosplash" not in flags and "quiet" not in flags:
        print(f"celeriac multi v{__version__}")
    if action == "start":
        return start(nodes, glob, verbose="verbose" in flags)
    if action == "kill":
        return kill(nodes)
    stop(nodes, sig, wait=action in ("stopwait", "stop_verify", "restart"))
    return start(nodes, glob) if action == "restart" else 0


def start(nodes: list[Node], glob: list[str], verbose: bool = False) -> int:
    print("> Starting nodes...")
    failed = 0
    for node in nodes:
        running = node.pid()
        if running:
            print(f"\t> {node.name}: already running (pid {running})")
            continue
        for path in (node.pidfile, node.logfile):
            with contextlib.suppress(OSError):
                os.makedirs(os.path.dirname(path), exist_ok=True)
        if verbose:
            print(f"\t  {shlex.join(node.command(glob))}")
        done = subprocess.run(node.command(glob), capture_output=True, text=True)
        pid = _wait_for_pidfile(node) if done.returncode == 0 else None
        if pid:
            print(f"\t> {node.name}: OK (pid {pid})")
            continue
        failed += 1
        why = (done.stderr or done.stdout).strip().splitlines()
        print(f"\t> {node.name}: FAILED")
        print(f"\t\t{why[-1] if why else f'no pid file after {START_WAIT:g} s'}")
        if done.returncode == 0:
            print(f"\t\tsee {node.logfile}")
    return 1 if failed else 0


def _wait_for_pidfile(node: Node) -> int | None:
    deadline = time.monotonic() + START_WAIT
    while time.monotonic() < deadline:
        pid = node.pid()
        if pid:
            return pid
        time.sleep(0.05)
    return None


def stop(nodes: list[Node], sig: int, wait: bool, verb: str = "Stopping") -> None:
    """``sig`` (SIGTERM: a warm shutdown, running tasks finish) to each node; with ``wait``,
    until they have exited."""
    print(f"> {verb} nodes...")
    waiting: dict[int, Node] = {}
    for node in nodes:
        pid = node.pid()
        if pid is None:
            print(f"\t> {node.name}: DOWN")
            continue
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, sig)
        print(f"\t> {node.name}: {signal.Signals(sig).name[3:]} -> {pid}")
        if sig == signal.SIGKILL:  # a killed worker cannot remove its pid file
            with contextlib.suppress(OSError):
                os.unlink(node.pidfile)
        waiting[pid] = node
    if not wait or not waiting:
        return
    print(f"> Waiting for {len(waiting)} node{'s' if len(waiting) != 1 else ''} -> "
          f"{', '.join(map(str, waiting))}...", flush=True)  # fmt: skip
    while waiting:
        for pid in [p for p in waiting if not alive(p) or _reaped(p)]:
            node = waiting.pop(pid)
            with contextlib.suppress(OSError):
                os.unlink(node.pidfile)  # normally removed by the worker as it exits
            print(f"\t> {node.name}: OK", flush=True)
        time.sleep(0.1)


def _reaped(pid: int) -> bool:
    """A zombie child of this process (never the case for detached workers) counts as
    gone."""
    try:
        return os.waitpid(pid, os.WNOHANG)[0] == pid
    except ChildProcessError:
        return False


def kill(nodes: list[Node]) -> int:
    """SIGKILL to each node: running tasks are lost (their messages come back when their
    lease runs out)."""
    stop(nodes, signal.SIGKILL, wait=False, verb="Killing")
    return 0
