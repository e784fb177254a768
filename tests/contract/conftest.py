"""Fixtures for the broker and result-backend contract suites.

Each implementation is one entry in :data:`BROKERS` / :data:`BACKENDS`: ``url`` makes a URL
private to one test, ``prepare`` skips (or fails, in CI) when its service is not running and
empties what an earlier run left, and ``cleanup`` empties what the test left. The services are
isolated from other data on the machine: Redis uses its own database numbers, PostgreSQL its
own schemas and RabbitMQ its own virtual host (see :mod:`tests.services`).

Another distribution's broker or backend runs the same suites by naming a URL for it, where
``{tmp}`` is a directory and ``{n}`` a number, both new for each test, so each test starts
empty: ``CELERIAC_CONTRACT_BROKERS="mine=mine:///{tmp}/queue"`` (and
``CELERIAC_CONTRACT_BACKENDS``; several entries separated by spaces).
"""

from __future__ import annotations

import functools
import itertools
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from celeriac import Celery
from celeriac.backends.base import ResultBackend, create_backend
from celeriac.backends.memory import MemoryBackend
from celeriac.brokers.base import Broker, create_broker
from celeriac.brokers.memory import MemoryBroker
from services import AMQP, POSTGRES_BACKEND, POSTGRES_BROKER, REDIS_BACKEND, REDIS_BROKER

_unique = itertools.count()


@dataclass(frozen=True)
class Kind:
    """How to make one implementation for one test."""

    url: Callable[[Path], str]  # tmp_path -> a URL private to this test
    cross_process: bool  # usable by several processes at once
    prepare: Callable[[], None] | None = None  # e.g. skip when its service is not running
    cleanup: Callable[[str, list[Any]], None] | None = None  # (URL, instances made) after
    #: contract tests that do not apply, with the reason (test name -> reason)
    skips: dict[str, str] = field(default_factory=dict)


def _memory_url(tmp_path: Path) -> str:
    return f"memory://contract-{os.getpid()}-{next(_unique)}"


def _service(service: Any) -> Kind:
    return Kind(lambda tmp: service.url, True, service.prepare, service.cleanup)


BROKERS: dict[str, Kind] = {
    "memory": Kind(_memory_url, False, cleanup=lambda url, made: MemoryBroker.reset(url)),
    "sqlite": Kind(lambda tmp: f"sqlite:///{tmp}/broker.db", cross_process=True),
    "redis": _service(REDIS_BROKER),
    "amqp": _service(AMQP),
    "postgresql": _service(POSTGRES_BROKER),
}

# What Celery's rpc:// backend does not offer either: a result goes to the process that sent
# the task, once, and nothing else is stored (no expiry, no key-value store).
_ONLY_THE_SENDER = "rpc:// sends a result to the process that sent the task only, as Celery's"
_NO_VALUES = "rpc:// keeps no key-value store, as Celery's (it has no chords or saved groups)"
RPC_SKIPS = {
    "test_load_many": "rpc:// results do not expire: they live in the sender's memory",
    "test_shared_between_instances": _ONLY_THE_SENDER,
    "test_wait_for_returns_when_ready": _ONLY_THE_SENDER,
    "test_wait_for_ignores_states_that_are_not_ready": _ONLY_THE_SENDER,
    "test_expiry_and_cleanup": "rpc:// results do not expire: they live in the sender's memory",
    **{
        name: _NO_VALUES
        for name in (
            "test_incr",
            "test_incr_expiry",
            "test_incr_is_atomic_across_threads",
            "test_incr_is_atomic_across_processes",
            "test_add_to_set_counts_each_member_once",
            "test_set_members",
            "test_add_to_set_expiry",
            "test_add_to_set_has_one_last_adder",
            "test_set_get_delete_value",
            "test_set_value_only_if_absent",
            "test_set_value_only_if_absent_has_one_winner",
        )
    },
}

# Django's backends need Django configured, which lasts for the whole process: they are
# contract members only in a process of their own, started by tests/djresults/ with
# CELERIAC_CONTRACT_DJANGO=sqlite|postgresql (see djangoresults.py).
_DJANGO = os.environ.get("CELERIAC_CONTRACT_DJANGO", "")
#: the backends whose contract runs in that process of its own only
OWN_PROCESS_BACKENDS = ("django-db", "django-cache")
if _DJANGO:
    import djangoresults

    djangoresults.configure(_DJANGO)


def _django(kind: str) -> Callable[[], None]:
    return lambda: djangoresults.empty(kind)


BACKENDS: dict[str, Kind] = {
    "memory": Kind(_memory_url, False, cleanup=lambda url, made: MemoryBackend.reset(url)),
    "sqlite": Kind(lambda tmp: f"sqlite:///{tmp}/results.db", cross_process=True),
    "redis": _service(REDIS_BACKEND),
    "postgresql": _service(POSTGRES_BACKEND),
    "rpc": Kind(lambda tmp: "rpc://", False, skips=RPC_SKIPS),
}


def _fill(template: str, tmp_path: Path) -> str:
    return template.format(tmp=tmp_path, n=next(_unique))


def _extra(variable: str) -> dict[str, Kind]:
    """The implementations named in ``variable`` (``name=URL ...``)."""
    found: dict[str, Kind] = {}
    for entry in os.environ.get(variable, "").split():
        name, _, url = entry.partition("=")
        found[name] = Kind(functools.partial(_fill, url), cross_process=True)
    return found


BROKERS.update(_extra("CELERIAC_CONTRACT_BROKERS"))
BACKENDS.update(_extra("CELERIAC_CONTRACT_BACKENDS"))
if _DJANGO:  # OWN_PROCESS_BACKENDS
    BACKENDS["django-db"] = Kind(lambda tmp: "django-db://", True, _django("db"))
    # the local-memory cache: one process's (the contract's fork test does not apply)
    BACKENDS["django-cache"] = Kind(lambda tmp: "django-cache://", False, _django("cache"))

#: The visibility timeout of brokers made by ``make_broker(short_lease=True)``.
SHORT_LEASE = 0.5


def _prepare(kind: Kind) -> None:
    if kind.prepare is not None:
        kind.prepare()


@dataclass
class BrokerSetup:
    """One test's broker implementation: its name, URL and a factory for more instances."""

    name: str
    kind: Kind
    url: str
    made: list[Broker]

    def make(self, short_lease: bool = False, **options: Any) -> Broker:
        """Another broker on the same URL (each thread that fetches needs its own)."""
        if short_lease:
            options.setdefault("visibility_timeout", SHORT_LEASE)
        broker = create_broker(self.url, options)
        self.made.append(broker)
        return broker


def _setup(
    kinds: dict[str, Kind], request: pytest.FixtureRequest, tmp_path: Path, cls: Any
) -> Iterator[Any]:
    """Prepare the parametrised kind, yield its setup, then close and clean up."""
    kind = kinds[request.param]
    reason = kind.skips.get(getattr(request.node, "originalname", ""))
    if reason:
        pytest.skip(reason)
    _prepare(kind)
    setup = cls(request.param, kind, kind.url(tmp_path), [])
    yield setup
    for made in setup.made:
        made.close()
    if kind.cleanup is not None:
        kind.cleanup(setup.url, setup.made)


@pytest.fixture(params=sorted(BROKERS))
def broker_setup(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[BrokerSetup]:
    yield from _setup(BROKERS, request, tmp_path, BrokerSetup)


@pytest.fixture
def broker(broker_setup: BrokerSetup) -> Broker:
    """A broker with the default visibility timeout."""
    return broker_setup.make()


@dataclass
class BackendSetup:
    name: str
    kind: Kind
    url: str
    made: list[ResultBackend]

    def make(self, **options: Any) -> ResultBackend:
        backend = create_backend(self.url, options)
        self.made.append(backend)
        return backend


@pytest.fixture(params=sorted(BACKENDS))
def backend_setup(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[BackendSetup]:
    yield from _setup(BACKENDS, request, tmp_path, BackendSetup)


@pytest.fixture
def backend(backend_setup: BackendSetup) -> ResultBackend:
    return backend_setup.make()


#: (broker, backend) pairs the worker contract runs on: every broker and every backend.
PAIRS = [
    ("memory", "memory"),
    ("sqlite", "sqlite"),
    ("redis", "redis"),
    ("amqp", "postgresql"),
    ("postgresql", "postgresql"),
    *((("sqlite", "django-db"), ("redis", "django-cache")) if _DJANGO else ()),
    *((name, "sqlite") for name in _extra("CELERIAC_CONTRACT_BROKERS")),
    *(("sqlite", name) for name in _extra("CELERIAC_CONTRACT_BACKENDS")),
]


def _app(broker_name: str, backend_name: str, tmp_path: Path) -> Iterator[Celery]:
    broker_kind, backend_kind = BROKERS[broker_name], BACKENDS[backend_name]
    _prepare(broker_kind)
    _prepare(backend_kind)
    app = Celery("contract", broker=broker_kind.url(tmp_path), backend=backend_kind.url(tmp_path))
    yield app
    app.close()
    if broker_kind.cleanup is not None:
        broker_kind.cleanup(app.conf.broker_url, [app.broker])
    if backend_kind.cleanup is not None:
        backend_kind.cleanup(app.conf.result_backend, [app.backend])


@pytest.fixture(params=PAIRS, ids=[f"{b}+{r}" for b, r in PAIRS])
def app(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Celery]:
    """An app on one (broker, result backend) pair."""
    broker, backend = request.param
    yield from _app(broker, backend, tmp_path)


MATRIX = [(b, r) for b in sorted(BROKERS) for r in sorted(BACKENDS)]


@pytest.fixture(params=MATRIX, ids=[f"{b}+{r}" for b, r in MATRIX])
def matrix_app(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Celery]:
    """An app on every combination of broker and result backend."""
    broker, backend = request.param
    yield from _app(broker, backend, tmp_path)
