"""Worker start-up steps a project adds, as Celery's ``bootsteps``::

    from celeriac import bootsteps

    class LivenessProbe(bootsteps.StartStopStep):
        def start(self, worker):
            self.tref = worker.timer.call_repeatedly(1.0, HEARTBEAT_FILE.touch)

        def stop(self, worker):
            self.tref.cancel()
            HEARTBEAT_FILE.unlink(missing_ok=True)

    app.steps["worker"].add(LivenessProbe)

A step class in ``app.steps["worker"]`` or ``app.steps["consumer"]`` is made once per worker
(``Step(worker, **options)``: the worker's keyword arguments, with the values of the
project's own worker options, ``app.user_options["worker"]``); ``start`` runs once the pool
is up, before the worker reports ready, and ``stop`` then ``shutdown`` run when it stops, in
reverse order. Both kinds are given the worker (it has ``app``, ``hostname``, ``pool``,
``timer`` and ``consumer``). ``requires`` is accepted but not followed: worker steps start
before consumer steps, and within a kind in no set order. ``ConsumerStep`` (consumers of
kombu's own) has no counterpart: a worker with one refuses to start, saying what to do
instead.
"""

from __future__ import annotations

from typing import Any, ClassVar

__all__ = ["CLOSE", "RUN", "TERMINATE", "ConsumerStep", "StartStopStep", "Step"]

RUN, CLOSE, TERMINATE = 0x1, 0x2, 0x3


class Step:
    """One step of a worker's start-up; subclasses override the hooks they need."""

    name: ClassVar[str | None] = None
    requires: ClassVar[Any] = ()
    enabled: ClassVar[bool] = True
    label: ClassVar[str | None] = None
    conditional: ClassVar[bool] = False

    def __init__(self, parent: Any, **kwargs: Any) -> None:
        pass

    def include_if(self, parent: Any) -> bool:
        """Should this step run in ``parent``?"""
        return self.enabled

    def create(self, parent: Any) -> Any:
        """Called once the worker is made, before it starts."""
        return None

    def start(self, parent: Any) -> None:
        """Called when the worker starts, before it reports ready."""

    def stop(self, parent: Any) -> None:
        """Called when the worker stops (warm shutdown)."""

    def shutdown(self, parent: Any) -> None:
        """Called after every step has stopped."""

    def terminate(self, parent: Any) -> None:
        """Called instead of ``stop`` on a cold shutdown; ``stop`` by default."""
        self.stop(parent)

    @property
    def alias(self) -> str:
        return self.label or self.name or type(self).__name__


class StartStopStep(Step):
    """A step with something to start and stop (the hooks above)."""

    obj: Any = None


class ConsumerStep(StartStopStep):
    """Celery's step that adds kombu consumers to the worker's connection. celeriac has no
    kombu connection to add them to, so a worker refuses to start with one."""

    def get_consumers(self, channel: Any) -> list[Any]:
        raise NotImplementedError
