"""Canvas behaviours a Celery user relies on, on every broker and result backend, checked
against what Celery's own canvas integration tests expect: links on groups, chords and
chains, failures inside chord headers, ``Task.replace`` and ``Task.add_to_chord``, nested
groups, results returned by tasks, and ``Reject`` without requeue."""

from __future__ import annotations

import time
from typing import Any

import pytest

from celeriac import Celery, chain, chord, group, states
from celeriac.canvas import StampingVisitor
from celeriac.exceptions import ChordError, Reject
from celeriac.result import result_from_tuple
from conftest import wait_until
from contract.test_worker_contract import wait_for_reason, worker


class Boom(Exception):
    """Raised by a task in the middle of a workflow."""


def define(app: Celery) -> dict[str, Any]:
    """The tasks these tests use, registered on ``app``, and what their side effects saw."""
    seen: dict[str, list[Any]] = {"noted": [], "errback": []}

    @app.task(name="s.add")
    def add(x: Any, y: Any) -> Any:
        return x + y

    @app.task(name="s.tsum")
    def tsum(values: list[int]) -> int:
        return sum(values)

    @app.task(name="s.identity")
    def identity(x: Any) -> Any:
        return x

    @app.task(name="s.fail")
    def fail(*args: Any) -> None:
        raise Boom("broken on purpose")

    @app.task(name="s.note")
    def note(*args: Any) -> None:
        seen["noted"].append(args)

    @app.task(name="s.on_error")
    def on_error(request: Any, exc: BaseException, traceback: str) -> None:
        seen["errback"].append((request.id, type(exc).__name__))

    @app.task(name="s.replaced", bind=True)
    def replaced(self: Any, x: int) -> Any:
        return self.replace(add.s(x, 10))

    @app.task(name="s.replaced_with_group", bind=True)
    def replaced_with_group(self: Any, x: int) -> Any:
        return self.replace(group(add.s(x, 1), add.s(x, 2)))

    @app.task(name="s.replaced_with_chain", bind=True)
    def replaced_with_chain(self: Any, x: int) -> Any:
        return self.replace(chain(add.s(x, 1), add.s(100)))

    @app.task(name="s.adds_to_chord", bind=True)
    def adds_to_chord(self: Any, nums: list[int]) -> int:
        for n in nums:
            self.add_to_chord(add.s(n, 10))
        return 0

    @app.task(name="s.adds_chord_to_chord", bind=True)
    def adds_chord_to_chord(self: Any, nums: list[int]) -> int:
        self.add_to_chord(group(add.s(n, 10) for n in nums) | tsum.s())
        return 0

    @app.task(name="s.starts_chord")
    def starts_chord() -> Any:
        return chord([add.s(1, 1), add.s(2, 2)], tsum.s()).apply_async().get()

    @app.task(name="s.returns_result")
    def returns_result() -> Any:
        return add.delay(1, 1)

    @app.task(name="s.returns_group_result")
    def returns_group_result() -> Any:
        return group(add.s(1, 1), add.s(2, 2)).delay()

    @app.task(name="s.rejects")
    def rejects() -> None:
        raise Reject("not for me", requeue=False)

    tasks = (add, tsum, identity, fail, note, on_error, replaced, replaced_with_group)
    more = (replaced_with_chain, adds_to_chord, adds_chord_to_chord, starts_chord)
    rest = (returns_result, returns_group_result, rejects)
    return {**{t.name.partition(".")[2]: t for t in (*tasks, *more, *rest)}, **seen}


def test_links_on_groups_chords_and_chains(app: Celery) -> None:
    t = define(app)
    add, note, on_error, fail = t["add"], t["note"], t["on_error"], t["fail"]
    linked_group = group(add.s(1, 1), add.s(2, 2))
    linked_group.link(note.s("group"))  # Celery: the first member's, immutable
    failing_group = group(fail.s(), add.s(1, 1), fail.s())
    failing_group.link_error(on_error.s())  # each member's
    linked_chord = chord([add.s(1, 1), add.s(2, 2)], t["tsum"].s())
    linked_chord.link(note.s())  # the body's: called with the chord's result
    failing_chord = chord([add.s(1, 1), fail.s()], t["tsum"].s())
    failing_chord.link_error(on_error.s())  # the body's
    with worker(app, concurrency=4):
        assert linked_group.apply_async().get(timeout=20) == [2, 4]
        assert linked_chord.apply_async().get(timeout=20) == 6
        chained = chain(add.s(1, 1), add.s(1)).apply_async(link=note.s("chain"))
        assert chained.get(timeout=20) == 3
        failing = failing_group.apply_async()
        with pytest.raises(Boom):
            failing.get(timeout=20)
        chord_result = failing_chord.apply_async()
        with pytest.raises(Boom):
            chord_result.get(timeout=20)
        wait_until(lambda: len(t["noted"]) == 3 and len(t["errback"]) == 3)
    assert len(t["noted"]) == 3
    assert set(t["noted"]) == {(3, "chain"), (6,), ("group",)}
    assert sorted(t["errback"]) == sorted(
        [
            (failing.results[0].id, "Boom"),
            (failing.results[2].id, "Boom"),
            (chord_result.id, "ChordError"),
        ]
    )


def test_a_chord_errback_on_the_header_when_allowed(app: Celery) -> None:
    app.conf.task_allow_error_cb_on_chord_header = True
    t = define(app)
    sig = chord([t["add"].s(1, 1), t["fail"].s()], t["tsum"].s())
    sig.link_error(t["on_error"].s())
    with worker(app):
        result = sig.apply_async()
        with pytest.raises(Boom):
            result.get(timeout=20)
        wait_until(lambda: len(t["errback"]) == 2)
    assert sorted(name for _, name in t["errback"]) == ["Boom", "ChordError"]


def test_a_nested_chord_failure_calls_the_outer_errback_once(app: Celery) -> None:
    """Celery's test_nested_chord_header_link_error: a chord's errback, with a nested chord
    in the header whose own header fails, is called once and the body does not run."""
    app.conf.task_allow_error_cb_on_chord_header = False
    t = define(app)
    inner = chord([t["identity"].si("t1"), t["fail"].si()], t["identity"].si("t2"))
    outer = chord(group([t["identity"].si("t3"), inner]), t["note"].si("body"))
    outer.link_error(t["on_error"].s())
    with worker(app, concurrency=4):
        result = outer.apply_async()
        with pytest.raises(ChordError):  # the nested chord's failure
            result.get(timeout=20)
        wait_until(lambda: t["errback"])
        time.sleep(1)  # a second call would come by now
    assert t["errback"] == [(result.id, "ChordError")]
    assert t["noted"] == []


def test_a_body_reused_by_chords_gets_an_errback_once_and_headers_are_copies(
    app: Celery,
) -> None:
    """Celery's test_enabling_flag_allow_error_cb_on_chord_header and test_disabling_...:
    a signature given to several chords as their body gets an errback linked each time
    once (linking an equal signature again changes nothing), and linking to a chord's
    header tasks leaves the signatures given for the header as they were."""
    t = define(app)
    body, given = t["note"].si("body"), t["fail"].si()
    for _ in range(3):
        sig = chord([given, t["identity"].si(1)], body)
        sig.link_error(t["on_error"].s())
        for member in sig.tasks:
            member.link_error(t["note"].si("header errback"))
    assert body.options["link_error"] == [t["on_error"].s()]
    assert given == t["fail"].si()
    with worker(app):
        with pytest.raises(Boom):
            sig.apply_async().get(timeout=20)
        wait_until(lambda: t["errback"] and t["noted"])
        time.sleep(1)  # a second call would come by now
    assert [name for _, name in t["errback"]] == ["ChordError"]
    assert t["noted"] == [("header errback",)]


def test_a_failed_header_task_is_what_get_raises_and_the_body_fails_with_chord_error(
    app: Celery,
) -> None:
    t = define(app)
    header = [t["add"].s(1, 1), chain(t["add"].s(1, 1), t["fail"].s(), t["add"].s(1))]
    nested = chord([chord([t["fail"].s()], t["tsum"].s()), t["add"].s(1, 1)], t["tsum"].s())
    with worker(app, concurrency=4):
        result = chord(header, t["tsum"].s()).apply_async()
        with pytest.raises(Boom):  # the header task's own exception, as Celery raises
            result.get(timeout=10)
        with pytest.raises(ChordError) as info:  # the body's own failure
            app.AsyncResult(result.id).get(timeout=10)
        with pytest.raises(ChordError):  # the inner chord's body: the failed header member
            nested.apply_async().get(timeout=10)
    assert "Boom" in str(info.value)
    assert result.parent.results[1].state == states.FAILURE


def test_replace(app: Celery) -> None:
    t = define(app)
    add, identity, note = t["add"], t["identity"], t["note"]
    linked = t["replaced"].s(1)
    linked.link(note.s())
    header = [t["replaced"].s(1), t["replaced_with_group"].s(2), t["replaced_with_chain"].s(3)]
    with worker(app, concurrency=4):
        single = t["replaced"].delay(1)
        assert single.get(timeout=20) == 11
        assert app.AsyncResult(single.id).get(timeout=5) == 11
        assert t["replaced_with_group"].delay(1).get(timeout=20) == [2, 3]
        assert t["replaced_with_chain"].delay(1).get(timeout=20) == 102
        in_chain = chain(add.s(1, 1), t["replaced"].s(), add.s(5)).apply_async()
        assert in_chain.get(timeout=20) == 17
        in_group = group(t["replaced"].s(1), t["replaced_with_group"].s(2)).apply_async()
        assert in_group.get(timeout=20) == [11, [3, 4]]
        assert chord(header, identity.s()).apply_async().get(timeout=20) == [11, [3, 4], 104]
        assert linked.apply_async().get(timeout=20) == 11
        wait_until(lambda: t["noted"] == [(11,)])


def test_replace_and_a_chord_inside_a_task_run_eagerly(app: Celery) -> None:
    app.conf.task_always_eager = True
    t = define(app)
    assert t["replaced"].delay(1).get() == 11
    assert t["replaced_with_group"].delay(1).get() == [2, 3]
    assert t["starts_chord"].delay().get() == 6


def test_add_to_chord(app: Celery) -> None:
    t = define(app)
    identity = t["identity"]
    adds = chord([t["adds_to_chord"].s([1, 2]), t["add"].s(1, 1)], identity.s())
    adds_chord = chord([t["adds_chord_to_chord"].s([1, 2, 3])], identity.s())
    with worker(app, concurrency=4):
        assert adds.apply_async().get(timeout=20) == [0, 2, 11, 12]
        assert adds_chord.apply_async().get(timeout=20) == [0, 11 + 12 + 13]


def test_nested_groups_are_flattened(app: Celery) -> None:
    t = define(app)
    add = t["add"]
    nested = group(add.si(1, 10), group(add.si(1, 100), group(add.si(1, 1000), add.si(1, 2000))))
    assert nested.apply().get() == [11, 101, 1001, 2001]
    with worker(app):
        assert nested.apply_async().get(timeout=20) == [11, 101, 1001, 2001]


def test_a_group_member_ending_in_a_group(app: Celery) -> None:
    t = define(app)
    add, identity = t["add"], t["identity"]
    lone = group(add.s(1, 2) | group(add.s(1), add.s(2)))
    among = group(
        identity.si(1), identity.si(2), chain(identity.si(5), group(add.si(3, 0), add.si(4, 0)))
    )
    header = chord([add.s(1, 2) | group(add.s(1), add.s(2)), add.s(1, 1)], identity.s())
    with worker(app, concurrency=4):
        assert lone.apply_async().get(timeout=20) == [4, 5]
        assert among.apply_async().get(timeout=20) == [1, 2, [3, 4]]
        assert header.apply_async().get(timeout=20) == [[4, 5], 2]


def test_a_task_returning_a_result_stores_its_tuple(app: Celery) -> None:
    t = define(app)
    with worker(app):
        value = t["returns_result"].delay().get(timeout=20)
        assert value[1] is None and isinstance(value[0][0], str)  # ((id, parent), None)
        assert result_from_tuple(value, app).get(timeout=20) == 2
        value = t["returns_group_result"].delay().get(timeout=20)
        assert result_from_tuple(value, app).get(timeout=20) == [2, 4]


def test_reject_without_requeue_records_failure(app: Celery) -> None:
    t = define(app)
    result = t["rejects"].delay()
    with worker(app):
        with pytest.raises(Reject):
            result.get(timeout=20)
        wait_for_reason(app, "not for me")
    assert result.state == states.FAILURE


def test_a_generator_header_is_sent_as_it_is_read(app: Celery) -> None:
    t = define(app)
    sent: list[str] = []

    def header() -> Any:
        for i in range(3):
            if i == 2:  # the first member runs before the generator ends, as in Celery
                wait_until(lambda: app.AsyncResult(sent[0]).ready(), timeout=15)
            sig = t["add"].s(i, 10)
            sent.append(sig.freeze().id)
            yield sig

    with worker(app):
        assert chord(header(), t["tsum"].s())().get(timeout=20) == 33
        nothing: tuple[Any, ...] = ()
        assert chord((s for s in nothing), t["tsum"].s())().get(timeout=20) == 0


def test_chain_ids_errbacks_and_tasks_as_header_members(app: Celery) -> None:
    t = define(app)
    add, tsum = t["add"], t["tsum"]
    last = add.s(2).set(task_id="the-last-one")
    frozen = add.s(4, 0) | last
    assert frozen.id is None
    frozen.freeze(last.id)
    assert frozen.id == "the-last-one"
    failing = chain(add.si(1, 1), t["fail"].s(), add.s(1))
    failing.link_error(t["on_error"].s())
    failing_body = chord([add.s(1, 1)], failing)  # the body chain is frozen before it runs
    inner = chain(tsum.s(), group(add.s(8), add.s(16)), tsum.s() | add.s(32))
    tasks_as_members = chord([add.s(0, 1)], chord([tsum, tsum], inner))
    with worker(app, concurrency=4):
        assert frozen.apply_async().get(timeout=20) == 6
        assert app.AsyncResult("the-last-one").get(timeout=5) == 6
        with pytest.raises(Boom):
            failing_body.apply_async().get(timeout=20)
        assert tasks_as_members.apply_async().get(timeout=20) == 60
        # a group of one task in a chain is that task, as in Celery
        assert chain(group(add.s(0, 0)), add.s(-1)).apply_async().get(timeout=20) == -1
        assert chain(add.s(1, 1), group(add.s(1))).apply_async().get(timeout=20) == 3
        wait_until(lambda: t["errback"])
    assert [name for _, name in t["errback"]] == ["Boom"]  # once, by the failed step


def test_stamping(app: Celery) -> None:
    seen: list[tuple[Any, Any]] = []

    @app.task(name="s.stamps", bind=True)
    def stamps(self: Any, *args: Any) -> int:
        seen.append((self.request.stamped_headers, self.request.stamps))
        return 1

    class Visitor(StampingVisitor):
        def on_signature(self, sig: Any, **headers: Any) -> dict[str, Any]:
            return {"on_signature": 42}

        def on_group_start(self, group: Any, **headers: Any) -> dict[str, Any]:
            return {"in_group": True}

    workflow = chain(stamps.si(), group(stamps.si(), stamps.si()))
    workflow.link_error(stamps.si())
    workflow.stamp(visitor=Visitor(), flow="mine")
    single = stamps.si()
    single.stamp(flow=[1])
    single.stamp(append_stamps=True, flow=2)
    with worker(app):
        assert workflow.apply_async().get(timeout=20) == [1, 1]
        assert single.apply_async().get(timeout=20) == 1
    names = sorted(sorted(n) for n, v in seen if v["flow"] == "mine")
    assert names == [["flow", "in_group", "on_signature"]] * 2 + [["flow", "on_signature"]]
    assert (["flow"], {"flow": [1, 2]}) in seen
    assert {"flow": "mine", "on_signature": 42} in [v for _, v in seen]
