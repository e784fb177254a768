"""Which store a beat keeps its entries in: ``-S`` / ``--scheduler`` or ``beat_scheduler``.

``file`` (the default; Celery's ``celery.beat:PersistentScheduler`` names it too) keeps run
state in a file (``-s`` / ``beat_schedule_filename``); ``db`` keeps the entries in SQL tables
(:mod:`.database`); ``django`` in a Django project's models, edited in its admin
(``celeriac.contrib.django.schedules``). A dotted path names a class whose instances are a
:class:`~celeriac.beat.service.Store` (made with the app), or a subclass of Celery's scheduler API
(:class:`celeriac.beat.Scheduler`, see :mod:`.classic`). Celery's other schedulers cannot
run here, and say what to use instead.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .. import plugins
from ..exceptions import ImproperlyConfigured
from .classic import Scheduler
from .database import DatabaseStore
from .service import FileStore, Store

if TYPE_CHECKING:
    from ..app import Celeriac

_FILE = {"file", "celery.beat:PersistentScheduler", "celery.beat.PersistentScheduler"}
_DATABASE = {"db", "database", "celeriac.beat.database:DatabaseStore"}
_DJANGO = "celeriac.contrib.django.schedules:DatabaseScheduler"
_DJANGO_CELERY_BEAT = "django_celery_beat"


def open_store(app: Celeriac, scheduler: str | None = None, schedule: str | None = None) -> Store:
    """The store ``scheduler`` names (else ``beat_scheduler``, else the file store);
    ``schedule`` is the file store's path."""
    name = scheduler or app.conf.beat_scheduler or "file"
    if not isinstance(name, str):
        cls: Any = name
    elif name in _FILE:
        return FileStore(app, schedule)
    elif name in _DATABASE:
        return DatabaseStore(app)
    elif name.startswith(_DJANGO_CELERY_BEAT):
        raise ImproperlyConfigured(
            f"scheduler {name!r} is django-celery-beat's, which runs on Celery only: use "
            "celeriac's Django scheduler instead (-S django, or CELERY_BEAT_SCHEDULER = "
            "'django', with celeriac.contrib.django.schedules in INSTALLED_APPS; `manage.py "
            "import_django_celery_beat` copies django-celery-beat's rows; see docs/django.md)"
        )
    else:
        if name == "django":
            name = _DJANGO
        cls = plugins.import_path(name, "scheduler")
    if isinstance(cls, type) and issubclass(cls, Scheduler):
        classic: Store = cls(app=app, schedule_filename=schedule)
        return classic
    if not all(callable(getattr(cls, m, None)) for m in ("entries", "changed", "save")):
        raise ImproperlyConfigured(
            f"scheduler {name!r} is not a celeriac store (a class with entries(), changed(), "
            "save(entry) and close()) nor a subclass of celeriac.beat.Scheduler (a Celery "
            "scheduler subclass runs once it subclasses celeriac's): use -S file or -S db, or "
            "see docs/scheduling.md"
        )
    store: Store = cls(app)
    return store
