"""The results in Django's admin: read-only lists with filters on state, task name, worker
and dates, and search by task id, name, worker and arguments."""

from __future__ import annotations

from typing import Any

from django.contrib import admin

from .models import GroupResult, TaskResult


class ReadOnlyAdmin(admin.ModelAdmin):
    """Rows are written by the result backend only: the admin shows them (and lets a
    superuser delete them, as clean-up), never adds or edits them."""

    def has_add_permission(self, request: Any, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: Any, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: Any, obj: Any = None) -> bool:
        return bool(request.user.is_superuser)


@admin.register(TaskResult)
class TaskResultAdmin(ReadOnlyAdmin):
    """Task results, newest first."""

    date_hierarchy = "date_done"
    list_display = ("task_id", "task_name", "status", "worker", "date_created", "date_done")
    list_filter = ("status", "task_name", "worker", "date_created", "date_done")
    search_fields = ("task_id", "task_name", "worker", "task_args", "task_kwargs", "status")
    readonly_fields = (
        "task_id",
        "task_name",
        "status",
        "worker",
        "periodic_task_name",
        "task_args",
        "task_kwargs",
        "result",
        "traceback",
        "meta",
        "content_type",
        "content_encoding",
        "date_created",
        "date_started",
        "date_done",
    )
    fieldsets = (
        (None, {"fields": ("task_id", "task_name", "status", "worker", "periodic_task_name")}),
        ("Arguments", {"fields": ("task_args", "task_kwargs")}),
        ("Result", {"fields": ("result", "traceback", "meta", "content_type", "content_encoding")}),
        ("Dates", {"fields": ("date_created", "date_started", "date_done")}),
    )


@admin.register(GroupResult)
class GroupResultAdmin(ReadOnlyAdmin):
    """Saved groups and chord headers."""

    date_hierarchy = "date_done"
    list_display = ("group_id", "date_created", "date_done")
    list_filter = ("date_created", "date_done")
    search_fields = ("group_id", "result")
    readonly_fields = (
        "group_id",
        "result",
        "content_type",
        "content_encoding",
        "date_created",
        "date_done",
    )
    fields = readonly_fields
