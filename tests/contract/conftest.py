"""Fixtures for the broker and result-backend contract suites.

Each implementation is one entry in :data:`BROKERS` / :data:`BACKENDS`. To add one (redis,
amqp, postgresql), add an entry whose ``url`` makes a private URL for one test, with
``prepare`` skipping when its service is not running (see ``require_service`` in
``tests/conftest.py``) and ``cleanup`` emptying what the test left.
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from celeriac.backends.base import ResultBackend, create_backend
from celeriac.backends.memory import MemoryBackend
from celeriac.brokers.base import Broker, create_broker
from celeriac.brokers.memory import MemoryBroker

_unique = itertools.count()


@dataclass(frozen=True)
class Kind:
    """How to make one implementation for one test."""

    url: Callable[[Path], str]  # tmp_path -> a URL private to this test
    cross_process: bool  # usable by several processes at once
    prepare: Callable[[], None] | None = None  # e.g. skip when its service is not running
    cleanup: Callable[[str], None] | None = None  # called with the URL after the test


def _memory_url(tmp_path: Path) -> str:
    return f"memory://contract-{os.getpid()}-{next(_unique)}"


BROKERS: dict[str, Kind] = {
    "memory": Kind(_memory_url, cross_process=False, cleanup=MemoryBroker.reset),
    "sqlite": Kind(lambda tmp: f"sqlite:///{tmp}/broker.db", cross_process=True),
}

BACKENDS: dict[str, Kind] = {
    "memory": Kind(_memory_url, cross_process=False, cleanup=MemoryBackend.reset),
    "sqlite": Kind(lambda tmp: f"sqlite:///{tmp}/results.db", cross_process=True),
}

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
    _prepare(kind)
    setup = cls(request.param, kind, kind.url(tmp_path), [])
    yield setup
    for made in setup.made:
        made.close()
    if kind.cleanup is not None:
        kind.cleanup(setup.url)


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
