"""Hypothesis strategies for the fuzz tests: random bytes, random JSON, and real task messages
with one field replaced by a random value (or removed)."""

from __future__ import annotations

import dataclasses
import uuid
from typing import Any

from hypothesis import strategies as st

from celeriac.message import Message
from celeriac.serialization import json_dumps

#: JSON values of every shape; numbers small enough that any eta or expiry is already past
JSON: st.SearchStrategy[Any] = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-1_000_000, 1_000_000)
    | st.floats(-1e6, 1e6, allow_nan=False)
    | st.text(max_size=12),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)

FIELDS = [f.name for f in dataclasses.fields(Message) if f.name != "content_type"]

#: signature-shaped values, valid and not, for the workflow fields
SIGNATURES: st.SearchStrategy[Any] = st.fixed_dictionaries(
    {"task": st.sampled_from(["sink", "no.such.task"]) | JSON},
    optional={
        "args": JSON,
        "kwargs": JSON,
        "options": st.fixed_dictionaries({}, optional={"link": JSON, "task_id": JSON}) | JSON,
        "subtask_type": st.sampled_from(["group", "chain", "chord", "xmap", "chunks"]) | JSON,
        "immutable": JSON,
    },
)


def message(task: str) -> st.SearchStrategy[dict[str, Any]]:
    """A valid message of ``task`` as a dict (as it is on the wire)."""
    return st.builds(
        lambda args, priority: {
            "v": 1,
            "id": str(uuid.uuid4()),
            "task": task,
            "args": args,
            "kwargs": {},
            "retries": 0,
            "priority": priority,
        },
        st.lists(JSON, max_size=3),
        st.integers(0, 9),
    )


def mutated(task: str) -> st.SearchStrategy[dict[str, Any]]:
    """A valid message of ``task`` with one field replaced by a random value, or removed."""
    replacement = JSON | st.lists(SIGNATURES, max_size=2) | SIGNATURES

    def mutate(body: dict[str, Any], field: str, value: Any, remove: bool) -> dict[str, Any]:
        body = dict(body)
        if remove:
            body.pop(field, None)
        else:
            body[field] = value
        return body

    return st.builds(
        mutate,
        message(task),
        st.sampled_from([*FIELDS, "v", "unknown"]),
        replacement,
        st.booleans(),
    )


def wire(task: str) -> st.SearchStrategy[bytes]:
    """Bytes as a queue may hold them: random, random JSON, or a mutated message of
    ``task``."""
    return st.one_of(
        st.binary(max_size=64),
        JSON.map(json_dumps),
        mutated(task).map(json_dumps),
        message(task).map(json_dumps),
    )
