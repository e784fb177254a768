"""Celery's loader object, ``app.loader``: what projects and plug-ins call on it.

Celery's loaders import the task modules and read configuration; in celeriac the app does
both, so the loader is a thin door onto it: :meth:`AppLoader.import_default_modules`,
:attr:`AppLoader.conf`, :meth:`AppLoader.import_task_module`, ``config_from_object``,
``autodiscover_tasks``, and Celery's worker hooks (``on_worker_init`` ...), which do nothing.
"""

from __future__ import annotations

import importlib
from types import ModuleType
from typing import TYPE_CHECKING, Any

from .. import signals
from ..utils.imports import import_from_cwd

if TYPE_CHECKING:
    from .base import Celeriac

__all__ = ["AppLoader"]


class AppLoader:
    """The loader of one app (``app.loader``), as Celery's ``AppLoader``."""

    def __init__(self, app: Celeriac, **kwargs: Any) -> None:
        self.app = app
        self.task_modules: set[str] = set()

    @property
    def conf(self) -> Any:
        """The app's settings (``app.conf``)."""
        return self.app.conf

    @property
    def configured(self) -> bool:
        return True

    @property
    def default_modules(self) -> tuple[str, ...]:
        """The modules ``imports`` and ``include`` name."""
        conf = self.app.conf
        return (*tuple(conf.imports or ()), *tuple(conf.include or ()))

    def import_default_modules(self) -> list[ModuleType]:
        """Import ``imports`` and ``include`` (sending ``import_modules`` first, as Celery)."""
        signals.import_modules.send(sender=self.app)
        return [self.import_task_module(m) for m in self.default_modules]

    def import_task_module(self, module: str) -> ModuleType:
        self.task_modules.add(module)
        return self.import_from_cwd(module)

    def import_module(self, module: str, package: str | None = None) -> ModuleType:
        return importlib.import_module(module, package=package)

    def import_from_cwd(
        self, module: str, imp: Any = None, package: str | None = None
    ) -> ModuleType:
        """Import ``module`` with the working directory first on ``sys.path``."""
        return import_from_cwd(module, imp=imp, package=package)

    def config_from_object(self, obj: Any, silent: bool = False) -> None:
        self.app.config_from_object(obj, silent=silent)

    def autodiscover_tasks(self, packages: Any, related_name: str = "tasks") -> None:
        self.app.autodiscover_tasks(packages, related_name=related_name, force=True)

    def read_configuration(self, fail_silently: bool = True) -> dict[str, Any]:
        """Nothing to read: settings come from the app (``config_from_object``)."""
        return {}

    # Celery's worker and task hooks: nothing to do here

    def init_worker(self) -> None:
        self.import_default_modules()

    def on_worker_init(self) -> None: ...

    def shutdown_worker(self) -> None: ...

    def on_worker_shutdown(self) -> None: ...

    def on_worker_process_init(self) -> None: ...

    def on_task_init(self, task_id: str, task: Any) -> None: ...

    def on_process_cleanup(self) -> None: ...
