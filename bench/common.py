"""Names shared by the orchestrator, the producers and the task modules.

Every system gets a Redis database of its own (flushed before each run); completion
counters and latency stamps live under ``bench:<tag>:*`` keys in database 15, which the
orchestrator polls and clears key by key (the database itself is never flushed).
"""

from __future__ import annotations

import os

import redis

REDIS_HOST = "127.0.0.1"
REDIS_PORT = 6379
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
}


def redis_url(db: int) -> str:
    return f"redis://{REDIS_HOST}:{REDIS_PORT}/{db}"


def tag() -> str:
    """The name counters are kept under, set by the orchestrator for each run."""
    return os.environ.get("BENCH_TAG", "untagged")


def done_key(name: str | None = None) -> str:
    return f"bench:{name or tag()}:done"


def stamps_key(name: str | None = None) -> str:
    return f"bench:{name or tag()}:stamps"


def counter_client() -> redis.Redis:
    """A client of the counter database (its own connection pool, safe across fork)."""
    return redis.Redis(host=REDIS_HOST, port=REDIS_PORT, db=COUNTER_DB)


def results_enabled() -> bool:
    """True in the processes of the results workload (for systems configured per process)."""
    return os.environ.get("BENCH_RESULTS") == "1"
