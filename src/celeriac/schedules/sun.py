"""Solar schedules: at sunrise, sunset, dawn or dusk at a place."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from ..utils import solar as _solar
from .base import NEVER, BaseSchedule

if TYPE_CHECKING:
    from ..app import Celeriac


class solar(BaseSchedule):
    """Run at a solar event at a place: ``"dawn_astronomical"``, ``"dawn_nautical"``,
    ``"dawn_civil"``, ``"sunrise"``, ``"solar_noon"``, ``"sunset"``, ``"dusk_civil"``,
    ``"dusk_nautical"`` or ``"dusk_astronomical"``; ``lat``/``lon`` in degrees (north/east
    positive).  Computed with the NOAA equations (to about a minute).  Days without the event
    (polar day or night) are skipped; if none comes within two years it never runs (this is
    also the case within about half a degree of a pole, where the sun crosses an altitude
    without a daily rise and set).  Returned times are in :attr:`tz`."""

    type_name = "solar"
    _SEARCH_DAYS = 800

    def __init__(
        self,
        event: str,
        lat: float,
        lon: float,
        app: Celeriac | None = None,
        *,
        nowfun: Callable[[], dt.datetime] | None = None,
        tz: str | dt.tzinfo | None = None,
    ) -> None:
        super().__init__(nowfun=nowfun, app=app, tz=tz)
        if event not in _solar.EVENTS:
            raise ValueError(f"solar event: unknown event {event!r}")
        if not -90 <= lat <= 90:
            raise ValueError(f"solar lat: {lat} is out of range -90..90")
        if not -180 <= lon <= 180:
            raise ValueError(f"solar lon: {lon} is out of range -180..180")
        self.event, self.lat, self.lon = event, float(lat), float(lon)

    def next_run_after(self, when: dt.datetime) -> dt.datetime:
        """The first occurrence of the event strictly after ``when``; ``when + NEVER`` seconds
        when the event does not happen within two years."""
        when = self.to_aware(when)
        ts = when.timestamp()
        midnight = dt.datetime.combine(when.astimezone(dt.UTC).date(), dt.time(), dt.UTC)
        day = midnight.timestamp() - 86400.0
        for _ in range(self._SEARCH_DAYS):
            found = _solar.event_time(self.event, self.lat, self.lon, day)
            if found is not None and found > ts:
                return dt.datetime.fromtimestamp(found, self.tz)
            day += 86400.0
        return when + dt.timedelta(seconds=NEVER)

    def human(self) -> str:
        """E.g. ``"at sunrise at 51.5074, -0.1278"``."""
        return f"at {self.event.replace('_', ' ')} at {self.lat:g}, {self.lon:g}"

    def _fields(self) -> dict[str, Any]:
        return {"event": self.event, "latitude": self.lat, "longitude": self.lon}

    @classmethod
    def _from_fields(cls, data: dict[str, Any], app: Celeriac | None) -> solar:
        lat, lon = float(data["latitude"]), float(data["longitude"])
        return cls(data["event"], lat, lon, app=app, tz=data.get("timezone"))

    def __repr__(self) -> str:
        return f"<solar: {self.human()}>"


# -- clocked ------------------------------------------------------------------------------
