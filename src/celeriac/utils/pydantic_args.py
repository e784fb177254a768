"""``@app.task(pydantic=True)``: arguments annotated with a Pydantic model are validated into
that model before the task runs, and a returned model is dumped (JSON mode) when the return
annotation names its class, as Celery does. Pydantic is imported only by tasks that ask."""

from __future__ import annotations

import functools
import importlib
import inspect
import types
import typing
from collections.abc import Callable
from typing import Any

from ..exceptions import ImproperlyConfigured


def _hints(fun: Callable[..., Any]) -> dict[str, Any]:
    """The annotations of ``fun``, resolved (``from __future__ import annotations`` leaves
    strings); the raw ones where they cannot be resolved."""
    try:
        return typing.get_type_hints(fun)
    except Exception:
        return dict(getattr(fun, "__annotations__", {}))


def _model(annotation: Any, base: type) -> type | None:
    """The Pydantic model class ``annotation`` names (``Model`` or ``Model | None``)."""
    if isinstance(annotation, type):
        return annotation if issubclass(annotation, base) else None
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        others = [a for a in typing.get_args(annotation) if a is not type(None)]
        if len(others) == 1:
            return _model(others[0], base)
    return None


def pydantic_task(
    fun: Callable[..., Any],
    app: Any,
    name: str,
    strict: bool = False,
    context: dict[str, Any] | None = None,
    dump_kwargs: dict[str, Any] | None = None,
) -> Callable[..., Any]:
    """``fun`` wrapped to validate its model arguments and dump its model result."""
    try:
        base = importlib.import_module("pydantic").BaseModel
    except ModuleNotFoundError as exc:
        raise ImproperlyConfigured(
            f"{name}: pydantic=True needs pydantic installed (pip install pydantic)"
        ) from exc
    signature = inspect.signature(fun)
    hints = _hints(fun)
    models = {
        param: model
        for param in signature.parameters
        if (model := _model(hints.get(param), base)) is not None
    }
    returns = _model(hints.get("return"), base)
    dump = {"mode": "json", **(dump_kwargs or {})}
    validation = {**(context or {}), "celery_app": app, "celery_task_name": name}

    @functools.wraps(fun)
    def run(*args: Any, **kwargs: Any) -> Any:
        bound = signature.bind(*args, **kwargs)
        for param, value in bound.arguments.items():
            model = models.get(param)
            if model is not None and value is not None:
                bound.arguments[param] = model.model_validate(  # type: ignore[attr-defined]
                    value, strict=strict, context=validation
                )
        result = fun(*bound.args, **bound.kwargs)
        if returns is not None and isinstance(result, returns):
            return result.model_dump(**dump)  # type: ignore[attr-defined]
        return result

    return run
