"""Property-based fuzzing of what a worker reads from outside: message bytes and control
requests. Whatever the bytes, decoding gives a message the worker can run, or an error saying
what is wrong; it never raises anything else. (The same inputs through real workers on every
broker: tests/contract/test_fuzz_contract.py.)"""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from celeriac import Celery, workflow
from celeriac.canvas import maybe_signature
from celeriac.control import Request, reply_to
from celeriac.eventlogs.base import LATEST
from celeriac.exceptions import InvalidTaskError
from celeriac.message import Message
from celeriac.serialization import content_types, json_dumps
from fuzzing import JSON, wire

ACCEPT = content_types(["json", "msgpack"])


@settings(max_examples=600, deadline=None)
@given(data=wire("sink"))
def test_any_bytes_decode_to_a_runnable_message_or_an_invalid_task_error(data: bytes) -> None:
    try:
        message = Message.decode(data, ACCEPT)
        workflow.check(message)
    except InvalidTaskError as exc:
        assert str(exc)
        return
    # what passed is what the worker relies on: signatures that build, an encoding that
    # decodes to the same message
    for sig in [*(message.callbacks or ()), *(message.errbacks or ()), *(message.chain or ())]:
        assert maybe_signature(sig) is not None
    if message.chord is not None:
        assert maybe_signature(message.chord["body"]) is not None
    again = Message.decode(message.encode(), ACCEPT)
    assert again.to_dict() == message.to_dict()


REQUESTS = st.one_of(
    st.binary(max_size=64),
    JSON.map(json_dumps),
    st.fixed_dictionaries(
        {},
        optional={
            "command": st.sampled_from(["ping", "stats", "shutdown-not", "active"]) | JSON,
            "arguments": JSON,
            "destination": JSON | st.lists(st.text(max_size=12), max_size=2),
        },
    ).map(json_dumps),
)


@settings(max_examples=300, deadline=None)
@given(raw=REQUESTS)
def test_any_control_request_decodes_or_is_refused_with_a_reason(raw: bytes) -> None:
    try:
        request = Request.decode(raw)
    except ValueError as exc:
        assert str(exc)
        return
    assert isinstance(request.command, str) and isinstance(request.arguments, dict)
    assert request.destination is None or all(isinstance(h, str) for h in request.destination)
    assert Request.decode(request.encode()) == request


@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(batch=st.lists(REQUESTS, min_size=1, max_size=8))
def test_a_worker_answers_its_control_log_whatever_it_holds(
    memory_app: Celery, batch: list[bytes]
) -> None:
    worker = memory_app.Worker(pool="solo", install_signal_handlers=False, hostname="w@h")
    log = memory_app.events.control_log()
    replies = log.reader(LATEST)
    replies.read(1, 0)
    worker.remote._log = log
    ping = Request("ping", {}, None, "the-ping", reply=True)
    for raw in [*batch, ping.encode()]:
        worker.remote.answer(raw)  # never raises, whatever it read
    answers = [reply_to("the-ping", body) for _, body in replies.read(100, 0)]
    assert [a for a in answers if a is not None] == [{"w@h": {"ok": "pong"}}]
