"""Settings, under Celery's lowercase names.

``app.conf`` is a :class:`Settings`: a dict with attribute access. Old uppercase names
(``CELERY_TASK_ALWAYS_EAGER``, ``BROKER_URL``, ``CELERY_BEAT_SCHEDULE`` ...) are translated to
the new ones. A setting celeriac does not know is reported with an
:class:`UnknownSettingWarning` rather than silently ignored.
"""

from __future__ import annotations

import functools
import importlib
import inspect
import types
import warnings
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from .exceptions import ImproperlyConfigured
from .utils.urls import safe_url


class UnknownSettingWarning(UserWarning):
    """A configuration key that celeriac does not know (probably a typo)."""


#: The broker when ``broker_url`` is not set: the embedded SQLite file in the working directory.
DEFAULT_BROKER_URL = "sqlite:///celeriac.db"

DEFAULTS: dict[str, Any] = {
    # broker
    "broker_url": None,
    "broker_transport_options": {},
    "broker_connection_retry": True,
    "broker_connection_retry_on_startup": True,
    "broker_connection_max_retries": 100,
    "broker_connection_timeout": 4.0,
    "broker_heartbeat": None,
    "broker_pool_limit": 10,
    # results
    "result_backend": None,
    "result_backend_transport_options": {},
    "result_backend_always_retry": True,  # workers retry storing results while it is down
    "result_backend_max_retries": None,  # None: until it is back (the lease is kept meanwhile)
    "result_backend_base_sleep_between_retries_ms": 10,
    "result_backend_max_sleep_between_retries_ms": 10000,
    "result_expires": 86400.0,
    "result_serializer": "json",
    "result_accept_content": None,
    "result_extended": False,
    # modules, besides builtins and the packages of the registered tasks, whose exceptions
    # get() rebuilds (nothing is imported for a stored result)
    "result_exception_modules": (),
    "result_persistent": True,
    # tasks
    "task_default_queue": "celery",
    "task_default_priority": None,
    "task_default_rate_limit": None,
    "task_default_retry_delay": 180.0,
    "task_max_retries": 3,
    "task_always_eager": False,
    "task_eager_propagates": False,
    "task_store_eager_result": False,
    "task_acks_late": True,
    "task_acks_on_failure_or_timeout": True,
    "task_reject_on_worker_lost": True,  # a task whose process died goes back to its queue
    "task_serializer": "json",
    "accept_content": ["json"],
    "task_ignore_result": False,
    "task_track_started": False,
    "task_time_limit": None,
    "task_soft_time_limit": None,
    "task_publish_retry": True,
    "task_publish_retry_policy": {
        "max_retries": 3,
        "interval_start": 0.0,
        "interval_step": 0.2,
        "interval_max": 0.2,
    },
    "task_routes": None,
    "task_queues": None,
    "router_least_loaded_queues": None,
    "task_create_missing_queues": True,
    "task_annotations": None,
    "task_send_sent_event": False,
    "task_compression": None,
    "task_default_exchange": None,
    "task_default_routing_key": None,
    "task_inherit_parent_priority": False,
    # worker
    "worker_concurrency": None,
    "worker_pool": "prefork",
    "worker_prefetch_multiplier": 4,
    "worker_max_tasks_per_child": None,
    "worker_max_memory_per_child": None,
    "worker_max_deliveries": 10,
    "worker_hijack_root_logger": True,
    "worker_log_color": None,
    "worker_log_format": "[%(asctime)s: %(levelname)s/%(processName)s] %(message)s",
    "worker_task_log_format": (
        "[%(asctime)s: %(levelname)s/%(processName)s] %(task_name)s[%(task_id)s]: %(message)s"
    ),
    "worker_redirect_stdouts": True,
    "worker_redirect_stdouts_level": "WARNING",
    "worker_send_task_events": False,
    "worker_disable_rate_limits": False,
    "worker_enable_remote_control": True,
    "worker_heartbeat_interval": None,
    "worker_result_cleanup_interval": 300.0,
    "worker_shutdown_timeout": None,
    "worker_queue_order": "round_robin",  # or "priority": earlier -Q queues drained first
    "worker_state_db": None,
    # time
    "timezone": None,
    "enable_utc": True,
    # modules
    "imports": (),
    "include": (),
    # beat
    "beat_schedule": {},
    "beat_scheduler": None,
    "beat_schedule_filename": "celerybeat-schedule",
    "beat_max_loop_interval": 300.0,
    "beat_sync_every": 0,
    "beat_schedule_max_active": None,
    "beat_missed_runs": "one",  # after downtime: "one" catch-up run per entry, or "none"
    "beat_leader_lease": 15.0,  # seconds; a standby beat takes over within about this long
    "beat_db_url": None,  # the database scheduler's SQL database (default: see docs)
    "beat_db_sync_interval": 3.0,  # how often the database scheduler looks for changes
    # events and control
    "event_queue_ttl": 5.0,
    "event_queue_expires": 60.0,
    "control_queue_ttl": 300.0,
}

# Old uppercase names whose new name is not just the lowercase of what follows CELERY_.
_LEGACY: dict[str, str] = {
    "BROKER_URL": "broker_url",
    "BROKER_TRANSPORT_OPTIONS": "broker_transport_options",
    "BROKER_CONNECTION_RETRY": "broker_connection_retry",
    "BROKER_CONNECTION_MAX_RETRIES": "broker_connection_max_retries",
    "BROKER_CONNECTION_TIMEOUT": "broker_connection_timeout",
    "BROKER_HEARTBEAT": "broker_heartbeat",
    "BROKER_POOL_LIMIT": "broker_pool_limit",
    "ALWAYS_EAGER": "task_always_eager",
    "EAGER_PROPAGATES_EXCEPTIONS": "task_eager_propagates",
    "ACKS_LATE": "task_acks_late",
    "ACCEPT_CONTENT": "accept_content",
    "DEFAULT_QUEUE": "task_default_queue",
    "DEFAULT_PRIORITY": "task_default_priority",
    "DEFAULT_RATE_LIMIT": "task_default_rate_limit",
    "DEFAULT_RETRY_DELAY": "task_default_retry_delay",
    "IGNORE_RESULT": "task_ignore_result",
    "TRACK_STARTED": "task_track_started",
    "TASK_RESULT_EXPIRES": "result_expires",
    "ROUTES": "task_routes",
    "QUEUES": "task_queues",
    "CREATE_MISSING_QUEUES": "task_create_missing_queues",
    "ANNOTATIONS": "task_annotations",
    "TIMEZONE": "timezone",
    "ENABLE_UTC": "enable_utc",
    "IMPORTS": "imports",
    "INCLUDE": "include",
    "CELERYBEAT_SCHEDULE": "beat_schedule",
    "CELERYBEAT_SCHEDULER": "beat_scheduler",
    "CELERYBEAT_SCHEDULE_FILENAME": "beat_schedule_filename",
    "CELERYBEAT_MAX_LOOP_INTERVAL": "beat_max_loop_interval",
    "CELERYD_CONCURRENCY": "worker_concurrency",
    "CELERYD_PREFETCH_MULTIPLIER": "worker_prefetch_multiplier",
    "CELERYD_MAX_TASKS_PER_CHILD": "worker_max_tasks_per_child",
    "CELERYD_POOL": "worker_pool",
    "CELERYD_HIJACK_ROOT_LOGGER": "worker_hijack_root_logger",
    "CELERYD_TASK_TIME_LIMIT": "task_time_limit",
    "CELERYD_TASK_SOFT_TIME_LIMIT": "task_soft_time_limit",
    "TASK_TIME_LIMIT": "task_time_limit",
    "TASK_SOFT_TIME_LIMIT": "task_soft_time_limit",
}


def normalise_key(key: str) -> str | None:
    """The lowercase setting name for ``key`` (new or old style), or None if unknown."""
    if key in DEFAULTS:
        return key
    if key in _LEGACY:
        return _LEGACY[key]
    upper = key.upper()
    if upper in _LEGACY:
        return _LEGACY[upper]
    stripped = upper.removeprefix("CELERY_")
    if stripped in _LEGACY:
        return _LEGACY[stripped]
    lowered = stripped.lower()
    return lowered if lowered in DEFAULTS else None


def looks_like_a_setting(key: str) -> bool:
    """Could ``key`` be meant for the task queue? New-style names are lowercase and old-style
    ones carry Celery's prefixes; other upper-case names (a Flask or Django config copied
    whole with ``conf.update(app.config)``) belong to something else and are kept silently."""
    return not key.isupper() or key.startswith(("CELERY", "BROKER_"))


_MISSING = object()


class Settings(dict[str, Any]):
    """The app's configuration: a dict of Celery-named settings with attribute access.

    A setting is, in order: the value set on the app (``conf.x = ...``, ``conf.update``, the
    app's keyword arguments), else the value in the newest configuration source that has it
    (``config_from_object``), read when asked, so a test that changes the source afterwards
    (pytest-django's ``settings`` fixture, ``override_settings``, a Flask config dict) is
    seen at once, else the default. A worker freezes them when it starts (:meth:`freeze`)."""

    # the configuration sources, newest first: (read a key, the keys of each setting)
    _sources: list[tuple[Callable[[str, Any], Any], dict[str, list[str]]]] = []
    _explicit: set[str] = set()  # the names set on the app
    # what to read for each setting read from the sources: ((read, key), ...), newest first
    _plan: dict[str, tuple[tuple[Callable[[str, Any], Any], str], ...]] = {}

    def __init__(self, initial: Mapping[str, Any] | None = None) -> None:
        super().__init__((k, _copy(v)) for k, v in DEFAULTS.items())
        object.__setattr__(self, "_explicit", set())
        if initial:
            self.update(initial)

    def __getattribute__(self, name: str) -> Any:
        # settings are read on every call: find them before the class's attributes, and
        # without the failed lookup that reaching __getattr__ costs
        if name not in _DICT_ATTRIBUTES:
            value = dict.get(self, name, _MISSING)
            if value is not _MISSING:
                return value
        return object.__getattribute__(self, name)

    def __getattr__(self, name: str) -> Any:
        try:
            return self[name]
        except KeyError:
            raise AttributeError(f"no setting named {name!r}") from None

    def __getitem__(self, key: str) -> Any:
        if key in self._plan:
            return self._from_sources(key)
        return dict.__getitem__(self, key)

    def get(self, key: str, default: Any = None) -> Any:
        try:
            return self[key]
        except KeyError:
            return default

    def __setattr__(self, name: str, value: Any) -> None:
        self[name] = value

    def __setitem__(self, key: str, value: Any) -> None:
        name = normalise_key(key)
        if name is None:
            if looks_like_a_setting(key):
                warnings.warn(
                    f"unknown setting {key!r} is kept but has no effect (is it a typo?)",
                    UnknownSettingWarning,
                    stacklevel=3,
                )
            name = key
        super().__setitem__(name, value)
        self._explicit.add(name)
        if name in self._plan:
            plan = dict(self._plan)
            del plan[name]
            object.__setattr__(self, "_plan", plan)

    def update(self, other: Any = (), /, **kwargs: Any) -> None:
        items = other.items() if isinstance(other, Mapping) else other
        for key, value in list(items) + list(kwargs.items()):
            self[key] = value

    def setdefault(self, key: str, default: Any = None) -> Any:
        if key not in self:
            self[key] = default
        return self[key]

    def copy(self) -> Settings:
        return Settings(self.resolved())

    # -- configuration sources --------------------------------------------------------------

    def add_source(self, obj: Any, namespace: str | None = None) -> None:
        """Read settings from ``obj`` (a module, class, object or mapping) from now on, when
        they are asked for. Only ``NAMESPACE_``-prefixed names with ``namespace`` (Django's
        ``CELERY_BROKER_URL``); what it holds takes over from what was set on the app."""
        if isinstance(obj, str):
            obj = _import_object(obj)
        found = settings_from_object(obj, namespace=namespace)
        prefix = f"{namespace}_" if namespace else ""
        keys: dict[str, list[str]] = {}  # setting -> the names it may have in obj
        for key in found:
            name = normalise_key(key)
            if name is None:
                warnings.warn(
                    f"unknown setting {prefix}{key} is ignored (is it a typo?)",
                    UnknownSettingWarning,
                    stacklevel=3,
                )
            else:
                keys.setdefault(name, []).append(prefix + key)
        explicit = self._explicit - keys.keys()
        for name in keys.keys() & DEFAULTS.keys():
            dict.__setitem__(self, name, _copy(DEFAULTS[name]))
        for name in DEFAULTS:
            own = prefix + name.upper() if prefix else name
            if own not in keys.setdefault(name, []):
                keys[name].append(own)
        read = obj.get if isinstance(obj, Mapping) else functools.partial(getattr, obj)
        sources = [(read, keys), *self._sources]
        plan = {
            name: tuple((r, key) for r, names in sources for key in names[name])
            for name in DEFAULTS.keys() - explicit
        }
        object.__setattr__(self, "_sources", sources)
        object.__setattr__(self, "_explicit", explicit)
        object.__setattr__(self, "_plan", plan)
        object.__setattr__(self, "__class__", _LiveSettings)

    def _from_sources(self, name: str) -> Any:
        for read, key in self._plan[name]:
            value = read(key, _MISSING)
            if value is not _MISSING:
                return value
        return dict.__getitem__(self, name)

    def resolved(self) -> dict[str, Any]:
        """Every setting's value now."""
        return {key: self[key] for key in self}

    def freeze(self) -> None:
        """Read every setting from the sources once, and stop reading them (a worker, whose
        settings do not change while it runs, reads many per task)."""
        values = self.resolved()
        object.__setattr__(self, "__class__", Settings)
        object.__setattr__(self, "_plan", {})
        object.__setattr__(self, "_sources", [])
        dict.update(self, values)
        self._explicit.update(values)

    def masked(self, with_defaults: bool = False) -> dict[str, Any]:
        """The settings that differ from the defaults (all with ``with_defaults``), by name,
        with passwords in URLs and secret values masked."""
        shown: dict[str, Any] = {}
        for key in sorted(self):
            value = self[key]
            if not with_defaults and DEFAULTS.get(key, _MISSING) == value:
                continue
            if isinstance(value, str) and "://" in value:
                value = safe_url(value)
            elif any(s in key for s in ("password", "secret", "token", "dsn")):
                value = "********"
            shown[key] = value
        return shown

    def humanize(self, with_defaults: bool = False) -> str:
        """Celery's ``app.conf.humanize()``: :meth:`masked`, one setting per line."""
        shown = self.masked(with_defaults)
        return "\n".join(f"{key}: {value!r}" for key, value in shown.items())


class _LiveSettings(Settings):
    """Settings with configuration sources, read when asked (see :class:`Settings`)."""

    def __getattribute__(self, name: str) -> Any:
        if name not in _DICT_ATTRIBUTES:
            steps = object.__getattribute__(self, "_plan").get(name)
            if steps is not None:
                for read, key in steps:
                    value = read(key, _MISSING)
                    if value is not _MISSING:
                        return value
            value = dict.get(self, name, _MISSING)
            if value is not _MISSING:
                return value
        return object.__getattribute__(self, name)


def _copy(value: Any) -> Any:
    if isinstance(value, dict):
        return dict(value)
    if isinstance(value, list):
        return list(value)
    return value


def settings_from_object(obj: Any, namespace: str | None = None) -> dict[str, Any]:
    """Read settings from a module, class, mapping or ``"module:attr"`` path.

    With ``namespace="CELERY"`` only keys starting with ``CELERY_`` are read, so a Django
    settings module can hold ``CELERY_BROKER_URL`` next to its own settings.
    """
    if isinstance(obj, str):
        obj = _import_object(obj)
    items: Iterable[tuple[str, Any]]
    if isinstance(obj, Mapping):
        items = obj.items()
    else:
        items = ((k, getattr(obj, k)) for k in dir(obj) if not k.startswith("_"))
    prefix = f"{namespace}_" if namespace else ""
    found: dict[str, Any] = {}
    for key, value in items:
        if (
            isinstance(value, types.ModuleType)
            or inspect.isclass(value)
            or inspect.isroutine(value)
        ):
            continue
        if prefix:
            if not key.startswith(prefix):
                continue
            key = key[len(prefix) :]
        elif not looks_like_a_setting(key):
            continue  # a module constant, not a setting
        found[key] = value
    return found


def _import_object(path: str) -> Any:
    module_name, _, attr = path.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise ImproperlyConfigured(f"cannot import configuration {path!r}: {exc}") from None
    if not attr:
        return module
    try:
        return getattr(module, attr)
    except AttributeError:
        raise ImproperlyConfigured(f"module {module_name!r} has no attribute {attr!r}") from None


_DICT_ATTRIBUTES = frozenset(dir(Settings))
