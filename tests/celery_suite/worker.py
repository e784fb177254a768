"""The app of the worker process the shim starts (``t/integration/_celeriac_worker.py`` in
the suite): the suite's settings, its tasks and its class-based task."""

from __future__ import annotations

import json
import os

from celeriac import Celery
from celeriac.contrib.testing.app import DEFAULT_TEST_CONFIG

app = Celery("t.integration")
app.conf.update({k: v for k, v in DEFAULT_TEST_CONFIG.items() if "logger" not in k})
app.conf.update(json.loads(os.environ["CELERY_SUITE_CONFIG"]))

from t.integration import tasks  # noqa: E402  (the tasks bind to the app above)

app.register_task(tasks.ClassBasedAutoRetryTask())
