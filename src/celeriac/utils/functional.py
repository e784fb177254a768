"""Small functional helpers, with Celery's names (``celery.utils.functional``)."""

from __future__ import annotations

import functools
import inspect
import threading
from collections import OrderedDict
from collections.abc import Callable, Generator, Iterable, Iterator, Mapping, MutableMapping
from itertools import islice
from typing import Any, SupportsIndex, TypeVar

from ..local import maybe_evaluate as maybe_evaluate  # one for lazy objects and promises

T = TypeVar("T")

__all__ = [
    "LRUCache",
    "chunks",
    "dictfilter",
    "first",
    "firstmethod",
    "fun_accepts_kwargs",
    "fun_takes_argument",
    "is_list",
    "is_numeric_value",
    "lazy",
    "mattrgetter",
    "maybe",
    "maybe_evaluate",
    "maybe_list",
    "memoize",
    "mlazy",
    "noop",
    "padlist",
    "pass1",
    "regen",
    "uniq",
]


def noop(*args: Any, **kwargs: Any) -> None:
    """Take any arguments and do nothing."""


def pass1(arg: T, *args: Any, **kwargs: Any) -> T:
    """The first positional argument."""
    return arg


def is_list(
    obj: Any,
    scalars: tuple[type, ...] | None = (Mapping, str),
    iters: tuple[type, ...] = (Iterable,),
) -> bool:
    """Is ``obj`` iterable and not one of ``scalars`` (mappings and strings)?"""
    return isinstance(obj, iters) and not isinstance(obj, scalars or ())


def maybe_list(obj: Any, scalars: tuple[type, ...] | None = (Mapping, str)) -> Any:
    """``obj`` in a one-item list unless it is a list already (see :func:`is_list`) or None."""
    return obj if obj is None or is_list(obj, scalars) else [obj]


def maybe(typ: Callable[[Any], T], val: Any) -> T | None:
    """``typ(val)``, or None when ``val`` is None."""
    return None if val is None else typ(val)


def is_numeric_value(value: object) -> bool:
    """Is ``value`` an int or float (not a bool)?"""
    return isinstance(value, int | float) and not isinstance(value, bool)


def first(predicate: Callable[[Any], Any] | None, it: Iterable[T]) -> T | None:
    """The first item of ``it`` that ``predicate`` accepts (without one: that is not None)."""
    for value in it:
        if value is not None if predicate is None else predicate(value):
            return value
    return None


def firstmethod(method: str, on_call: Callable[..., Any] | None = None) -> Callable[..., Any]:
    """A function ``(objects, *args, **kwargs)`` calling ``method`` on each object (lazy ones
    evaluated) that has it, until one returns something else than None; returns that."""

    def matcher(objects: Iterable[Any], *args: Any, **kwargs: Any) -> Any:
        for obj in objects:
            meth = getattr(maybe_evaluate(obj), method, None)
            if meth is None:
                continue
            reply = on_call(meth, *args, **kwargs) if on_call else meth(*args, **kwargs)
            if reply is not None:
                return reply
        return None

    return matcher


def chunks(it: Iterable[T], n: int) -> Generator[list[T], None, None]:
    """``it`` in lists of ``n`` items (the last may be shorter)."""
    items = iter(it)
    while chunk := list(islice(items, n)):
        yield chunk


def padlist(container: Iterable[T], size: int, default: Any = None) -> list[Any]:
    """``container`` as a list of exactly ``size`` items: cut, or padded with ``default``."""
    items = list(container)[:size]
    return items + [default] * (size - len(items))


def mattrgetter(*attrs: str) -> Callable[[Any], dict[str, Any]]:
    """A function giving ``{attr: obj.attr}`` for ``attrs`` (None for a missing one)."""
    return lambda obj: {attr: getattr(obj, attr, None) for attr in attrs}


def uniq(it: Iterable[T]) -> Iterator[T]:
    """The items of ``it`` without repeats, in order (lazily)."""
    seen: set[Any] = set()
    for item in it:
        if item not in seen:
            seen.add(item)
            yield item


def dictfilter(d: Mapping[Any, Any] | None = None, **kw: Any) -> dict[Any, Any]:
    """``d`` (updated with ``kw``) without the keys whose value is None."""
    merged = kw if d is None else {**d, **kw}
    return {k: v for k, v in merged.items() if v is not None}


class _Regen(list[Any]):
    """A list read from an iterator as far as it is used: items are kept as they come, so it
    can be indexed and iterated again and again. What is read so far is the list itself."""

    def __init__(self, it: Iterable[Any]) -> None:
        super().__init__()
        self._it: Iterator[Any] | None = iter(it)
        self._lock = threading.Lock()

    def _read(self, upto: int | None = None) -> None:
        """Read items until there are more than ``upto`` (all without it)."""
        with self._lock:
            while self._it is not None and (upto is None or list.__len__(self) <= upto):
                try:
                    self.append(next(self._it))
                except StopIteration:
                    self._it = None

    @property
    def data(self) -> list[Any]:
        """Every item, as a plain list."""
        self._read()
        return list(list.__iter__(self))

    def __iter__(self) -> Iterator[Any]:
        index = 0
        while True:
            if index >= list.__len__(self):
                self._read(index)
                if index >= list.__len__(self):
                    return
            yield list.__getitem__(self, index)
            index += 1

    def __getitem__(self, index: SupportsIndex | slice) -> Any:
        if isinstance(index, slice) or index.__index__() < 0:
            self._read()
        else:
            self._read(index.__index__())
        return list.__getitem__(self, index)

    def __len__(self) -> int:
        self._read()
        return list.__len__(self)

    def __bool__(self) -> bool:
        self._read(0)
        return list.__len__(self) > 0

    def __contains__(self, item: object) -> bool:
        return any(x is item or x == item for x in self)

    def __eq__(self, other: object) -> bool:
        return self.data == other

    def __ne__(self, other: object) -> bool:
        return self.data != other

    def __reversed__(self) -> Iterator[Any]:
        return reversed(self.data)

    def __reduce__(self) -> Any:
        return list, (self.data,)

    def __repr__(self) -> str:
        shown = ", ".join(repr(x) for x in list.__iter__(self))
        return f"<regen: [{shown}{'...' if self._it is not None else ''}]>"


def regen(it: Iterable[T]) -> list[T] | tuple[T, ...]:
    """``it`` as a list that reads its iterator only as far as it is used and can be
    iterated again (a list or tuple is returned as it is)."""
    if isinstance(it, list | tuple):
        return it
    return _Regen(it)


class lazy:
    """``fun(*args, **kwargs)``, called when the value is wanted: ``evaluate()``, calling it,
    or :func:`maybe_evaluate`; ``str``, ``repr`` and ``==`` show the value."""

    def __init__(self, fun: Callable[..., Any], *args: Any, **kwargs: Any) -> None:
        self._fun, self._args, self._kwargs = fun, args, kwargs

    def evaluate(self) -> Any:
        """The value, computed now."""
        return self._fun(*self._args, **self._kwargs)

    __call__ = evaluate

    def __maybe_evaluate__(self) -> Any:
        return self.evaluate()

    def __str__(self) -> str:
        return str(self())

    def __repr__(self) -> str:
        return repr(self())

    def __eq__(self, other: object) -> bool:
        return bool(self() == other)

    def __ne__(self, other: object) -> bool:
        return bool(self() != other)

    __hash__ = None  # type: ignore[assignment]

    def __deepcopy__(self, memo: dict[int, Any]) -> Any:
        memo[id(self)] = self
        return self

    def __reduce__(self) -> Any:
        return _make_lazy, (type(self), self._fun, self._args, self._kwargs)


def _make_lazy(
    cls: type[lazy], fun: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]
) -> lazy:
    return cls(fun, *args, **kwargs)


class mlazy(lazy):
    """A :class:`lazy` computed once: later uses give the same value."""

    evaluated = False
    _value: Any = None

    def evaluate(self) -> Any:
        if not self.evaluated:
            self._value = super().evaluate()
            self.evaluated = True
        return self._value

    __call__ = evaluate


class LRUCache(MutableMapping[Any, Any]):
    """A thread-safe dict keeping at most ``limit`` items (None: no limit): storing one more
    drops the least recently used."""

    def __init__(self, limit: int | None = None) -> None:
        self.limit = limit
        self.data: OrderedDict[Any, Any] = OrderedDict()
        self.mutex = threading.RLock()

    def __getitem__(self, key: Any) -> Any:
        with self.mutex:
            value = self.data[key]
            self.data.move_to_end(key)
            return value

    def __setitem__(self, key: Any, value: Any) -> None:
        with self.mutex:
            self.data[key] = value
            self.data.move_to_end(key)
            while self.limit is not None and len(self.data) > self.limit:
                self.data.popitem(last=False)

    def __delitem__(self, key: Any) -> None:
        with self.mutex:
            del self.data[key]

    def __iter__(self) -> Iterator[Any]:
        with self.mutex:
            return iter(list(self.data))

    def __len__(self) -> int:
        return len(self.data)

    def __repr__(self) -> str:
        return f"LRUCache({self.limit}, {dict(self.data)!r})"

    def popitem(self, last: bool = True) -> tuple[Any, Any]:
        """Remove and return the most recently used item (the least with ``last=False``)."""
        with self.mutex:
            return self.data.popitem(last)

    def incr(self, key: Any, delta: int = 1) -> int:
        """Add ``delta`` to the number under ``key`` (kept as a string, as Celery's is);
        returns the new number."""
        with self.mutex:
            value = int(self.data.pop(key)) + delta
            self[key] = str(value)
            return value

    def __getstate__(self) -> dict[str, Any]:
        return {"limit": self.limit, "data": self.data}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(state["limit"])  # type: ignore[misc]
        self.data.update(state["data"])


def memoize(
    maxsize: int | None = None,
    keyfun: Callable[[tuple[Any, ...], dict[str, Any]], Any] | None = None,
    Cache: type[LRUCache] = LRUCache,
) -> Callable[[Callable[..., T]], Callable[..., T]]:
    """Cache a function's results by its arguments (``keyfun(args, kwargs)`` makes the key
    when given), keeping up to ``maxsize``. The function gets ``hits``, ``misses``,
    ``clear()`` and ``original_func``."""

    def decorate(fun: Callable[..., T]) -> Callable[..., T]:
        cache = Cache(limit=maxsize)

        @functools.wraps(fun)
        def cached(*args: Any, **kwargs: Any) -> T:
            key = keyfun(args, kwargs) if keyfun else (*args, _KWARGS, *sorted(kwargs.items()))
            try:
                value: T = cache[key]
            except KeyError:
                value = fun(*args, **kwargs)
                cached.misses += 1  # type: ignore[attr-defined]
                cache[key] = value
            else:
                cached.hits += 1  # type: ignore[attr-defined]
            return value

        def clear() -> None:
            cache.clear()
            cached.hits = cached.misses = 0  # type: ignore[attr-defined]

        cached.hits = cached.misses = 0  # type: ignore[attr-defined]
        cached.clear = clear  # type: ignore[attr-defined]
        cached.original_func = fun  # type: ignore[attr-defined]
        return cached

    return decorate


_KWARGS = object()  # separates positional arguments from keyword ones in memoize's keys


def fun_takes_argument(name: str, fun: Callable[..., Any], position: int | None = None) -> bool:
    """Can ``fun`` take the argument ``name`` (or a positional argument at ``position``)?"""
    spec = inspect.getfullargspec(fun)
    if spec.varkw or spec.varargs:
        return True
    return len(spec.args) >= position if position else name in spec.args


def fun_accepts_kwargs(fun: Callable[..., Any]) -> bool:
    """Does ``fun`` take arbitrary keyword arguments (``**kwargs``)?"""
    code = getattr(fun, "__code__", None)
    if code is not None:  # without reading annotations
        return bool(code.co_flags & inspect.CO_VARKEYWORDS)
    return any(p.kind is p.VAR_KEYWORD for p in inspect.signature(fun).parameters.values())
