"""Logging: the worker's format, and loggers for task code.

``get_task_logger(__name__)`` gives a logger whose records carry the running task's name
and id (``%(task_name)s``, ``%(task_id)s``).
"""

from __future__ import annotations

import contextlib
import logging
import multiprocessing
import sys
from collections.abc import Iterable, Iterator

from .. import signals
from .._state import current_request
from . import LOG_LEVELS as LOG_LEVELS

_configured = False

#: the worker's log formats (the defaults of ``worker_log_format`` and
#: ``worker_task_log_format``)
DEFAULT_PROCESS_LOG_FMT = "[%(asctime)s: %(levelname)s/%(processName)s] %(message)s"
DEFAULT_TASK_LOG_FMT = (
    "[%(asctime)s: %(levelname)s/%(processName)s] %(task_name)s[%(task_id)s]: %(message)s"
)
_in_sighandler = False


_COLORS = {logging.DEBUG: "\033[34m", logging.WARNING: "\033[33m", logging.ERROR: "\033[31m"}
_COLORS[logging.CRITICAL] = "\033[35m"


def mlevel(level: str | int) -> int:
    """A log level as a number, given its name (any case) or number."""
    if isinstance(level, str) and not level.isdigit():
        number = LOG_LEVELS.get(level.upper())
        if not isinstance(number, int):
            raise ValueError(f"unknown log level {level!r}")
        return number
    return int(level)


def add_task_context(record: logging.LogRecord) -> None:
    """Give ``record`` the running task's ``task_name`` and ``task_id`` (or ``???``)."""
    req = current_request.get()
    record.task_id = getattr(req, "id", None) or "???"
    task = getattr(req, "task", None)
    record.task_name = getattr(task, "name", None) or "???"


class TaskContextFilter(logging.Filter):
    """Adds ``task_name`` and ``task_id`` of the running task (or ``???``) to records."""

    def filter(self, record: logging.LogRecord) -> bool:
        add_task_context(record)
        return True


class ColorFormatter(logging.Formatter):
    """A formatter that colours a record by its level (blue debug, yellow warning, red
    error, magenta critical) when ``use_color``."""

    def __init__(self, fmt: str | None = None, use_color: bool = True) -> None:
        super().__init__(fmt)
        self.use_color = use_color

    def format(self, record: logging.LogRecord) -> str:
        text = super().format(record)
        color = _COLORS.get(record.levelno) if self.use_color else None
        return f"{color}{text}\033[0m" if color else text


class TaskFormatter(ColorFormatter):
    """A formatter whose format may name ``%(task_name)s`` and ``%(task_id)s`` (``???``
    outside a task), as Celery's ``TaskFormatter(fmt)``.

    With ``task_fmt`` (the worker's own use) records logged inside a task take that format
    and the rest ``fmt``; the worker's own records (``celeriac.*`` loggers) already name the
    task, so they keep ``fmt``."""

    def __init__(
        self, fmt: str | None = None, task_fmt: str | None = None, use_color: bool = False
    ) -> None:
        super().__init__(fmt, use_color)
        self._task = ColorFormatter(task_fmt, use_color) if task_fmt else None

    def format(self, record: logging.LogRecord) -> str:
        if not hasattr(record, "task_id"):
            add_task_context(record)
        if (
            self._task is not None
            and getattr(record, "task_id", "???") != "???"
            and not record.name.startswith("celeriac")
        ):
            return self._task.format(record)
        return super().format(record)


def get_task_logger(name: str) -> logging.Logger:
    """A logger for task modules; records carry the running task's name and id."""
    logger = logging.getLogger(name)
    if not any(isinstance(f, TaskContextFilter) for f in logger.filters):
        logger.addFilter(TaskContextFilter())
    return logger


def get_logger(name: str) -> logging.Logger:
    """The logger of that name (Celery's ``get_logger``)."""
    return logging.getLogger(name)


#: the logger of celeriac's own records
base_logger = logger = get_logger("celeriac")


def get_multiprocessing_logger() -> logging.Logger:
    """The :mod:`multiprocessing` package's logger."""
    return multiprocessing.get_logger()


def reset_multiprocessing_logger() -> None:
    """Celery's hook to reset billiard's logger after a fork: nothing to reset here."""


def set_in_sighandler(value: bool) -> None:
    """Record whether a signal handler is running (see :func:`in_sighandler`)."""
    global _in_sighandler
    _in_sighandler = value


@contextlib.contextmanager
def in_sighandler() -> Iterator[None]:
    """Mark the block as running inside a signal handler."""
    set_in_sighandler(True)
    try:
        yield
    finally:
        set_in_sighandler(False)


class LoggingProxy:
    """A file-like object whose writes become records of ``logger`` at ``loglevel``
    (``sys.stdout = LoggingProxy(logger)``), a record per line, blank lines dropped."""

    mode = "w"
    name = None
    closed = False
    encoding = "utf-8"

    def __init__(self, logger: logging.Logger, loglevel: str | int | None = None) -> None:
        self.logger = logger
        self.loglevel = mlevel(loglevel if loglevel is not None else logging.WARNING)

    def write(self, data: str) -> int:
        if not self.closed:
            for line in str(data).splitlines():
                if line.strip():
                    self.logger.log(self.loglevel, line.rstrip())
        return len(data)

    def writelines(self, lines: Iterable[str]) -> None:
        for line in lines:
            self.write(line)

    def flush(self) -> None:
        """Records are written at once: nothing is buffered."""

    def close(self) -> None:
        self.closed = True

    def isatty(self) -> bool:
        return False

    def fileno(self) -> None:
        return None


def setup_logging(
    loglevel: str | int = "WARNING",
    logfile: str | None = None,
    fmt: str = DEFAULT_PROCESS_LOG_FMT,
    task_fmt: str = DEFAULT_TASK_LOG_FMT,
    hijack_root: bool = True,
) -> None:
    """Configure the root logger for a worker or beat process (once). As in Celery, a
    receiver of the ``setup_logging`` signal takes this over (nothing is configured here),
    and ``after_setup_logger`` / ``after_setup_task_logger`` follow a configuration."""
    global _configured
    level = mlevel(loglevel)
    settings = {"loglevel": level, "logfile": logfile, "format": fmt, "colorize": False}
    if signals.setup_logging.has_receivers():
        if not _configured:
            _configured = True
            signals.setup_logging.send(sender=None, **settings)
        return
    root = logging.getLogger()
    root.setLevel(level)
    if _configured or (root.handlers and not hijack_root):
        return
    handler: logging.Handler = (
        logging.FileHandler(logfile) if logfile else logging.StreamHandler(sys.stderr)
    )
    handler.addFilter(TaskContextFilter())
    handler.setFormatter(TaskFormatter(fmt, task_fmt))
    if hijack_root:
        for old in list(root.handlers):
            root.removeHandler(old)
    root.addHandler(handler)
    _configured = True
    signals.after_setup_logger.send(sender=None, logger=root, **settings)
    task_settings = {**settings, "format": task_fmt}
    task_logger = logging.getLogger("celeriac.task")
    signals.after_setup_task_logger.send(sender=None, logger=task_logger, **task_settings)
