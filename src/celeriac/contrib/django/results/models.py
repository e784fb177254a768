"""Task and group results, with django-celery-results' field names.

The ``django-db`` backend (:mod:`.backend`) writes these rows. A row keeps, besides the
readable fields, the exact meta the worker stored (``payload``), so ``AsyncResult.get()``
reads back what was written whatever the serializer; ``expires_at`` is when the row may be
deleted (``result_expires``). :class:`KeyValue` and :class:`SetMember` hold the backend's
small key-value store (chord counters, revocations, locks), which the admin does not show.
"""

from __future__ import annotations

import json
from typing import Any

from django.db import models

from .... import states

STATE_CHOICES = sorted((state, state) for state in states.ALL_STATES)


class TaskResultManager(models.Manager):
    """``TaskResult.objects``, with django-celery-results' ``get_task``."""

    def get_task(self, task_id: str) -> TaskResult:
        """The row of ``task_id``, or an unsaved PENDING one when there is none."""
        try:
            found: TaskResult = self.get(task_id=task_id)
        except self.model.DoesNotExist:
            return self.model(task_id=task_id)
        return found


class TaskResult(models.Model):
    """The last state a task reported, and its result."""

    task_id = models.CharField("task id", max_length=255, unique=True)
    periodic_task_name = models.CharField(
        "periodic task name", max_length=255, null=True, blank=True
    )
    task_name = models.CharField("task name", max_length=255, null=True, blank=True)
    task_args = models.TextField("task arguments", null=True, blank=True)
    task_kwargs = models.TextField("task keyword arguments", null=True, blank=True)
    status = models.CharField("state", max_length=50, default=states.PENDING, choices=STATE_CHOICES)
    worker = models.CharField("worker", max_length=100, null=True, blank=True, default=None)
    content_type = models.CharField("result content type", max_length=128, default="")
    content_encoding = models.CharField("result encoding", max_length=64, default="")
    result = models.TextField("result", null=True, default=None, editable=False)
    date_created = models.DateTimeField("created", auto_now_add=True)
    date_started = models.DateTimeField("started", null=True, default=None)
    date_done = models.DateTimeField("completed", auto_now=True)
    traceback = models.TextField("traceback", null=True, blank=True)
    meta = models.TextField("meta", null=True, default=None, editable=False)
    payload = models.BinaryField("stored meta", default=b"", editable=False)
    expires_at = models.FloatField("expires (epoch seconds)", null=True, editable=False)

    objects = TaskResultManager()

    class Meta:
        verbose_name = "task result"
        verbose_name_plural = "task results"
        ordering = ["-date_done"]
        indexes = [
            models.Index(fields=["task_name"], name="celeriac_tr_name"),
            models.Index(fields=["status"], name="celeriac_tr_status"),
            models.Index(fields=["worker"], name="celeriac_tr_worker"),
            models.Index(fields=["date_created"], name="celeriac_tr_created"),
            models.Index(fields=["date_done"], name="celeriac_tr_done"),
            models.Index(fields=["periodic_task_name"], name="celeriac_tr_periodic"),
            models.Index(fields=["expires_at"], name="celeriac_tr_expires"),
        ]

    def __str__(self) -> str:
        return f"<Task: {self.task_id} ({self.status})>"

    def as_dict(self) -> dict[str, Any]:
        """The readable fields, as django-celery-results' ``as_dict`` gives them."""
        return {
            "task_id": self.task_id,
            "task_name": self.task_name,
            "task_args": self.task_args,
            "task_kwargs": self.task_kwargs,
            "status": self.status,
            "result": self.result,
            "date_done": self.date_done,
            "traceback": self.traceback,
            "meta": json.loads(self.meta) if self.meta else None,
            "worker": self.worker,
        }


class GroupResult(models.Model):
    """A saved group (``GroupResult.save()``, and every chord's header): its members' ids.

    A chord's body is sent with the results of the members listed here."""

    group_id = models.CharField("group id", max_length=255, unique=True)
    date_created = models.DateTimeField("created", auto_now_add=True)
    date_done = models.DateTimeField("completed", auto_now=True)
    content_type = models.CharField("result content type", max_length=128, default="")
    content_encoding = models.CharField("result encoding", max_length=64, default="")
    result = models.TextField("member ids", null=True, default=None)
    expires_at = models.FloatField("expires (epoch seconds)", null=True, editable=False)

    class Meta:
        verbose_name = "group result"
        verbose_name_plural = "group results"
        ordering = ["-date_done"]
        indexes = [
            models.Index(fields=["date_created"], name="celeriac_gr_created"),
            models.Index(fields=["date_done"], name="celeriac_gr_done"),
            models.Index(fields=["expires_at"], name="celeriac_gr_expires"),
        ]

    def __str__(self) -> str:
        return f"<Group: {self.group_id}>"

    def as_dict(self) -> dict[str, Any]:
        """The readable fields."""
        return {
            "group_id": self.group_id,
            "result": json.loads(self.result) if self.result else None,
            "date_done": self.date_done,
        }


class KeyValue(models.Model):
    """A value or counter of the backend's key-value store (``number`` for counters)."""

    key = models.CharField(max_length=255, primary_key=True)
    value = models.BinaryField(null=True)
    number = models.BigIntegerField(null=True)
    expires_at = models.FloatField(null=True, db_index=True)


class SetMember(models.Model):
    """One member of a set of the key-value store (a chord's finished members, ...)."""

    key = models.CharField(max_length=255)
    member = models.TextField()
    expires_at = models.FloatField(null=True, db_index=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["key", "member"], name="celeriac_set_member")
        ]
