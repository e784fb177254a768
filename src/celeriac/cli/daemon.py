"""What the long-running commands (worker, beat) do before they start, as Celery's do: a
pid file, detaching from the terminal, a umask, another user and group."""

from __future__ import annotations

import atexit
import contextlib
import errno
import grp
import os
import pwd
import socket
import sys

from .base import CLIError


def expand_path(path: str, hostname: str | None = None) -> str:
    """``%h`` (node name), ``%n`` (its name part), ``%d`` (its domain), ``%i`` (the process
    index: 0, every process of a worker logs to one file), ``%I`` (the index with its
    separator: empty, as in Celery's main process) and ``%%``."""
    node = hostname or socket.gethostname()
    name, _, host = node.partition("@")
    host = host or node
    return (
        path.replace("%%", "\0")
        .replace("%h", node)
        .replace("%n", name if "@" in node else host.partition(".")[0])
        .replace("%d", host.partition(".")[2])
        .replace("%i", "0")
        .replace("%I", "")
        .replace("\0", "%")
    )


def write_pidfile(path: str) -> None:
    """Write this process's id to ``path``, removed at exit. A pid file naming a live
    process stops start-up (another instance runs); a stale one is replaced."""
    path = os.path.abspath(path)
    with contextlib.suppress(FileNotFoundError, ValueError):
        with open(path) as f:
            other = int(f.read().strip() or 0)
        if other and other != os.getpid() and alive(other):
            raise CLIError(f"pid file {path} names a running process ({other}): is it running?")
        os.unlink(path)
    try:
        fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
    except OSError as exc:
        raise CLIError(f"cannot create pid file {path}: {exc.strerror}") from None
    with os.fdopen(fd, "w") as f:
        f.write(f"{os.getpid()}\n")
    pid = os.getpid()

    def remove() -> None:
        if os.getpid() == pid:  # not in forked children
            with contextlib.suppress(OSError):
                os.unlink(path)

    atexit.register(remove)


def alive(pid: int) -> bool:
    """Is process ``pid`` running (perhaps as another user)?"""
    try:
        os.kill(pid, 0)
    except OSError as exc:
        return exc.errno == errno.EPERM
    return True


def drop_privileges(uid: str | None, gid: str | None) -> None:
    """Run as ``uid`` and ``gid`` (names or numbers) from now on."""
    if gid:
        os.setgid(int(gid) if gid.isdigit() else grp.getgrnam(gid).gr_gid)
    if uid:
        user = pwd.getpwuid(int(uid)) if uid.isdigit() else pwd.getpwnam(uid)
        if not gid:
            os.setgid(user.pw_gid)
        os.initgroups(user.pw_name, os.getgid())
        os.setuid(user.pw_uid)


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
