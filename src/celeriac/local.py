"""Lazy objects, with Celery's names (``celery.local``): :class:`Proxy` stands for what a
function returns, looked up on every use; :class:`PromiseProxy` looks it up once."""

from __future__ import annotations

import operator
from collections.abc import Callable, Iterator
from importlib import import_module
from types import ModuleType
from typing import Any

__all__ = ["PromiseProxy", "Proxy", "class_property", "maybe_evaluate", "try_import"]


def try_import(module: str, default: Any = None) -> ModuleType | Any:
    """The module ``module``, or ``default`` when it cannot be imported."""
    try:
        return import_module(module)
    except ImportError:
        return default


def maybe_evaluate(obj: Any) -> Any:
    """What a lazy object (:class:`PromiseProxy`, ``utils.functional.lazy``) stands for,
    evaluating it now; any other object as it is."""
    evaluate = getattr(type(obj), "__maybe_evaluate__", None)
    return obj if evaluate is None else evaluate(obj)


class _Forwarded(str):
    """A class attribute (``__doc__``, ``__module__``) that an instance reads from the
    proxied object. On the class it is the class's own value: a str, as Python expects."""

    name: str

    def __new__(cls, name: str, own: str | None) -> _Forwarded:
        self = super().__new__(cls, own or "")
        self.name = name
        return self

    def __get__(self, obj: Proxy | None, cls: type | None = None) -> Any:
        if obj is None:
            return self
        return getattr(obj._get_current_object(), self.name)


def _binary(op: Callable[[Any, Any], Any]) -> Callable[[Proxy, Any], Any]:
    def method(self: Proxy, other: Any) -> Any:
        return op(self._get_current_object(), other)

    return method


def _reflected(op: Callable[[Any, Any], Any]) -> Callable[[Proxy, Any], Any]:
    def method(self: Proxy, other: Any) -> Any:
        return op(other, self._get_current_object())

    return method


def _unary(op: Callable[[Any], Any]) -> Callable[[Proxy], Any]:
    def method(self: Proxy) -> Any:
        return op(self._get_current_object())

    return method


class Proxy:
    """Stands for ``local_callable(*args, **kwargs)``, called again on every use: attribute
    access, calls, items, operators, ``str``/``repr`` and ``isinstance`` go to what it
    returns. ``name`` and ``__doc__`` override the proxied object's."""

    def __init__(
        self,
        local_callable: Callable[..., Any],
        args: tuple[Any, ...] | list[Any] | None = None,
        kwargs: dict[str, Any] | None = None,
        name: str | None = None,
        __doc__: str | None = None,
    ) -> None:
        object.__setattr__(self, "_Proxy__local", local_callable)
        object.__setattr__(self, "_Proxy__args", tuple(args or ()))
        object.__setattr__(self, "_Proxy__kwargs", dict(kwargs or {}))
        if name is not None:
            object.__setattr__(self, "__name__", name)
            object.__setattr__(self, "__qualname__", name)
        if __doc__ is not None:
            object.__setattr__(self, "__doc__", __doc__)

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        for name in ("__doc__", "__module__"):  # the class statement set its own
            setattr(cls, name, _Forwarded(name, vars(cls).get(name)))

    def _get_current_object(self) -> Any:
        """The object proxied, now."""
        local = object.__getattribute__(self, "_Proxy__local")
        args = object.__getattribute__(self, "_Proxy__args")
        return local(*args, **object.__getattribute__(self, "_Proxy__kwargs"))

    __doc__ = _Forwarded("__doc__", __doc__)
    __module__ = _Forwarded("__module__", __name__)

    @property  # type: ignore[misc]
    def __class__(self) -> type:  # isinstance(proxy, Target) holds
        return type(self._get_current_object())

    def __getattr__(self, name: str) -> Any:
        if name.startswith(("_Proxy__", "_PromiseProxy__")):  # not set yet (unpickling)
            raise AttributeError(name)
        return getattr(self._get_current_object(), name)

    def __setattr__(self, name: str, value: Any) -> None:
        setattr(self._get_current_object(), name, value)

    def __delattr__(self, name: str) -> None:
        delattr(self._get_current_object(), name)

    def __dir__(self) -> list[str]:
        return dir(self._get_current_object())

    def __repr__(self) -> str:
        return repr(self._get_current_object())

    def __str__(self) -> str:
        return str(self._get_current_object())

    def __bool__(self) -> bool:
        return bool(self._get_current_object())

    def __hash__(self) -> int:
        return hash(self._get_current_object())

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self._get_current_object()(*args, **kwargs)

    def __len__(self) -> int:
        return len(self._get_current_object())

    def __iter__(self) -> Iterator[Any]:
        return iter(self._get_current_object())

    def __contains__(self, item: Any) -> bool:
        return item in self._get_current_object()

    def __getitem__(self, key: Any) -> Any:
        return self._get_current_object()[key]

    def __setitem__(self, key: Any, value: Any) -> None:
        self._get_current_object()[key] = value

    def __delitem__(self, key: Any) -> None:
        del self._get_current_object()[key]

    def __enter__(self) -> Any:
        return self._get_current_object().__enter__()

    def __exit__(self, *exc: Any) -> Any:
        return self._get_current_object().__exit__(*exc)

    def __reduce_ex__(self, protocol: Any) -> Any:  # pickled (and copied) as the object
        return self._get_current_object().__reduce_ex__(protocol)

    __eq__ = _binary(operator.eq)
    __ne__ = _binary(operator.ne)
    __lt__ = _binary(operator.lt)
    __le__ = _binary(operator.le)
    __gt__ = _binary(operator.gt)
    __ge__ = _binary(operator.ge)
    __neg__ = _unary(operator.neg)
    __pos__ = _unary(operator.pos)
    __abs__ = _unary(operator.abs)
    __invert__ = _unary(operator.invert)
    __int__ = _unary(int)
    __float__ = _unary(float)
    __complex__ = _unary(complex)
    __index__ = _unary(operator.index)


#: the arithmetic operators a proxy forwards, each in both orders (``p + 1``, ``1 + p``)
_ARITHMETIC = {
    "add": operator.add, "sub": operator.sub, "mul": operator.mul,
    "matmul": operator.matmul, "truediv": operator.truediv, "floordiv": operator.floordiv,
    "mod": operator.mod, "divmod": divmod, "pow": operator.pow, "lshift": operator.lshift,
    "rshift": operator.rshift, "and": operator.and_, "xor": operator.xor, "or": operator.or_,
}  # fmt: skip
for _name, _op in _ARITHMETIC.items():
    setattr(Proxy, f"__{_name}__", _binary(_op))
    setattr(Proxy, f"__r{_name}__", _reflected(_op))


class PromiseProxy(Proxy):
    """A :class:`Proxy` that calls its function once, on first use, and keeps the object;
    ``__then__`` callbacks run when that happens."""

    def _get_current_object(self) -> Any:
        try:
            return object.__getattribute__(self, "_PromiseProxy__thing")
        except AttributeError:
            return self.__evaluate__()

    def __evaluated__(self) -> bool:
        """Has the object been made yet?"""
        return "_PromiseProxy__thing" in object.__getattribute__(self, "__dict__")

    def __maybe_evaluate__(self) -> Any:
        """The object, made now if it was not yet."""
        return self._get_current_object()

    def __then__(self, fun: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """Call ``fun(*args, **kwargs)`` once the object is made (now, if it is)."""
        if self.__evaluated__():
            return fun(*args, **kwargs)
        own = object.__getattribute__(self, "__dict__")
        own.setdefault("_PromiseProxy__pending", []).append((fun, args, kwargs))
        return None

    def __evaluate__(self) -> Any:
        made = Proxy._get_current_object(self)
        own = object.__getattribute__(self, "__dict__")
        thing = own.setdefault("_PromiseProxy__thing", made)  # a racing thread's kept if first
        pending = own.pop("_PromiseProxy__pending", [])
        for fun, args, kwargs in pending:
            fun(*args, **kwargs)
        return thing


class class_property:
    """A read-only property of the class: ``getter(cls)``, read on the class or an
    instance."""

    def __init__(self, getter: Callable[[Any], Any]) -> None:
        self.getter = getter.__func__ if isinstance(getter, classmethod) else getter
        self.__doc__ = getattr(self.getter, "__doc__", None)
        self.__name__ = getattr(self.getter, "__name__", "class_property")

    def __get__(self, obj: Any, cls: type | None = None) -> Any:
        return self.getter(type(obj) if cls is None else cls)
