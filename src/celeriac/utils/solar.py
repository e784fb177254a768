"""Sun position math for :class:`celeriac.schedules.solar`.

The NOAA solar calculator equations (low-precision series for the sun's apparent longitude,
the obliquity of the ecliptic and the equation of time), good to well under a minute for
sunrise/sunset away from the polar circles.  Longitudes are east-positive, times are UNIX
seconds (UTC).
"""

from __future__ import annotations

import math

#: event name -> (sun altitude in degrees, direction): -1 rising, +1 setting, 0 transit.
EVENTS: dict[str, tuple[float, int]] = {
    "dawn_astronomical": (-18.0, -1),
    "dawn_nautical": (-12.0, -1),
    "dawn_civil": (-6.0, -1),
    "sunrise": (-0.833, -1),
    "solar_noon": (0.0, 0),
    "sunset": (-0.833, 1),
    "dusk_civil": (-6.0, 1),
    "dusk_nautical": (-12.0, 1),
    "dusk_astronomical": (-18.0, 1),
}

_DAY = 86400.0


def sun_declination_and_eqtime(ts: float) -> tuple[float, float]:
    """UNIX seconds -> (declination in degrees, equation of time in minutes)."""
    jd = ts / _DAY + 2440587.5
    t = (jd - 2451545.0) / 36525.0  # Julian centuries since J2000.0
    mean_long = math.radians((280.46646 + t * (36000.76983 + t * 0.0003032)) % 360.0)
    mean_anom = math.radians(357.52911 + t * (35999.05029 - 0.0001537 * t))
    ecc = 0.016708634 - t * (0.000042037 + 0.0000001267 * t)
    center = (
        math.sin(mean_anom) * (1.914602 - t * (0.004817 + 0.000014 * t))
        + math.sin(2 * mean_anom) * (0.019993 - 0.000101 * t)
        + math.sin(3 * mean_anom) * 0.000289
    )
    omega = math.radians(125.04 - 1934.136 * t)
    apparent_long = math.radians(
        math.degrees(mean_long) + center - 0.00569 - 0.00478 * math.sin(omega)
    )
    seconds = 21.448 - t * (46.815 + t * (0.00059 - t * 0.001813))
    obliquity = math.radians(23.0 + (26.0 + seconds / 60.0) / 60.0 + 0.00256 * math.cos(omega))
    declination = math.degrees(math.asin(math.sin(obliquity) * math.sin(apparent_long)))
    y = math.tan(obliquity / 2) ** 2
    eqtime = 4 * math.degrees(
        y * math.sin(2 * mean_long)
        - 2 * ecc * math.sin(mean_anom)
        + 4 * ecc * y * math.sin(mean_anom) * math.cos(2 * mean_long)
        - 0.5 * y * y * math.sin(4 * mean_long)
        - 1.25 * ecc * ecc * math.sin(2 * mean_anom)
    )
    return declination, eqtime


def _transit(day_start: float, lon: float, ts: float) -> float:
    """Solar noon of the UTC day starting at ``day_start``, eqtime taken at ``ts``."""
    _, eqtime = sun_declination_and_eqtime(ts)
    return day_start + (720.0 - 4.0 * lon - eqtime) * 60.0


def event_time(event: str, lat: float, lon: float, day_start: float) -> float | None:
    """UNIX time of ``event`` on the solar day whose noon falls near the UTC day starting at
    ``day_start`` (UNIX seconds of a UTC midnight); ``None`` when the sun does not reach the
    event's altitude that day (polar day or night)."""
    altitude, direction = EVENTS[event]
    when = day_start + (720.0 - 4.0 * lon) * 60.0
    noon = when
    for _ in range(3):
        noon = _transit(day_start, lon, noon)
    if direction == 0:
        return noon
    phi = math.radians(lat)
    when = noon
    for _ in range(4):
        decl, _eq = sun_declination_and_eqtime(when)
        delta = math.radians(decl)
        denom = math.cos(phi) * math.cos(delta)
        if abs(denom) < 1e-12:
            return None
        cos_ha = (math.sin(math.radians(altitude)) - math.sin(phi) * math.sin(delta)) / denom
        if not -1.0 <= cos_ha <= 1.0:
            return None
        hour_angle = math.degrees(math.acos(cos_ha))
        when = _transit(day_start, lon, when) + direction * hour_angle * 4.0 * 60.0
    return when
