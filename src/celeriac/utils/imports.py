"""Objects by name: ``"pkg.mod:attr"`` or ``"pkg.mod.attr"`` strings, with Celery's names
(``celery.utils.imports``). Everywhere celeriac resolves such a string, it is here."""

from __future__ import annotations

import importlib
import os
import sys
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from types import ModuleType
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ..app import Celeriac

__all__ = [
    "NotAPackage",
    "cwd_in_path",
    "find_module",
    "gen_task_name",
    "import_from_cwd",
    "instantiate",
    "module_file",
    "qualname",
    "reload_from_cwd",
    "symbol_by_name",
]


class NotAPackage(Exception):
    """A dotted module name goes through a module that is not a package."""


def symbol_by_name(
    name: Any,
    aliases: Mapping[str, str] | None = None,
    imp: Callable[..., ModuleType] | None = None,
    package: str | None = None,
    sep: str = ".",
    default: Any = None,
    **kwargs: Any,
) -> Any:
    """The object ``name`` names: ``"pkg.mod:attr"`` (``attr`` may be dotted) or
    ``"pkg.mod.attr"``; a name without a separator is a module. ``aliases`` maps short names
    to full ones; anything but a string is returned as it is. When the module or attribute
    is missing, ``default`` is returned if given, else the error is raised."""
    if not isinstance(name, str):
        return name
    name = (aliases or {}).get(name) or name
    module_name, _, attr = name.rpartition(":" if ":" in name else sep)
    if not module_name:
        module_name, attr = package or attr, ""
    try:
        try:
            obj: Any = (imp or importlib.import_module)(module_name, package=package, **kwargs)
        except ValueError as exc:  # an empty or relative name without a package
            raise ValueError(f"Couldn't import {name!r}: {exc}") from exc
        for part in attr.split(".") if attr else ():
            obj = getattr(obj, part)
        return obj
    except (ImportError, AttributeError):
        if default is None:
            raise
        return default


def instantiate(name: Any, *args: Any, **kwargs: Any) -> Any:
    """An instance of the class ``name`` names (see :func:`symbol_by_name`)."""
    return symbol_by_name(name)(*args, **kwargs)


def qualname(obj: Any) -> str:
    """``module.QualName`` of a class or function (of an instance's class)."""
    if not hasattr(obj, "__name__") and hasattr(obj, "__class__"):
        obj = obj.__class__
    name: str = getattr(obj, "__qualname__", None) or obj.__name__
    return name if "." in name else f"{obj.__module__}.{name}"


@contextmanager
def cwd_in_path() -> Iterator[str | None]:
    """Put the working directory first on ``sys.path`` for the block (if it is not there);
    yields it, or None when it was there already or is gone."""
    try:
        cwd: str | None = os.getcwd()
    except FileNotFoundError:
        cwd = None
    if cwd is None or cwd in sys.path:
        yield None
        return
    sys.path.insert(0, cwd)
    try:
        yield cwd
    finally:
        try:
            sys.path.remove(cwd)
        except ValueError:
            pass


def import_from_cwd(
    module: str, imp: Callable[..., ModuleType] | None = None, package: str | None = None
) -> ModuleType:
    """Import ``module`` with the working directory first on ``sys.path``."""
    with cwd_in_path():
        return (imp or importlib.import_module)(module, package=package)


def reload_from_cwd(
    module: ModuleType, reloader: Callable[[ModuleType], ModuleType] | None = None
) -> ModuleType:
    """Reload ``module`` with the working directory on ``sys.path``."""
    with cwd_in_path():
        return (reloader or importlib.reload)(module)


def find_module(
    module: str, path: Any = None, imp: Callable[[str], ModuleType] | None = None
) -> ModuleType:
    """Import ``module`` from the working directory (or ``sys.path``); when that fails
    because a dotted part is a plain module, raise :class:`NotAPackage` naming it."""
    imp = imp or importlib.import_module
    with cwd_in_path():
        try:
            return imp(module)
        except ImportError:
            parts = module.split(".")
            for i in range(1, len(parts)):
                parent = ".".join(parts[:i])
                try:
                    found = imp(parent)
                except ImportError:
                    break
                if not hasattr(found, "__path__"):
                    raise NotAPackage(parent) from None
            raise


def module_file(module: ModuleType) -> str:
    """The source file of ``module`` (``.py`` for a ``.pyc``)."""
    name = module.__file__ or ""
    return name[:-1] if name.endswith(".pyc") else name


def gen_task_name(app: Celeriac, name: str, module_name: str | None) -> str:
    """The name a task ``name`` defined in ``module_name`` gets in ``app`` (the app's own
    rule: a task in ``__main__`` is named after the app's ``main``)."""
    return app.gen_task_name(name, module_name or "__main__")
