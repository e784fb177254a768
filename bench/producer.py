"""One producer-side measurement, run in its own process by the orchestrator.

    python bench/producer.py SYSTEM ACTION ARG...

Prints one JSON object on its last line of output. Actions: ``enqueue N``, ``bulk N``,
``fill N [TASK]``, ``latency N BUDGET``, ``results N BUDGET``; for SYSTEM ``redis-py``:
``roundtrips N`` and ``pipelined N`` (the floor).
"""

from __future__ import annotations

import json
import os
import sys
import time
from typing import Any

import common
from systems import NotAvailable, make


def floor(action: str, n: int) -> dict[str, Any]:
    """redis-py on the same server: unpipelined INCR round trips, or one pipeline of n."""
    client = common.counter_client()
    key = "bench:redis-py:floor"
    client.incr(key)  # connect and warm up
    started = time.perf_counter()
    if action == "roundtrips":
        for _ in range(n):
            client.incr(key)
    else:
        pipe = client.pipeline(transaction=False)
        for _ in range(n):
            pipe.incr(key)
        pipe.execute()
    seconds = time.perf_counter() - started
    client.delete(key)
    return {"seconds": seconds}


def run(name: str, action: str, args: list[str]) -> dict[str, Any]:
    n = int(args[0])
    if name == "redis-py":
        return floor(action, n)
    system = make(name)
    if action == "enqueue":
        return {"seconds": system.enqueue(n)}
    if action == "bulk":
        try:
            return {"seconds": system.bulk(n)}
        except NotAvailable as exc:
            return {"na": str(exc)}
    if action == "fill":
        system.fill(n, *args[1:])
        return {}
    if action == "latency":
        delays, error = system.latency(n, float(args[1]))
        return {"delays": delays, "error": error}
    if action == "results":
        try:
            done, seconds = system.results(n, float(args[1]))
        except NotAvailable as exc:
            return {"na": str(exc)}
        return {"done": done, "seconds": seconds}
    raise SystemExit(f"unknown action {action!r}")


if __name__ == "__main__":
    result = run(sys.argv[1], sys.argv[2], sys.argv[3:])
    sys.stdout.flush()
    print(json.dumps(result), flush=True)
    # Some clients keep non-daemon threads or pools alive; the measurement is done.
    sys.stderr.flush()
    os._exit(0)
