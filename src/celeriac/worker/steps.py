"""The start-up steps a project added to ``app.steps`` (see :mod:`celeriac.bootsteps`), made
and run for one worker."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from ..bootsteps import ConsumerStep, Step
from ..exceptions import ImproperlyConfigured

if TYPE_CHECKING:
    from .worker import Worker

logger = logging.getLogger("celeriac.worker")


class Steps:
    """The worker's steps: worker steps, then consumer steps."""

    def __init__(self, worker: Worker, options: dict[str, Any]) -> None:
        self.worker = worker
        self.steps: list[Step] = []
        self.started: list[Step] = []
        for kind in ("worker", "consumer"):
            for cls in list(worker.app.steps.get(kind, ())):
                if isinstance(cls, type) and issubclass(cls, ConsumerStep):
                    raise ImproperlyConfigured(
                        f"{cls.__name__} is a bootsteps.ConsumerStep, which adds kombu "
                        "consumers to Celery's connection; celeriac has none. Send the "
                        "messages as tasks, or read them in a bootsteps.StartStopStep's "
                        "start() from a connection of the step's own"
                    )
                step = cls(worker, **options)
                if step.include_if(worker):
                    step.create(worker)
                    self.steps.append(step)

    def start(self) -> None:
        for step in self.steps:
            step.start(self.worker)
            self.started.append(step)

    def stop(self, cold: bool = False) -> None:
        """Stop (or, cold, terminate) the started steps in reverse order, then shut them
        down. A step that raises is logged; the others still stop."""
        for step in reversed(self.started):
            try:
                step.terminate(self.worker) if cold else step.stop(self.worker)
            except Exception:
                logger.exception("step %s raised while stopping", step.alias)
        for step in reversed(self.started):
            try:
                step.shutdown(self.worker)
            except Exception:
                logger.exception("step %s raised while shutting down", step.alias)
        self.started.clear()
