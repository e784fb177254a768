"""The application: configuration, the task registry, connections, and the doors to
publishing (:mod:`celeriac.producer`), results and remote control.

from celeriac import Celery
app = Celery("proj", broker="sqlite:///celeriac.db")

@app.task
def add(x, y):
    return x + y
"""

from __future__ import annotations

import datetime as dt
import importlib
import logging
import os
import threading
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, overload

from .. import _state, plugins
from ..backends.base import ResultBackend, create_backend
from ..brokers.base import Broker, create_broker
from ..canvas import Signature, maybe_signature, register_builtins
from ..config import DEFAULT_BROKER_URL, Settings, redis_backend_options
from ..control import Control
from ..events import Events
from ..exceptions import ImproperlyConfigured, NotRegistered
from ..local import Proxy
from ..message import Encoded, Message
from ..producer import Producer
from ..result import AsyncResult, GroupResult
from ..result import AsyncResult as _AsyncResult
from ..resultstore import ResultStore
from ..routing import (
    Queue,
)
from ..signals import Signal
from ..subscriptions import subscribers
from ..task import Task, build_task_class
from ..utils.imports import symbol_by_name
from ..utils.time import get_timezone
from .connection import (
    Connection,
    PooledProducer,
    ResourcePool,
    connection_or_acquire,
    producer_or_acquire,
)
from .loader import AppLoader

logger = logging.getLogger("celeriac.app")

# Tasks made with @shared_task: added to every app, now and later.
_shared_task_makers: list[Callable[[Celeriac], Task]] = []


class TaskRegistry(dict[str, Task]):
    """Task name -> task; a missing name raises :class:`NotRegistered`."""

    def __missing__(self, key: str) -> Task:
        raise NotRegistered(key)

    def regular(self) -> dict[str, Task]:
        return {k: v for k, v in self.items() if not k.startswith(("celeriac.", "celery."))}


class Celeriac:
    """A celeriac application. ``Celery`` is the same class, for drop-in use."""

    #: sent (``sender``: the app) when the app is finalized, before ``on_after_configure``;
    #: a subclass may define ``on_configure(self)`` as a method instead, as in Celery 3
    on_configure: Any = None

    def __init__(
        self,
        main: str | None = None,
        broker: str | None = None,
        backend: str | None = None,
        include: Iterable[str] | None = None,
        config_source: Any = None,
        namespace: str | None = None,
        set_as_current: bool = True,
        task_cls: type[Task] | str | None = None,
        autofinalize: bool = True,
        strict_typing: bool = True,
        changes: Mapping[str, Any] | None = None,
        fixups: Iterable[str] | None = None,
        loader: Any = None,
        **preconf: Any,
    ) -> None:
        _refuse_components(preconf, loader)
        self.main = main
        self.autofinalize = autofinalize
        #: check a call's arguments against the task's signature, unless a task says
        self.strict_typing = strict_typing
        self.conf = Settings(preconf)
        if changes:
            self.conf.update(changes)
        if broker:
            self.conf.broker_url = broker
        if backend:
            self.conf.result_backend = backend
        if include:
            self.conf.include = tuple(include)
        if config_source is not None:
            self.config_from_object(config_source, namespace=namespace)
        wanted = None if fixups is None else " ".join(fixups)  # Celery's paths name them
        self._fixups = [
            plugins.load(plugins.FIXUPS, name, "fix-up")
            for name in sorted(plugins.entry_points(plugins.FIXUPS))
            if wanted is None or name in wanted
        ]
        for fixup in self._fixups:
            fixup.install(self)
        self.task_cls: type[Task] = _resolve_task_cls(task_cls)
        self._tasks = TaskRegistry()
        #: start-up steps added by the project: ``app.steps["worker"].add(MyStep)``
        self.steps: defaultdict[str, set[Any]] = defaultdict(set)
        #: command-line options added by the project: ``app.user_options["preload"].add(...)``
        self.user_options: defaultdict[str, set[Any]] = defaultdict(set)
        self._finalized = False
        register_builtins(self)
        self._finalize_lock = threading.RLock()
        self._pending_autodiscover: list[tuple[Any, str]] = []
        self._conn_lock = threading.Lock()
        self._broker: Broker | None = None
        self._backend: ResultBackend | None = None
        self._backend_resolved = False
        self._inherited: list[Any] = []  # connections from a parent process, never closed here
        self.producer = Producer(self)
        self._event_subscribers: dict[str, set[str]] = {}
        self.results = ResultStore(self)
        if self.on_configure is None:
            self.on_configure = Signal("on_configure")
        self.on_after_configure = Signal("on_after_configure")
        self.on_after_finalize = Signal("on_after_finalize")
        #: sent in a forked child (``sender``: the app), once its inherited connections are set
        #: aside
        self.on_after_fork = Signal("on_after_fork")
        self._control: Any = None
        self._events: Events | None = None
        self._loader: Any = None
        _state.register_app(self)
        if set_as_current:
            _state.set_current_app(self)

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.main or '__main__'} at {id(self):#x}>"

    def set_current(self) -> None:
        """Make this the current app (``shared_task`` and ``current_app`` resolve to it)."""
        _state.set_current_app(self)

    def set_default(self) -> None:
        """Make this the app used when no other is current (here: the current app)."""
        _state.set_current_app(self)

    # -- configuration ------------------------------------------------------------------

    def config_from_object(
        self, obj: Any, silent: bool = False, force: bool = False, namespace: str | None = None
    ) -> None:
        """Read settings from a module, class, object, mapping or ``"module:attr"`` path, as
        they are when asked for (a test may change them afterwards, as in Celery).

        ``namespace="CELERY"`` reads only ``CELERY_``-prefixed names (Django settings)."""
        try:
            self.conf.add_source(obj, namespace=namespace)
        except ImproperlyConfigured:
            if silent:
                return
            raise

    def add_defaults(self, fun_or_mapping: Any) -> None:
        """Settings used where nothing else sets them: a mapping, a module or object, or a
        function returning one (Flask's ``celery.add_defaults(app.config)``)."""
        self.conf.add_defaults(fun_or_mapping)

    def config_from_envvar(self, variable_name: str, silent: bool = False, **kw: Any) -> None:
        """Load settings from the module named by an environment variable."""
        module = os.environ.get(variable_name)
        if not module:
            if silent:
                return
            raise ImproperlyConfigured(f"environment variable {variable_name} is not set")
        self.config_from_object(module, silent=silent, **kw)

    @property
    def timezone(self) -> dt.tzinfo:
        tz = self.conf.timezone
        return get_timezone(None if self.conf.enable_utc and not tz else tz)

    def now(self) -> dt.datetime:
        return dt.datetime.now(self.timezone)

    # -- tasks ----------------------------------------------------------------------------

    @overload
    def task(self, fun: Callable[..., Any], **options: Any) -> Task: ...
    @overload
    def task(self, *, name: str | None = None, **options: Any) -> Callable[..., Task]: ...

    def task(self, *args: Any, **options: Any) -> Any:
        """Decorator making a function a task: ``@app.task`` or ``@app.task(bind=True, ...)``."""

        def decorate(fun: Callable[..., Any]) -> Task:
            return self._task_from_fun(fun, **options)

        return _decorated(args, decorate)

    def _task_from_fun(self, fun: Callable[..., Any], **options: Any) -> Task:
        name = options.get("name") or self.gen_task_name(fun.__name__, fun.__module__)
        existing = self._tasks.get(name)
        if existing is not None and getattr(existing, "_fun", None) is fun:
            return existing
        base = options.get("base") or self.task_cls
        options = dict(options)
        if not self.strict_typing and not any("typing" in vars(c) for c in base.__mro__[:-2]):
            options.setdefault("typing", False)  # unless the task or its base class says
        cls = build_task_class(fun, self, name, base, options)
        task = cls()
        self._tasks[name] = task
        if self._finalized:
            self._bind(task)
        return task

    def _bind(self, task: Task) -> None:
        """Apply ``task_annotations`` to ``task`` and call its class's ``on_bound(app)`` hook
        (once per task and app): at finalize for the tasks made before, as Celery binds
        them then, at once for those made after."""
        self._annotate(task)
        if task.__dict__.get("_bound_to") is not self:
            task.__dict__["_bound_to"] = self
            type(task).on_bound(self)

    def _annotate(self, task: Task) -> None:
        """Apply ``task_annotations`` to ``task``'s class, as Celery does: a dict of task name
        (or ``"*"``) to attributes, an object whose ``annotate(task)`` returns such a dict
        (or None), an import path of either, or a list of these."""
        annotations = self.conf.task_annotations
        if not annotations:
            return
        if not isinstance(annotations, (list, tuple)):
            annotations = [annotations]
        for annotation in annotations:
            if isinstance(annotation, str):
                annotation = plugins.import_path(annotation, "task annotation")
                if isinstance(annotation, type):
                    annotation = annotation()
            if isinstance(annotation, Mapping):
                found = [annotation.get(task.name), annotation.get("*")]
            else:
                found = [annotation.annotate(task)]
            for attrs in found:
                for key, value in (attrs or {}).items():
                    if key.startswith("@"):
                        raise ImproperlyConfigured(
                            f"task_annotations: {key!r} (wrapping a method) is not supported; "
                            "subclass Task and pass it as base= instead"
                        )
                    setattr(type(task), key, value)

    def gen_task_name(self, name: str, module: str) -> str:
        if module == "__main__" and self.main:
            module = self.main
        return f"{module}.{name}"

    @property
    def tasks(self) -> TaskRegistry:
        """The registered tasks (shared tasks and autodiscovered modules are loaded first)."""
        if not self._finalized:
            self.finalize()
        return self._tasks

    def finalize(self, auto: bool = False) -> None:
        """Register shared tasks and import ``include``/``imports``/autodiscovered modules."""
        with self._finalize_lock:
            if self._finalized:
                return
            self._finalized = True
            if isinstance(self.on_configure, Signal):
                self.on_configure.send(sender=self)
            else:  # a subclass's method
                self.on_configure()
            self.on_after_configure.send(sender=self, source=self.conf)
            for make in list(_shared_task_makers):
                make(self)
            for module in (*self.conf.imports, *self.conf.include):
                importlib.import_module(module)
            while self._pending_autodiscover:
                packages, related = self._pending_autodiscover.pop(0)
                self._import_related(packages, related)
            for task in list(self._tasks.values()):
                self._bind(task)
            self.on_after_finalize.send(sender=self)

    def add_periodic_task(
        self,
        schedule: Any,
        sig: Any,
        args: Sequence[Any] = (),
        kwargs: dict[str, Any] | None = None,
        name: str | None = None,
        **opts: Any,
    ) -> str:
        """Add an entry to ``beat_schedule``: send ``sig`` on ``schedule`` (seconds, a
        timedelta, crontab, solar or clocked); returns the entry's name."""
        signature = maybe_signature(sig, self)
        if signature is None:
            raise TypeError("add_periodic_task needs a signature, e.g. task.s(1, 2)")
        key = name or f"{signature!r}"
        entry: dict[str, Any] = {
            "task": signature.task,
            "schedule": schedule,
            "args": [*signature.args, *args],
            "kwargs": {**signature.kwargs, **(kwargs or {})},
            "options": {**signature.options, **opts.pop("options", {}), **opts},
        }
        for flag in ("relative", "max_active", "one_off", "start_time", "expires"):
            if flag in entry["options"]:
                entry[flag] = entry["options"].pop(flag)
        self.conf.beat_schedule = {**(self.conf.beat_schedule or {}), key: entry}
        return key

    # -- events ---------------------------------------------------------------------------

    def on_event(self, event: str) -> Callable[[Any], Any]:
        """Subscribe a task to a named event: ``send_event(event, payload)`` sends it with
        the payload as its argument. Stack it over ``@app.task``."""

        def subscribe(task: Any) -> Any:
            self._event_subscribers.setdefault(event, set()).add(task.name)
            return task

        return subscribe

    def send_event(self, event: str, payload: Any = None, **options: Any) -> list[_AsyncResult]:
        """Send every task subscribed to ``event`` (here or by any worker that has started)
        with ``payload``, in one publish; returns their results."""
        names = sorted(subscribers(self, event))
        messages = [
            self.build_message(name, [payload], {}, headers={"event": event}, **options)
            for name in names
        ]
        if messages:
            self.publish(messages)
        return [AsyncResult(m.id, app=self, task_name=m.task) for m in messages]

    def autodiscover_tasks(
        self,
        packages: Iterable[str] | Callable[[], Iterable[str]] | None = None,
        related_name: str = "tasks",
        force: bool = False,
    ) -> None:
        """Import ``<package>.tasks`` for each package, when the app is finalized or at once
        with ``force``. Without ``packages``, the fix-ups say which (Django: every installed
        app)."""
        if packages is None:
            packages = self._fixup_packages
        if force or self._finalized:
            self._import_related(packages, related_name)
        else:
            self._pending_autodiscover.append((packages, related_name))

    def _fixup_packages(self) -> list[str]:
        return [package for fixup in self._fixups for package in fixup.packages()]

    @staticmethod
    def _import_related(packages: Any, related_name: str) -> None:
        """Import each package's ``related_name`` module, as Celery: a package that cannot
        be imported may name a class in its parent (an app config, ``"app.AppConfig"``), whose
        module is used then; a missing related module is skipped, an import error inside it
        is raised."""
        for package in packages() if callable(packages) else packages:
            try:
                importlib.import_module(package)
            except ModuleNotFoundError:
                package = package.rpartition(".")[0]
                if not package or not related_name:
                    raise
            if not related_name:
                continue
            name = f"{package}.{related_name}"
            try:
                importlib.import_module(name)
            except ModuleNotFoundError as exc:
                if exc.name != name:
                    raise

    def register_task(self, task: Task | type[Task]) -> Task:
        """Register a class-based task (a Task subclass with ``name`` and ``run``)."""
        instance = task() if isinstance(task, type) else task
        if not instance.name:
            type(instance).name = self.gen_task_name(
                type(instance).__name__, type(instance).__module__
            )
        type(instance).app = self
        self._tasks[instance.name] = instance
        if self._finalized:
            self._bind(instance)
        return instance

    # -- connections ----------------------------------------------------------------------

    @property
    def broker(self) -> Broker:
        """The broker, created from ``broker_url`` on first use."""
        if self._broker is None:
            with self._conn_lock:
                if self._broker is None:
                    url = self.conf.broker_url or DEFAULT_BROKER_URL
                    self._broker = create_broker(url, self.conf.broker_transport_options)
        return self._broker

    @property
    def backend(self) -> ResultBackend | None:
        """The result backend (``result_backend``; by default the broker's own store where
        the broker can keep results), or None."""
        if not self._backend_resolved:
            with self._conn_lock:
                if not self._backend_resolved:
                    url = self.conf.result_backend
                    if url is None:
                        broker_url = self.conf.broker_url or DEFAULT_BROKER_URL
                        if plugins.serves(plugins.BACKENDS, broker_url):
                            url = broker_url
                    if url and url not in ("disabled", "none"):
                        options = {
                            **redis_backend_options(self.conf),
                            **(self.conf.result_backend_transport_options or {}),
                        }
                        self._backend = create_backend(url, options)
                        self._backend.app = self
                    self._backend_resolved = True
        return self._backend

    def _after_fork(self) -> None:
        # The child must not use (or close) its parent's connections.
        self._inherited.extend(x for x in (self._broker, self._backend) if x is not None)
        self._broker = None
        self._backend = None
        self._backend_resolved = False
        self._conn_lock = threading.Lock()
        self.on_after_fork.send(sender=self)

    def close(self) -> None:
        """Close broker, backend and event-log connections."""
        if self._events is not None:
            self._events.close()
        for conn in (self._broker, self._backend):
            if conn is not None:
                conn.close()

    @property
    def loader(self) -> Any:
        """Celery's loader object (:class:`celeriac.app.loader.AppLoader`)."""
        if self._loader is None:
            self._loader = AppLoader(self)
        return self._loader

    @property
    def events(self) -> Events:
        """Worker and task events: ``app.events.Receiver``, ``State``, ``Dispatcher``."""
        if self._events is None:
            with self._conn_lock:
                if self._events is None:
                    self._events = Events(self)
        return self._events

    def connection(self, url: str | None = None, **_: Any) -> Connection:
        """Celery's broker connection, a handle on the app's broker (see
        :mod:`celeriac.app.connection`); ``connection_for_read`` and ``_for_write`` too."""
        return Connection(self, url)

    connection_for_read = connection_for_write = broker_connection = connection

    @property
    def pool(self) -> ResourcePool[Connection]:
        """Celery's connection pool: ``with app.pool.acquire(block=True) as conn:``."""
        return ResourcePool(self.connection)

    @property
    def producer_pool(self) -> ResourcePool[PooledProducer]:
        """Celery's producer pool: ``app.producer_pool.acquire(block=True)``."""
        return ResourcePool(lambda: PooledProducer(self.connection()))

    def producer_or_acquire(self, producer: PooledProducer | None = None) -> Any:
        """``with app.producer_or_acquire() as producer: t.apply_async(producer=producer)``."""
        return producer_or_acquire(self, producer)

    def connection_or_acquire(self, connection: Connection | None = None, **kw: Any) -> Any:
        """``with app.connection_or_acquire() as conn: t.apply_async(connection=conn)``."""
        return connection_or_acquire(self, connection, **kw)

    @property
    def control(self) -> Any:
        """Remote control: ``app.control.revoke(task_id)``."""
        if self._control is None:
            self._control = Control(self)
        return self._control

    # -- publishing -----------------------------------------------------------------------

    def AsyncResult(self, task_id: str, **kwargs: Any) -> _AsyncResult:
        """The result of the task with this id."""
        return AsyncResult(task_id, app=self, **kwargs)

    def GroupResult(self, group_id: str, results: Sequence[Any] = (), **kwargs: Any) -> Any:
        """The result of a group: ``app.GroupResult(id, [app.AsyncResult(i), ...])``."""
        return GroupResult(group_id, list(results), app=self, **kwargs)

    def signature(self, name: Any, args: Any = None, kwargs: Any = None, **options: Any) -> Any:
        """A signature of the task ``name`` (it need not be registered here)."""
        return Signature(name, args, kwargs, app=self, **options)

    @property
    def queues(self) -> dict[str, Queue]:
        """The queues declared in ``task_queues``, by name."""
        return self.producer.queues

    def send_task(
        self,
        name: str,
        args: Sequence[Any] | None = None,
        kwargs: dict[str, Any] | None = None,
        *,
        retry: bool | None = None,
        retry_policy: dict[str, Any] | None = None,
        add_to_parent: bool = True,
        **options: Any,
    ) -> _AsyncResult:
        """Send a task by name (it need not be registered here). ``options`` are those of
        :meth:`build_message`: countdown, eta, task_id, expires, priority, queue, link, ..."""
        task = options.get("task")
        message = self.producer.build_message(name, args, kwargs, **options)
        self.publish([message], retry=retry, retry_policy=retry_policy, task=task)
        request = _state.current_request.get()
        result = AsyncResult(message.id, app=self, task_name=name)
        result.ignored = message.ignore_result
        if add_to_parent and request is not None and not request.is_eager:
            request.children.append(result)
        return result

    def build_message(self, name: str, *args: Any, **options: Any) -> Message:
        """Resolve routing and options into a :class:`Message` (not yet sent); see
        :meth:`celeriac.producer.Producer.build_message`."""
        return self.producer.build_message(name, *args, **options)

    def publish(
        self,
        messages: Sequence[Message | Encoded],
        retry: bool | None = None,
        retry_policy: dict[str, Any] | None = None,
        task: Task | None = None,
    ) -> None:
        """Encode and send messages in one batch, retrying per ``retry_policy`` on errors."""
        self.producer.publish(messages, retry, retry_policy, task)

    # -- running --------------------------------------------------------------------------

    def Worker(self, **kwargs: Any) -> Any:
        """A worker for this app (see :class:`celeriac.worker.Worker`)."""
        from ..worker import Worker

        return Worker(self, **kwargs)

    def worker_main(self, argv: list[str] | None = None) -> None:
        """Run the worker as the CLI would: ``app.worker_main(["worker", "-l", "info"])``."""
        from ..cli import main

        main(["-A", _AppRef(self), *(argv or ["worker"])])

    start = worker_main

    def Beat(self, **options: Any) -> EmbeddedBeat:
        """Celery's ``app.Beat(loglevel=..., scheduler=..., schedule=...).run()``: beat in
        this process, as ``celeriac beat`` runs it, until SIGTERM or SIGINT."""
        return EmbeddedBeat(self, options)

    @property
    def WorkController(self) -> type:
        """The worker class (Celery's name; :meth:`Worker` makes one for this app)."""
        from ..worker import Worker

        return Worker

    @property
    def current_task(self) -> Task | None:
        """The task running in this thread or coroutine (in a worker or eagerly), or None."""
        task: Task | None = _state.get_current_task()
        return task

    @property
    def current_worker_task(self) -> Task | None:
        """:attr:`current_task`, when a worker runs it (not eagerly)."""
        request = _state.current_request.get()
        return None if request is None or request.is_eager else request.task

    @property
    def finalized(self) -> bool:
        """Are the tasks registered and the configuration read (see :meth:`finalize`)?"""
        return self._finalized

    configured = finalized

    def setup_security(self, *args: Any, **kwargs: Any) -> None:
        """Celery's message signing (the ``auth`` serializer): refused, as celeriac does
        not sign messages."""
        from ..security import setup_security

        setup_security(*args, **kwargs)

    def either(self, default_key: str, *defaults: Any) -> Any:
        """The first of ``defaults`` that is not None, else the setting ``default_key``."""
        return next((d for d in defaults if d is not None), self.conf.get(default_key))

    # Last in the class: a method's annotation that names Task means the task class.
    @property
    def Task(self) -> type[Task]:
        """The base class of this app's tasks (``task_cls``); assign a subclass to change it
        for the tasks made afterwards, as Flask's Celery pattern does."""
        return self.task_cls

    @Task.setter
    def Task(self, cls: type[Task]) -> None:
        self.task_cls = cls


#: ``app.Beat(...)``'s options and the ``celeriac beat`` flags they become; Celery's options
#: about its console output are accepted and change nothing
_BEAT_FLAGS = {
    "loglevel": "-l",
    "logfile": "-f",
    "scheduler": "-S",
    "scheduler_cls": "-S",
    "schedule": "-s",
    "max_interval": "--max-interval",
    "pidfile": "--pidfile",
}
_BEAT_IGNORED = frozenset(
    {"quiet", "no_color", "redirect_stdouts", "redirect_stdouts_level", "socket_timeout"}
)


class EmbeddedBeat:
    """What ``app.Beat(**options)`` returns: ``run()`` runs beat in this process."""

    def __init__(self, app: Celeriac, options: dict[str, Any]) -> None:
        unknown = set(options) - _BEAT_FLAGS.keys() - _BEAT_IGNORED
        if unknown:
            raise TypeError(
                f"app.Beat() does not take {', '.join(sorted(unknown))} (it takes "
                f"{', '.join(sorted(_BEAT_FLAGS))})"
            )
        self.app = app
        self.argv = ["beat"]
        for key, value in options.items():
            if key in _BEAT_FLAGS and value is not None:
                if key.startswith("scheduler") and not isinstance(value, str):
                    value = f"{value.__module__}:{value.__qualname__}"
                self.argv += [_BEAT_FLAGS[key], str(value)]

    def run(self) -> None:
        """Run beat until SIGTERM or SIGINT."""
        from ..cli import main

        main(["-A", _AppRef(self.app), *self.argv])


#: Celery's component classes, given to ``Celery(...)`` by path: celeriac has its own
_COMPONENTS = ("amqp", "events", "log", "control", "backend_cls", "registry_cls")
_CELERY_LOADERS = (
    "app",
    "default",
    "celery.loaders.app:AppLoader",
    "celery.loaders.default:Loader",
)


def _refuse_components(preconf: dict[str, Any], loader: Any) -> None:
    """Celery's ``Celery(log=..., events=..., amqp=..., control=..., loader=...)`` name
    classes to replace its parts with: refused at once (a project's own class would be
    silently unused), save Celery's own loaders."""
    given = [name for name in _COMPONENTS if preconf.pop(name, None) is not None]
    if loader is not None and str(loader) not in _CELERY_LOADERS:
        given.append("loader")
    if given:
        raise ImproperlyConfigured(
            f"Celery({', '.join(f'{n}=...' for n in given)}): celeriac has its own "
            "components and does not take classes to replace them; subclass celeriac's "
            "Celery (or Task, with task_cls=) for what the project changes"
        )


class _AppRef(str):
    """An already-loaded app passed where the CLI expects an app path."""

    def __new__(cls, app: Celeriac) -> _AppRef:
        obj = super().__new__(cls, app.main or "__main__")
        obj.app = app  # type: ignore[attr-defined]
        return obj


Celery = Celeriac
_state.set_default_app_factory(lambda: Celeriac("default"))


def _resolve_task_cls(task_cls: type[Task] | str | None) -> type[Task]:
    if task_cls is None:
        return Task
    if isinstance(task_cls, str):
        cls: type[Task] = symbol_by_name(task_cls)
        return cls
    return task_cls


def shared_task(*args: Any, **options: Any) -> Any:
    """Like ``@app.task`` but not tied to one app: the task is added to every app, so
    reusable modules (Django apps) need not import the project's app."""

    def decorate(fun: Callable[..., Any]) -> Any:
        def make(app: Celeriac) -> Task:
            return app._task_from_fun(fun, **options)

        _shared_task_makers.append(make)
        for app in _state.all_apps():
            if app._finalized:
                make(app)
        return _SharedTaskProxy(fun, options)

    return _decorated(args, decorate)


def _decorated(args: tuple[Any, ...], decorate: Callable[[Callable[..., Any]], Any]) -> Any:
    """``@task``, ``@task(**options)`` and ``task(fun, **options)``, as Celery takes them."""
    if not args:
        return decorate
    if len(args) == 1 and callable(args[0]):
        return decorate(args[0])
    raise TypeError(f"@task takes a function and keyword options, not {args!r}")


class _SharedTaskProxy(Proxy):
    """Stands for a shared task: the current app's task, the very instance its workers run
    (so ``task.request``, ``task.retry`` and ``mock.patch`` of its attributes work), found
    once per app."""

    def __init__(self, fun: Callable[..., Any], options: dict[str, Any]) -> None:
        super().__init__(self._current_task, name=fun.__name__, __doc__=fun.__doc__)
        object.__setattr__(self, "_fun", fun)
        object.__setattr__(self, "_options", options)
        object.__setattr__(self, "_found", (None, None))  # (app, its task)
        object.__setattr__(self, "__module__", fun.__module__)
        object.__setattr__(self, "__wrapped__", fun)

    def _current_task(self) -> Task:
        app = _state.get_current_app()
        found_app, task = self._found
        if found_app is not app or task is None:
            task = app._task_from_fun(self._fun, **self._options)
            object.__setattr__(self, "_found", (app, task))
        return task

    def __repr__(self) -> str:
        return f"<@shared_task: {self._fun.__module__}.{self._fun.__name__}>"
