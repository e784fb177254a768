"""Beat: sends periodic tasks when they are due, from one of any number of beat processes.

Each tick: make sure this beat leads (a lease in the result backend; standby beats retry it),
reload the entries if their store changed, and send every due entry. A due run is claimed
with a key named after the entry and the run's scheduled time before it is sent, so two beats
never both send it, even while leadership changes hands. Run state (last run, count, recent
ids) is kept by the store and mirrored in the result backend, so a beat taking over carries
on where the last one stopped: no run repeated, and after downtime one catch-up run per entry
(``beat_missed_runs = "none"`` skips it).
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
import socket
import threading
import time
import uuid
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Protocol

from .. import signals, states
from ..exceptions import ImproperlyConfigured, OperationalError
from ..keys import BEAT_LEADER_KEY, BEAT_RUN_KEY, BEAT_RUN_KEY_TTL, BEAT_STATE_KEY
from ..serialization import json_dumps, json_loads
from .entry import Entry, configured_entries

if TYPE_CHECKING:
    from ..app import Celeriac

logger = logging.getLogger("celeriac.beat")


class Store(Protocol):
    """Where entries and their run state live."""

    def entries(self) -> dict[str, Entry]:
        """Every entry, with its saved state."""

    def changed(self) -> bool:
        """Have the entries changed since :meth:`entries` was last called?"""

    def save(self, entry: Entry) -> None:
        """Keep ``entry``'s state (after a run)."""

    def close(self) -> None: ...


class FileStore:
    """Entries from ``beat_schedule``; their state in a JSON file (``-s FILE``)."""

    def __init__(self, app: Celeriac, path: str | None = None) -> None:
        self.app = app
        self.path = os.path.abspath(path or app.conf.beat_schedule_filename)
        self._entries: dict[str, Entry] = {}

    def entries(self) -> dict[str, Entry]:
        self._entries = configured_entries(self.app)
        saved = self._read()
        for name, entry in self._entries.items():
            entry.load_state(saved.get(name))
        return self._entries

    def changed(self) -> bool:
        return False

    def save(self, entry: Entry) -> None:
        self._entries[entry.name] = entry
        states = {name: e.state() for name, e in self._entries.items()}
        tmp = f"{self.path}.tmp"
        with open(tmp, "w", encoding="utf-8") as f:
            json.dump({"version": 1, "entries": states}, f, indent=1)
        os.replace(tmp, self.path)

    def close(self) -> None:
        pass

    def _read(self) -> dict[str, Any]:
        try:
            with open(self.path, encoding="utf-8") as f:
                data = json.load(f)
            return dict(data.get("entries") or {})
        except FileNotFoundError:
            return {}
        except (ValueError, UnicodeDecodeError, AttributeError):
            aside = f"{self.path}.unreadable"
            os.replace(self.path, aside)
            logger.warning(
                "beat: %s was not a celeriac schedule file; moved to %s", self.path, aside
            )
            return {}


class Beat:
    """The periodic-task scheduler. ``tick()`` does one step (tests call it with ``now``);
    ``run()`` loops until :meth:`stop`."""

    def __init__(
        self,
        app: Celeriac,
        store: Store | None = None,
        max_interval: float | None = None,
        clock: Callable[[], dt.datetime] | None = None,
    ) -> None:
        app.finalize()
        self.app = app
        self.store = store or FileStore(app)
        if hasattr(self.store, "_beat"):  # a Celery-style Scheduler: its tick() calls ours
            self.store._beat = self
        conf = app.conf
        self.max_interval = float(max_interval or conf.beat_max_loop_interval or 300.0)
        self.lease = float(conf.beat_leader_lease)
        self.missed = conf.beat_missed_runs
        if self.missed not in ("one", "none"):
            raise ImproperlyConfigured("beat_missed_runs must be 'one' or 'none'")
        self.default_max_active = conf.beat_schedule_max_active
        self.id = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self._clock = clock or (lambda: dt.datetime.now(dt.UTC))
        self._entries: dict[str, Entry] | None = None
        self._leading = False
        self._lease_renewed = 0.0
        self._started_at: dt.datetime | None = None
        self._first_seen: dict[str, dt.datetime] = {}
        self._failing: set[str] = set()  # entries whose last look raised (logged once)
        self._stop = threading.Event()

    # -- the loop -------------------------------------------------------------------------

    def run(self) -> None:
        """Tick until stopped."""
        logger.info("beat: starting (%s)", self.id)
        signals.beat_init.send(sender=self)
        # a Celery-style Scheduler's tick() may wrap this beat's (beat/classic.py)
        tick = self.store.tick if hasattr(self.store, "_beat") else self.tick  # type: ignore[attr-defined]
        try:
            while not self._stop.is_set():
                try:
                    wait = tick()
                except OperationalError as exc:
                    logger.warning("beat: broker or backend unavailable (%s); retrying", exc)
                    wait = 1.0
                except Exception:  # a bug, or a stored state it cannot read: keep beating
                    logger.exception("beat: tick failed; trying again in 5 seconds")
                    wait = 5.0
                self._stop.wait(wait)
        finally:
            self.close()
            logger.info("beat: stopped")

    def stop(self) -> None:
        self._stop.set()

    def close(self) -> None:
        """Give up the lead (a standby beat takes over at once) and close the store."""
        self._resign()
        self.store.close()

    def tick(self, now: dt.datetime | None = None) -> float:
        """Send what is due now; returns the seconds until the next tick is needed."""
        now = now or self._clock()
        if self._started_at is None:
            self._started_at = now
        if not self._lead():
            return min(self.lease / 3, self.max_interval)
        if self._entries is None or self.store.changed():
            self._load()
        assert self._entries is not None
        wait = self.max_interval
        for entry in list(self._entries.values()):
            try:
                wait = min(wait, self._consider(entry, now))
            except OperationalError:
                raise
            except Exception:  # one broken entry does not hold up the others
                if entry.name not in self._failing:
                    logger.exception("beat: %s failed; skipped until it works", entry.name)
                self._failing.add(entry.name)
            else:
                self._failing.discard(entry.name)
        if self._backend() is not None:
            wait = min(wait, self.lease / 3)
        sync = getattr(self.store, "sync_interval", None)
        if sync:
            wait = min(wait, float(sync))  # a database schedule is re-read this often
        return max(wait, 0.0)

    # -- entries --------------------------------------------------------------------------

    def _load(self) -> None:
        entries = self.store.entries()
        backend = self._backend()
        if backend is not None:
            for name, entry in entries.items():
                raw = backend.get_value(BEAT_STATE_KEY.format(name))
                entry.load_state(json_loads(raw) if raw else None)
        self._entries = entries
        logger.info("beat: %d entr%s", len(entries), "y" if len(entries) == 1 else "ies")

    def _consider(self, entry: Entry, now: dt.datetime) -> float:
        """Send ``entry`` if it is due; returns seconds until it should be looked at again."""
        if not entry.enabled:
            return self.max_interval
        # times are compared as UNIX timestamps: datetimes in one zone compare wall clocks,
        # which is wrong within a repeated DST hour
        if entry.start_time is not None and now.timestamp() < entry.start_time.timestamp():
            return entry.start_time.timestamp() - now.timestamp()
        if entry.expires is not None and now.timestamp() >= entry.expires.timestamp():
            return self.max_interval
        schedule = entry.schedule
        schedule.nowfun = lambda: now
        if entry.last_run_at is None and type(schedule).__name__ in ("crontab", "solar"):
            # never run: due at its first time after beat first saw it, not at once
            entry.last_run_at = self._first_seen.setdefault(entry.name, now)
        due, next_in = schedule.is_due(entry.last_run_at)
        if not due:
            return float(next_in)
        scheduled = self._scheduled_time(entry, now)
        if self._missed_while_down(entry, scheduled):
            logger.info("beat: %s missed while beat was down; not caught up", entry.name)
            self._record(entry, now, None)
            return float(schedule.is_due(entry.last_run_at)[1])
        limit = entry.max_active if entry.max_active is not None else self.default_max_active
        if limit and self._active_runs(entry) >= int(limit):
            logger.warning(
                "beat: skipped %s: %d run(s) still pending or running (max_active %d)",
                entry.name,
                int(limit),
                int(limit),
            )
            self._record(entry, now, None)
            return float(schedule.is_due(entry.last_run_at)[1])
        self._send(entry, now, scheduled)
        return float(schedule.is_due(entry.last_run_at)[1])

    def _scheduled_time(self, entry: Entry, now: dt.datetime) -> dt.datetime | None:
        """When this run was scheduled for (None: the first run of an entry never run)."""
        if entry.last_run_at is None:
            return None
        return entry.schedule.next_run_after(entry.last_run_at)

    def _missed_while_down(self, entry: Entry, scheduled: dt.datetime | None) -> bool:
        return (
            self.missed == "none"
            and scheduled is not None
            and self._started_at is not None
            and scheduled.timestamp() < self._started_at.timestamp() - 1.0
        )

    def _send(self, entry: Entry, now: dt.datetime, scheduled: dt.datetime | None) -> None:
        task_id = str(uuid.uuid4())
        when = scheduled.isoformat() if scheduled else "first"
        backend = self._backend()
        claim = BEAT_RUN_KEY.format(entry.name, when)
        if backend is not None and not backend.set_value(
            claim, task_id.encode(), BEAT_RUN_KEY_TTL, only_if_absent=True
        ):
            logger.info("beat: %s (%s) was already sent by another beat", entry.name, when)
            entry.last_run_at = now  # that beat saves the state; this one reloads it on leading
            return
        try:
            send = getattr(self.store, "send", None)  # a Celery-style Scheduler's apply_async
            if send is not None:
                task_id = send(entry, task_id)
            else:
                options = dict(entry.options)
                # the entry's name travels with the run (results record it, as Celery's do)
                options["headers"] = {
                    **(options.get("headers") or {}),
                    "periodic_task_name": entry.name,
                }
                self.app.send_task(entry.task, entry.args, entry.kwargs, task_id=task_id, **options)
        except Exception:
            if backend is not None:
                backend.delete_value(claim)
            raise
        logger.info("beat: sent %s (%s) as %s[%s]", entry.name, when, entry.task, task_id)
        self._record(entry, now, task_id)

    def _record(self, entry: Entry, now: dt.datetime, task_id: str | None) -> None:
        if task_id is None:
            entry.last_run_at = now
        else:
            entry.ran(now, task_id)
        self.store.save(entry)
        backend = self._backend()
        if backend is not None:
            backend.set_value(BEAT_STATE_KEY.format(entry.name), json_dumps(entry.state()))

    def _active_runs(self, entry: Entry) -> int:
        """How many of the entry's recent runs have not finished (by the result backend)."""
        if not entry.recent or not self.app.results.enabled:
            return 0
        metas = self.app.results.metas(entry.recent)
        return sum(
            1
            for task_id in entry.recent
            if task_id not in metas or metas[task_id]["status"] not in states.READY_STATES
        )

    # -- leadership -----------------------------------------------------------------------

    def _backend(self) -> Any:
        """The shared store for leadership and run claims (None: none, as with rpc://)."""
        return self.app.backend if self.app.results.keeps_values else None

    def _lead(self) -> bool:
        """Hold (or take) the leader lease; False while another beat holds it."""
        backend = self._backend()
        if backend is None:
            return True  # no shared store: a single beat is assumed
        if self._leading and time.monotonic() - self._lease_renewed < self.lease / 3:
            return True
        me = self.id.encode()
        leading = backend.set_value(BEAT_LEADER_KEY, me, self.lease, only_if_absent=True)
        if not leading and backend.get_value(BEAT_LEADER_KEY) == me:
            backend.set_value(BEAT_LEADER_KEY, me, self.lease)
            leading = True
        if leading != self._leading or self._lease_renewed == 0.0:
            if leading:
                logger.info("beat: %s leads", self.id)
                self._entries = None  # reload: another beat may have sent things meanwhile
            else:
                logger.info("beat: another beat leads; %s stands by", self.id)
        self._leading = leading
        self._lease_renewed = time.monotonic() if leading else -1.0
        return leading

    def _resign(self) -> None:
        backend = self._backend()
        if backend is None or not self._leading:
            return
        try:
            if backend.get_value(BEAT_LEADER_KEY) == self.id.encode():
                backend.delete_value(BEAT_LEADER_KEY)
        except OperationalError:
            pass
