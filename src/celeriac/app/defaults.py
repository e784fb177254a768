"""Every setting and its default, in the shapes of Celery's ``celery.app.defaults``: the flat
:data:`DEFAULTS`, and :data:`NAMESPACES` of :class:`Option` by prefix
(``NAMESPACES["broker"]["url"]``). Both are read from :mod:`celeriac.config`'s table."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any, NamedTuple

from ..config import DEFAULTS
from ..utils import yes_or_no
from ..utils.log import DEFAULT_PROCESS_LOG_FMT as DEFAULT_PROCESS_LOG_FMT
from ..utils.log import DEFAULT_TASK_LOG_FMT as DEFAULT_TASK_LOG_FMT

__all__ = [
    "DEFAULTS",
    "DEFAULT_ACCEPT_CONTENT",
    "DEFAULT_POOL",
    "DEFAULT_PROCESS_LOG_FMT",
    "DEFAULT_TASK_LOG_FMT",
    "NAMESPACES",
    "SETTING_KEYS",
    "Option",
    "find",
    "flatten",
]

#: the name of every setting celeriac knows: its own and the rest of Celery's
SETTING_KEYS: set[str] = set(DEFAULTS)

DEFAULT_POOL: str = DEFAULTS["worker_pool"]
DEFAULT_ACCEPT_CONTENT: list[str] = DEFAULTS["accept_content"]


def _to_bool(value: Any) -> bool:
    found = yes_or_no(value)
    if found is None:
        raise ValueError(f"not a yes/no value: {value!r}")
    return found


class Option:
    """One setting: its ``default`` and ``type`` (``"string"``, ``"int"``, ``"float"``,
    ``"bool"``, ``"dict"``, ``"tuple"``, ``"list"`` or ``"any"``); other keyword arguments
    become attributes."""

    typemap: dict[str, Any] = {
        "string": str,
        "int": int,
        "float": float,
        "bool": _to_bool,
        "dict": dict,
        "tuple": tuple,
        "list": list,
        "any": lambda value: value,
    }

    def __init__(self, default: Any = None, *args: Any, **kwargs: Any) -> None:
        self.default = default
        self.type: str = kwargs.pop("type", None) or "string"
        for attr, value in kwargs.items():
            setattr(self, attr, value)

    def to_python(self, value: Any) -> Any:
        """``value`` (from a string, say) as this setting's type."""
        return self.typemap[self.type](value)

    def __repr__(self) -> str:
        return f"<Option: type->{self.type} default->{self.default!r}>"


def _type_of(value: Any) -> str:
    if value is None:
        return "any"
    kinds = (bool, "bool"), (int, "int"), (float, "float"), (str, "string")
    for kind, name in (*kinds, (dict, "dict"), (tuple, "tuple"), (list, "list")):
        if isinstance(value, kind):
            return name
    return "any"


# Settings Celery keeps outside any namespace though their names hold an underscore.
_TOP_LEVEL = frozenset({"accept_content", "result_accept_content", "enable_utc"})


def _namespaces() -> dict[str, Any]:
    found: dict[str, Any] = {}
    for name, default in DEFAULTS.items():
        option = Option(default, type=_type_of(default))
        prefix, _, rest = name.partition("_")
        if not rest or name in _TOP_LEVEL:
            found[name] = option
        else:
            found.setdefault(prefix, {})[rest] = option
    return found


#: namespace -> {name in it -> Option}, and the settings outside any (``imports``, ``timezone``)
NAMESPACES: dict[str, Any] = _namespaces()


def flatten(d: Mapping[str, Any], root: str = "") -> Iterator[tuple[str, Option]]:
    """(full setting name, Option) for every setting in ``d`` (:data:`NAMESPACES`)."""
    for key, value in d.items():
        if isinstance(value, Mapping):
            yield from flatten(value, f"{root}{key}_")
        else:
            yield f"{root}{key}", value


_OPTIONS = dict(flatten(NAMESPACES))


class searchresult(NamedTuple):
    """What :func:`find` found: the namespace (None outside one), the key and the Option
    (or the namespace's dict, when ``name`` is a namespace)."""

    namespace: str | None
    key: str
    type: Any


def find(name: str, namespace: str = "celery") -> searchresult:
    """Find a setting by its name in ``namespace``, in any namespace, or by its full name;
    a namespace's own name finds the namespace. Raises KeyError for an unknown one."""
    name, namespace = name.lower(), namespace.lower()
    options = NAMESPACES.get(namespace)
    if isinstance(options, dict) and name in options:
        return searchresult(namespace, name, options[name])
    for ns, options in NAMESPACES.items():
        if ns == name:
            return searchresult(None, ns, options)
        if isinstance(options, dict) and name in options:
            return searchresult(ns, name, options[name])
    return searchresult(None, name, _OPTIONS[name])
