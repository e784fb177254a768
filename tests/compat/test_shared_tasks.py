"""``@shared_task`` functions used through their module-level names, as projects write them:
``flaky.retry(...)`` and ``flaky.request`` inside the task itself, ``mock.patch`` on a task's
method in the project's tests, and a ``base=`` class whose hooks run on the worker."""

from __future__ import annotations

import pytest

from .conftest import Site

pytest_plugins = ["pytester"]

PROJECT = {
    "proj/__init__.py": "",
    "proj/celery.py": """
        import os

        from celeriac import Celery

        app = Celery(
            "proj",
            broker=os.environ["COMPAT_BROKER"],
            backend=os.environ["COMPAT_BACKEND"],
            include=["proj.tasks"],
        )
        app.conf.task_default_queue = os.environ["COMPAT_QUEUE"]
    """,
    "proj/tasks.py": """
        from celeriac import Task, shared_task
        from celeriac.exceptions import Retry

        HOOKS = []


        class Audited(Task):
            def before_start(self, task_id, args, kwargs):
                assert list(args) == [7] and task_id == self.request.id

            def on_success(self, retval, task_id, args, kwargs):
                HOOKS.append(("success", task_id))


        @shared_task(max_retries=3, default_retry_delay=0.1)
        def flaky(n):
            if flaky.request.retries < n:
                raise flaky.retry()
            return [flaky.request.id, flaky.request.retries]


        @shared_task
        def whoami():
            return whoami.request.id


        @shared_task(base=Audited, bind=True)
        def audited(self, x):
            return [x, self.name, isinstance(self, Audited), len(HOOKS)]


        @shared_task(bind=True, max_retries=2)
        def send_mail(self, to):
            try:
                raise ConnectionError("smtp is down")
            except ConnectionError as exc:
                raise self.retry(exc=exc, countdown=60)
    """,
    "tests/test_tasks.py": """
        from unittest import mock

        import pytest
        from celeriac.exceptions import Retry

        from proj.celery import app
        from proj.tasks import audited, flaky, send_mail, whoami


        def test_retry_and_request_through_the_module_name():
            result = flaky.delay(2)
            assert result.get(timeout=30) == [result.id, 2]


        def test_request_id_through_the_module_name():
            result = whoami.delay()
            assert result.get(timeout=30) == result.id


        def test_a_base_class_with_hooks():
            assert audited.delay(7).get(timeout=30) == [7, "proj.tasks.audited", True, 0]


        @mock.patch("proj.tasks.send_mail.retry")
        def test_patching_a_shared_tasks_method(mock_retry):
            mock_retry.side_effect = Retry()
            with pytest.raises(Retry):
                send_mail("a@example.com")
            assert mock_retry.call_count == 1


        def test_the_same_task_object_everywhere():
            assert app.tasks["proj.tasks.flaky"] is flaky._get_current_object()
            assert flaky.name == "proj.tasks.flaky"
    """,
}


@pytest.mark.slow
def test_shared_tasks_by_module_name(site: Site, pytester: pytest.Pytester) -> None:
    site.check(pytester, PROJECT, "proj", passed=5)
