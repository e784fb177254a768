"""Flask's documented Celery pattern (an app factory, ``celery_init_app`` with a ``FlaskTask``
whose ``__call__`` pushes the app context, ``shared_task`` in a tasks module, the worker
started with ``-A make_celery``) and a pytest suite that drives it through Flask's test
client: eager mode switched on by ``app.config.update`` and the real worker otherwise."""

from __future__ import annotations

import pytest

from .conftest import Site

pytest.importorskip("flask")

pytest_plugins = ["pytester"]

PROJECT = {
    "site_app/__init__.py": """
        import os

        from celeriac import Celery, Task
        from flask import Flask


        def celery_init_app(app):
            class FlaskTask(Task):
                def __call__(self, *args, **kwargs):
                    with app.app_context():
                        return self.run(*args, **kwargs)

            celery_app = Celery(app.name, task_cls=FlaskTask)
            celery_app.config_from_object(app.config, namespace="CELERY")
            celery_app.set_default()
            app.extensions["celery"] = celery_app
            return celery_app


        def create_app():
            app = Flask(__name__)
            app.config.from_mapping(
                GREETING="hello",
                CELERY_BROKER_URL=os.environ["COMPAT_BROKER"],
                CELERY_RESULT_BACKEND=os.environ["COMPAT_BACKEND"],
                CELERY_TASK_DEFAULT_QUEUE=os.environ["COMPAT_QUEUE"],
                CELERY_TASK_IGNORE_RESULT=True,
            )
            app.config.from_prefixed_env()
            celery_init_app(app)

            from . import views

            app.register_blueprint(views.bp)
            return app
    """,
    "site_app/tasks.py": """
        import os

        from celeriac import shared_task
        from flask import current_app


        @shared_task(ignore_result=False)
        def greet(name):
            return {"text": f"{current_app.config['GREETING']} {name}", "pid": os.getpid()}


        @shared_task
        def forgotten():
            return "nobody asks"
    """,
    "site_app/views.py": """
        from celeriac.result import AsyncResult
        from flask import Blueprint, request

        from .tasks import greet

        bp = Blueprint("tasks", __name__)


        @bp.post("/greet")
        def start_greet():
            result = greet.delay(request.form["name"])
            return {"result_id": result.id}


        @bp.get("/result/<id>")
        def task_result(id):
            result = AsyncResult(id)
            return {
                "ready": result.ready(),
                "successful": result.successful(),
                "value": result.result if result.ready() else None,
            }
    """,
    "make_celery.py": """
        from site_app import create_app

        flask_app = create_app()
        celery_app = flask_app.extensions["celery"]
    """,
    "tests/test_views.py": """
        import os
        import time

        import pytest

        from site_app import create_app
        from site_app.tasks import forgotten, greet


        @pytest.fixture
        def app():
            app = create_app()
            app.config.update(TESTING=True)
            return app


        @pytest.fixture
        def client(app):
            return app.test_client()


        def test_eager_mode_from_the_flask_config(app, client):
            app.config.update(CELERY_TASK_ALWAYS_EAGER=True, GREETING="hi")
            result_id = client.post("/greet", data={"name": "ann"}).json["result_id"]
            assert result_id
            assert greet.delay("bo").get()["text"] == "hi bo"


        def test_the_worker_runs_in_the_flask_app_context(client):
            result_id = client.post("/greet", data={"name": "ann"}).json["result_id"]
            deadline = time.monotonic() + 30
            while not (body := client.get(f"/result/{result_id}").json)["ready"]:
                assert time.monotonic() < deadline, body
                time.sleep(0.05)
            assert body["successful"]
            assert body["value"]["text"] == "hello ann"
            assert body["value"]["pid"] != os.getpid()


        def test_ignore_result_from_the_config(app):
            result = forgotten.delay()
            assert result.get(timeout=5) is None
    """,
}


@pytest.mark.slow
def test_flasks_celery_pattern(site: Site, pytester: pytest.Pytester) -> None:
    site.check(pytester, PROJECT, "make_celery", passed=3)
