"""Every setting Celery 5 knows is known here: used, accepted and not needed (logged at worker
start), or refused at once when a project relies on it."""

from __future__ import annotations

import logging
import threading
import warnings

import pytest

from celeriac import Celery
from celeriac.config import (
    CELERY_SETTINGS,
    DEFAULTS,
    NOT_NEEDED,
    UNSUPPORTED,
    normalise_key,
    redis_backend_options,
)
from celeriac.exceptions import ImproperlyConfigured

# Celery 5.5's settings (celery/app/defaults.py and docs/userguide/configuration.rst)
_CELERY_5 = """
accept_content result_accept_content enable_utc imports include timezone beat_max_loop_interval
beat_schedule beat_scheduler beat_schedule_filename beat_sync_every beat_cron_starting_deadline
broker_url broker_read_url broker_write_url broker_transport broker_transport_options
broker_connection_timeout broker_connection_retry broker_connection_retry_on_startup
broker_connection_max_retries broker_channel_error_retry broker_failover_strategy
broker_heartbeat broker_heartbeat_checkrate broker_login_method
broker_native_delayed_delivery_queue_type broker_pool_limit broker_use_ssl broker_host
broker_port broker_user broker_password broker_vhost cache_backend cache_backend_options
cassandra_entry_ttl cassandra_keyspace cassandra_port cassandra_read_consistency
cassandra_servers cassandra_bundle_path cassandra_table cassandra_write_consistency
cassandra_auth_provider cassandra_auth_kwargs cassandra_options s3_access_key_id
s3_secret_access_key s3_bucket s3_base_path s3_endpoint_url s3_region
azureblockblob_container_name azureblockblob_retry_initial_backoff_sec
azureblockblob_retry_increment_base azureblockblob_retry_max_attempts azureblockblob_base_path
azureblockblob_connection_timeout azureblockblob_read_timeout gcs_bucket gcs_project
gcs_base_path gcs_ttl control_queue_ttl control_queue_expires control_exchange
couchbase_backend_settings arangodb_backend_settings mongodb_backend_settings
cosmosdbsql_database_name cosmosdbsql_collection_name cosmosdbsql_consistency_level
cosmosdbsql_max_retry_attempts cosmosdbsql_max_retry_wait_time event_queue_expires
event_queue_ttl event_queue_prefix event_serializer event_exchange redis_backend_use_ssl
redis_db redis_host redis_max_connections redis_username redis_password redis_port
redis_socket_timeout redis_socket_connect_timeout redis_retry_on_timeout redis_socket_keepalive
redis_backend_health_check_interval result_backend result_cache_max result_compression
result_exchange result_exchange_type result_expires result_persistent result_extended
result_serializer result_backend_transport_options result_chord_retry_interval
result_chord_join_timeout result_backend_max_sleep_between_retries_ms
result_backend_max_retries result_backend_base_sleep_between_retries_ms
result_backend_always_retry result_backend_thread_safe elasticsearch_retry_on_timeout
elasticsearch_max_retries elasticsearch_timeout elasticsearch_save_meta_as_text
security_certificate security_cert_store security_key security_key_password security_digest
database_url database_engine_options database_short_lived_sessions database_table_schemas
database_table_names database_create_tables_at_setup task_acks_late
task_acks_on_failure_or_timeout task_always_eager task_annotations task_compression
task_create_missing_queues task_inherit_parent_priority task_default_delivery_mode
task_default_queue task_default_queue_type task_default_exchange task_default_exchange_type
task_default_routing_key task_default_rate_limit task_default_priority task_eager_propagates
task_ignore_result task_store_eager_result task_protocol task_publish_retry
task_publish_retry_policy task_queues task_queue_max_priority task_reject_on_worker_lost
task_remote_tracebacks task_routes task_send_sent_event task_serializer task_soft_time_limit
task_time_limit task_store_errors_even_if_ignored task_track_started worker_agent
worker_autoscaler worker_cancel_long_running_tasks_on_connection_loss
worker_soft_shutdown_timeout worker_enable_soft_shutdown_on_idle worker_concurrency
worker_consumer worker_direct worker_disable_rate_limits worker_deduplicate_successful_tasks
worker_enable_remote_control worker_hijack_root_logger worker_log_color worker_log_format
worker_lost_wait worker_max_memory_per_child worker_max_tasks_per_child worker_pool
worker_pool_putlocks worker_pool_restarts worker_proc_alive_timeout worker_prefetch_multiplier
worker_enable_prefetch_count_reduction worker_redirect_stdouts worker_redirect_stdouts_level
worker_send_task_events worker_state_db worker_task_log_format worker_timer
worker_timer_precision worker_detect_quorum_queues
"""
CELERY_5 = _CELERY_5.split()

# old names projects still use, with the new name Celery maps them to
OLD = {
    "BROKER_URL": "broker_url",
    "BROKER_USE_SSL": "broker_use_ssl",
    "CELERY_RESULT_BACKEND": "result_backend",
    "CELERY_TASK_SERIALIZER": "task_serializer",
    "CELERY_ACKS_LATE": "task_acks_late",
    "CELERY_ALWAYS_EAGER": "task_always_eager",
    "CELERY_MAX_CACHED_RESULTS": "result_cache_max",
    "CELERY_TASK_RESULT_EXPIRES": "result_expires",
    "CELERY_REDIS_MAX_CONNECTIONS": "redis_max_connections",
    "CELERY_SEND_EVENTS": "worker_send_task_events",
    "CELERY_DISABLE_RATE_LIMITS": "worker_disable_rate_limits",
    "CELERYD_CONCURRENCY": "worker_concurrency",
    "CELERYD_TASK_TIME_LIMIT": "task_time_limit",
    "CELERYD_WORKER_LOST_WAIT": "worker_lost_wait",
    "CELERYBEAT_SCHEDULE": "beat_schedule",
    "CELERY_RESULT_DBURI": "database_url",
    "CELERY_MESSAGE_COMPRESSION": "task_compression",
    "CELERY_SECURITY_KEY": "security_key",
    "CELERY_EVENT_QUEUE_TTL": "event_queue_ttl",
}


@pytest.mark.parametrize("name", CELERY_5)
def test_every_celery_setting_is_known(name: str) -> None:
    assert normalise_key(name) == name
    assert name in DEFAULTS
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        Celery(set_as_current=False).conf.update({name: DEFAULTS[name]})


@pytest.mark.parametrize(("old", "new"), sorted(OLD.items()))
def test_old_names_map_as_in_celery(old: str, new: str) -> None:
    assert normalise_key(old) == new


def test_the_table_says_why_for_each_setting_it_does_not_use() -> None:
    for name, (status, why, _default) in CELERY_SETTINGS.items():
        assert status in (NOT_NEEDED, UNSUPPORTED), name
        assert why, name


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("worker_direct", True),
        ("security_key", "/etc/ssl/key.pem"),
        ("broker_read_url", "redis://replica/0"),
        ("CELERY_SECURITY_CERTIFICATE", "/etc/ssl/cert.pem"),
    ],
)
def test_a_setting_that_would_change_behaviour_is_refused_at_once(name: str, value: object) -> None:
    app = Celery(set_as_current=False)
    with pytest.raises(ImproperlyConfigured, match="not supported"):
        app.conf.update({name: value})

    class Config:
        pass

    setattr(Config, name, value)
    with pytest.raises(ImproperlyConfigured, match="not supported"):
        Celery(set_as_current=False).config_from_object(Config)
    app.conf.update({name: CELERY_SETTINGS[normalise_key(name) or name][2]})  # the default


def test_not_needed_settings_are_logged_once_at_worker_start(
    caplog: pytest.LogCaptureFixture,
) -> None:
    app = Celery(
        "s",
        broker="memory://settings",
        backend="memory://settings",
        worker_cancel_long_running_tasks_on_connection_loss=True,
        result_chord_join_timeout=10,
        worker_proc_alive_timeout=4.0,  # Celery's default: nothing to say
    )
    w = app.Worker(install_signal_handlers=False, pool="threads", concurrency=1)
    with caplog.at_level(logging.INFO, logger="celeriac"):
        thread = threading.Thread(target=w.start)
        thread.start()
        assert w.ready.wait(10)
        w.stop()
        thread.join(10)
    said = [r.getMessage() for r in caplog.records if "accepted and not needed" in r.getMessage()]
    assert len(said) == 2
    assert any("worker_cancel_long_running_tasks_on_connection_loss" in m for m in said)
    assert any("result_chord_join_timeout" in m for m in said)


def test_redis_settings_reach_the_result_backend_pool() -> None:
    conf = {"redis_max_connections": 7, "redis_socket_timeout": 3.0, "redis_backend_use_ssl": None}
    assert redis_backend_options(conf) == {"max_connections": 7, "socket_timeout": 3.0}
    app = Celery(set_as_current=False, backend="redis://127.0.0.1:6379/11", redis_max_connections=7)
    pool = app.backend._db.pool  # type: ignore[union-attr]
    assert pool.max_connections == 7
    app.conf.result_backend_transport_options = {"max_connections": 9}
    app._backend_resolved = False
    assert app.backend._db.pool.max_connections == 9  # type: ignore[union-attr]
