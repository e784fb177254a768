"""What the long-running commands (worker, beat) do before they start, as Celery's do: a
pid file, detaching from the terminal, a umask, another user and group."""

from __future__ import annotations

import contextlib
import os
import sys

from ..platforms import LockFailed, drop_privileges, lock_pidfile
from ..utils.nodenames import gethostname, host_format, nodesplit
from .base import CLIError


def expand_path(path: str, hostname: str | None = None) -> str:
    """``%h`` (node name), ``%n`` (its name part), ``%d`` (its domain), ``%i`` (the process
    index: 0, every process of a worker logs to one file), ``%I`` (the index with its
    separator: empty, as in Celery's main process) and ``%%``."""
    node = hostname or gethostname()
    name, host = nodesplit(node)
    return host_format(path, host, name, h=node)


def write_pidfile(path: str) -> None:
    """Write this process's id to ``path``, removed at exit. A pid file naming a live
    process stops start-up (another instance runs); a stale one is replaced."""
    try:
        lock_pidfile(path)
    except LockFailed as exc:
        raise CLIError(str(exc)) from None


def detach() -> None:
    """Go on in the background, away from the terminal (the caller returns at once): fork
    twice, start a session, and point standard input and output at /dev/null (logs go to
    ``--logfile``)."""
    if os.fork():
        os._exit(0)
    os.setsid()
    if os.fork():
        os._exit(0)
    null = os.open(os.devnull, os.O_RDWR)
    for stream in (sys.stdin, sys.stdout, sys.stderr):
        with contextlib.suppress(OSError, ValueError):
            os.dup2(null, stream.fileno())
    os.close(null)


def prepare(
    hostname: str | None,
    pidfile: str | None,
    detach_: bool,
    uid: str | None,
    gid: str | None,
    umask: str | None,
) -> None:
    """The start-up chores, in Celery's order: umask, detach, pid file, privileges."""
    if umask:
        os.umask(int(umask, 8))
    if detach_:
        detach()
    if pidfile:
        write_pidfile(expand_path(pidfile, hostname))
    drop_privileges(uid, gid)
