"""Random and mutated messages through a real worker on every broker and result backend: none
stops the worker or blocks the queue, and each ends in a result or a dead letter."""

from __future__ import annotations

import threading
import uuid
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from celeriac import Celery, states
from celeriac.brokers.base import Outgoing
from celeriac.message import Message
from celeriac.serialization import content_types
from conftest import wait_until
from fuzzing import wire

from .test_worker_contract import worker


def test_random_and_mutated_messages_end_in_a_result_or_a_dead_letter(app: Celery) -> None:
    seen: set[str] = set()

    @app.task(name="sink", bind=True)
    def sink(self, *args: Any, **kwargs: Any) -> int:
        seen.add(self.request.id)
        return len(args)

    accept = content_types(app.conf.accept_content)

    def done(body: bytes, letters: list[bytes]) -> bool:
        if body in letters:
            return True
        try:
            message = Message.decode(body, accept)
        except Exception:
            return False
        if message.id in seen or message.ignore_result:  # (the queue must be empty, too)
            return True
        return app.AsyncResult(message.id).state in states.READY_STATES

    with worker(app, concurrency=2) as w:

        @settings(
            max_examples=4,
            deadline=None,
            suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
        )
        @given(batch=st.lists(wire("sink"), min_size=1, max_size=12))
        def check(batch: list[bytes]) -> None:
            app.broker.publish([Outgoing(body, "celery") for body in batch])
            marker = sink.apply_async(task_id=str(uuid.uuid4()))  # behind them, at priority 0
            assert marker.get(timeout=30) == 0

            def settled() -> bool:
                letters = [d.body for d in app.broker.dead_letters("celery", 1000)]
                return all(done(body, letters) for body in batch)

            wait_until(settled, timeout=30)
            wait_until(lambda: app.broker.queue_length("celery") == 0, timeout=30)
            app.broker.purge_dead_letters("celery")

        check()
        assert not w._stop_requested
        assert [t for t in threading.enumerate() if t.name == "celeriac-heartbeat"]
