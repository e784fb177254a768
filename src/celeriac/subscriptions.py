"""Event-based scheduling: tasks subscribed to named events, sent by ``app.send_event``.

Subscriptions are made in code (``@app.on_event("order.created")``). A worker that starts
announces its app's subscriptions in the result backend, so a process that does not import
the subscribing code (another service) still reaches them. Events travel as ordinary task
messages through the broker: durable, retried and acknowledged like any task.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .keys import SUBSCRIBERS_KEY, SUBSCRIPTION_TTL

if TYPE_CHECKING:
    from .app import Celeriac


def subscribers(app: Celeriac, event: str) -> set[str]:
    """Task names subscribed to ``event``: this app's own, and those workers announced."""
    names = set(app._event_subscribers.get(event, ()))
    if app.results.enabled:
        names.update(app.results.backend.set_members(SUBSCRIBERS_KEY.format(event)))
    return names


def announce(app: Celeriac) -> None:
    """Record this app's subscriptions in the result backend (a worker does it on start)."""
    if not app.results.enabled:
        return
    backend = app.results.backend
    for event, names in app._event_subscribers.items():
        for name in names:
            backend.add_to_set(SUBSCRIBERS_KEY.format(event), name, SUBSCRIPTION_TTL)
