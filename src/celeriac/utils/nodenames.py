"""Node names (``name@host``) and the ``%h``/``%n``/``%d``/``%i``/``%I`` expansion that
``-n``, ``--pidfile`` and ``--logfile`` take, with Celery's names."""

from __future__ import annotations

import os
import re
import socket
from typing import Any, NoReturn

#: the name half of a node name when none is given (``celeriac@host``)
NODENAME_DEFAULT = "celeriac"
NODENAME_SEP = "@"

_FORMAT = re.compile(r"%([%\w])")


def gethostname() -> str:
    """This machine's host name."""
    return socket.gethostname()


def nodename(name: str, hostname: str) -> str:
    """``name@hostname``."""
    return f"{name}{NODENAME_SEP}{hostname}"


def nodesplit(name: str) -> tuple[str | None, str]:
    """``(name, host)`` of a node name; ``(None, host)`` when it has no ``@``."""
    left, sep, right = name.partition(NODENAME_SEP)
    return (left, right) if sep else (None, left)


def default_nodename(hostname: str | None = None, default_name: str = NODENAME_DEFAULT) -> str:
    """``hostname`` as a full node name: the name half defaults to ``celeriac``, the host
    half to this machine's."""
    name, host = nodesplit(hostname or "")
    return nodename(name or default_name, host or gethostname())


def anon_nodename(hostname: str | None = None, prefix: str = "gen") -> str:
    """The node name of a process that is not a worker: ``gen<pid>@host``."""
    return nodename(f"{prefix}{os.getpid()}", hostname or gethostname())


def host_format(s: str, host: str | None = None, name: str | None = None, **extra: Any) -> str:
    """Expand ``%h`` (``host``, default this machine's), ``%n`` (``name``, default the host's
    first label), ``%d`` (the host's domain), ``%i`` (the process index: ``0``, as every
    process of a worker logs to one file), ``%I`` (empty, as in Celery's main process),
    ``%%`` and any ``%x`` given in ``extra``; other ``%x`` are left as they are."""
    host = host or gethostname()
    short, _, domain = host.partition(".")
    keys = {"h": host, "n": name or short, "d": domain, "i": "0", "I": "", "%": "%", **extra}
    return _FORMAT.sub(lambda m: str(keys.get(m[1], m[0])), s)


def worker_direct(hostname: Any) -> NoReturn:
    """Celery's queue that reaches one worker: celeriac's workers have no queue of their
    own (the ``worker_direct`` setting is refused), so this raises."""
    raise NotImplementedError(
        f"worker_direct({hostname!r}): celeriac's workers have no queue of their own; route "
        "the task to a named queue that worker consumes (-Q), or reach one worker with remote "
        "control (app.control ... destination=[name])"
    )
