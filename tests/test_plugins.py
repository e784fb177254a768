"""Brokers, result backends, schedule databases, routers and fix-ups are plug-ins found by
entry point: celeriac's own are declared in pyproject.toml like anyone else's, and the
contract suites cover every installed one."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from celeriac import Celery, plugins
from celeriac.brokers.base import create_broker
from celeriac.brokers.memory import MemoryBroker
from celeriac.exceptions import ImproperlyConfigured
from celeriac.routing import prepare_routers
from contract.conftest import BACKENDS, BROKERS, OWN_PROCESS_BACKENDS


class ThirdPartyBroker(MemoryBroker):
    """A broker from another distribution (here: the memory broker under its own scheme)."""


@pytest.fixture
def distribution(tmp_path: Path) -> Iterator[Path]:
    """A directory on ``sys.path`` holding an installed distribution's metadata."""
    info = tmp_path / "thirdparty-1.0.dist-info"
    info.mkdir()
    sys.path.append(str(tmp_path))
    try:
        yield info
    finally:
        sys.path.remove(str(tmp_path))


def test_a_broker_from_another_distribution_is_found_by_its_scheme(distribution: Path) -> None:
    (distribution / "entry_points.txt").write_text(
        "[celeriac.brokers]\nthirdparty = test_plugins:ThirdPartyBroker\n"
    )
    broker = create_broker("thirdparty://somewhere")
    assert type(broker).__name__ == "ThirdPartyBroker"
    app = Celery("plugins", broker="thirdparty://x", backend="memory://plugins")
    assert type(app.broker).__name__ == "ThirdPartyBroker"
    assert "thirdparty" in plugins.entry_points(plugins.BROKERS)


def test_an_unknown_scheme_names_the_installed_ones() -> None:
    with pytest.raises(ImproperlyConfigured, match="unknown broker URL 'nosuch://x'") as err:
        create_broker("nosuch://x")
    assert "redis://" in str(err.value) and "sqlite://" in str(err.value)
    with pytest.raises(ImproperlyConfigured, match=r"no router named 'nosuch'.*least-loaded"):
        plugins.load(plugins.ROUTERS, "nosuch", "router")
    with pytest.raises(ImproperlyConfigured, match=r"cannot import router 'no\.such:route'"):
        prepare_routers(["no.such:route"])


def test_celerys_database_backend_urls_name_the_database(tmp_path: Path) -> None:
    """``db+`` URLs from Celery's SQLAlchemy backend, with a driver name or without."""
    from celeriac.backends.base import create_backend
    from celeriac.backends.sqlite import SQLiteBackend

    backend = create_backend(f"db+sqlite:///{tmp_path}/results.db")
    assert isinstance(backend, SQLiteBackend)
    backend.close()
    with pytest.raises(ImproperlyConfigured, match="unknown result backend URL 'mysql"):
        create_backend("db+mysql+pymysql://user@localhost/results")


def test_the_entry_points_file_format() -> None:
    parsed = plugins._parse(
        "# a comment\n[celeriac.brokers]\nx = a.b:C\n\n[other]\ny=d:e.f\n; also a comment\n"
    )
    assert parsed == {"celeriac.brokers": {"x": "a.b:C"}, "other": {"y": "d:e.f"}}


def test_a_url_scheme_says_what_the_technology_can_do() -> None:
    """The registry says which brokers also keep results (and are then the default result
    backend) and which are SQL databases (the database schedule's default)."""
    assert plugins.serves(plugins.BACKENDS, "redis://localhost/0")
    assert not plugins.serves(plugins.BACKENDS, "amqp://guest@localhost//")
    assert plugins.serves(plugins.DATABASES, "postgresql+psycopg://u@h/db")
    assert not plugins.serves(plugins.DATABASES, "redis://localhost/0")
    assert Celery("x", broker="amqp://localhost//").backend is None


@pytest.mark.parametrize(
    ("group", "covered"), [(plugins.BROKERS, BROKERS), (plugins.BACKENDS, BACKENDS)]
)
def test_every_installed_plugin_is_under_the_contract_suite(group: str, covered: Any) -> None:
    """A broker or backend added by entry point must be added to tests/contract/conftest.py
    too (or, for another distribution's, run the suite with CELERIAC_CONTRACT_*)."""
    if group == plugins.BACKENDS:  # Django's: under the contract in a process of their own
        covered = [*covered, *OWN_PROCESS_BACKENDS]
    tested = {plugins.load(group, name, "plug-in") for name in covered}
    for name, target in plugins.entry_points(group).items():
        if not target.startswith("celeriac."):
            continue  # another distribution's: see docs/architecture.md
        assert plugins.load(group, name, "plug-in") in tested, (
            f"{group} plug-in {name!r} ({target}) has no entry in tests/contract/conftest.py"
        )
