"""``Polaroid``, the base class of Celery's event cameras, for ``celeriac events --camera``.

A camera is given the cluster's :class:`~celeriac.events.state.State` and photographs it
every ``--frequency`` seconds: the events command calls :meth:`Polaroid.capture`, which calls
:meth:`Polaroid.on_shutter` (the method a camera overrides) with the state held still, no
more often than ``--maxrate`` allows, then clears the state if ``clear_after`` is set; every
``cleanup_freq`` seconds it calls :meth:`Polaroid.on_cleanup`.
"""

from __future__ import annotations

import time
from typing import Any

from ..rates import parse_rate
from ..signals import Signal
from .state import State


class Polaroid:
    """A camera: subclass it and define ``on_shutter(self, state)``. ``timer`` and ``app``
    are accepted as Celery's are (``celeriac events`` times the photographs itself)."""

    #: empty the state after each photograph (each shows only what happened since the last)
    clear_after = False
    shutter_signal = Signal("shutter")
    cleanup_signal = Signal("cleanup")

    def __init__(
        self,
        state: State,
        freq: float = 1.0,
        maxrate: Any = None,
        cleanup_freq: float = 3600.0,
        timer: Any = None,
        app: Any = None,
    ) -> None:
        self.app = app
        self.state = state
        self.freq = float(freq)
        self.cleanup_freq = float(cleanup_freq)
        rate = parse_rate(maxrate)
        self._spacing = 1.0 / rate.per_second if rate is not None else 0.0
        self._last_shot = float("-inf")
        self._last_cleanup = time.monotonic()

    def on_shutter(self, state: State) -> None:
        """Called with the state at each photograph."""

    def on_cleanup(self) -> None:
        """Called every ``cleanup_freq`` seconds."""

    def shutter(self) -> None:
        """Take a photograph now, unless ``maxrate`` says it is too soon."""
        now = time.monotonic()
        if now - self._last_shot < self._spacing:
            return
        self._last_shot = now
        self.shutter_signal.send(sender=self.state)
        self.on_shutter(self.state)

    def capture(self) -> None:
        """A photograph with the state held still (then cleared, with ``clear_after``);
        the periodic clean-up when it is due."""
        self.state.freeze_while(self.shutter, clear_after=self.clear_after)
        if time.monotonic() - self._last_cleanup >= self.cleanup_freq:
            self.cleanup()

    def cleanup(self) -> None:
        """Run the clean-up now (``cleanup_signal``, then :meth:`on_cleanup`)."""
        self._last_cleanup = time.monotonic()
        self.cleanup_signal.send(sender=self.state)
        self.on_cleanup()

    def install(self) -> None:
        """Nothing to start: ``celeriac events`` takes the photographs."""

    def cancel(self) -> None:
        """Nothing to stop."""

    def __enter__(self) -> Polaroid:
        self.install()
        return self

    def __exit__(self, *exc: object) -> None:
        self.cancel()
