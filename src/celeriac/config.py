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
from .utils.log import DEFAULT_PROCESS_LOG_FMT, DEFAULT_TASK_LOG_FMT
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
    # a chord's link_error also called for each failed header task, as in Celery
    "task_allow_error_cb_on_chord_header": False,
    "task_acks_late": True,
    "task_acks_on_failure_or_timeout": True,
    "task_reject_on_worker_lost": True,  # a task whose process died goes back to its queue
    "task_serializer": "json",
    "accept_content": ["json"],
    "task_ignore_result": False,
    "task_store_errors_even_if_ignored": False,  # a failure is stored all the same
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
    # exchanges and routing keys: for the tasks sent by routing key (routing.destination)
    "task_default_exchange": None,
    "task_default_exchange_type": "direct",
    "task_default_routing_key": None,
    "task_inherit_parent_priority": False,
    # worker
    "worker_concurrency": None,
    "worker_pool": "prefork",
    "worker_prefetch_multiplier": 4,
    "worker_max_tasks_per_child": None,
    "worker_max_memory_per_child": None,
    "worker_max_deliveries": 10,
    "worker_pool_restarts": False,  # the pool_restart control command reloads and restarts
    "worker_hijack_root_logger": True,
    "worker_log_color": None,
    "worker_log_format": DEFAULT_PROCESS_LOG_FMT,
    "worker_task_log_format": DEFAULT_TASK_LOG_FMT,
    "worker_redirect_stdouts": True,
    "worker_redirect_stdouts_level": "WARNING",
    "worker_send_task_events": False,
    "worker_disable_rate_limits": False,
    "worker_enable_remote_control": True,
    "worker_heartbeat_interval": None,
    "worker_result_cleanup_interval": 300.0,
    "worker_shutdown_timeout": None,
    "worker_queue_order": "round_robin",  # or "priority": earlier -Q queues drained first
    "worker_asyncio_loop": "auto",  # the asyncio pool's loop: uvloop when installed, or "asyncio"
    "worker_state_db": None,
    # Prometheus metrics served by the worker's main process (None: not served); the address
    # is this host only unless set (e.g. "0.0.0.0"): needs the ``metrics`` extra
    "worker_metrics_port": None,
    "worker_metrics_addr": "127.0.0.1",
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
    "event_log_url": None,  # where events go (default: the broker's URL)
    "event_log_options": {},
    "event_log_max_age": 24 * 3600.0,  # seconds an event is kept
    "event_log_max_events": 100_000,  # events kept at most
    "event_heartbeat_interval": 2.0,  # seconds between two worker-heartbeat events
    "event_queue_ttl": 5.0,
    "event_queue_expires": 60.0,
    "control_queue_ttl": 300.0,
    # the dashboard (``celeriac dashboard``; its options override these): see
    # docs/configuration.md and docs/monitoring.md
    "dashboard_port": 5555,
    "dashboard_address": "127.0.0.1",  # this host only; another needs auth
    "dashboard_basic_auth": None,  # "user:password[,user2:password2]", a list or a dict
    "dashboard_auth": None,  # a bearer token
    "dashboard_url_prefix": "",
    "dashboard_read_only": False,  # every action refused (403)
    "dashboard_store": None,  # the event store's URL (None: sqlite://, celeriac-events.db)
    "dashboard_store_options": {},  # max_age, max_tasks, ...
    "dashboard_unsafe_no_auth": False,  # allow another address than loopback without auth
    "dashboard_redact": None,  # dotted path to redact(task_name, args, kwargs) -> (args, kwargs)
    "dashboard_inspect_timeout": 2.0,  # seconds to wait for workers' replies
    "dashboard_sample_interval": 10.0,  # seconds between samples of queues and workers
    "dashboard_alert_interval": 15.0,  # seconds between evaluations of the alert rules
    # alert rules (a list of dicts) and where they notify (channels by name; none: the log):
    # see docs/monitoring.md, "Alerting"
    "dashboard_alerts": [],
    "dashboard_alert_channels": {},
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


# -- every setting Celery 5 knows -----------------------------------------------------------
#
# The settings in DEFAULTS are celeriac's. Every other setting of Celery 5 is in the table
# below with what becomes of it: NOT_NEEDED ones are accepted, and a worker logs once at start
# why a value set for one is not needed; UNSUPPORTED ones are refused as soon as they are set
# to anything but Celery's default, since a project that sets them relies on what they do.
# docs/configuration.md lists them all.

NOT_NEEDED = "not needed"
UNSUPPORTED = "unsupported"

_NO_EVENTS = "events go to an event log beside the broker (event_log_url), not to monitor queues"
_NO_EXCHANGES = "results go to the result backend (rpc://: the sender's reply queue)"
_NO_SUCH_BACKEND = "celeriac has no such result backend (its URL is refused)"
_BROKER_HOLDS_ETAS = "delays are held by the broker, not by a timer in the worker"
_CONTROL_IN_BACKEND = "remote control travels in a control log beside the broker, not in queues"
_CHORD_JOIN = (
    "the last header task to finish reads the header's results at once and sends the body: "
    "nothing polls or waits"
)
_IN_THE_URL = "give it in the URL (broker_url, result_backend)"
_POOL = "celeriac's pools restart, report and feed their processes themselves"

#: Celery's settings that celeriac does not use: name -> (NOT_NEEDED or UNSUPPORTED, why
#: or what to use instead, Celery's default).
CELERY_SETTINGS: dict[str, tuple[str, str, Any]] = {
    "beat_cron_starting_deadline": (
        NOT_NEEDED,
        "beat sends one catch-up run after downtime, or none with beat_missed_runs='none'",
        None,
    ),
    "broker_read_url": (UNSUPPORTED, "one broker_url serves reading and writing", None),
    "broker_write_url": (UNSUPPORTED, "one broker_url serves reading and writing", None),
    "broker_transport": (NOT_NEEDED, "the scheme of broker_url picks the broker", None),
    "broker_channel_error_retry": (NOT_NEEDED, "publishing retries on every broker error", False),
    "broker_failover_strategy": (UNSUPPORTED, "celeriac connects to one broker URL", None),
    "broker_heartbeat_checkrate": (NOT_NEEDED, "the AMQP driver checks heartbeats itself", 3.0),
    "broker_login_method": (NOT_NEEDED, "the AMQP driver logs in with PLAIN", None),
    "broker_native_delayed_delivery_queue_type": (NOT_NEEDED, _BROKER_HOLDS_ETAS, "quorum"),
    "broker_use_ssl": (UNSUPPORTED, "use a rediss:// or amqps:// URL for TLS", False),
    "broker_host": (UNSUPPORTED, _IN_THE_URL, None),
    "broker_port": (UNSUPPORTED, _IN_THE_URL, None),
    "broker_user": (UNSUPPORTED, _IN_THE_URL, None),
    "broker_password": (UNSUPPORTED, _IN_THE_URL, None),
    "broker_vhost": (UNSUPPORTED, _IN_THE_URL, None),
    "cache_backend": (NOT_NEEDED, _NO_SUCH_BACKEND, None),  # Django's guide sets it
    "cache_backend_options": (NOT_NEEDED, _NO_SUCH_BACKEND, {}),
    **{
        f"{prefix}_{name}": (NOT_NEEDED, _NO_SUCH_BACKEND, None)
        for prefix, names in {
            "cassandra": "entry_ttl keyspace port read_consistency servers bundle_path table "
            "write_consistency auth_provider auth_kwargs options",
            "s3": "access_key_id secret_access_key bucket base_path endpoint_url region",
            "azureblockblob": "container_name retry_initial_backoff_sec retry_increment_base "
            "retry_max_attempts base_path connection_timeout read_timeout",
            "gcs": "bucket project base_path ttl",
            "couchbase": "backend_settings",
            "arangodb": "backend_settings",
            "mongodb": "backend_settings",
            "cosmosdbsql": "database_name collection_name consistency_level max_retry_attempts "
            "max_retry_wait_time",
            "elasticsearch": "retry_on_timeout max_retries timeout save_meta_as_text",
        }.items()
        for name in names.split()
    },
    "control_queue_ttl": (NOT_NEEDED, _CONTROL_IN_BACKEND, 300.0),
    "control_queue_expires": (NOT_NEEDED, _CONTROL_IN_BACKEND, 10.0),
    "control_exchange": (NOT_NEEDED, _CONTROL_IN_BACKEND, "celery"),
    "event_queue_expires": (NOT_NEEDED, _NO_EVENTS, 60.0),
    "event_queue_ttl": (NOT_NEEDED, _NO_EVENTS, 5.0),
    "event_queue_prefix": (NOT_NEEDED, _NO_EVENTS, "celeryev"),
    "event_serializer": (NOT_NEEDED, "events are JSON", "json"),
    "event_exchange": (NOT_NEEDED, _NO_EVENTS, "celeryev"),
    "redis_host": (UNSUPPORTED, _IN_THE_URL, None),
    "redis_port": (UNSUPPORTED, _IN_THE_URL, None),
    "redis_db": (UNSUPPORTED, _IN_THE_URL, None),
    "redis_retry_on_timeout": (
        NOT_NEEDED,
        "Redis calls are retried for the retry_window transport option",
        False,
    ),
    "result_cache_max": (
        NOT_NEEDED,
        "each AsyncResult keeps its own result once ready (rpc:// keeps up to 10000)",
        -1,
    ),
    "result_compression": (NOT_NEEDED, "results are stored as serialised", None),
    "result_exchange": (NOT_NEEDED, _NO_EXCHANGES, "celeryresults"),
    "result_exchange_type": (NOT_NEEDED, _NO_EXCHANGES, "direct"),
    "result_chord_retry_interval": (NOT_NEEDED, _CHORD_JOIN, 1.0),
    "result_chord_join_timeout": (NOT_NEEDED, _CHORD_JOIN, 3.0),
    "result_backend_thread_safe": (NOT_NEEDED, "every result backend is thread-safe", False),
    "security_key": (UNSUPPORTED, "celeriac does not sign messages", None),
    "security_certificate": (UNSUPPORTED, "celeriac does not sign messages", None),
    "security_cert_store": (UNSUPPORTED, "celeriac does not sign messages", None),
    "security_key_password": (UNSUPPORTED, "celeriac does not sign messages", None),
    "security_digest": (NOT_NEEDED, "celeriac does not sign messages", "sha256"),
    "database_url": (UNSUPPORTED, "set result_backend to the database URL", None),
    "database_engine_options": (NOT_NEEDED, "celeriac's SQL backends use no SQLAlchemy", None),
    "database_short_lived_sessions": (NOT_NEEDED, "celeriac's SQL backends use no sessions", False),
    "database_table_schemas": (NOT_NEEDED, "celeriac's SQL backends make their own tables", None),
    "database_table_names": (NOT_NEEDED, "celeriac's SQL backends make their own tables", None),
    "database_create_tables_at_setup": (
        NOT_NEEDED,
        "celeriac's SQL backends make their own tables",
        True,
    ),
    "task_default_delivery_mode": (NOT_NEEDED, "messages are always stored durably", 2),
    "task_default_queue_type": (NOT_NEEDED, "celeriac declares its own queues", "classic"),
    "task_protocol": (NOT_NEEDED, "celeriac speaks its own protocol (docs/protocol.md)", 2),
    "task_queue_max_priority": (NOT_NEEDED, "every queue has priorities 0-9", None),
    "task_remote_tracebacks": (
        NOT_NEEDED,
        "get() raises the task's exception; the worker's traceback is result.traceback",
        False,
    ),
    "worker_agent": (NOT_NEEDED, "there is no worker agent", None),
    "worker_autoscaler": (NOT_NEEDED, "--autoscale runs MAX processes", None),
    "worker_cancel_long_running_tasks_on_connection_loss": (
        NOT_NEEDED,
        "a task keeps its message while the broker is away (its lease is renewed when the "
        "broker is back), and a copy redelivered after it finished is acknowledged without "
        "running",
        False,
    ),
    "worker_soft_shutdown_timeout": (
        NOT_NEEDED,
        "a warm shutdown waits for running tasks (worker_shutdown_timeout bounds it) and gives "
        "back what was not started",
        0.0,
    ),
    "worker_enable_soft_shutdown_on_idle": (NOT_NEEDED, "see worker_soft_shutdown_timeout", False),
    "worker_consumer": (UNSUPPORTED, "the worker's consumer cannot be replaced", None),
    "worker_direct": (UNSUPPORTED, "workers have no queue of their own; route to a queue", False),
    "worker_deduplicate_successful_tasks": (
        NOT_NEEDED,
        "a redelivered task that already finished is always acknowledged without running",
        False,
    ),
    "worker_lost_wait": (NOT_NEEDED, _POOL, 10.0),
    "worker_pool_putlocks": (NOT_NEEDED, _POOL, True),
    "worker_proc_alive_timeout": (NOT_NEEDED, _POOL, 4.0),
    "worker_enable_prefetch_count_reduction": (
        NOT_NEEDED,
        "each fetch claims only what the prefetch window has room for",
        True,
    ),
    "worker_timer": (NOT_NEEDED, _BROKER_HOLDS_ETAS, None),
    "worker_timer_precision": (NOT_NEEDED, _BROKER_HOLDS_ETAS, 1.0),
    "worker_detect_quorum_queues": (NOT_NEEDED, "celeriac declares its own queues", True),
    "worker_state_db": (
        NOT_NEEDED,
        "revocations are kept in the result backend, shared by every worker",
        None,
    ),
    # in DEFAULTS, and not used
    "broker_connection_retry": (
        NOT_NEEDED,
        "a worker waits for the broker whenever it is away (broker_connection_max_retries "
        "bounds the wait at start)",
        True,
    ),
    "broker_connection_timeout": (NOT_NEEDED, "each driver has its own timeouts", 4.0),
    "broker_heartbeat": (NOT_NEEDED, "the AMQP driver sets its own heartbeat", None),
    "broker_pool_limit": (NOT_NEEDED, "each thread keeps one connection of its own", 10),
    "result_persistent": (NOT_NEEDED, "results are always stored durably", True),
    "beat_sync_every": (NOT_NEEDED, "beat writes an entry's state after each run", 0),
    "task_compression": (NOT_NEEDED, "messages are sent uncompressed", None),
    "worker_log_color": (NOT_NEEDED, "log lines are not coloured", None),
    "worker_redirect_stdouts": (NOT_NEEDED, "what tasks print goes to the worker's stdout", True),
    "worker_redirect_stdouts_level": (
        NOT_NEEDED,
        "what tasks print goes to the worker's stdout",
        "WARNING",
    ),
}

#: Celery's redis_* settings handed to the result backend as transport options.
REDIS_BACKEND_OPTIONS = {
    "redis_max_connections": "max_connections",
    "redis_socket_timeout": "socket_timeout",
    "redis_socket_connect_timeout": "socket_connect_timeout",
    "redis_socket_keepalive": "socket_keepalive",
    "redis_backend_health_check_interval": "health_check_interval",
    "redis_username": "username",
    "redis_password": "password",
    "redis_client_name": "client_name",
}
DEFAULTS.update({name: None for name in REDIS_BACKEND_OPTIONS})
DEFAULTS["redis_backend_use_ssl"] = None  # ssl_* options, as in Celery
for _name, (_status, _why, _default) in CELERY_SETTINGS.items():
    DEFAULTS.setdefault(_name, _default)

# Celery's old upper-case names, made by its rules: a namespace's prefix and the rest of the
# name, with the exceptions Celery lists.
_OLD_PREFIXES = {
    "task_": "CELERY_",
    "worker_": "CELERYD_",
    "beat_": "CELERYBEAT_",
    "result_": "CELERY_RESULT_",
    "redis_": "CELERY_REDIS_",
    "cache_": "CELERY_CACHE_",
    "event_": "CELERY_EVENT_",
    "security_": "CELERY_SECURITY_",
    "mongodb_": "CELERY_MONGODB_",
    "couchbase_": "CELERY_COUCHBASE_",
    "arangodb_": "CELERY_ARANGODB_",
    "elasticsearch_": "CELERY_ELASTICSEARCH_",
}
_OLD_EXCEPTIONS = {
    "CELERY_MAX_CACHED_RESULTS": "result_cache_max",
    "CELERY_RESULT_DBURI": "database_url",
    "CELERY_RESULT_ENGINE_OPTIONS": "database_engine_options",
    "CELERY_RESULT_DB_SHORT_LIVED_SESSIONS": "database_short_lived_sessions",
    "CELERY_RESULT_DB_TABLENAMES": "database_table_names",
    "CELERY_MESSAGE_COMPRESSION": "task_compression",
    "CELERY_TASK_PROTOCOL": "task_protocol",
    "CELERY_TASK_PUBLISH_RETRY": "task_publish_retry",
    "CELERY_TASK_PUBLISH_RETRY_POLICY": "task_publish_retry_policy",
    "CELERY_SEND_TASK_SENT_EVENT": "task_send_sent_event",
    "CELERY_TASK_SERIALIZER": "task_serializer",
    "CELERY_WORKER_DIRECT": "worker_direct",
    "CELERY_DISABLE_RATE_LIMITS": "worker_disable_rate_limits",
    "CELERY_ENABLE_REMOTE_CONTROL": "worker_enable_remote_control",
    "CELERYD_WORKER_LOST_WAIT": "worker_lost_wait",
    "CELERY_REDIRECT_STDOUTS": "worker_redirect_stdouts",
    "CELERY_REDIRECT_STDOUTS_LEVEL": "worker_redirect_stdouts_level",
    "CELERY_SEND_EVENTS": "worker_send_task_events",
    "CELERY_RESULT_BACKEND": "result_backend",
    "CELERY_RESULT_SERIALIZER": "result_serializer",
}


def _old_names() -> dict[str, str]:
    names: dict[str, str] = {}
    for name in DEFAULTS:
        prefix = next((p for p in _OLD_PREFIXES if name.startswith(p)), None)
        if prefix is not None:
            names.setdefault(_OLD_PREFIXES[prefix] + name[len(prefix) :].upper(), name)
        names.setdefault("CELERY_" + name.upper(), name)
        names.setdefault(name.upper(), name)
    names.update(_OLD_EXCEPTIONS)
    return names


for _old, _new in _old_names().items():
    _LEGACY.setdefault(_old, _new)


def refuse_unsupported(name: str, value: Any) -> None:
    """Raise :class:`ImproperlyConfigured` when ``value`` for the setting ``name`` asks for
    something celeriac does not do (anything but Celery's default for an UNSUPPORTED one)."""
    entry = CELERY_SETTINGS.get(name)
    if entry is not None and entry[0] == UNSUPPORTED and value != entry[2]:
        raise ImproperlyConfigured(
            f"setting {name} is not supported by celeriac: {entry[1]} (it was set to "
            f"{safe_url(value) if isinstance(value, str) else value!r})"
        )


def not_needed(conf: Mapping[str, Any]) -> list[tuple[str, str]]:
    """(name, why) of the NOT_NEEDED settings ``conf`` sets to something else than Celery's
    default (a worker logs them once at start)."""
    return [
        (name, why)
        for name, (status, why, default) in CELERY_SETTINGS.items()
        if status == NOT_NEEDED and conf.get(name, default) != default
    ]


def redis_backend_options(conf: Mapping[str, Any]) -> dict[str, Any]:
    """Transport options for the result backend from Celery's ``redis_*`` settings (what
    ``result_backend_transport_options`` gives wins)."""
    options: dict[str, Any] = {}
    for name, option in REDIS_BACKEND_OPTIONS.items():
        if conf.get(name) is not None:
            options[option] = conf.get(name)
    ssl = conf.get("redis_backend_use_ssl")
    if isinstance(ssl, Mapping):
        options.update(ssl)
    return options


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


#: settings whose names contain one of these hold secrets: masked when shown
_SECRET_KEYS = (
    "password",
    "secret",
    "token",
    "dsn",
    "basic_auth",
    "dashboard_auth",
    "alert_channels",  # webhook URLs and SMTP passwords
)


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
        refuse_unsupported(name, value)
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

    def add_defaults(self, obj: Any) -> None:
        """Celery's ``conf.add_defaults(mapping)``: read settings from ``obj`` (as
        :meth:`add_source`, or a function returning it), where nothing else sets them."""
        if callable(obj) and not isinstance(obj, Mapping | type):
            obj = obj()
        self.add_source(obj, lowest=True)

    def add_source(self, obj: Any, namespace: str | None = None, lowest: bool = False) -> None:
        """Read settings from ``obj`` (a module, class, object or mapping) from now on, when
        they are asked for. Only ``NAMESPACE_``-prefixed names with ``namespace`` (Django's
        ``CELERY_BROKER_URL``); what it holds takes over from what was set on the app and
        from the earlier sources, unless ``lowest`` (then it comes after all of them)."""
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
                refuse_unsupported(name, found[key])
                keys.setdefault(name, []).append(prefix + key)
        explicit = self._explicit if lowest else self._explicit - keys.keys()
        for name in keys.keys() & DEFAULTS.keys() - explicit:
            dict.__setitem__(self, name, _copy(DEFAULTS[name]))
        for name in DEFAULTS:
            own = prefix + name.upper() if prefix else name
            if own not in keys.setdefault(name, []):
                keys[name].append(own)
        read = obj.get if isinstance(obj, Mapping) else functools.partial(getattr, obj)
        sources = [*self._sources, (read, keys)] if lowest else [(read, keys), *self._sources]
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
            elif any(s in key for s in _SECRET_KEYS):
                value = "********"
            shown[key] = value
        return shown

    def _set_names(self) -> set[str]:
        """The settings given a value: on the app, or in a configuration source."""
        names = set(self._explicit)
        for name, steps in self._plan.items():
            if any(read(key, _MISSING) is not _MISSING for read, key in steps):
                names.add(name)
        return names

    def value_set_for(self, key: str) -> bool:
        """Was ``key`` (new or old name) given a value, rather than left to its default?"""
        return (normalise_key(key) or key) in self._set_names()

    def without_defaults(self) -> dict[str, Any]:
        """The settings given a value (see :meth:`value_set_for`), by name."""
        return {name: self[name] for name in sorted(self._set_names()) if name in self}

    @property
    def changes(self) -> dict[str, Any]:
        """Celery's name for :meth:`without_defaults`."""
        return self.without_defaults()

    def table(self, with_defaults: bool = False, censored: bool = True) -> dict[str, Any]:
        """The settings as a dict: those given a value (all with ``with_defaults``), secrets
        masked unless ``censored=False``."""
        if censored:
            return self.masked(with_defaults)
        return self.resolved() if with_defaults else self.without_defaults()

    def first(self, *keys: str) -> Any:
        """The value of the first of ``keys`` that is not None."""
        return next((v for v in (self.get(k) for k in keys) if v is not None), None)

    def get_by_parts(self, *parts: str) -> Any:
        """``get_by_parts("task", "default", "queue")`` is ``conf["task_default_queue"]``."""
        return self["_".join(part for part in parts if part)]

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
