"""Run by tests/djresults/test_results_project.py: delay_on_commit and apply_async_on_commit in
a transaction that commits and one that rolls back, on the project's real database. Prints
what was published, as JSON."""

import json
import os
from typing import Any

import django

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "resultsproj.settings")
django.setup()

from django.contrib.auth.models import User  # noqa: E402
from django.db import transaction  # noqa: E402
from orders.tasks import total  # noqa: E402

from celeriac import signals  # noqa: E402

published: list[str] = []
signals.after_task_publish.connect(
    lambda headers=None, **kw: published.append(headers["id"]), weak=False
)
steps: dict[str, Any] = {}
with transaction.atomic():
    User.objects.create(username="committed")
    total.delay_on_commit([1, 2])
    total.apply_async_on_commit(([3],), task_id="by-apply-async")
    steps["inside"] = len(published)
steps["after_commit"] = len(published)


class Rollback(Exception):
    pass


try:
    with transaction.atomic():
        User.objects.create(username="rolled-back")
        total.delay_on_commit([4])
        total.apply_async_on_commit(([5],))
        raise Rollback
except Rollback:
    pass
steps["after_rollback"] = len(published)
steps["ids"] = published
steps["users"] = sorted(User.objects.values_list("username", flat=True))
total.delay_on_commit([6])  # outside a transaction: at once
steps["autocommit"] = len(published)
print(json.dumps(steps))
