"""What every schedule shares: :class:`BaseSchedule`, its registry of types, and the
time-zone arithmetic."""

from __future__ import annotations

import datetime as dt
import math
import re
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, ClassVar, NamedTuple

from ..utils.time import get_timezone

if TYPE_CHECKING:
    from ..app import Celeriac

#: ``next`` (seconds) reported by schedules that will never be due again.
NEVER = 1e9

MINUTE = dt.timedelta(minutes=1)
_ALIASES = {"run_every": "every", "lat": "latitude", "lon": "longitude", "tz": "timezone"}
LastRun = dt.datetime | float | int | None


class schedstate(NamedTuple):
    """Result of :meth:`BaseSchedule.is_due`: due now?, and seconds until the next check."""

    is_due: bool
    next: float


def tz_from(value: str | dt.tzinfo | None) -> dt.tzinfo | None:
    if value is None or isinstance(value, dt.tzinfo):
        return value
    m = re.fullmatch(r"(?:UTC)?([+-])(\d\d):?(\d\d)", value)
    if m:
        sign = -1 if m.group(1) == "-" else 1
        return dt.timezone(sign * dt.timedelta(hours=int(m.group(2)), minutes=int(m.group(3))))
    try:
        return get_timezone(value)
    except Exception:
        raise ValueError(f"unknown time zone {value!r}") from None


def tz_name(tz: dt.tzinfo | None) -> str | None:
    if tz is None:
        return None
    if tz is dt.UTC:
        return "UTC"
    key = getattr(tz, "key", None)
    if isinstance(key, str):
        return key
    if isinstance(tz, dt.timezone):
        off = tz.utcoffset(None)
        sign = "-" if off < dt.timedelta(0) else "+"
        minutes = abs(int(off.total_seconds())) // 60
        return f"{sign}{minutes // 60:02d}:{minutes % 60:02d}"
    raise ValueError(f"time zone {tz!r} cannot be stored; use a zoneinfo name")


def until(later: dt.datetime, earlier: dt.datetime) -> float:
    """Real seconds between aware datetimes (``-`` and ``<`` ignore ``fold`` within a zone)."""
    return later.timestamp() - earlier.timestamp()


def resolve_wall(wall: dt.datetime, tz: dt.tzinfo) -> dt.datetime:
    """Naive wall-clock time in ``tz`` -> aware instant: the first occurrence of a repeated
    time, the end of the gap (first valid instant) for a time that does not exist."""
    first = wall.replace(tzinfo=tz, fold=0).astimezone(dt.UTC).astimezone(tz)
    if first.replace(tzinfo=None) == wall:
        return first
    # In a gap: fold=1 reads it with the later offset (earlier instant), fold=0 with the
    # earlier offset (later instant); the transition lies in between.
    after = wall.replace(tzinfo=tz, fold=1).utcoffset()
    lo = math.floor(wall.replace(tzinfo=tz, fold=1).timestamp())
    hi = math.ceil(wall.replace(tzinfo=tz, fold=0).timestamp())
    while lo < hi:
        mid = (lo + hi) // 2
        if dt.datetime.fromtimestamp(mid, tz).utcoffset() == after:
            hi = mid
        else:
            lo = mid + 1
    return dt.datetime.fromtimestamp(lo, tz)


class BaseSchedule:
    """Common machinery: time zone, clock, ``is_due`` and dict (JSON) conversion.

    ``app`` supplies the default zone (``app.timezone``); ``nowfun`` replaces the clock (it
    returns a datetime, naive ones being in :attr:`tz`); ``tz`` (a zone name or tzinfo) gives
    the schedule its own zone."""

    type_name: ClassVar[str] = ""
    _registry: ClassVar[dict[str, type[BaseSchedule]]] = {}

    def __init__(
        self,
        *,
        nowfun: Callable[[], dt.datetime] | None = None,
        app: Celeriac | None = None,
        tz: str | dt.tzinfo | None = None,
    ) -> None:
        self.nowfun = nowfun
        self.app = app
        self._tz = tz_from(tz)
        self._anchor: dt.datetime | None = None

    def __init_subclass__(cls, **kw: Any) -> None:
        super().__init_subclass__(**kw)
        if cls.__dict__.get("type_name"):  # its own name: a user's subclass takes no other's
            BaseSchedule._registry[cls.type_name] = cls

    @property
    def tz(self) -> dt.tzinfo:
        """The schedule's own zone if given, else ``app.timezone``, else UTC."""
        if self._tz is not None:
            return self._tz
        if self.app is not None:
            return self.app.timezone
        return dt.UTC

    def now(self) -> dt.datetime:
        """The current time, aware, in :attr:`tz`."""
        if self.nowfun is None:
            return dt.datetime.now(self.tz)
        return self.to_aware(self.nowfun())

    def to_aware(self, value: dt.datetime | float | int) -> dt.datetime:
        """UNIX seconds or a datetime (naive = wall time in :attr:`tz`) -> aware, in :attr:`tz`."""
        if isinstance(value, int | float):
            return dt.datetime.fromtimestamp(value, self.tz)
        if value.tzinfo is None:
            return resolve_wall(value.replace(fold=0), self.tz)
        return value.astimezone(self.tz)

    def _reference(self, last_run_at: LastRun) -> dt.datetime:
        """``last_run_at`` made aware; for ``None``, when this object was first asked."""
        if last_run_at is not None:
            return self.to_aware(last_run_at)
        if self._anchor is None:
            self._anchor = self.now()
        return self._anchor

    def next_run_after(self, when: dt.datetime) -> dt.datetime:
        """The first run strictly after ``when`` (aware, in :attr:`tz`)."""
        raise NotImplementedError

    def remaining_estimate(self, last_run_at: LastRun) -> dt.timedelta:
        """Time from now until the run following ``last_run_at`` (negative when overdue)."""
        return dt.timedelta(
            seconds=until(self.next_run_after(self._reference(last_run_at)), self.now())
        )

    def is_due(self, last_run_at: LastRun) -> schedstate:
        """Due when the first run after ``last_run_at`` has come; ``next`` is the number of
        seconds until the next run after now (when due) or until the pending run."""
        now = self.now()
        pending = self.next_run_after(self._reference(last_run_at))
        if until(pending, now) <= 0:
            return schedstate(True, max(until(self.next_run_after(now), now), 0.0))
        return schedstate(False, until(pending, now))

    def human(self) -> str:
        """A short English description."""
        raise NotImplementedError

    def _fields(self) -> dict[str, Any]:
        raise NotImplementedError

    def to_dict(self) -> dict[str, Any]:
        """A JSON-able dict with a ``"type"`` key; :func:`schedule_from_dict` reverses it."""
        return {"type": self.type_name, **self._fields(), "timezone": tz_name(self._tz)}

    @classmethod
    def from_dict(cls, data: dict[str, Any], app: Celeriac | None = None) -> BaseSchedule:
        """Rebuild a schedule from :meth:`to_dict` output (dispatching on ``"type"``).  Missing
        optional keys take their defaults; Celery's attribute names (``run_every``, ``lat``,
        ``lon``, ``tz``) are accepted for ``every``, ``latitude``, ``longitude``, ``timezone``."""
        data = {_ALIASES.get(k, k): v for k, v in data.items()}
        kind = data.get("type")
        target = BaseSchedule._registry.get(kind) if isinstance(kind, str) else None
        if target is None or (cls is not BaseSchedule and not issubclass(target, cls)):
            raise ValueError(f"unknown schedule type {kind!r}")
        return target._from_fields(data, app)

    @classmethod
    def _from_fields(cls, data: dict[str, Any], app: Celeriac | None) -> BaseSchedule:
        raise NotImplementedError

    def __eq__(self, other: object) -> bool:
        if type(other) is not type(self):
            return NotImplemented
        assert isinstance(other, BaseSchedule)
        return self.to_dict() == other.to_dict()

    def __hash__(self) -> int:
        return hash(repr(sorted(self.to_dict().items())))


def schedule_from_dict(data: dict[str, Any], app: Celeriac | None = None) -> BaseSchedule:
    """Rebuild any schedule from its :meth:`~BaseSchedule.to_dict` form."""
    return BaseSchedule.from_dict(data, app)
