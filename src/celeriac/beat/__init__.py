"""Periodic tasks: ``celeriac -A proj beat`` (or ``worker -B``) sends them when due.

Entries come from ``app.conf.beat_schedule`` and ``app.add_periodic_task`` (kept with their
run state in a file), or from SQL tables editable while beat runs (:mod:`.database`).
"""

from .classic import PersistentScheduler, ScheduleEntry, Scheduler, SchedulingError
from .embedded import EmbeddedService, Service
from .entry import Entry
from .service import Beat, FileStore, Store

__all__ = [
    "Beat",
    "EmbeddedService",
    "Entry",
    "FileStore",
    "PersistentScheduler",
    "ScheduleEntry",
    "Scheduler",
    "SchedulingError",
    "Service",
    "Store",
]
