"""The worker contract on ``django-db`` (SQLite, with the SQLite broker) and the canvas
contracts (chords joining on GroupResult rows) on ``django-db`` and ``django-cache`` (with
Redis), each in a pytest process of its own (see test_results_contract.py)."""

from __future__ import annotations

import pytest

from djangoresults import run_contract

pytest.importorskip("django")


@pytest.mark.slow
def test_the_worker_and_canvas_contracts_on_django_backends() -> None:
    run_contract(
        "sqlite",
        ["test_worker_contract.py", "test_canvas_contract.py", "test_canvas_semantics_contract.py"],
        "(test_worker_contract and sqlite+django-db) or (test_canvas and django)",
    )
