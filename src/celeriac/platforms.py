"""What a long-running process needs from the operating system, with Celery's names: signal
handlers by name, a pid file that locks out a second instance, dropping root, the process
title, exit codes."""

from __future__ import annotations

import atexit
import contextlib
import errno
import grp
import importlib
import os
import platform
import pwd
import resource
import shlex
import signal
import sys
from collections.abc import Callable, Iterable, Mapping
from types import FrameType
from typing import IO, Any

from .exceptions import SecurityError

EX_OK = getattr(os, "EX_OK", 0)
EX_FAILURE = 1
EX_USAGE = getattr(os, "EX_USAGE", 64)
EX_UNAVAILABLE = getattr(os, "EX_UNAVAILABLE", 69)
EX_SOFTWARE = getattr(os, "EX_SOFTWARE", 70)
EX_CANTCREAT = getattr(os, "EX_CANTCREAT", 73)

SYSTEM = platform.system()
IS_macOS = SYSTEM == "Darwin"
IS_WINDOWS = SYSTEM == "Windows"

#: Celery's switch (in the environment) for running a worker as root; read as Celery does.
#: celeriac never refuses root, so nothing here needs it.
C_FORCE_ROOT = os.environ.get("C_FORCE_ROOT", False)

#: a signal handler: a function, ``signal.SIG_IGN``/``SIG_DFL`` or their names
Handler = Callable[[int, FrameType | None], Any] | int | str | None


def isatty(fh: Any) -> bool:
    """Is ``fh`` a terminal (False for objects that cannot say)?"""
    try:
        return bool(fh.isatty())
    except AttributeError:
        return False


def pyimplementation() -> str:
    """The Python implementation: ``CPython``, ``PyPy`` ..."""
    return platform.python_implementation()


def shellsplit(s: str) -> list[str]:
    """Split a command line into arguments as the shell does."""
    return shlex.split(s, posix=not IS_WINDOWS)


def get_fdmax(default: int | None = None) -> int | None:
    """The most file descriptors this process may open, or ``default`` when unlimited."""
    with contextlib.suppress(ValueError, OSError):
        return os.sysconf("SC_OPEN_MAX")
    limit = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    return default if limit == resource.RLIM_INFINITY else limit


def close_open_fds(keep: Iterable[int | IO[Any]] | None = None) -> None:
    """Close every open file descriptor except those in ``keep`` (numbers or files)."""
    kept = {k if isinstance(k, int) else k.fileno() for k in keep or ()}
    try:
        fds: Iterable[int] = [
            int(n) for n in os.listdir("/dev/fd" if IS_macOS else "/proc/self/fd")
        ]
    except OSError:
        fds = range(get_fdmax(2048) or 2048)
    for fd in fds:
        if fd not in kept:
            with contextlib.suppress(OSError):  # the listing's own, already closed
                os.close(fd)


# -- signals ---------------------------------------------------------------------------------


class Signals:
    """Signal handlers by name (``signals["INT"] = handler``, ``signals.ignore("HUP")``).
    A handler is a callable, ``signal.SIG_IGN``/``SIG_DFL`` or their names; a signal this
    platform lacks, or a handler set outside the main thread, is skipped without error."""

    ignored = signal.SIG_IGN
    default = signal.SIG_DFL

    def signum(self, name: str | int) -> int:
        """The number of signal ``name`` (``"INT"`` or ``"SIGINT"``); AttributeError if this
        platform has no such signal."""
        if isinstance(name, int):
            return name
        if not isinstance(name, str) or not name.isupper():
            raise TypeError(f"a signal name is an uppercase string, not {name!r}")
        return int(getattr(signal, name if name.startswith("SIG") else f"SIG{name}"))

    def supported(self, name: str | int) -> bool:
        """Does this platform have signal ``name``?"""
        try:
            self.signum(name)
        except AttributeError:
            return False
        return True

    def __getitem__(self, name: str | int) -> Any:
        return signal.getsignal(self.signum(name))

    def __setitem__(self, name: str | int, handler: Handler) -> None:
        if isinstance(handler, str):  # "SIG_IGN", "SIG_DFL"
            handler = getattr(signal, handler)
        with contextlib.suppress(AttributeError, ValueError):
            signal.signal(self.signum(name), handler)  # type: ignore[arg-type]

    def update(
        self, mapping: Mapping[str, Handler] | Iterable[tuple[str, Handler]] = (), **more: Handler
    ) -> None:
        """Set the handlers of several signals: ``update(INT=stop, TERM=stop)``."""
        for name, handler in dict(mapping, **more).items():
            self[name] = handler

    def ignore(self, *names: str) -> None:
        """Ignore signals ``names``."""
        self.update((name, self.ignored) for name in names)

    def reset(self, *names: str) -> None:
        """Give signals ``names`` their default handling back."""
        self.update((name, self.default) for name in names)

    def arm_alarm(self, seconds: float) -> None:
        """Send SIGALRM to this process in ``seconds``."""
        signal.setitimer(signal.ITIMER_REAL, seconds)

    def reset_alarm(self) -> None:
        """Cancel the pending SIGALRM."""
        signal.setitimer(signal.ITIMER_REAL, 0)


signals = Signals()


# -- pid files -------------------------------------------------------------------------------


class LockFailed(Exception):
    """A pid file could not be taken."""


def alive(pid: int) -> bool:
    """Is process ``pid`` running (perhaps as another user)?"""
    try:
        os.kill(pid, 0)
    except OSError as exc:
        return exc.errno == errno.EPERM
    return True


class Pidfile:
    """A file holding this process's id, so that a second instance refuses to start."""

    def __init__(self, path: str) -> None:
        self.path = os.path.abspath(path)

    def acquire(self) -> Pidfile:
        """Write this process's id to a new file; LockFailed if it cannot be created (one
        already exists, say)."""
        try:
            fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except OSError as exc:
            raise LockFailed(f"cannot create pid file {self.path}: {exc.strerror}") from None
        with os.fdopen(fd, "w") as f:
            f.write(f"{os.getpid()}\n")
        return self

    __enter__ = acquire

    def release(self, *exc: object) -> None:
        """Remove the file."""
        self.remove()

    __exit__ = release

    def is_locked(self) -> bool:
        """Does the file exist?"""
        return os.path.exists(self.path)

    def read_pid(self) -> int | None:
        """The id in the file; None if there is no file, ValueError if it holds no id."""
        try:
            with open(self.path) as f:
                text = f.read().strip()
        except FileNotFoundError:
            return None
        try:
            return int(text)
        except ValueError:
            raise ValueError(f"pid file {self.path} holds no process id") from None

    def remove(self) -> None:
        """Remove the file, if it is there and may be removed."""
        with contextlib.suppress(FileNotFoundError, PermissionError):
            os.unlink(self.path)

    def remove_if_stale(self) -> bool:
        """Remove the file unless it names another running process; whether it is gone."""
        try:
            pid = self.read_pid()
        except ValueError:
            pid = None
        if pid and pid != os.getpid() and alive(pid):
            return False
        self.remove()
        return True


def lock_pidfile(path: str) -> Pidfile:
    """:func:`create_pidlock` raising :class:`LockFailed` instead of exiting (for a command
    that reports errors its own way)."""
    lock = Pidfile(path)
    if lock.is_locked() and not lock.remove_if_stale():
        raise LockFailed(
            f"pid file {lock.path} names a running process ({lock.read_pid()}): is it running?"
        )
    lock.acquire()
    owner = os.getpid()

    def release() -> None:
        if os.getpid() == owner:  # not in forked children
            lock.release()

    atexit.register(release)
    return lock


def create_pidlock(pidfile: str) -> Pidfile:
    """Take ``pidfile``, removed at exit: a file naming a running process stops this one
    (exit code EX_CANTCREAT, after a message), a stale one is replaced."""
    try:
        return lock_pidfile(pidfile)
    except LockFailed as exc:
        print(f"ERROR: {exc}", file=sys.stderr)
        raise SystemExit(EX_CANTCREAT) from None


# -- users, groups, the process title --------------------------------------------------------


def drop_privileges(uid: str | int | None, gid: str | int | None) -> None:
    """Run as ``uid`` and ``gid`` (names or numbers) from now on; a user without a group
    takes the user's own."""
    if gid:
        gid = str(gid)
        os.setgid(int(gid) if gid.isdigit() else grp.getgrnam(gid).gr_gid)
    if uid:
        uid = str(uid)
        user = pwd.getpwuid(int(uid)) if uid.isdigit() else pwd.getpwnam(uid)
        if not gid:
            os.setgid(user.pw_gid)
        os.initgroups(user.pw_name, os.getgid())
        os.setuid(user.pw_uid)


def maybe_drop_privileges(uid: str | int | None = None, gid: str | int | None = None) -> None:
    """:func:`drop_privileges` when running as root (otherwise there is nothing to drop);
    SecurityError if root could be taken back."""
    if IS_WINDOWS or os.geteuid() != 0 or not (uid or gid):
        return
    drop_privileges(uid, gid)
    if uid and os.getuid() != 0:  # root is gone for good: taking it back must fail
        try:
            os.setuid(0)
        except PermissionError:
            return
        raise SecurityError("root could be taken back after dropping privileges")


def set_process_title(progname: str, info: str | None = None) -> str:
    """Set the title ``ps`` shows (``[progname] info``) when the setproctitle package is
    installed; the title either way."""
    title = f"[{progname}] {info}" if info else f"[{progname}]"
    with contextlib.suppress(ImportError):  # an optional package, never a dependency
        importlib.import_module("setproctitle").setproctitle(title)
    return title


def set_mp_process_title(
    progname: str, info: str | None = None, hostname: str | None = None
) -> str:
    """:func:`set_process_title` naming the node and this process (``MainProcess``,
    ``ForkPoolWorker-1`` ...)."""
    from multiprocessing import current_process  # not imported by every command

    if hostname:
        progname = f"{progname}: {hostname}"
    return set_process_title(f"{progname}:{current_process().name}", info)
