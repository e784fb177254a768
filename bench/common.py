"""Names shared by the orchestrator, the producers and the task modules.

Every system gets a Redis database of its own (flushed before each run); completion
counters and latency stamps live under ``bench:<tag>:*`` keys in database 15, which the
orchestrator polls and clears key by key (the database itself is never flushed).
"""

from __future__ import annotations

import os
from typing import Any

import redis

REDIS_HOST = "127.0.0.1"
# another Redis server (BENCH_REDIS_PORT), with BENCH_SLOT in systems/celeriac.py, keeps a
# bench run apart from another one on the same machine
REDIS_PORT = int(os.environ.get("BENCH_REDIS_PORT") or 6379)
COUNTER_DB = 15

# One Redis database per system; nothing else on the machine uses these.
DB = {
    "celeriac": 3,
    "celery": 4,
    "dramatiq": 5,
    "rq": 6,
    "huey": 7,
    "arq": 8,
    "taskiq": 9,
    "saq": 10,
    "streaq": 11,
}

# The asyncio workload's task sleeps this long (asyncio.sleep), then counts.
ASYNCIO_SLEEP = 0.1


def redis_url(db: int) -> str:
    return f"redis://{REDIS_HOST}:{REDIS_PORT}/{db}"


def tag() -> str:
    """The name counters are kept under, set by the orchestrator for each run."""
    return os.environ.get("BENCH_TAG", "untagged")


def done_key(name: str | None = None) -> str:
    return f"bench:{name or tag()}:done"


def stamps_key(name: str | None = None) -> str:
    return f"bench:{name or tag()}:stamps"


def seen_key(name: str | None = None) -> str:
    """A bit per task argument, set by the task that ran it (the scale-out workload)."""
    return f"bench:{name or tag()}:seen"


def twice_key(name: str | None = None) -> str:
    """How many runs found their bit already set: tasks run more than once."""
    return f"bench:{name or tag()}:twice"


def shares_key(name: str | None = None) -> str:
    """Tasks run by each worker process (by pid): how the workers shared a queue."""
    return f"bench:{name or tag()}:shares"


def counter_client() -> redis.Redis:
    """A client of the counter database (its own connection pool, safe across fork)."""
    return redis.Redis(host=REDIS_HOST, port=REDIS_PORT, db=COUNTER_DB)


def async_counter_client() -> Any:
    """An asyncio client of the counter database for the async tasks: a pool of at most 32
    connections, which a task beyond them waits for. Counting is the benchmark's own cost,
    the same for every system; 500 tasks each opening a connection of their own would make
    the connection storm the largest cost of the asyncio workload."""
    import redis.asyncio

    pool = redis.asyncio.BlockingConnectionPool(
        host=REDIS_HOST, port=REDIS_PORT, db=COUNTER_DB, max_connections=32
    )
    return redis.asyncio.Redis(connection_pool=pool)


def results_enabled() -> bool:
    """True in the processes of the results workload (for systems configured per process)."""
    return os.environ.get("BENCH_RESULTS") == "1"
