"""A small project used by the worker process tests (``celeriac -A proj worker``).

Configured from the environment: CELERIAC_TEST_BROKER, CELERIAC_TEST_BACKEND,
CELERIAC_TEST_VT (visibility timeout, seconds), CELERIAC_TEST_RUNS (a file each task run
appends a line to, so tests can count executions across processes) and
CELERIAC_TEST_PREFORK: ``queue`` for the prefork pool whose parent consumes and feeds its
children through a queue (as on brokers whose leases live in one process, like RabbitMQ),
``datagrams`` for that queue on plain datagrams (as on macOS); CELERIAC_TEST_CONF, settings
as a JSON object.
"""

import json
import os

from celeriac import Celery

app = Celery(
    "proj",
    broker=os.environ.get("CELERIAC_TEST_BROKER", "sqlite:///proj.db"),
    backend=os.environ.get("CELERIAC_TEST_BACKEND") or None,
    include=["proj.tasks", "proj.commands"],
)
app.conf.broker_transport_options = {
    "visibility_timeout": float(os.environ.get("CELERIAC_TEST_VT", "30"))
}
app.conf.worker_prefetch_multiplier = int(os.environ.get("CELERIAC_TEST_PREFETCH", "1"))
app.conf.update(json.loads(os.environ.get("CELERIAC_TEST_CONF") or "{}"))
if os.environ.get("CELERIAC_TEST_PREFORK") in ("queue", "datagrams"):
    from celeriac.brokers.sqlite import SQLiteBroker

    SQLiteBroker.local_leases = True  # the pool then takes the parent-fed kind
if os.environ.get("CELERIAC_TEST_PREFORK") == "datagrams":  # the prefork queue as on macOS
    import socket

    from celeriac.worker.pools import fed as prefork

    prefork.SOCKET_TYPES = (socket.SOCK_DGRAM,)
if os.environ.get("CELERIAC_TEST_SENTRY_DSN"):  # failures go to a stand-in Sentry
    import sentry_sdk

    from celeriac.contrib.sentry import CeleriacIntegration

    dsn = os.environ["CELERIAC_TEST_SENTRY_DSN"]
    sentry_sdk.init(dsn=dsn, integrations=[CeleriacIntegration()])
if os.environ.get("CELERIAC_TEST_BEAT"):  # a fast periodic task for the beat tests
    app.conf.beat_schedule = {
        "tick": {
            "task": "proj.tasks.beat_tick",
            "schedule": float(os.environ["CELERIAC_TEST_BEAT"]),
        }
    }
    app.conf.beat_leader_lease = float(os.environ.get("CELERIAC_TEST_BEAT_LEASE", "15"))
