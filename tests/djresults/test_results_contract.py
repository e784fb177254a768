"""The result backend contract on ``django-db`` (SQLite and PostgreSQL through Django's ORM)
and ``django-cache``, and the canvas contract on PostgreSQL (the worker and canvas contracts
on SQLite: test_results_worker_contract.py).
Django configured stays configured for the whole process, so each run is a pytest process of
its own (tests/djangoresults.py), the only one where tests/contract/conftest.py lists
them."""

from __future__ import annotations

import pytest

from djangoresults import run_contract

pytest.importorskip("django")


@pytest.mark.slow
@pytest.mark.parametrize("database", ["sqlite", "postgresql"])
def test_the_backend_contract_on_django_db(database: str) -> None:
    run_contract(database, ["test_backend_contract.py"], "django-db")


@pytest.mark.slow
def test_the_backend_contract_on_django_cache() -> None:
    run_contract("sqlite", ["test_backend_contract.py"], "django-cache")


@pytest.mark.slow
def test_chords_join_on_group_results_in_postgresql() -> None:
    """The canvas contract (chords, groups) with django-db on PostgreSQL."""
    run_contract("postgresql", ["test_canvas_contract.py"], "sqlite+django-db")
