"""Celery's pytest plugin, as a Celery project's test suite uses it, with only the import
changed: the suite below runs in its own pytest session (``pytester``), as it would in the
project."""

from __future__ import annotations

import pytest

from .conftest import Site

pytest_plugins = ["pytester"]

CONFTEST = """
import os

import pytest

pytest_plugins = ("celeriac.contrib.pytest",)


@pytest.fixture(scope="session")
def celery_config():
    config = {"task_default_queue": "tests", "result_expires": 60}
    if "COMPAT_BROKER" in os.environ:
        config["broker_url"] = os.environ["COMPAT_BROKER"]
        config["result_backend"] = os.environ["COMPAT_BACKEND"]
        config["task_default_queue"] = os.environ["COMPAT_QUEUE"]
    return config


@pytest.fixture(scope="session")
def celery_class_tasks():
    from celeriac import Task

    class Shout(Task):
        name = "tests.shout"

        def run(self, text):
            return text.upper()

    return [Shout]


@pytest.fixture(scope="session")
def celery_worker_parameters():
    return {"queues": [os.environ.get("COMPAT_QUEUE", "tests")]}
"""

TESTS = """
import os

import pytest
from celeriac import shared_task
from celeriac.contrib.testing.worker import start_worker


@shared_task
def mul(x, y):
    return x * y


def test_the_app_has_the_test_config(celery_app):
    assert celery_app.conf.task_default_queue == os.environ.get("COMPAT_QUEUE", "tests")
    assert celery_app.conf.broker_url.startswith(os.environ.get("COMPAT_BROKER", "memory://"))


def test_a_task_runs_on_the_test_worker(celery_app, celery_worker):
    @celery_app.task
    def add(x, y):
        return x + y

    celery_worker.reload = None  # Celery's suites poke at the worker; it is an object
    assert add.delay(2, 3).get(timeout=10) == 5
    assert mul.delay(4, 5).get(timeout=10) == 20


@pytest.mark.celery(task_always_eager=True)
def test_the_celery_mark_adds_settings(celery_app):
    assert celery_app.conf.task_always_eager is True
    assert mul.delay(2, 2).get() == 4


def test_the_session_worker(celery_session_app, celery_session_worker):
    assert celery_session_app.tasks["celery.ping"].delay().get(timeout=10) == "pong"
    assert celery_session_app.tasks["tests.shout"].delay("hi").get(timeout=10) == "HI"
    assert mul.delay(3, 3).get(timeout=10) == 9


def test_start_worker_directly(celery_app):
    queues = [os.environ.get("COMPAT_QUEUE", "tests")]
    with start_worker(celery_app, perform_ping_check=False, queues=queues) as worker:
        assert worker.ready.is_set()
        assert mul.delay(6, 7).get(timeout=10) == 42
"""


def test_celerys_pytest_fixtures(pytester: pytest.Pytester) -> None:
    """On the plug-in's own default, the in-memory broker."""
    pytester.makeconftest(CONFTEST)
    pytester.makepyfile(test_project=TESTS)
    result = pytester.runpytest_subprocess("-q", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=5)


@pytest.mark.slow
def test_celerys_pytest_fixtures_on_every_broker(site: Site, pytester: pytest.Pytester) -> None:
    """The same suite with ``celery_config`` naming a real broker and result backend."""
    site.check(pytester, {"conftest.py": CONFTEST, "test_project.py": TESTS}, None, passed=5)
