"""A remote debugger for tasks: Celery's ``celery.contrib.rdb``.

``rdb.set_trace()`` in a task stops it and waits for someone to connect (``telnet 127.0.0.1
6899``, or ``nc``); the connection gets a :mod:`pdb` session on the task's frame, and the
task goes on when the session continues or the connection closes::

    from celeriac.contrib import rdb

    @app.task
    def add(x, y):
        rdb.set_trace()
        return x + y

It listens on ``CELERY_RDB_HOST`` (default ``127.0.0.1``: only this machine can connect) and
the first free port from ``CELERY_RDB_PORT`` (default 6899) on, so several processes can
debug at once; the port is logged and written to stderr.
"""

from __future__ import annotations

import errno
import logging
import os
import pdb
import socket
import sys
from types import FrameType
from typing import Any

__all__ = ["DEFAULT_PORT", "Rdb", "debugger", "set_trace"]

logger = logging.getLogger("celeriac.contrib.rdb")

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 6899
#: how many ports from the first are tried
PORT_RANGE = 100


class Rdb(pdb.Pdb):
    """A :class:`pdb.Pdb` whose terminal is one TCP connection."""

    me = "Remote Debugger"

    def __init__(self, host: str | None = None, port: int | None = None) -> None:
        host = host or os.environ.get("CELERY_RDB_HOST") or DEFAULT_HOST
        first = port or int(os.environ.get("CELERY_RDB_PORT") or DEFAULT_PORT)
        self._listener, self.port = self._listen(host, first)
        self.say(f"{self.me}: waiting for a client on {host}:{self.port} (pid {os.getpid()})")
        self._connection, address = self._listener.accept()
        self._listener.close()
        self.say(f"{self.me}: client {address[0]}:{address[1]} connected")
        self._handle = self._connection.makefile("rw")
        super().__init__(stdin=self._handle, stdout=self._handle)
        self.prompt = "(Rdb) "
        self.use_rawinput = False

    @staticmethod
    def _listen(host: str, first: int) -> tuple[socket.socket, int]:
        for port in range(first, first + PORT_RANGE):
            sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET)
            try:
                sock.bind((host, port))
            except OSError as exc:
                sock.close()
                if exc.errno in (errno.EADDRINUSE, errno.EACCES):
                    continue
                raise
            sock.listen(1)
            return sock, port
        raise OSError(f"{Rdb.me}: no free port in {first}-{first + PORT_RANGE - 1} on {host}")

    def say(self, message: str) -> None:
        logger.warning("%s", message)
        print(message, file=sys.__stderr__, flush=True)

    def _close(self) -> None:
        self.say(f"{self.me}: session ended")
        for close in (self._handle.close, self._connection.close):
            try:
                close()
            except OSError:
                pass

    def do_continue(self, arg: str) -> Any:
        self._close()
        self.set_continue()
        return 1

    do_c = do_cont = do_continue

    def do_quit(self, arg: str) -> Any:
        self._close()
        self.set_quit()
        return 1

    do_q = do_exit = do_quit

    def set_quit(self) -> None:
        # leaving the debugger lets the task go on rather than raising BdbQuit in it
        sys.settrace(None)

    def trace_dispatch(self, frame: FrameType, event: str, arg: Any) -> Any:
        try:
            return super().trace_dispatch(frame, event, arg)
        except OSError:  # the client went away: the task goes on
            self.set_quit()
            return None


def debugger() -> Rdb:
    """A debugger waiting for a client (one per call)."""
    return Rdb()


def set_trace(frame: FrameType | None = None) -> None:
    """Stop here and wait for a client to debug the caller's frame."""
    if frame is None:
        frame = sys._getframe().f_back
    debugger().set_trace(frame)
