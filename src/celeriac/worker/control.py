"""A project's own remote-control commands, as Celery's ``celery.worker.control``::

    from celeriac.worker.control import control_command, inspect_command

    @inspect_command()
    def queue_names(state):
        return {"queues": state.worker.queues}

    @control_command(args=[("n", int)], signature="[N=1]")
    def grow(state, n=1):
        state.worker.resize_pool(state.worker.concurrency + n)
        return {"ok": f"grown by {n}"}

A command runs in the worker that the request reaches, with ``state`` (``state.app``,
``state.hostname``, ``state.worker`` and ``state.consumer``) and the request's arguments;
what it returns is its reply. Call it with
``app.control.broadcast("grow", arguments={"n": 2}, reply=True)``,
``celeriac -A proj control grow 2`` or ``celeriac -A proj inspect queue_names``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .worker import Worker

__all__ = ["Panel", "State", "control_command", "inspect_command"]


@dataclass(frozen=True)
class CommandInfo:
    """What the command line needs to know of a command."""

    name: str
    type: str  # "control" or "inspect"
    args: Sequence[tuple[str, Callable[[str], Any]]] = ()
    signature: str | None = None
    help: str | None = None


class Panel:
    """The registry of the project's commands (``Panel.data``: name -> function)."""

    data: dict[str, Callable[..., Any]] = {}
    meta: dict[str, CommandInfo] = {}

    @classmethod
    def register(
        cls, *args: Any, **kwargs: Any
    ) -> Callable[..., Any] | Callable[[Callable[..., Any]], Callable[..., Any]]:
        """``@Panel.register`` or ``@Panel.register(name=..., type=..., args=...)``."""
        if len(args) == 1 and callable(args[0]) and not kwargs:
            return cls._add(args[0])
        return lambda fun: cls._add(fun, **kwargs)

    @classmethod
    def _add(
        cls,
        fun: Callable[..., Any],
        name: str | None = None,
        type: str = "control",
        args: Sequence[tuple[str, Callable[[str], Any]]] = (),
        signature: str | None = None,
        help: str | None = None,
        **_: Any,
    ) -> Callable[..., Any]:
        name = name or fun.__name__
        cls.data[name] = fun
        cls.meta[name] = CommandInfo(name, type, tuple(args), signature, help or fun.__doc__)
        return fun


def control_command(**kwargs: Any) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Register the decorated function as a control command (it changes something)."""
    return lambda fun: Panel._add(fun, **{**kwargs, "type": "control"})


def inspect_command(**kwargs: Any) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Register the decorated function as an inspect command (it only reads)."""
    return lambda fun: Panel._add(fun, **{**kwargs, "type": "inspect"})


class State:
    """What a project's command is given: the worker it runs in."""

    def __init__(self, worker: Worker) -> None:
        self.worker = worker
        self.app = worker.app
        self.hostname = worker.hostname
        self.consumer = worker.consumer


def project_command(worker: Worker, name: str) -> Callable[..., Any] | None:
    """The project's command ``name``, bound to ``worker``'s state, or None."""
    fun = Panel.data.get(name)
    if fun is None:
        return None
    state = State(worker)
    return lambda **arguments: fun(state, **arguments)
