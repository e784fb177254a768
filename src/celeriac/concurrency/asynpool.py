"""Celery's ``celery.concurrency.asynpool``, for its one setting projects change."""

from __future__ import annotations

#: Celery kills a prefork child whose start (``worker_process_init`` handlers) takes longer
#: than this many seconds, so projects raise it. celeriac's prefork pools wait for a child's
#: start however long it takes (a time limit counts only from when a task starts), so this
#: is accepted and changes nothing.
PROC_ALIVE_TIMEOUT = 4.0
