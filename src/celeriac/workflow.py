"""What the worker does for workflows once a task has finished: send a chain's next step and
``link`` callbacks, call errbacks, join chords, and fail what can no longer run.

Every step may be repeated safely. A message redelivered after its task finished (its worker
died before acknowledging) replays these steps instead of running the task again: a marker
keeps callbacks from being sent twice, and the chord join is a set of finished members
(adding a member twice counts once) plus a one-winner flag, so the body is sent once.
"""

from __future__ import annotations

import inspect
import logging
import uuid
from typing import TYPE_CHECKING, Any

from . import states
from ._state import Context
from .canvas import (
    Signature,
    chain,
    check_signature,
    chord,
    group,
    maybe_signature,
    placements,
    tail,
)
from .exceptions import ChordError, InvalidTaskError
from .keys import CHORD_ADDED_KEY, CHORD_KEY, CHORD_SIZE_KEY, FIRED_KEY, SENT_KEY
from .result import AsyncResult, GroupResult

if TYPE_CHECKING:
    from .app import Celeriac
    from .message import Message
    from .task import Task

logger = logging.getLogger("celeriac.worker")

_LINKS = uuid.UUID("6f1d2c3e-8a57-4b0e-9c41-2d7e5b8a9f10")  # namespace of callback ids


def check(message: Message) -> None:
    """Raise InvalidTaskError unless the workflow fields of ``message`` are well formed:
    every ``callbacks``, ``errbacks`` and ``chain`` entry a signature, ``chord`` a join with
    a size and a body. Checked before the task runs: a worker that ran a task and then
    could not read its next step could neither finish the workflow nor run the task again."""
    for field in ("callbacks", "errbacks", "chain"):
        for i, sig in enumerate(getattr(message, field) or ()):
            check_signature(sig, f"{field}[{i}]")
    join = message.chord
    if join is not None:
        size = join.get("size", -1)  # None: the size is in the result backend
        if size is not None and (type(size) is not int or size < 0):
            raise InvalidTaskError("message chord has no size")
        check_signature(join.get("body"), "chord body")


def name_continuation(app: Celeriac, request: Context) -> None:
    """Fix the ids of the callbacks and next step before the result is stored, so they are
    listed among its children. A callback's id derives from the task's, so a replay sends
    it under the same id."""
    if not request.callbacks and not request.chain:
        return
    callbacks = [maybe_signature(cb, app) for cb in request.callbacks or ()]
    for i, sig in enumerate(callbacks):
        if sig is not None:
            sig.options.setdefault("task_id", str(uuid.uuid5(_LINKS, f"{request.id}:{i}")))
            request.children.append(sig.options["task_id"])
    request.callbacks = callbacks or None
    if request.chain:
        nxt = maybe_signature(request.chain[-1], app)
        if nxt is not None and nxt.id:
            request.children.append(nxt.id)


def send_continuation(app: Celeriac, request: Context, retval: Any) -> None:
    """Send ``link`` callbacks and the chain's next step with ``retval``."""
    if not request.callbacks and not request.chain:
        return
    # rpc://: the next steps' results go to the chain's sender too
    reply: dict[str, Any] = {"reply_to": request.reply_to} if request.reply_to else {}
    for cb in request.callbacks or ():
        sig = maybe_signature(cb, app)
        if sig is not None:
            sig.apply_async((retval,), parent_id=request.id, root_id=request.root_id, **reply)
    if request.chain:
        rest = list(request.chain)
        nxt = maybe_signature(rest.pop(), app)
        if nxt is not None:
            nxt.apply_async(
                (retval,),
                chain=rest or None,
                parent_id=request.id,
                root_id=request.root_id,
                **reply,
            )
    if app.results.keeps_values:
        app.results.backend.set_value(SENT_KEY.format(request.id), b"1", app.results.expires_in)


def call_errbacks(app: Celeriac, request: Context, exc: BaseException, traceback: str) -> None:
    """Call ``link_error`` errbacks: a task taking (request, exc, traceback) is called here,
    as in Celery; any other is sent with the failed task's id."""
    for eb in request.errbacks or ():
        sig = maybe_signature(eb, app)
        if sig is None:
            continue
        try:
            errback = app.tasks[sig.task]
            if _arity(errback) == 3:
                errback(request, exc, traceback)
            else:
                sig.apply_async((request.id,), parent_id=request.id, root_id=request.root_id)
        except Exception:
            logger.exception("errback %r of %s raised", sig, request.id)


def fail_downstream(app: Celeriac, request: Context, exc: BaseException, traceback: str) -> None:
    """A failed task stops its chain: the steps that will never run are marked FAILURE with
    the same exception, so waiting on the chain's result raises instead of hanging."""
    if not request.chain or not app.results.enabled:
        return
    for d in request.chain:
        sig = maybe_signature(d, app)
        for task_id, name in frozen_ids(sig) if sig is not None else ():
            app.results.store_failure(task_id, exc, name, None, traceback, retry=True)
    last = maybe_signature(request.chain[0], app)  # the chain's end: it may end a chord member
    if last is not None:
        count_unrun(app, last, request.root_id)


def count_unrun(app: Celeriac, sig: Signature, root_id: str | None) -> None:
    """``sig`` will never run (failed upstream): count the tasks ending it that are chord
    header members as finished (their failure is stored), so the chord completes."""
    for task_id, place in _chord_places(sig, None):
        member = Context(
            id=task_id,
            group=place["group_id"],
            group_index=place["group_index"],
            chord=place["chord"],
            root_id=root_id,
        )
        on_chord_part_return(app, member)


def _chord_places(sig: Signature, place: dict[str, Any] | None) -> list[tuple[Any, dict[str, Any]]]:
    """(task id, chord placement) of each task ending ``sig`` that counts in a chord."""
    end = tail(sig)
    if place is None:
        place = {k: end.options.get(k) for k in ("group_id", "group_index", "chord")}
        if not place["chord"] or not place["group_id"]:
            return []
    if isinstance(end, group):
        members = end.members()
        pairs = zip(members, placements(members, place), strict=True)
        return [found for m, p in pairs for found in _chord_places(m, p)]
    return [(end.options.get("task_id"), place)]


def frozen_ids(sig: Signature) -> list[tuple[str, str | None]]:
    """(task id, task name) of every task in ``sig`` whose id is already fixed."""
    if isinstance(sig, chain | group):
        return [pair for t in sig.tasks for pair in frozen_ids(t)]
    if isinstance(sig, chord):
        body = sig.body
        header = [pair for t in sig.tasks for pair in frozen_ids(t)]
        return header + (frozen_ids(body) if body is not None else [])
    task_id = sig.options.get("task_id")
    return [(task_id, sig.task)] if task_id else []


def on_chord_part_return(app: Celeriac, request: Context) -> None:
    """A chord header member reached a final state: count it, and if it is the last one,
    send the body with the header's results (or fail the body if a member failed)."""
    join, group_id = request.chord, request.group
    if not join or not group_id:
        return
    backend, expires = app.results.backend, app.results.expires_in
    finished = backend.add_to_set(CHORD_KEY.format(group_id), str(request.group_index), expires)
    size = join.get("size")
    if size is None:  # a header sent as it was generated: its size is stored at its end
        stored = backend.get_value(CHORD_SIZE_KEY.format(group_id))
        if stored is None:
            return  # its last member, sent after the size is stored, will see it
        size = int(stored)
    if finished < size:
        return
    added = _added(app, group_id)  # members added by Task.add_to_chord
    if finished < size + len(added):
        return
    me = str(request.id).encode()
    key = FIRED_KEY.format(group_id)
    won = backend.set_value(key, me, expires, only_if_absent=True)
    if not won and backend.get_value(key) != me:
        return  # another member sent it (the same member again: it may not have, so resend)
    body = maybe_signature(join["body"], app)
    assert body is not None
    header = GroupResult.restore(group_id, app=app)
    if header is None:
        _fail_chord(app, body, ChordError(f"chord {group_id}: its header has expired"))
        return
    members = [*header.results, *(AsyncResult(i, app=app) for i in added)]
    ids = _leaf_ids(members)
    metas = app.results.metas(ids)
    for task_id in ids:
        meta = metas.get(task_id)
        if meta is None or meta["status"] != states.SUCCESS:
            cause = app.AsyncResult(task_id).result if meta is not None else None
            _fail_chord(app, body, ChordError(f"Dependency {task_id} raised {cause!r}"))
            return
    values = _values(members, metas)
    body.apply_async((values,), parent_id=request.id, root_id=request.root_id)


def _added(app: Celeriac, group_id: str) -> list[str]:
    """The ids of the members added to chord ``group_id`` while it ran, in order added."""
    found = app.results.backend.set_members(CHORD_ADDED_KEY.format(group_id))
    pairs = sorted((int(n), task_id) for n, _, task_id in (m.partition(":") for m in found))
    return [task_id for _, task_id in pairs]


def _leaf_ids(results: list[Any]) -> list[str]:
    """The task ids in ``results``, nested groups (a member ending in a group) flattened."""
    return [
        i for r in results for i in (_leaf_ids(r.results) if isinstance(r, GroupResult) else [r.id])
    ]


def _values(results: list[Any], metas: dict[str, Any]) -> list[Any]:
    """The results' values, a member that ends in a group giving the list of its values."""
    return [
        _values(r.results, metas) if isinstance(r, GroupResult) else metas[r.id]["result"]
        for r in results
    ]


def _fail_chord(app: Celeriac, body: Signature, exc: ChordError) -> None:
    logger.error("Chord body %s will not run: %s", body, exc)
    traceback = f"{type(exc).__name__}: {exc}\n"
    for task_id, name in frozen_ids(body):
        app.results.store_failure(task_id, exc, name, None, traceback, retry=True)
    count_unrun(app, body, None)  # a body that ends a member of an outer chord
    first = body.tasks[0] if isinstance(body, chain) and body.tasks else body
    request = Context(
        id=first.options.get("task_id"),
        task=app.tasks.get(first.task),
        args=list(first.args),
        kwargs=dict(first.kwargs),
        errbacks=first.options.get("link_error"),
        root_id=None,
    )
    call_errbacks(app, request, exc, traceback)


def replay(app: Celeriac, request: Context, meta: dict[str, Any]) -> None:
    """Redo the workflow steps of a task that finished but whose message came back
    (``request`` is made from that message)."""
    status = meta.get("status")
    if status == states.SUCCESS and (request.callbacks or request.chain):
        if app.results.backend.get_value(SENT_KEY.format(request.id)) is None:
            name_continuation(app, request)
            send_continuation(app, request, meta.get("result"))
    if request.chord and status in states.READY_STATES:
        on_chord_part_return(app, request)


def _arity(task: Task) -> int:
    fn = type(task).__dict__.get("_fun") or task.run
    params = list(inspect.signature(fn).parameters.values())
    if task.bind:
        params = params[1:]
    return len([p for p in params if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)])
