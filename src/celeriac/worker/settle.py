"""What a worker owes the broker for the messages it received: acknowledgements gathered to go
with the next fetch, and settlements the broker could not take when they were made.

A settlement that fails (the broker is away) is kept and tried again with every heartbeat,
and its message's lease is renewed meanwhile, so a finished task is not run again and a
message given back is not stranded: nothing is forgotten until the broker took it. (In a
prefork child, the parent renews what the child holds until the child reports it settled,
so forgetting one there would strand it for the worker's life.)
"""

from __future__ import annotations

import itertools
import logging
import threading
from collections.abc import Callable, Sequence

from ..brokers.base import Broker, Delivery
from ..exceptions import OperationalError
from ..execution import ACK, DEAD_LETTER, REQUEUE
from ..utils import safe_str

logger = logging.getLogger("celeriac.worker")

_ACTIONS = {ACK: "acknowledge", REQUEUE: "give back", DEAD_LETTER: "dead-letter"}


class Settlements:
    """The settlements one consumer (a worker, or a prefork child) still has to make."""

    def __init__(self, broker: Callable[[], Broker]) -> None:
        self._broker = broker
        self._lock = threading.Lock()
        self._acks: list[Delivery] = []  # finished: acknowledged with the next fetch
        self._pending: dict[int, tuple[Delivery, str, str | None, float | None]] = {}
        self._keys = itertools.count()

    # -- acknowledgements that go with the next fetch ---------------------------------------

    def ack_later(self, deliveries: Sequence[Delivery]) -> None:
        """Queue acknowledgements to go with the next fetch (their leases are renewed until
        then, and a copy redelivered meanwhile is recognised as finished)."""
        with self._lock:
            self._acks += deliveries

    def take_acks(self) -> list[Delivery]:
        """The queued acknowledgements, to be sent now."""
        with self._lock:
            acks, self._acks = self._acks, []
        return acks

    def keep_acks(self, acks: Sequence[Delivery]) -> None:
        """Queue ``acks`` again after sending them failed (acknowledging twice is harmless)."""
        with self._lock:
            self._acks[:0] = acks

    def flush_acks(self) -> None:
        """Send the queued acknowledgements in one call (kept for later if it fails)."""
        acks = self.take_acks()
        if not acks:
            return
        try:
            self._broker().ack_many(acks)
        except OperationalError:
            self.keep_acks(acks)

    # -- settling now, or as soon as the broker takes it ------------------------------------

    def settle(
        self,
        delivery: Delivery,
        action: str,
        reason: str | None = None,
        delay: float | None = None,
        what: str = "",
    ) -> bool:
        """Acknowledge, give back (after ``delay``) or dead-letter (with ``reason``) now;
        if the broker is away, keep it to try again with the heartbeat. True if done now."""
        try:
            self._apply(delivery, action, reason, delay)
            return True
        except OperationalError as exc:
            with self._lock:
                first = not self._pending
                self._pending[next(self._keys)] = (delivery, action, reason, delay)
            if first:  # one line per outage
                logger.warning(
                    "could not %s %s (broker unavailable: %s); trying again while its "
                    "lease is renewed",
                    _ACTIONS[action],
                    what or "a message",
                    safe_str(exc),
                )
            return False

    def _apply(
        self, delivery: Delivery, action: str, reason: str | None, delay: float | None
    ) -> None:
        broker = self._broker()
        if action == ACK:
            broker.ack(delivery)
        elif action == REQUEUE:
            broker.release(delivery, delay)
        else:
            broker.dead_letter(delivery, reason or "dead-lettered")

    def retry(self) -> None:
        """Make the settlements that failed, in order, until the broker fails again."""
        with self._lock:
            pending = sorted(self._pending.items())
        done = 0
        for key, (delivery, action, reason, delay) in pending:
            try:
                self._apply(delivery, action, reason, delay)
            except OperationalError:
                break
            with self._lock:
                self._pending.pop(key, None)
            done += 1
        if done:
            logger.warning("settled %d message(s) held while the broker was away", done)

    # -- what the worker asks ---------------------------------------------------------------

    def held(self) -> list[Delivery]:
        """The deliveries whose leases are still to be renewed: acknowledgements not sent
        yet, and settlements that failed."""
        with self._lock:
            return self._acks + [entry[0] for entry in self._pending.values()]

    def owed(self) -> tuple[int, int]:
        """How many acknowledgements, and how many other settlements, are not made yet."""
        with self._lock:
            return len(self._acks), len(self._pending)

    def __bool__(self) -> bool:
        with self._lock:
            return bool(self._acks or self._pending)
