"""Signatures: a task name with arguments and options, the unit that travels in messages.

``task.s(1, 2)`` is a :class:`Signature`; it is a dict (``task``, ``args``, ``kwargs``,
``options``, ``subtask_type``, ``immutable``) so it serialises with any serializer.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .app import Celeriac
    from .result import AsyncResult
    from .task import Task


class Signature(dict[str, Any]):
    """A task invocation that can be sent later, passed around, or composed."""

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
        if isinstance(task, Mapping):
            super().__init__(task)
            self.setdefault("args", [])
            self.setdefault("kwargs", {})
            self.setdefault("options", {})
            self.setdefault("subtask_type", None)
            self.setdefault("immutable", False)
            return
        name = task if isinstance(task, str) or task is None else task.name
        if app is None and task is not None and not isinstance(task, str):
            self._app = task.app
        super().__init__(
            task=name,
            args=list(args or ()),
            kwargs=dict(kwargs or {}),
            options={**(options or {}), **ex},
            subtask_type=subtask_type,
            immutable=immutable,
        )

    # dict keys as attributes, as in Celery
    task = property(lambda self: self["task"])
    args = property(lambda self: self["args"])
    kwargs = property(lambda self: self["kwargs"])
    options = property(lambda self: self["options"])
    subtask_type = property(lambda self: self["subtask_type"])
    immutable = property(lambda self: self["immutable"])

    @property
    def app(self) -> Celeriac:
        if self._app is None:
            from ._state import get_current_app

            self._app = get_current_app()
        return self._app

    @property
    def type(self) -> Task:
        """The registered task this signature calls."""
        return self.app.tasks[self.task]

    @property
    def id(self) -> str | None:
        return self.options.get("task_id")

    @classmethod
    def from_dict(cls, d: Mapping[str, Any], app: Celeriac | None = None) -> Signature:
        return d if isinstance(d, Signature) else cls(d, app=app)

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
        sig = Signature(
            {**self, "args": new_args, "kwargs": new_kwargs, "options": {**self.options, **opts}},
            app=self._app,
        )
        return sig

    def set(self, immutable: bool | None = None, **options: Any) -> Signature:
        """Update options in place; returns self so calls chain."""
        if immutable is not None:
            self["immutable"] = immutable
        self.options.update(options)
        return self

    def set_immutable(self, immutable: bool) -> None:
        self["immutable"] = immutable

    def link(self, callback: Signature) -> Signature:
        """Call ``callback`` with this task's result when it succeeds."""
        self.options.setdefault("link", []).append(callback)
        return callback

    def link_error(self, errback: Signature) -> Signature:
        """Call ``errback`` when this task fails."""
        self.options.setdefault("link_error", []).append(errback)
        return errback

    on_error = link_error

    def apply_async(
        self,
        args: Iterable[Any] | None = None,
        kwargs: Mapping[str, Any] | None = None,
        **options: Any,
    ) -> AsyncResult:
        """Send it, with partial ``args``/``kwargs`` and option overrides."""
        sig = self.clone(args, kwargs) if (args or kwargs) else self
        opts = {**sig.options, **options}
        if sig.task in self.app.tasks:
            return self.app.tasks[sig.task].apply_async(sig.args, sig.kwargs, **opts)
        return self.app.send_task(sig.task, sig.args, sig.kwargs, **opts)

    def delay(self, *args: Any, **kwargs: Any) -> AsyncResult:
        return self.apply_async(args, kwargs)

    def apply(
        self,
        args: Iterable[Any] | None = None,
        kwargs: Mapping[str, Any] | None = None,
        **options: Any,
    ) -> Any:
        """Run it here and now; returns an EagerResult."""
        sig = self.clone(args, kwargs) if (args or kwargs) else self
        return self.type.apply(sig.args, sig.kwargs, **{**sig.options, **options})

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        """Call the task function directly with partial arguments."""
        sig = self.clone(args, kwargs) if (args or kwargs) else self
        return self.type(*sig.args, **sig.kwargs)

    def __repr__(self) -> str:
        parts = [repr(a) for a in self.args] + [f"{k}={v!r}" for k, v in self.kwargs.items()]
        return f"{self.task}({', '.join(parts)}){'!' if self.immutable else ''}"


def signature(varies: Any, *args: Any, **kwargs: Any) -> Signature:
    """Make a :class:`Signature` from a task, a task name, or a signature dict."""
    app = kwargs.pop("app", None)
    if isinstance(varies, Mapping) and not args and not kwargs:
        return Signature.from_dict(varies, app=app)
    return Signature(varies, *args, app=app, **kwargs)  # type: ignore[misc]


subtask = signature


def maybe_signature(d: Any, app: Celeriac | None = None) -> Signature | None:
    """``d`` as a Signature (None stays None)."""
    if d is None:
        return None
    return d if isinstance(d, Signature) else Signature.from_dict(d, app=app)
