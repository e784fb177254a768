"""Logging: the worker's format, and loggers for task code.

``get_task_logger(__name__)`` gives a logger whose records carry the running task's name
and id (``%(task_name)s``, ``%(task_id)s``).
"""

from __future__ import annotations

import logging
import sys

from .. import signals
from .._state import current_request

_configured = False


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


class TaskFormatter(logging.Formatter):
    """A formatter whose format may name ``%(task_name)s`` and ``%(task_id)s`` (``???``
    outside a task), as Celery's ``TaskFormatter(fmt)``.

    With ``task_fmt`` (the worker's own use) records logged inside a task take that format
    and the rest ``fmt``; the worker's own records (``celeriac.*`` loggers) already name the
    task, so they keep ``fmt``."""

    def __init__(
        self, fmt: str | None = None, task_fmt: str | None = None, use_color: bool = False
    ) -> None:
        super().__init__(fmt)
        self._task = logging.Formatter(task_fmt) if task_fmt else None

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
    return logging.getLogger(name)


def setup_logging(
    loglevel: str | int = "WARNING",
    logfile: str | None = None,
    fmt: str = "[%(asctime)s: %(levelname)s/%(processName)s] %(message)s",
    task_fmt: str = "[%(asctime)s: %(levelname)s/%(processName)s] %(task_name)s[%(task_id)s]: "
    "%(message)s",
    hijack_root: bool = True,
) -> None:
    """Configure the root logger for a worker or beat process (once). As in Celery, a
    receiver of the ``setup_logging`` signal takes this over (nothing is configured here),
    and ``after_setup_logger`` / ``after_setup_task_logger`` follow a configuration."""
    global _configured
    level = logging.getLevelName(loglevel.upper()) if isinstance(loglevel, str) else loglevel
    if not isinstance(level, int):
        raise ValueError(f"unknown log level {loglevel!r}")
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
