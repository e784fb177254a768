"""Celery's small utility names that projects import: ``celery.local``,
``celery.utils.functional``, ``celery.utils.imports``, ``celery.utils``,
``celery.app.defaults`` and ``celery.app.app_or_default``."""

from __future__ import annotations

import copy
import json
import os
import pickle
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from celeriac import Celery, shared_task
from celeriac.app import app_or_default, default_app
from celeriac.app.defaults import (
    DEFAULT_PROCESS_LOG_FMT,
    DEFAULT_TASK_LOG_FMT,
    DEFAULTS,
    NAMESPACES,
    SETTING_KEYS,
    Option,
    find,
    flatten,
)
from celeriac.local import PromiseProxy, Proxy, class_property, maybe_evaluate, try_import
from celeriac.task import Task
from celeriac.utils import functional
from celeriac.utils.functional import (
    LRUCache,
    chunks,
    dictfilter,
    first,
    firstmethod,
    fun_accepts_kwargs,
    fun_takes_argument,
    is_list,
    lazy,
    mattrgetter,
    maybe,
    maybe_list,
    memoize,
    mlazy,
    noop,
    padlist,
    pass1,
    regen,
    uniq,
)
from celeriac.utils.imports import (
    NotAPackage,
    find_module,
    gen_task_name,
    import_from_cwd,
    instantiate,
    qualname,
    reload_from_cwd,
    symbol_by_name,
)

# -- celeriac.local ------------------------------------------------------------------------


def test_proxy_forwards_to_what_its_function_returns_each_time() -> None:
    target: list[Any] = [1, 2, 3]
    proxy = Proxy(lambda: target)
    p: Any = proxy
    assert isinstance(p, list) and p.__class__ is list
    assert (len(p), p[0], 2 in p, list(p), bool(p)) == (3, 1, True, [1, 2, 3], True)
    assert (str(p), repr(p), p == [1, 2, 3], p != [1], p + [4], [0] + p) == (  # noqa: RUF005
        "[1, 2, 3]",
        "[1, 2, 3]",
        True,
        True,
        [1, 2, 3, 4],
        [0, 1, 2, 3],
    )
    p.append(4)
    p[0] = 9
    assert target == [9, 2, 3, 4] and proxy._get_current_object() is target
    target = ["new"]
    assert list(p) == ["new"]  # looked up again


def test_proxy_arithmetic_calls_and_names() -> None:
    n: Any = Proxy(lambda x, y: x + y, args=(2,), kwargs={"y": 3})
    assert (n + 1, 1 + n, n * 2, n - 1, 10 - n, -n, abs(n), n**2, 2**n, divmod(n, 2)) == (
        6,
        6,
        10,
        4,
        5,
        -5,
        5,
        25,
        32,
        (2, 1),
    )
    assert (int(n), float(n), n < 6, n >= 5, hash(n)) == (5, 5.0, True, True, hash(5))

    def greet(who: str) -> str:
        """Say hello."""
        return f"hello {who}"

    f: Any = Proxy(lambda: greet)
    assert f("you") == "hello you"
    assert (f.__name__, f.__doc__, f.__module__) == ("greet", "Say hello.", __name__)
    named: Any = Proxy(lambda: greet, name="hi", __doc__="Other.")
    assert (named.__name__, named.__doc__) == ("hi", "Other.")
    assert Proxy.__module__ == "celeriac.local" and "Stands for" in (Proxy.__doc__ or "")


def test_proxy_pickles_and_copies_as_its_object() -> None:
    p: Any = Proxy(lambda: {"a": 1})
    assert pickle.loads(pickle.dumps(p)) == {"a": 1}
    assert copy.copy(p) == {"a": 1} and copy.deepcopy(p) == {"a": 1}


def test_promise_proxy_evaluates_once_and_runs_then_callbacks() -> None:
    made: list[int] = []
    then: list[str] = []

    def make() -> dict[str, str]:
        made.append(1)
        return {"k": "v"}

    p: Any = PromiseProxy(make)
    p.__then__(then.append, "first")
    assert not p.__evaluated__() and made == []
    assert p["k"] == "v" and p["k"] == "v" and made == [1]
    assert p.__evaluated__() and then == ["first"]
    p.__then__(then.append, "now")
    assert then == ["first", "now"]
    assert maybe_evaluate(p) == {"k": "v"} and p.__maybe_evaluate__() is maybe_evaluate(p)
    assert maybe_evaluate(3) == 3 and isinstance(p, dict)


def test_class_property_and_try_import() -> None:
    class Thing:
        @class_property
        def label(cls: Any) -> str:
            return cls.__name__.lower()

    assert Thing.label == "thing" and Thing().label == "thing"
    assert try_import("json") is json and try_import("no_such_module_here", 7) == 7


# -- celeriac.utils.functional -------------------------------------------------------------


def test_small_helpers() -> None:
    noop(1, a=2)
    assert pass1(1, 2, x=3) == 1
    assert (maybe_list(1), maybe_list([1]), maybe_list("ab"), maybe_list(None)) == (
        [1],
        [1],
        ["ab"],
        None,
    )
    assert is_list([1]) and not is_list("ab") and not is_list({})
    assert first(None, [None, 0, 1]) == 0 and first(lambda x: x > 1, [1, 2, 3]) == 2
    assert first(lambda x: False, [1]) is None
    assert list(chunks(iter(range(7)), 3)) == [[0, 1, 2], [3, 4, 5], [6]]
    assert list(chunks(range(4), 2)) == [[0, 1], [2, 3]]
    assert padlist(["a"], 3) == ["a", None, None] and padlist([1, 2, 3], 2) == [1, 2]
    assert mattrgetter("real", "nope")(1) == {"real": 1, "nope": None}
    assert list(uniq([3, 1, 3, 2, 1])) == [3, 1, 2]
    assert dictfilter({"a": None, "b": 1}, c=None, e=2) == {"b": 1, "e": 2}
    assert dictfilter(x=None, y=0) == {"y": 0}
    assert maybe(int, "3") == 3 and maybe(int, None) is None
    assert functional.maybe_evaluate is maybe_evaluate
    assert functional.is_numeric_value(1.5) and not functional.is_numeric_value(True)


def test_firstmethod_skips_objects_without_it_and_none_replies() -> None:
    class Router:
        def route(self, name: str) -> str | None:
            return f"q-{name}" if name != "skip" else None

    find_route = firstmethod("route")
    assert find_route([object(), lazy(Router)], "x") == "q-x"
    assert find_route([Router()], "skip") is None


def test_regen_reads_lazily_and_can_be_read_again() -> None:
    pulled: list[int] = []

    def numbers() -> Iterator[int]:
        for i in range(5):
            pulled.append(i)
            yield i

    r: Any = regen(numbers())
    assert r[1] == 1 and pulled == [0, 1]
    assert bool(r) and pulled == [0, 1]
    assert list(r) == [0, 1, 2, 3, 4] and list(r) == [0, 1, 2, 3, 4] and pulled == list(range(5))
    assert (len(r), r[-1], r[1:3], 3 in r, r == [0, 1, 2, 3, 4]) == (5, 4, [1, 2], True, True)
    assert isinstance(r, list) and json.dumps(r) == "[0, 1, 2, 3, 4]"
    assert pickle.loads(pickle.dumps(r)) == [0, 1, 2, 3, 4]
    assert not regen(iter([]))
    items = [1]
    assert regen(items) is items


def test_lazy_and_mlazy() -> None:
    calls: list[int] = []

    def compute(n: int) -> int:
        calls.append(n)
        return n + 3

    value = lazy(compute, 1)
    assert value() == 4 and value.evaluate() == 4 and maybe_evaluate(value) == 4 and len(calls) == 3
    assert value == 4 and str(value) == "4" and repr(value) == "4"
    assert pickle.loads(pickle.dumps(lazy(sum, [1, 2]))) == 3
    once = mlazy(compute, 2)
    assert once() == 5 and once.evaluate() == 5 and calls.count(2) == 1


def test_lru_cache_drops_the_least_recently_used() -> None:
    cache = LRUCache(limit=2)
    cache["a"], cache["b"] = 1, 2
    assert cache["a"] == 1
    cache["c"] = 3
    assert list(cache) == ["a", "c"] and "b" not in cache and len(cache) == 2
    cache["n"] = 1
    assert cache.incr("n", 2) == 3 and cache["n"] == "3"
    copied = pickle.loads(pickle.dumps(cache))
    assert dict(copied) == dict(cache) and copied.limit == 2


def test_memoize_counts_hits_and_misses() -> None:
    seen: list[int] = []

    @memoize(maxsize=10)
    def square(x: int) -> int:
        seen.append(x)
        return x * x

    square_any: Any = square
    assert (square(2), square(2), square(3)) == (4, 4, 9) and seen == [2, 3]
    assert (square_any.hits, square_any.misses) == (1, 2)
    square_any.clear()
    assert square(2) == 4 and seen == [2, 3, 2] and square_any.original_func is not square


def test_function_signature_helpers() -> None:
    def plain(a: int) -> None: ...

    def open_ended(*args: Any, **kwargs: Any) -> None: ...

    assert fun_accepts_kwargs(open_ended) and not fun_accepts_kwargs(plain)
    assert fun_takes_argument("a", plain) and not fun_takes_argument("b", plain)
    assert fun_takes_argument("x", open_ended) and fun_takes_argument("x", plain, position=1)


# -- celeriac.utils.imports ----------------------------------------------------------------


def test_symbol_by_name_accepts_both_separators() -> None:
    assert symbol_by_name("os.path:join") is os.path.join
    assert symbol_by_name("os.path.join") is os.path.join
    assert symbol_by_name("collections:OrderedDict.fromkeys") is not None
    assert symbol_by_name("json") is json and symbol_by_name(len) is len
    assert symbol_by_name("short", aliases={"short": "os:sep"}) == os.sep
    assert symbol_by_name("no.such.module:x", default=3) == 3
    assert symbol_by_name("os:no_such_attr", default=4) == 4
    with pytest.raises(ImportError):
        symbol_by_name("no_such_module_here:x")
    with pytest.raises(AttributeError):
        symbol_by_name("os:no_such_attr")


def test_instantiate_and_qualname() -> None:
    from collections import Counter, OrderedDict

    assert instantiate("collections:Counter", "aab") == Counter("aab")
    assert qualname(OrderedDict) == "collections.OrderedDict"
    assert qualname(OrderedDict()) == "collections.OrderedDict"
    assert qualname(symbol_by_name) == "celeriac.utils.imports.symbol_by_name"


def test_imports_from_the_working_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "cwd_only_module_c.py").write_text("VALUE = 1\n")
    (tmp_path / "plain_module_c.py").write_text("")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "path", [p for p in sys.path if p not in ("", str(tmp_path))])
    try:
        module = import_from_cwd("cwd_only_module_c")
        assert module.VALUE == 1 and str(tmp_path) not in sys.path
        (tmp_path / "cwd_only_module_c.py").write_text("VALUE = 2\n")
        os.utime(tmp_path / "cwd_only_module_c.py", (1, 1))
        assert reload_from_cwd(module).VALUE == 2
        assert find_module("cwd_only_module_c") is module
        with pytest.raises(NotAPackage):
            find_module("plain_module_c.sub")
        with pytest.raises(ImportError):
            find_module("no_such_package_here.sub")
    finally:
        for name in ("cwd_only_module_c", "plain_module_c"):
            sys.modules.pop(name, None)


def test_gen_task_name_is_the_apps_rule() -> None:
    app = Celery("proj", broker="memory://")
    assert gen_task_name(app, "add", "proj.tasks") == "proj.tasks.add"
    assert gen_task_name(app, "add", "__main__") == "proj.add"
    assert gen_task_name(app, "add", None) == "proj.add"


def test_loader_and_task_cls_strings_resolve_through_symbol_by_name() -> None:
    app = Celery("proj", broker="memory://", task_cls="celeriac.task:Task")
    assert app.Task is Task
    assert app.loader.import_from_cwd("json") is json


# -- celeriac.utils ------------------------------------------------------------------------


def test_old_top_level_utils_names() -> None:
    import functools

    from celeriac import utils

    assert utils.gen_unique_id is utils.uuid and len(utils.gen_unique_id()) == 36
    assert utils.cached_property is functools.cached_property
    assert utils.chunks is chunks and utils.noop is noop and utils.memoize is memoize
    assert utils.instantiate is instantiate and utils.import_from_cwd is import_from_cwd
    assert utils.get_cls_by_name is symbol_by_name and utils.get_full_cls_name is qualname
    assert utils.gen_task_name is gen_task_name
    assert utils.LOG_LEVELS["FATAL"] == 50 and utils.LOG_LEVELS[50] == "CRITICAL"
    assert utils.LOG_LEVELS["INFO"] == 20 and utils.LOG_LEVELS[30] == "WARNING"
    assert utils.nodesplit(utils.nodename("w1", "host")) == ("w1", "host")


# -- celeriac.app.defaults and app_or_default ------------------------------------------------


def test_defaults_come_from_the_settings_table() -> None:
    from celeriac import config

    assert DEFAULTS is config.DEFAULTS and DEFAULTS["task_serializer"] == "json"
    assert "task_serializer" in SETTING_KEYS and "broker_url" in SETTING_KEYS
    assert "no_such_setting" not in SETTING_KEYS
    assert "worker_direct" in SETTING_KEYS  # a Celery setting celeriac refuses still exists
    assert DEFAULTS["worker_log_format"] == DEFAULT_PROCESS_LOG_FMT
    assert "%(task_name)s" in DEFAULT_TASK_LOG_FMT


def test_namespaces_options_flatten_and_find() -> None:
    assert isinstance(NAMESPACES["broker"]["url"], Option)
    assert NAMESPACES["task"]["serializer"].default == "json"
    assert NAMESPACES["task"]["serializer"].type == "string"
    assert NAMESPACES["task"]["always_eager"].type == "bool"
    assert NAMESPACES["timezone"].default is None and "enable_utc" in NAMESPACES
    flat = dict(flatten(NAMESPACES))
    assert set(flat) == SETTING_KEYS
    assert {k: o.default for k, o in flat.items()} == DEFAULTS
    found = find("serializer", "task")
    assert (found.namespace, found.key, found.type.default) == ("task", "serializer", "json")
    assert find("always_eager").namespace == "task"
    assert find("task_serializer").key == "task_serializer"
    assert find("beat")[:2] == (None, "beat")
    with pytest.raises(KeyError):
        find("no_such_setting")
    assert Option(True, type="bool").to_python("no") is False
    assert Option(1, type="int").to_python("3") == 3
    assert repr(Option(2, type="int")) == "<Option: type->int default->2>"


def test_app_or_default_and_default_app() -> None:
    app = Celery("current", broker="memory://")
    other = Celery("other", broker="memory://")
    assert app_or_default(app) is app
    assert app_or_default() is other  # the app made last is the current one
    assert isinstance(default_app, Celery) and default_app.main == "other"


def test_shared_task_proxy_is_a_proxy(monkeypatch: pytest.MonkeyPatch) -> None:
    from celeriac.app import base

    monkeypatch.setattr(base, "_shared_task_makers", [])  # not added to later tests' apps

    @shared_task
    def shared_add_c(x: int, y: int) -> int:
        """Add."""
        return x + y

    app = Celery("shared", broker="memory://")
    task: Any = shared_add_c
    assert isinstance(task, Task) and isinstance(task, Proxy)
    assert task.__name__ == "shared_add_c" and task.__doc__ == "Add."
    assert task.__module__ == __name__ and task.__wrapped__.__name__ == "shared_add_c"
    assert task.name.endswith("shared_add_c") and task(1, 2) == 3 and task.app is app
    assert repr(task).startswith("<@shared_task:")


def test_canvas_class_names_and_the_testing_helpers() -> None:
    from celeriac import chain, chord, group, signature
    from celeriac.canvas import _chain, _chord
    from celeriac.contrib.testing.app import TestApp, setup_default_app
    from celeriac.contrib.testing.worker import TestWorkController
    from celeriac.worker import Worker

    app = Celery("canvas-names", broker="memory://canvas-names")
    a, b = signature("t.a", app=app), signature("t.b", app=app)
    assert isinstance(chain(a, b), _chain) and isinstance(chord([a], b), _chord)
    assert not isinstance(group(a, b), _chain)
    assert TestWorkController is Worker

    before = app_or_default()
    test_app = TestApp()
    with setup_default_app(test_app) as inside:
        assert inside is test_app and app_or_default() is test_app
    assert app_or_default() is before


def test_text_saferepr_strtobool_and_tasktype() -> None:
    from celeriac.app.task import Task, TaskType
    from celeriac.utils.saferepr import saferepr
    from celeriac.utils.serialization import strtobool
    from celeriac.utils.text import abbr, indent, pluralize, truncate

    assert truncate("short") == "short"
    assert truncate("the quick brown fox", 12) == "the quick..."
    assert abbr("abcdefghij", 6) == "abc..." and abbr("abc", 6) == "abc" and abbr(None, 3) == "???"
    assert indent("a\nb", 2) == "  a\n  b"
    assert (pluralize(1, "task"), pluralize(2, "task")) == ("task", "tasks")

    class Broken:
        def __repr__(self) -> str:
            raise RuntimeError("no")

    assert saferepr("x" * 50, maxlen=10) == "'xxxxxx..." and "Broken" in saferepr(Broken())
    assert (strtobool("Yes"), strtobool("off"), strtobool(1)) == (True, False, 1)
    assert strtobool("si", {"si": True}) is True
    with pytest.raises(TypeError, match="Cannot coerce 'maybe'"):
        strtobool("maybe")
    assert isinstance(Task, TaskType)
