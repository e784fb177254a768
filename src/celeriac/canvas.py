"""The canvas: signatures and the workflows built from them.

A :class:`Signature` is a task name with arguments and options; it is a dict (``task``,
``args``, ``kwargs``, ``options``, ``subtask_type``, ``immutable``), so it travels inside
messages with any serializer. ``group``, ``chain``, ``chord``, ``xmap``, ``xstarmap`` and
``chunks`` are signatures too (their parts are in ``kwargs``), so workflows nest and travel.

Sending a workflow is one pass that builds every message to publish now and freezes (assigns)
the ids of everything that runs later, then one publish of the whole batch. What runs later
travels inside the messages: a chain's remaining steps in ``chain``, a chord's body in
``chord``; the worker sends them on (see :mod:`celeriac.workflow`).
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Generator, Iterable, Iterator, Mapping
from typing import TYPE_CHECKING, Any, ClassVar, TypeVar

from ._state import current_request, get_current_app
from .exceptions import InvalidTaskError
from .keys import CHORD_SIZE_KEY
from .message import Encoded, Message, splicer
from .result import AsyncResult, GroupResult
from .routing import MapRouter
from .utils import functional, gc_paused
from .utils.ids import new_id, new_ids

if TYPE_CHECKING:
    from .app import Celeriac
    from .result import GroupResult
    from .task import Task

_S = TypeVar("_S", bound="Signature")

#: Options that say how to publish, not what to run.
_PUBLISH_OPTIONS = ("retry", "retry_policy")
#: Options that place a signature inside a workflow; they apply to its last task.
_TAIL_OPTIONS = ("group_id", "group_index", "chord")


class Signature(dict[str, Any]):
    """A task invocation that can be sent later, passed around, or composed."""

    TYPES: ClassVar[dict[str, type[Signature]]] = {}  # subtask_type -> class

    def __init__(
        self,
        task: str | Task | Mapping[str, Any] | None = None,
        args: Iterable[Any] | None = None,
        kwargs: Mapping[str, Any] | None = None,
        options: Mapping[str, Any] | None = None,
        subtask_type: str | None = None,
        immutable: bool = False,
        app: Celeriac | None = None,
        **ex: Any,
    ) -> None:
        self._app = app
        if isinstance(task, str) or task is None:
            name = task
        elif isinstance(task, Mapping):
            super().__init__(task)
            self.setdefault("args", [])
            self.setdefault("kwargs", {})
            self.setdefault("options", {})
            self.setdefault("subtask_type", None)
            self.setdefault("immutable", False)
            return
        else:
            name = task.name
            if app is None:
                self._app = task.app
        super().__init__(
            task=name,
            args=list(args or ()),
            kwargs=dict(kwargs or {}),
            options={**(options or {}), **ex},
            subtask_type=subtask_type,
            immutable=immutable,
        )

    def __init_subclass__(cls, **kw: Any) -> None:
        super().__init_subclass__(**kw)
        Signature.TYPES[cls.__name__] = cls

    # dict keys as attributes, as in Celery
    task = property(lambda self: self["task"], lambda self, v: self.__setitem__("task", v))
    args = property(lambda self: self["args"], lambda self, v: self.__setitem__("args", tuple(v)))
    kwargs = property(lambda self: self["kwargs"], lambda self, v: self.__setitem__("kwargs", v))
    options = property(lambda self: self["options"], lambda self, v: self.__setitem__("options", v))
    subtask_type = property(lambda self: self["subtask_type"])
    immutable = property(
        lambda self: self["immutable"], lambda self, v: self.__setitem__("immutable", v)
    )

    @property
    def app(self) -> Celeriac:
        if self._app is None:
            self._app = get_current_app()
        return self._app

    @property
    def type(self) -> Task:
        """The registered task this signature calls."""
        return self.app.tasks[self.task]

    @property
    def id(self) -> str | None:
        return self.options.get("task_id")

    @property
    def parent_id(self) -> str | None:
        return self.options.get("parent_id")

    @property
    def root_id(self) -> str | None:
        return self.options.get("root_id")

    @property
    def AsyncResult(self) -> Callable[..., Any]:
        """The result class of the task it calls (the app's for a workflow)."""
        task = self.app.tasks.get(self.task)
        return task.AsyncResult if task is not None else self.app.AsyncResult

    @property
    def name(self) -> str:
        """The task's name (as a task's ``name``)."""
        return str(self.task)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any], app: Celeriac | None = None) -> Signature:
        """The signature (of the right kind: group, chain, ...) that ``d`` describes."""
        if isinstance(d, Signature):
            return d
        kind = Signature.TYPES.get(d.get("subtask_type") or "", Signature)
        sig = kind.__new__(kind)
        Signature.__init__(sig, d, app=app)
        return sig

    # -- building -------------------------------------------------------------------------

    def clone(
        self,
        args: Iterable[Any] | None = None,
        kwargs: Mapping[str, Any] | None = None,
        **opts: Any,
    ) -> Signature:
        """A copy with partial ``args`` prepended (unless immutable), ``kwargs`` merged and
        options updated."""
        new_args, new_kwargs = list(self.args), dict(self.kwargs)
        if not self.immutable:
            new_args = [*(args or ()), *new_args]
            new_kwargs.update(kwargs or {})
        data = {**self, "args": new_args, "kwargs": new_kwargs, "options": {**self.options, **opts}}
        return Signature.from_dict(data, app=self._app)

    def replace(
        self,
        args: Iterable[Any] | None = None,
        kwargs: Mapping[str, Any] | None = None,
        options: Mapping[str, Any] | None = None,
    ) -> Signature:
        """A copy whose args, kwargs or options, those given, are replaced (not merged as
        :meth:`clone` does)."""
        data = {**self, "options": dict(self.options)}
        if args is not None:
            data["args"] = list(args)
        if kwargs is not None:
            data["kwargs"] = dict(kwargs)
        if options is not None:
            data["options"] = dict(options)
        return Signature.from_dict(data, app=self._app)

    def append_to_list_option(self, key: str, value: Any) -> Any:
        """Add ``value`` to the list option ``key`` (once); returns ``value``."""
        items = self.options.setdefault(key, [])
        if not isinstance(items, list):
            items = self.options[key] = _as_list(items)
        if value not in items:
            items.append(value)
        return value

    def extend_list_option(self, key: str, value: Iterable[Any]) -> None:
        """Add each of ``value`` to the list option ``key``."""
        items = self.options.setdefault(key, [])
        if not isinstance(items, list):
            items = self.options[key] = _as_list(items)
        items.extend(value)

    def flatten_links(self) -> list[Signature]:
        """This signature and every callback linked below it, depth first."""
        found: list[Signature] = [self]
        for link in _as_list(self.options.get("link")):
            found += Signature.from_dict(link, app=self._app).flatten_links()
        return found

    def reprcall(self, *args: Any, **kwargs: Any) -> str:
        """``name(args, kwargs)`` with ``args`` and ``kwargs`` added as a call would."""
        sig = self.clone(args, kwargs)
        return repr(sig).rstrip("!")

    def set(self, immutable: bool | None = None, **options: Any) -> Signature:
        """Update options in place; returns self so calls chain."""
        if immutable is not None:
            self["immutable"] = immutable
        self.options.update(options)
        return self

    def set_immutable(self, immutable: bool) -> None:
        self["immutable"] = immutable

    def link(self, callback: Signature) -> Signature:
        """Call ``callback`` with this task's result when it succeeds (once: linking an
        equal signature again changes nothing, as in Celery)."""
        return self._add_link("link", callback)

    def link_error(self, errback: Signature) -> Signature:
        """Call ``errback`` when this task fails (once, as :meth:`link`)."""
        return self._add_link("link_error", errback)

    def _add_link(self, key: str, sig: Signature) -> Signature:
        return self.append_to_list_option(key, sig)

    def stamp(
        self, visitor: StampingVisitor | None = None, append_stamps: bool = False, **headers: Any
    ) -> None:
        """Stamp this signature (and its callbacks and errbacks) with ``headers`` and what
        ``visitor`` adds, as Celery does: the stamps travel in the message's ``stamps``
        header (their names in ``stamped_headers``) and reach ``task.request.stamps``.
        With ``append_stamps``, a stamp given again adds its value to a list."""
        stamps = dict(headers)
        if visitor is not None:
            stamps.update(visitor.on_signature(self, **headers) or {})
        self._add_stamps(stamps, append_stamps)
        self.stamp_links(visitor, append_stamps, **headers)

    def stamp_links(
        self, visitor: StampingVisitor | None = None, append_stamps: bool = False, **headers: Any
    ) -> None:
        """Stamp the callbacks and errbacks (``visitor.on_callback``/``on_errback`` add to
        ``headers`` for each)."""
        for key, hook in (("link", "on_callback"), ("link_error", "on_errback")):
            links = [_signature(cb, self._app) for cb in _as_list(self.options.get(key))]
            for link in links:
                extra = getattr(visitor, hook)(link, **headers) if visitor is not None else None
                link.stamp(None, append_stamps, **{**headers, **(extra or {})})
            if links:
                self.options[key] = links

    def _add_stamps(self, stamps: Mapping[str, Any], append: bool) -> None:
        opts = self.options
        names = list(opts.get("stamped_headers") or ())
        for name, value in stamps.items():
            if name == "stamped_headers":  # a visitor may list its stamps' names, as in Celery
                continue
            if append and name in names:
                old = opts.get(name)
                old = old if isinstance(old, list) else [old]
                value = [*old, *(value if isinstance(value, list) else [value])]
            opts[name] = value
            if name not in names:
                names.append(name)
        opts["stamped_headers"] = names

    def on_error(self, errback: Signature) -> Signature:
        """:meth:`link_error`, returning this signature (so calls chain), as in Celery."""
        self.link_error(errback)
        return self

    def freeze(self, _id: str | None = None, **options: Any) -> Any:
        """Fix the task id now (so results can be handed out before sending); returns the
        result it will have."""
        opts = self.options
        if _id is not None:
            opts["task_id"] = _id
        opts.setdefault("task_id", new_id())
        opts.update(options)
        return AsyncResult(opts["task_id"], app=self.app, task_name=self.task)

    def _set_tail(self, options: Mapping[str, Any]) -> None:
        """Apply workflow placement (group, index, chord) to the task that finishes last."""
        self.options.update(options)

    def _build(
        self,
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        options: dict[str, Any],
        out: list[Message | Encoded],
    ) -> Any:
        """Append the messages to publish to ``out``; return the result handle."""
        sig = self.clone(args, kwargs) if (args or kwargs) else self
        opts = {**sig.options, **options}
        if opts.get("stamped_headers"):  # stamps travel as headers, as in Celery
            names = list(opts.pop("stamped_headers"))
            stamps = {name: opts.pop(name, None) for name in names}
            headers = {**(opts.get("headers") or {}), "stamped_headers": names, "stamps": stamps}
            opts["headers"] = headers
        app = self.app
        task = app.tasks.get(sig.task)
        if task is not None and task.typing:
            task._check_arguments(tuple(sig.args), sig.kwargs)
        message = app.build_message(sig.task, sig.args, sig.kwargs, task=task, **opts)
        out.append(message)
        return AsyncResult(message.id, app=app, task_name=sig.task)

    # -- sending --------------------------------------------------------------------------

    def apply_async(
        self,
        args: Iterable[Any] | None = None,
        kwargs: Mapping[str, Any] | None = None,
        **options: Any,
    ) -> Any:
        """Send it (the whole workflow, in one publish), with partial ``args``/``kwargs``
        and option overrides; returns its result (a GroupResult for a group)."""
        app = self.app
        publish = {k: options.pop(k) for k in _PUBLISH_OPTIONS if k in options}
        add_to_parent = options.pop("add_to_parent", True)
        if app.conf.task_always_eager:
            return self.apply(args, kwargs, **options)
        out: list[Message | Encoded] = []
        with gc_paused():
            result = self._build(tuple(args or ()), dict(kwargs or {}), options, out)
        app.publish(out, retry=publish.get("retry"), retry_policy=publish.get("retry_policy"))
        request = current_request.get()
        if add_to_parent and request is not None and not request.is_eager:
            request.children.append(result)
        return result

    def delay(self, *args: Any, **kwargs: Any) -> Any:
        return self.apply_async(args, kwargs)

    def apply(
        self,
        args: Iterable[Any] | None = None,
        kwargs: Mapping[str, Any] | None = None,
        **options: Any,
    ) -> Any:
        """Run it here and now; returns an EagerResult."""
        sig = self.clone(args, kwargs) if (args or kwargs) else self
        opts = {k: v for k, v in {**sig.options, **options}.items() if k not in _TAIL_OPTIONS}
        return self.type.apply(sig.args, sig.kwargs, **opts)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        """Call the task function directly with partial arguments."""
        sig = self.clone(args, kwargs) if (args or kwargs) else self
        return self.type(*sig.args, **sig.kwargs)

    # -- composing ------------------------------------------------------------------------

    def __or__(self, other: Any) -> Signature:  # type: ignore[override]
        """``a | b``: a chain (``group | task`` makes a chord, as in Celery)."""
        if not isinstance(other, Signature):
            return NotImplemented
        return chain(self, other, app=self._app)

    def __repr__(self) -> str:
        parts = [repr(a) for a in self.args] + [f"{k}={v!r}" for k, v in self.kwargs.items()]
        return f"{self.task}({', '.join(parts)}){'!' if self.immutable else ''}"


def _tasks_arg(tasks: tuple[Any, ...]) -> list[Any]:
    """``f(a, b)`` and ``f([a, b])`` (or a generator) mean the same."""
    if len(tasks) == 1 and not isinstance(tasks[0], Mapping) and isinstance(tasks[0], Iterable):
        with gc_paused():
            return list(tasks[0])
    return list(tasks)


class StampingVisitor:
    """What :meth:`Signature.stamp` asks as it walks a workflow: each ``on_*`` method may
    return a dict of stamps to add (``on_signature`` must be defined)."""

    def on_signature(self, sig: Signature, **headers: Any) -> dict[str, Any]:
        raise NotImplementedError("a stamping visitor defines on_signature")

    def on_group_start(self, group: Signature, **headers: Any) -> dict[str, Any] | None:
        return None

    def on_group_end(self, group: Signature, **headers: Any) -> None:
        return None

    def on_chain_start(self, chain: Signature, **headers: Any) -> dict[str, Any] | None:
        return None

    def on_chain_end(self, chain: Signature, **headers: Any) -> None:
        return None

    def on_chord_header_start(self, chord: Signature, **headers: Any) -> dict[str, Any] | None:
        return None

    def on_chord_header_end(self, chord: Signature, **headers: Any) -> None:
        return None

    def on_chord_body(self, chord: Signature, **headers: Any) -> dict[str, Any] | None:
        return None

    def on_callback(self, callback: Signature, **headers: Any) -> dict[str, Any] | None:
        return None

    def on_errback(self, errback: Signature, **headers: Any) -> dict[str, Any] | None:
        return None


class _Composite(Signature):
    """A signature made of other signatures, kept in ``kwargs["tasks"]``."""

    kind: ClassVar[str] = ""

    def __init__(self, *tasks: Any, app: Celeriac | None = None, **options: Any) -> None:
        members = [maybe_signature(t, app) for t in _tasks_arg(tasks)]
        if app is None:
            app = next((m._app for m in members if m is not None and m._app is not None), None)
        super().__init__(
            f"celeriac.{self.kind}",
            (),
            {"tasks": members},
            options,
            subtask_type=type(self).__name__,
            app=app,
        )

    @property
    def tasks(self) -> list[Signature]:
        members = self.kwargs["tasks"]
        for i, t in enumerate(members):
            if not isinstance(t, Signature):
                members[i] = Signature.from_dict(t, app=self._app)
        return list(members)

    def clone(
        self,
        args: Iterable[Any] | None = None,
        kwargs: Mapping[str, Any] | None = None,
        **opts: Any,
    ) -> Signature:
        copy = super().clone(args, kwargs, **opts)
        copy.kwargs["tasks"] = [t.clone() for t in self.tasks]
        return copy

    def __call__(self, *args: Any, **options: Any) -> Any:
        return self.apply_async(args, **options)

    def stamp(
        self, visitor: StampingVisitor | None = None, append_stamps: bool = False, **headers: Any
    ) -> None:
        """Stamp every task in it (and the links), telling ``visitor`` where it is."""
        start, end = _VISITS.get(self.kind, (None, None))
        extra = getattr(visitor, start)(self, **headers) if visitor and start else None
        headers = {**headers, **(extra or {})}
        self.stamp_links(visitor, append_stamps, **headers)
        for t in self.tasks:
            t.stamp(visitor, append_stamps, **headers)
        if visitor is not None and end:
            getattr(visitor, end)(self, **headers)

    def __repr__(self) -> str:
        return f"{self.kind}({', '.join(repr(t) for t in self.tasks)})"


#: The visitor's methods called around a composite's tasks, by kind.
_VISITS = {
    "group": ("on_group_start", "on_group_end"),
    "chain": ("on_chain_start", "on_chain_end"),
    "chord": ("on_chord_header_start", "on_chord_header_end"),
}


class group(_Composite):
    """Run signatures in parallel: ``group(a.s(1), b.s(2)).apply_async()`` returns a
    :class:`~celeriac.result.GroupResult` with results in member order."""

    kind = "group"

    def __or__(self, other: Any) -> Signature:  # type: ignore[override]
        if isinstance(other, Signature) and not isinstance(other, chain | group):
            return chord(self, other, app=self._app)
        return super().__or__(other)

    def link(self, callback: Signature) -> Signature:
        """Call ``callback`` when the group's first member succeeds, as Celery does (an
        immutable copy: it is not given that member's result). For a callback with every
        member's result, make a chord."""
        if not self.tasks:
            raise ValueError("an empty group has no task to link a callback to")
        return self.tasks[0].link(_signature(callback, self._app).clone().set(immutable=True))

    def link_error(self, errback: Signature) -> Signature:
        """Call ``errback`` for each member that fails."""
        errback = _signature(errback, self._app)
        for t in self.tasks:
            t.link_error(errback.clone())
        return errback

    def skew(self, start: float = 1.0, stop: float | None = None, step: float = 1.0) -> group:
        """Spread the members out in time: the first runs ``start`` seconds from now, each
        next one ``step`` later, none later than ``stop``."""
        countdown = start
        for t in self.tasks:
            t.set(countdown=countdown)
            if stop is None or countdown + step <= stop:
                countdown += step
        return self

    def members(self) -> list[Signature]:
        """The members, nested groups flattened into this one (as Celery does:
        ``group(a, group(b, c))`` has three results; a nested group's own options apply to
        its members, which are copies)."""
        flat: list[Signature] = []
        for t in self.tasks:
            if not isinstance(t, group):
                flat.append(t)
                continue
            inner = _with_links_applied(_copy(t))
            defaults = {k: v for k, v in inner.options.items() if k not in _PLACEMENT}
            for m in inner.members():
                m.options = {**defaults, **m.options}
                flat.append(m)
        return flat

    def freeze(self, _id: str | None = None, **options: Any) -> Any:
        gid = _id or self.options.get("task_id") or new_id()
        self.options["task_id"] = gid
        self.options.update(options)
        members = self.members()
        self.kwargs["tasks"] = members
        results = [t.freeze(group_id=gid, group_index=i) for i, t in enumerate(members)]
        return GroupResult(gid, results, app=self.app)

    def _build(
        self,
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        options: dict[str, Any],
        out: list[Message | Encoded],
    ) -> Any:
        rest = options.pop("chain", None)
        if rest:  # a group with steps after it is a chord, as in Celery
            after = [Signature.from_dict(d, app=self._app) for d in reversed(rest)]
            body = after[0] if len(after) == 1 else chain(*after, app=self._app)
            return chord(self, body, app=self._app)._build(args, kwargs, options, out)
        args = (*args, *self.args)
        links = {k: options.pop(k) for k in ("link", "link_error") if options.get(k)}
        sig = self
        if links or self.options.get("link") or self.options.get("link_error"):
            sig = _with_links_applied(_copy(self), links)
        opts = {**sig.options, **options}
        gid = opts.pop("task_id", None) or new_id()
        tail = {k: opts.pop(k) for k in _TAIL_OPTIONS if k in opts}
        members = sig.members()
        if tail.get("chord"):  # it ends a chord header member: each of its tasks counts
            placed = placements(members, tail)
            results = [
                t._build(args, kwargs, {**opts, **place}, out)
                for t, place in zip(members, placed, strict=True)
            ]
        else:
            uniform = _build_uniform(members, args, kwargs, opts, gid, out)
            results = (
                uniform
                if uniform is not None
                else [
                    t._build(args, kwargs, {**opts, "group_id": gid, "group_index": i}, out)
                    for i, t in enumerate(members)
                ]
            )
        return _group_result(gid, results, self.app)

    def apply(
        self,
        args: Iterable[Any] | None = None,
        kwargs: Mapping[str, Any] | None = None,
        **options: Any,
    ) -> Any:
        gid = options.pop("task_id", None) or self.options.get("task_id") or new_id()
        sig = _with_links_applied(_copy(self))
        results = [t.apply(args, kwargs, **options) for t in sig.members()]
        return _group_result(gid, results, self.app)


_LINKS = ("link", "link_error")

#: Options that place a signature in a group or chord, or link it: a nested group's own are
#: not handed to its members.
_PLACEMENT = ("task_id", *_TAIL_OPTIONS, "link", "link_error")


def _signature(sig: Any, app: Celeriac | None) -> Signature:
    found = maybe_signature(sig, app)
    if found is None:
        raise TypeError("a callback must be a signature")
    return found


def _copy(sig: _S) -> _S:
    return sig.clone()  # type: ignore[return-value]  # a clone is of its original's kind


def _as_list(value: Any) -> list[Any]:
    if not value:
        return []
    return list(value) if isinstance(value, list | tuple) else [value]


def _with_links_applied(sig: _S, extra: Mapping[str, Any] | None = None) -> _S:
    """``sig`` with the ``link``/``link_error`` in its options (and in ``extra``) linked the
    way its kind links them (a group's: its first member / each member; a chord's: its
    body), instead of kept as options its messages would not carry."""
    for key in ("link", "link_error"):
        found = [*_as_list(sig.options.pop(key, None)), *_as_list((extra or {}).get(key))]
        for cb in found:
            getattr(sig, key)(_signature(cb, sig._app))
    return sig


def _group_result(gid: str, results: list[Any], app: Celeriac) -> Any:
    # group(a | group(b, c)): the result is the inner group's, as in Celery
    if len(results) == 1 and isinstance(results[0], GroupResult):
        return results[0]
    return GroupResult(gid, results, app=app)


def width(sig: Signature) -> int:
    """How many finished tasks ``sig`` counts for as a chord header member: a group, one
    per task; a chain, its last step's; a chord, its body's; a task, one."""
    if isinstance(sig, group):
        return sum(width(m) for m in sig.members())
    if isinstance(sig, chunks):
        return width(sig.group())
    if isinstance(sig, chain):
        steps = sig.tasks
        return width(steps[-1]) if steps else 0
    if isinstance(sig, chord):
        body = sig.body
        return width(body) if body is not None else 0
    return 1


def tail(sig: Signature) -> Signature:
    """The signature that finishes ``sig`` (a chain's last step, a chord's body; for a
    group, the group)."""
    if isinstance(sig, chain) and sig.tasks:
        return tail(sig.tasks[-1])
    if isinstance(sig, chord) and sig.body is not None:
        return tail(sig.body)
    return sig


def placements(members: list[Signature], place: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Chord placements (group id, index, join) of ``members``, which take the indexes from
    ``place``'s on, as many for each as it counts for."""
    index = int(place.get("group_index") or 0)
    placed = []
    for m in members:
        placed.append({**place, "group_index": index})
        index += width(m)
    return placed


def _build_uniform(
    members: list[Signature],
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
    opts: dict[str, Any],
    gid: str,
    out: list[Message | Encoded],
) -> list[Any] | None:
    """The common large group, many calls of one task with the same options, built fast:
    routing and options are resolved once and the other messages are copies with their own
    id, arguments and index. None when the members differ (or routing may depend on the
    arguments), for the general path."""
    first = members[0] if members else None
    if first is None or len(members) < 8:
        return None
    app = first.app
    same = (first.task, first.immutable, first.options)
    if any(
        type(m) is not Signature or (m["task"], m["immutable"], m["options"]) != same
        for m in members
    ):
        return None
    if first.options.get("task_id") or any(
        not isinstance(r, MapRouter) for r in app.producer.routers_for(app.conf.task_routes)
    ):
        return None
    first._build(args, kwargs, {**opts, "group_id": gid, "group_index": 0}, out)
    template = out[-1]
    assert isinstance(template, Message)
    task = app.tasks.get(first.task)
    check = task is not None and task.typing
    splice = splicer(template)
    name = first.task
    results = [AsyncResult(template.id, app=app, task_name=name)]
    immutable = first.immutable
    ids = new_ids(len(members) - 1)
    for index, member in enumerate(members[1:], 1):
        margs = list(member["args"]) if immutable else [*args, *member["args"]]
        mkwargs = dict(member["kwargs"]) if immutable else {**member["kwargs"], **kwargs}
        if check:
            task._check_arguments(tuple(margs), mkwargs)  # type: ignore[union-attr]
        task_id = ids[index - 1]
        if splice is not None:
            out.append(Encoded(template, task_id, splice(task_id, margs, mkwargs, index)))
        else:
            message = copy.copy(template)
            message.id, message.args, message.kwargs, message.group_index = (
                task_id,
                margs,
                mkwargs,
                index,
            )
            if template.root_id == template.id:
                message.root_id = task_id
            out.append(message)
        results.append(AsyncResult(task_id, app=app, task_name=name))
    return results


class chain(_Composite):
    """Run signatures one after another, each result passed as the first argument of the
    next (unless it is immutable). The result is the last task's, with ``.parent`` links."""

    kind = "chain"

    def __init__(self, *tasks: Any, app: Celeriac | None = None, **options: Any) -> None:
        flat: list[Any] = []
        for t in _tasks_arg(tasks):
            t = maybe_signature(t, app)
            if isinstance(t, chain) and set(t.options) <= {"task_id"}:  # (its last step's)
                flat.extend(t.tasks)
            else:
                flat.append(t)
        super().__init__(*flat, app=app, **options)

    def __or__(self, other: Any) -> Signature:  # type: ignore[override]
        if isinstance(other, Signature):
            return chain(*self.tasks, other, app=self._app, **self.options)
        return NotImplemented

    def link(self, callback: Signature) -> Signature:
        """Call ``callback`` with the chain's result: a link of its last step."""
        if not self.tasks:
            raise ValueError("an empty chain has no task to link a callback to")
        return self.tasks[-1].link(callback)

    def _steps(self) -> list[Signature]:
        """Copies of the steps, a group followed by more steps made into a chord (and a
        group of one task made that task, as in Celery)."""
        steps = [_unrolled(t.clone()) for t in self.tasks]
        for cb in _as_list(self.options.get("link")):
            steps[-1].link(_signature(cb, self._app))
        link_error = self.options.get("link_error")
        i = 0
        while i < len(steps) - 1:
            if isinstance(steps[i], group):
                rest = steps[i + 1 :]
                body = rest[0] if len(rest) == 1 else chain(*rest, app=self._app)
                steps[i:] = [chord(steps[i], body, app=self._app)]
            i += 1
        if link_error:
            for step in steps:
                for eb in link_error:
                    step.link_error(maybe_signature(eb, self._app))  # type: ignore[arg-type]
        return steps

    def freeze(self, _id: str | None = None, **options: Any) -> Any:
        steps = self._steps()
        self.kwargs["tasks"] = steps
        for key in _LINKS:  # now on the steps
            self.options.pop(key, None)
        if options:
            steps[-1]._set_tail(options)
        parent = None
        result: Any = None
        for i, step in enumerate(steps):
            result = step.freeze(_id if i == len(steps) - 1 else None)
            if parent is not None:
                _attach(result, parent)
            parent = result
        if result is not None:
            self.options["task_id"] = result.id  # the chain's id is its last task's
        return result

    def _set_tail(self, options: Mapping[str, Any]) -> None:
        self.tasks[-1]._set_tail(options)

    def _build(
        self,
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        options: dict[str, Any],
        out: list[Message | Encoded],
    ) -> Any:
        if not self.tasks:
            raise ValueError("an empty chain has nothing to run")
        tail = {k: options.pop(k) for k in _TAIL_OPTIONS if k in options}
        last_id = options.pop("task_id", None) or self.options.get("task_id")
        outer_rest = options.pop("chain", None) or []
        copy = chain(*self.tasks, app=self._app, **self.options)
        for key in ("link", "link_error"):
            extra = _as_list(options.pop(key, None))
            if extra:
                copy.options[key] = [*_as_list(copy.options.get(key)), *extra]
        result = copy.freeze(last_id, **tail)
        first, *rest = copy.tasks
        remaining = [*outer_rest, *(dict(s) for s in reversed(rest))]
        own = {k: v for k, v in self.options.items() if k not in (*_LINKS, "task_id")}
        opts = {**own, **options}
        first._build(args, kwargs, {**opts, "chain": remaining or None}, out)
        return result

    def apply(
        self,
        args: Iterable[Any] | None = None,
        kwargs: Mapping[str, Any] | None = None,
        **options: Any,
    ) -> Any:
        result: Any = None
        for i, step in enumerate(self._steps()):
            if i == 0:
                step_args: Iterable[Any] | None = args
            else:
                step_args = (result.get(),)
            parent = result
            result = step.apply(step_args, kwargs if i == 0 else None, **options)
            if parent is not None:
                _attach(result, parent)
        return result


class chord(_Composite):
    """Run a header group in parallel, then the body once with the list of their results:
    ``chord([a.s(1), a.s(2)], total.s())``. The join is an atomic counter in the result
    backend, so the body runs once even when header tasks are retried or redelivered."""

    kind = "chord"

    def __init__(
        self,
        header: Any = (),
        body: Any = None,
        app: Celeriac | None = None,
        **options: Any,
    ) -> None:
        if isinstance(header, Mapping) and header.get("subtask_type") == "group":
            header = group.from_dict(header, app=app)
        streamed = isinstance(header, Generator)
        if streamed:  # read as it is sent, as in Celery (or when first looked at)
            members: list[Any] = []
        elif isinstance(header, group):
            members = header.tasks
        else:  # copies, as in Celery: linking to a chord's tasks leaves what was given alone
            members = [_copy(t) if isinstance(t, Signature) else t for t in _tasks_arg((header,))]
        body = maybe_signature(body, app)
        super().__init__(*members, app=app or getattr(body, "_app", None), **options)
        self.kwargs["body"] = body
        if streamed:
            self._generator = header

    _generator: Iterator[Any] | None = None

    @property
    def tasks(self) -> list[Signature]:
        if self._generator is not None:
            generator, self._generator = self._generator, None
            self.kwargs["tasks"] = [_signature(t, self._app) for t in generator]
        return super().tasks

    @property
    def body(self) -> Signature | None:
        body = self.kwargs.get("body")
        if body is not None and not isinstance(body, Signature):
            body = self.kwargs["body"] = Signature.from_dict(body, app=self._app)
        return body

    def clone(
        self,
        args: Iterable[Any] | None = None,
        kwargs: Mapping[str, Any] | None = None,
        **opts: Any,
    ) -> Signature:
        copy = super().clone(args, kwargs, **opts)
        body = self.body
        copy.kwargs["body"] = body.clone() if body is not None else None
        return copy

    def __or__(self, other: Any) -> Signature:  # type: ignore[override]
        if isinstance(other, Signature) and self.body is not None:
            return chord(self.tasks, self.body | other, app=self._app, **self.options)
        return super().__or__(other)

    def __call__(self, body: Any = None, **options: Any) -> Any:
        """``chord(header)(body)`` sends it."""
        header = self._generator if self._generator is not None else self.tasks
        self._generator = None
        sig = chord(header, body or self.body, app=self._app, **self.options)
        return sig.apply_async((), **options)

    def link(self, callback: Signature) -> Signature:
        """Call ``callback`` with the chord's result: a link of its body."""
        body = self.body
        if body is None:
            raise ValueError("a chord needs a body to link a callback to")
        return body.link(callback)

    def link_error(self, errback: Signature) -> Signature:
        """Call ``errback`` when the body fails, or cannot run because a header task
        failed; with ``task_allow_error_cb_on_chord_header``, also for each header task
        that fails (as in Celery). A nested chord in the header is not given it: its
        failure fails this chord's body, whose errback then runs, once."""
        body = self.body
        if body is None:
            raise ValueError("a chord needs a body to link an errback to")
        errback = _signature(errback, self._app)
        if self.app.conf.task_allow_error_cb_on_chord_header:
            for t in self.tasks:
                t.link_error(errback.clone(immutable=True))
        body.link_error(errback)
        return errback

    def stamp(
        self, visitor: StampingVisitor | None = None, append_stamps: bool = False, **headers: Any
    ) -> None:
        super().stamp(visitor, append_stamps, **headers)
        body = self.body
        if body is not None:
            extra = visitor.on_chord_body(self, **headers) if visitor is not None else None
            body.stamp(visitor, append_stamps, **{**headers, **(extra or {})})

    def _header(self) -> list[Signature]:
        """The header's members, nested groups flattened into it."""
        return group(*self.tasks, app=self._app).members()

    def freeze(self, _id: str | None = None, **options: Any) -> Any:
        body = self.body
        if body is None:
            raise ValueError("a chord needs a body")
        if options:
            body._set_tail(options)
        gid = self.options.get("group_id") or new_id()
        self.options["group_id"] = gid
        result = body.freeze(_id)
        members = self._header()
        self.kwargs["tasks"] = members
        places = placements(members, {"group_id": gid})
        header = [t.freeze(**place) for t, place in zip(members, places, strict=True)]
        _attach(result, _header_result(gid, header, self.app))
        return result

    def _set_tail(self, options: Mapping[str, Any]) -> None:
        body = self.body
        if body is not None:
            body._set_tail(options)

    def _build(
        self,
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        options: dict[str, Any],
        out: list[Message | Encoded],
    ) -> Any:
        body = options.pop("body", None) or self.body
        if body is None:
            raise ValueError("a chord needs a body")
        source = self
        links = {k: options.pop(k) for k in _LINKS if options.get(k)}
        if links or any(self.options.get(k) for k in _LINKS):
            extra = {k: [*_as_list(self.options.get(k)), *_as_list(links.get(k))] for k in _LINKS}
            source = _with_links_applied(chord(self.tasks, body.clone(), app=self._app), extra)
            body = source.body
            assert body is not None
        body = body.clone()
        rest = options.pop("chain", None)
        if rest:
            after = [Signature.from_dict(d, app=self._app) for d in reversed(rest)]
            body = chain(body, *after, app=self._app)
        tail = {k: options.pop(k) for k in _TAIL_OPTIONS if k in options}
        if tail:
            body._set_tail(tail)
        opts = {**self.options, **options}
        result = body.freeze(opts.pop("task_id", None))
        gid = opts.pop("group_id", None) or new_id()
        for key in ("link", "link_error", "group_index"):
            opts.pop(key, None)
        args = (*args, *self.args)
        if source._generator is not None:
            streamed, source._generator = source._generator, None
            return self._build_streamed(streamed, args, kwargs, opts, body, result, gid, out)
        header = source._header()
        if not header:
            body._build(([],), {}, {}, out)
            _attach(result, _header_result(gid, [], self.app))
            return result
        join = {"body": dict(body), "size": sum(width(t) for t in header)}
        part: list[Message | Encoded] = []
        places = placements(header, {"group_id": gid, "chord": join})
        results = [
            t._build(args, kwargs, {**opts, **place}, part)
            for t, place in zip(header, places, strict=True)
        ]
        header_result = _header_result(gid, results, self.app)
        header_result.save()  # the join reads the member ids from here
        out.extend(part)
        _attach(result, header_result)
        return result

    def _build_streamed(
        self,
        members: Iterator[Any],
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        opts: dict[str, Any],
        body: Signature,
        result: Any,
        gid: str,
        out: list[Message | Encoded],
    ) -> Any:
        """Send a header given as a generator member by member as the generator gives them,
        as Celery does (a member may run before the generator ends). The size is stored in
        the result backend before the last member is sent, so the last to finish sees it."""
        app = self.app
        join = {"body": dict(body), "size": None}
        results: list[Any] = []
        index, held = 0, list[Message | Encoded]()
        for item in members:
            member = _signature(item, self._app)
            if held:
                app.publish(held)
            held = []
            place = {"group_id": gid, "group_index": index, "chord": join}
            results.append(member._build(args, kwargs, {**opts, **place}, held))
            index += width(member)
        header = _header_result(gid, results, app)
        if not results:
            body._build(([],), {}, {}, out)
        else:
            header.save()
            backend, expires = app.results.backend, app.results.expires_in
            backend.set_value(CHORD_SIZE_KEY.format(gid), str(index).encode(), expires)
            out.extend(held)
        _attach(result, header)
        return result

    def apply(
        self,
        args: Iterable[Any] | None = None,
        kwargs: Mapping[str, Any] | None = None,
        **options: Any,
    ) -> Any:
        body = options.pop("body", None) or self.body
        if body is None:
            raise ValueError("a chord needs a body")
        header = group(*self._header(), app=self._app).apply(args, kwargs, **options)
        result = body.apply((header.get(),))
        _attach(result, header)
        return result

    def __repr__(self) -> str:
        return f"chord([{', '.join(repr(t) for t in self.tasks)}], {self.body!r})"


def _unrolled(step: Signature) -> Signature:
    if isinstance(step, group) and not step.options.get("task_id"):
        members = _with_links_applied(step).members()
        if len(members) == 1:
            only = members[0]
            only.options = {
                **{k: v for k, v in step.options.items() if k not in _PLACEMENT},
                **only.options,
            }
            return only
    return step


def _attach(result: Any, header: Any) -> None:
    """Make ``header`` the parent of the body's first result (a chain body's results already
    lead back to its first step), as in Celery."""
    node = result
    while getattr(node, "parent", None) is not None:
        node = node.parent
    node.parent = header


def _header_result(gid: str, results: list[Any], app: Celeriac) -> GroupResult:
    return GroupResult(gid, results, app=app)


class xmap(Signature):
    """One task that calls ``task`` on each item: ``[task(x) for x in it]``."""

    builtin: ClassVar[str] = "celeriac.map"

    def __init__(self, task: Any, it: Iterable[Any], app: Celeriac | None = None) -> None:
        sig = maybe_signature(task, app)
        assert sig is not None
        super().__init__(
            self.builtin,
            (),
            {"task": sig, "it": list(it)},
            subtask_type=type(self).__name__,
            immutable=True,
            app=app or sig._app,
        )

    def __repr__(self) -> str:
        task = Signature.from_dict(self.kwargs["task"])
        return f"[{task.task}(x) for x in {self.kwargs['it']!r}]"


class xstarmap(xmap):
    """One task that calls ``task`` on each tuple of arguments: ``[task(*x) for x in it]``."""

    builtin = "celeriac.starmap"

    def __repr__(self) -> str:
        task = Signature.from_dict(self.kwargs["task"])
        return f"[{task.task}(*x) for x in {self.kwargs['it']!r}]"


class chunks(Signature):
    """Split ``it`` into chunks of ``n`` argument tuples; each chunk is one task
    (``xstarmap``), and the chunks run as a group."""

    def __init__(self, task: Any, it: Iterable[Any], n: int, app: Celeriac | None = None) -> None:
        sig = maybe_signature(task, app)
        assert sig is not None
        if n < 1:
            raise ValueError("chunks need a size of at least 1")
        super().__init__(
            "celeriac.chunks",
            (),
            {"task": sig, "it": [list(x) for x in it], "n": int(n)},
            subtask_type="chunks",
            immutable=True,
            app=app or sig._app,
        )

    def group(self) -> group:
        """The group of ``xstarmap`` tasks, one per chunk."""
        task = Signature.from_dict(self.kwargs["task"], app=self._app)
        items = iter(self.kwargs["it"])
        n = self.kwargs["n"]
        parts = functional.chunks(items, n)
        return group(*(xstarmap(task, part, app=self._app) for part in parts), app=self._app)

    def _build(
        self,
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        options: dict[str, Any],
        out: list[Message | Encoded],
    ) -> Any:
        return self.group()._build(args, kwargs, {**self.options, **options}, out)

    def freeze(self, _id: str | None = None, **options: Any) -> Any:
        raise ValueError("chunks cannot be frozen inside a workflow; use chunks(...).group()")

    def apply(
        self,
        args: Iterable[Any] | None = None,
        kwargs: Mapping[str, Any] | None = None,
        **options: Any,
    ) -> Any:
        return self.group().apply(args, kwargs, **options)

    def __call__(self, *args: Any, **options: Any) -> Any:
        return self.apply_async(args, **options)


def signature(varies: Any, *args: Any, **kwargs: Any) -> Signature:
    """Make a :class:`Signature` from a task, a task name, or a signature dict."""
    app = kwargs.pop("app", None)
    if isinstance(varies, Mapping) and not args and not kwargs:
        return Signature.from_dict(varies, app=app)
    return Signature(varies, *args, app=app, **kwargs)  # type: ignore[misc]


subtask = signature
#: Celery's names for the chain and chord classes (``isinstance(sig, _chain)``)
_chain = chain
_chord = chord


def check_signature(sig: Any, where: str = "signature") -> None:
    """Raise InvalidTaskError unless ``sig`` is a well-formed signature dict, nested parts
    included (for signatures that arrive from outside, inside messages)."""
    if not isinstance(sig, dict):
        raise InvalidTaskError(f"message {where} is a {type(sig).__name__}, not a signature")
    if not isinstance(sig.get("task"), str) or not sig["task"]:
        raise InvalidTaskError(f"message {where} names no task")
    args, kwargs, options = sig.get("args"), sig.get("kwargs"), sig.get("options")
    if args is not None and not isinstance(args, list | tuple):
        raise InvalidTaskError(f"message {where} args is not a list")
    if kwargs is not None and not isinstance(kwargs, dict):
        raise InvalidTaskError(f"message {where} kwargs is not an object")
    if options is not None and not isinstance(options, dict):
        raise InvalidTaskError(f"message {where} options is not an object")
    options, kwargs = options or {}, kwargs or {}
    if not isinstance(options.get("task_id", ""), str):
        raise InvalidTaskError(f"message {where} task_id is not a string")
    for key in ("link", "link_error"):
        links = options.get(key)
        for j, link in enumerate(links if isinstance(links, list) else [links] if links else []):
            check_signature(link, f"{where} {key}[{j}]")
    kind_name = sig.get("subtask_type")
    if kind_name is None:
        return
    kind = Signature.TYPES.get(kind_name) if isinstance(kind_name, str) else None
    if kind is None or kind is _Composite:
        raise InvalidTaskError(f"message {where} is of no known kind ({kind_name!r})")
    if issubclass(kind, _Composite):
        members = kwargs.get("tasks")
        if not isinstance(members, list):
            raise InvalidTaskError(f"message {where} has no list of tasks")
        for j, member in enumerate(members):
            check_signature(member, f"{where} task {j}")
    if issubclass(kind, chord) and kwargs.get("body") is not None:
        check_signature(kwargs["body"], f"{where} body")
    if issubclass(kind, xmap | chunks):
        check_signature(kwargs.get("task"), f"{where} task")
        if not isinstance(kwargs.get("it"), list):
            raise InvalidTaskError(f"message {where} has no list of items")
    if issubclass(kind, chunks) and (type(kwargs.get("n")) is not int or kwargs["n"] < 1):
        raise InvalidTaskError(f"message {where} has no chunk size")


def maybe_signature(d: Any, app: Celeriac | None = None) -> Signature | None:
    """``d`` as a Signature (None stays None; a task is a signature without arguments)."""
    if d is None or isinstance(d, Signature):
        return d
    if isinstance(d, Mapping):
        return Signature.from_dict(d, app=app)
    return Signature(d, app=app)


def _call_each(task: Any, it: Iterable[Any], star: bool) -> list[Any]:
    sig = Signature.from_dict(task, app=get_current_app())
    fn: Callable[..., Any] = sig.type
    return [fn(*item) if star else fn(item) for item in it]


def register_builtins(app: Celeriac) -> None:
    """The tasks workflows use: ``celeriac.map``, ``celeriac.starmap`` and
    ``celeriac.accumulate``; and Celery's ``celery.backend_cleanup``, which a project's
    ``beat_schedule`` may name (the workers delete expired results themselves too)."""

    @app.task(name="celery.backend_cleanup", ignore_result=True)
    def backend_cleanup() -> int:
        backend = app.backend
        return backend.cleanup() if backend is not None else 0

    @app.task(name="celeriac.map")
    def xmap_task(task: Any, it: Iterable[Any]) -> list[Any]:
        return _call_each(task, it, star=False)

    @app.task(name="celeriac.starmap")
    def xstarmap_task(task: Any, it: Iterable[Any]) -> list[Any]:
        return _call_each(task, it, star=True)

    @app.task(name="celeriac.accumulate")
    def accumulate(*args: Any, index: int | None = None) -> Any:
        """Its arguments (or the one at ``index``): a chord body that gives the header's
        results as they are (what a group replacing a task turns into)."""
        return args if index is None else args[index]
