"""The canvas on every broker and result backend: groups, chains, chords and their nestings,
failures inside them, and results in order."""

from __future__ import annotations

from typing import Any

import pytest

from celeriac import Celery, GroupResult, chain, chord, group, signature, states
from celeriac.exceptions import ChordError
from conftest import wait_until
from contract.test_worker_contract import worker


class Boom(Exception):
    """Raised by a task in the middle of a workflow."""


def define(app: Celery) -> dict[str, Any]:
    """The tasks these tests use, registered on ``app``."""
    calls: dict[str, list[Any]] = {"errback": [], "summed": []}

    @app.task(name="seed.tp1")
    def tp1(x: int = 0) -> int:
        return x + 1

    @app.task(name="seed.tp2")
    def tp2(x: int = 0) -> int:
        return x * 2

    @app.task(name="seed.tp3")
    def tp3(x: int = 0) -> int:
        return x + 3

    @app.task(name="seed.tp4")
    def tp4(x: int = 0) -> int:
        return x * 4

    @app.task(name="t.add")
    def add(x: int, y: int) -> int:
        return x + y

    @app.task(name="t.tsum")
    def tsum(values: list[int]) -> int:
        calls["summed"].append(values)
        return sum(values)

    @app.task(name="t.fail")
    def fail(*args: Any) -> None:
        raise Boom("broken on purpose")

    @app.task(name="t.on_error")
    def on_error(request: Any, exc: BaseException, traceback: str) -> None:
        calls["errback"].append((request.id, type(exc).__name__))

    return {
        **{f.name.rpartition(".")[2]: f for f in (tp1, tp2, tp3, tp4, add, tsum, fail, on_error)},
        **calls,
    }


def test_the_seed_group_and_chain(app: Celery) -> None:
    t = define(app)
    tasks_group = group(t["tp1"].s(), t["tp2"].s(), t["tp3"].s(), t["tp4"].s())
    tasks_chain = chain(t["tp1"].s(), t["tp2"].s(), t["tp3"].s(), t["tp4"].s())
    with worker(app):
        grouped = tasks_group.apply_async()
        chained = tasks_chain.apply_async()
        assert grouped.get(timeout=20) == [1, 0, 3, 0]
        assert chained.get(timeout=20) == ((0 + 1) * 2 + 3) * 4
    assert isinstance(grouped, GroupResult)
    assert grouped.ready() and grouped.successful() and grouped.completed_count() == 4
    parents = []
    node = chained
    while node is not None:
        parents.append(node.get(timeout=5))
        node = node.parent
    assert parents == [20, 5, 2, 1]


def test_a_group_of_1000_is_one_publish_and_keeps_order(app: Celery) -> None:
    t = define(app)
    publishes = []
    real_publish = app.broker.publish

    def counting(messages: Any) -> None:
        publishes.append(len(messages))
        real_publish(messages)

    app.broker.publish = counting  # type: ignore[method-assign]
    result = group(t["add"].s(i, i) for i in range(1000)).apply_async()
    assert publishes == [1000]
    with worker(app, concurrency=4, prefetch_multiplier=16):
        assert result.get(timeout=120) == [2 * i for i in range(1000)]


def test_chord_of_100_runs_the_body_once_with_results_in_order(app: Celery) -> None:
    t = define(app)
    result = chord((t["add"].s(i, 1) for i in range(100)), t["tsum"].s()).apply_async()
    with worker(app, concurrency=4):
        assert result.get(timeout=60) == sum(range(1, 101))
    assert t["summed"] == [list(range(1, 101))]
    assert result.parent.get(timeout=5) == list(range(1, 101))


def test_chord_with_an_empty_header_still_runs_the_body(app: Celery) -> None:
    t = define(app)
    with worker(app):
        assert chord([], t["tsum"].s()).apply_async().get(timeout=20) == 0


def test_nested_workflows(app: Celery) -> None:
    t = define(app)
    add, tsum = t["add"], t["tsum"]
    group_in_chain = chain(add.s(1, 1), group(add.s(10), add.s(20)), tsum.s())  # a chord
    chain_in_group = group(chain(add.s(1, 1), add.s(1)), chain(add.s(2, 2), add.s(2)))
    chain_ending_in_group = add.s(1, 2) | group(add.s(1), add.s(2))
    chord_in_chain = chain(add.s(1, 1), chord([add.s(1), add.s(2)], tsum.s()), add.s(100))
    piped_chord = group(add.s(1, 1), add.s(2, 2)) | tsum.s()
    with worker(app, concurrency=4):
        assert group_in_chain.apply_async().get(timeout=30) == 12 + 22
        assert chain_in_group.apply_async().get(timeout=30) == [3, 6]
        assert chain_ending_in_group.apply_async().get(timeout=30) == [4, 5]
        assert chord_in_chain.apply_async().get(timeout=30) == 3 + 4 + 100
        assert piped_chord.apply_async().get(timeout=30) == 6


def test_failure_in_the_middle_of_a_chain_stops_it_and_calls_the_errback_once(
    app: Celery,
) -> None:
    t = define(app)
    workflow = chain(t["add"].s(1, 1), t["fail"].s(), t["add"].s(5))
    workflow.link_error(t["on_error"].s())
    with worker(app):
        result = workflow.apply_async()
        with pytest.raises(Boom):
            result.get(timeout=20)
        assert result.state == states.FAILURE
        assert result.parent.state == states.FAILURE
        assert result.parent.parent.get(timeout=5) == 2
    assert t["errback"] == [(result.parent.id, "Boom")]


def test_failure_in_a_chord_header_fails_the_body_with_a_chord_error(app: Celery) -> None:
    t = define(app)
    body = t["tsum"].s()
    body.link_error(t["on_error"].s())
    members = [t["add"].s(1, 1), t["fail"].s(), t["add"].s(2, 2)]
    with worker(app):
        result = chord(members, body).apply_async()
        with pytest.raises(Boom):  # as in Celery: get() raises the failed parent's exception
            result.get(timeout=20)
        with pytest.raises(ChordError) as info:  # the body's own
            app.AsyncResult(result.id).get(timeout=20)
    failed_id = result.parent.results[1].id
    assert failed_id in str(info.value) and "Boom" in str(info.value)
    assert t["summed"] == []
    assert t["errback"] == [(result.id, "ChordError")]


def test_group_result_save_restore_and_set_operations(app: Celery) -> None:
    t = define(app)
    with worker(app):
        result = group(t["add"].s(i, 0) for i in range(5)).apply_async()
        assert result.join(timeout=20) == [0, 1, 2, 3, 4]
    result.save()
    restored = GroupResult.restore(result.id, app=app)
    assert restored is not None
    assert [r.id for r in restored] == [r.id for r in result]
    assert restored.get(timeout=5) == [0, 1, 2, 3, 4]
    restored.delete()
    assert GroupResult.restore(result.id, app=app) is None


def test_links_map_starmap_and_chunks(app: Celery) -> None:
    t = define(app)
    add = t["add"]
    linked = add.s(2, 2)
    linked.link(add.s(10))
    with worker(app):
        first = linked.apply_async()
        assert first.get(timeout=20) == 4
        wait_until(lambda: first.children or app.AsyncResult(first.id).children)
        child = app.AsyncResult(first.id).children[0]
        assert child.get(timeout=20) == 14
        assert add.starmap([(1, 2), (3, 4)]).apply_async().get(timeout=20) == [3, 7]
        assert t["tp1"].map([1, 2, 3]).apply_async().get(timeout=20) == [2, 3, 4]
        chunked = add.chunks([(i, i) for i in range(10)], 3).apply_async()
        assert chunked.get(timeout=20) == [[0, 2, 4], [6, 8, 10], [12, 14, 16], [18]]


def test_signatures_travel_as_plain_dicts(app: Celery) -> None:
    t = define(app)
    workflow = chain(t["add"].s(1, 1), group(t["add"].s(1), t["add"].s(2)), t["tsum"].s())
    rebuilt = signature(dict(workflow), app=app)
    assert type(rebuilt) is chain
    with worker(app):
        assert rebuilt.apply_async().get(timeout=30) == 7
