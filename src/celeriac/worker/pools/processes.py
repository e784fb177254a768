"""What both kinds of prefork pool use: pipes of pickled frames between parent and child,
a child that dies with its parent, and the outcome of a job whose process died."""

from __future__ import annotations

import logging
import os
import pickle
import resource
import signal
import struct
import tempfile
import threading
from typing import TYPE_CHECKING, Any

from ... import states
from ...exceptions import Terminated, TimeLimitExceeded, WorkerLostError
from ...execution import REQUEUE, Outcome, TaskRun, make_request
from .base import Job

if TYPE_CHECKING:
    from ...app import Celeriac

logger = logging.getLogger("celeriac.worker")

FRAME = struct.Struct("I")  # a pickle's length, before it on a pipe between processes
#: how long a supervisor waits for the exit status of a child whose sentinel fired: the
#: sentinel closes as the child exits, a moment before the system reports its status
REAP_WAIT = 2.0
MAX_PROCESSES = 256  # the most children a pool can grow to (pool_grow): slots in shared memory
PIPE_SIZE = 1 << 20  # asked for each report pipe (Linux); a full one only makes a writer wait


def die_with_parent() -> None:
    """In a forked child: be killed when the thread that forked it ends (Linux)."""
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except Exception:  # not Linux: the child notices the parent's pipe closing instead
        pass


def anonymous_file() -> int:
    """A descriptor of a file with no name (fork passes it on), for the queue's lock: in
    memory where the system has ``memfd_create``, so a read-only file system does not stop
    the pool."""
    if hasattr(os, "memfd_create"):
        return os.memfd_create("celeriac-prefork")
    fd, path = tempfile.mkstemp(prefix="celeriac-prefork-")
    os.unlink(path)
    return fd


def send_frame(fd: int, item: Any) -> None:
    """Write ``item`` to a pipe, pickled behind its length, whole (waiting for room)."""
    data = pickle.dumps(item, pickle.HIGHEST_PROTOCOL)
    view = memoryview(FRAME.pack(len(data)) + data)
    while view:
        view = view[os.write(fd, view) :]


_READ = bytearray(1 << 16)  # one buffer to read pipes into (a fresh 64 KB per read, shrunk
# to what came, left the parent's heap ever more fragmented)
_READ_LOCK = threading.Lock()


def read_frames(fd: int, unread: bytearray) -> list[Any]:
    """The items written to the non-blocking pipe ``fd`` by :func:`send_frame` since the
    last call; ``unread`` keeps the start of one not yet whole."""
    with _READ_LOCK:
        while True:
            try:
                n = os.readv(fd, [_READ])
            except BlockingIOError:
                break
            unread += memoryview(_READ)[:n]
            if n < len(_READ):  # no more for now (or the writer is gone)
                break
    items, at = [], 0
    while len(unread) - at >= FRAME.size:
        (size,) = FRAME.unpack_from(unread, at)
        if len(unread) - at - FRAME.size < size:
            break
        items.append(pickle.loads(memoryview(unread)[at + FRAME.size : at + FRAME.size + size]))
        at += FRAME.size + size
    del unread[:at]
    return items


def lost_outcome(
    app: Celeriac, hostname: str, job: Job, exitcode: int | None, killed_for: str | None
) -> Outcome:
    """The outcome of a job whose process died under it (exit code ``exitcode``), killed by
    the worker for ``killed_for`` (``"time_limit"``, ``"revoked"``, ``"shutdown"``, or
    ``"another task"``: the one it ran just before) or not.

    A process that died of its own accord (the OOM killer, a crash in C code, ``os._exit``)
    gives its task back to the queue, unless ``task_reject_on_worker_lost`` is off (Celery's
    default: the task fails with WorkerLostError); a task that kills its process every time
    is dead-lettered after ``worker_max_deliveries`` deliveries."""
    run = TaskRun(app, job.task, make_request(job.task, job.message, hostname, job.delivery_info))
    if killed_for == "revoked":
        signum = -exitcode if exitcode is not None and exitcode < 0 else None
        stopped = Terminated(f"terminated by revoke (exit code {exitcode})")
        return run.guarded(lambda exc: run.terminated(exc, signum), stopped)
    if killed_for in ("shutdown", "another task"):
        return Outcome(REQUEUE, states.PENDING, "worker process lost")
    if killed_for == "time_limit":
        exc: BaseException = TimeLimitExceeded(f"time limit ({job.hard_limit}s) exceeded")
        logger.error("Task %s[%s]: %s", job.task.name, job.message.id, exc)
        return run.guarded(run.failed, exc)
    how = exit_description(exitcode)
    reject = job.task.reject_on_worker_lost
    if reject is None:
        reject = app.conf.task_reject_on_worker_lost
    if reject:
        logger.error(
            "Task %s[%s]: its process %s while running it; back to its queue (delivery %d, "
            "dead-lettered after worker_max_deliveries=%s)",
            job.task.name,
            job.message.id,
            how,
            job.delivery.delivery_count,
            app.conf.worker_max_deliveries,
        )
        return Outcome(REQUEUE, states.PENDING, f"worker process lost ({how})")
    exc = WorkerLostError(f"Worker exited prematurely: {how}.")
    logger.error("Task %s[%s]: %s", job.task.name, job.message.id, exc)
    return run.guarded(run.failed, exc)


def exit_description(exitcode: int | None) -> str:
    if exitcode is not None and exitcode < 0:
        try:
            return f"was killed by {signal.Signals(-exitcode).name}"
        except ValueError:
            return f"was killed by signal {-exitcode}"
    return f"exited (exit code {exitcode})"


def over_memory(app: Celeriac) -> bool:
    """Has this process grown past ``worker_max_memory_per_child`` (KB of resident memory,
    at its largest)? Then it takes no more jobs and another process replaces it."""
    limit = app.conf.worker_max_memory_per_child
    return bool(limit) and resource.getrusage(resource.RUSAGE_SELF).ru_maxrss > int(limit)
