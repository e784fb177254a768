"""The periodic tasks in Django's admin.

The list shows each task's schedule in words and its next run; actions enable, disable, run
now (send the task at once, the schedule unchanged) and duplicate (the copies start disabled).
The form offers the registered tasks of the project's app to pick the task name from (one not
registered in the web process can still be typed).
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from django import forms
from django.contrib import admin, messages
from django.db import transaction
from django.db.models import QuerySet
from django.http import HttpRequest
from django.utils import timezone

from .models import (
    SCHEDULE_FIELDS,
    ClockedSchedule,
    CrontabSchedule,
    IntervalSchedule,
    PeriodicTask,
    PeriodicTasks,
    SolarSchedule,
)


def registered_tasks() -> list[str]:
    """The names of the current app's tasks (its modules imported first)."""
    from .... import current_app

    app = current_app
    app.finalize(auto=True)
    return sorted(app.tasks.regular())


class PeriodicTaskForm(forms.ModelForm):
    """The task name picked from the registered tasks, or typed."""

    regtask = forms.ChoiceField(
        label="Task (registered)",
        required=False,
        help_text="Pick one of the project's tasks, or type a name below",
    )

    class Meta:
        model = PeriodicTask
        fields = "__all__"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        names = registered_tasks()
        current = self.instance.task if self.instance and self.instance.pk else ""
        if current and current not in names:
            names.append(current)
        self.fields["regtask"].choices = [("", "---------"), *((n, n) for n in names)]
        self.fields["regtask"].initial = current if current in names else ""
        self.fields["task"].required = False
        self.fields["task"].label = "Task (by name)"

    def clean(self) -> dict[str, Any]:
        data: dict[str, Any] = super().clean()
        chosen = data.get("regtask") or data.get("task")
        if not chosen:
            raise forms.ValidationError("Pick a registered task or type a task name.")
        data["task"] = chosen
        self.instance.task = chosen
        return data


@admin.register(PeriodicTask)
class PeriodicTaskAdmin(admin.ModelAdmin):
    form = PeriodicTaskForm
    list_display = (
        "name",
        "enabled",
        "schedule_text",
        "next_run",
        "last_run_at",
        "total_run_count",
        "task",
    )
    list_filter = ("enabled", "one_off", "task", "start_time", "last_run_at")
    search_fields = ("name", "task", "description")
    readonly_fields = ("schedule_text", "next_run", "last_run_at", "total_run_count")
    actions = ("enable_tasks", "disable_tasks", "run_tasks_now", "duplicate_tasks")
    fieldsets = (
        (None, {"fields": ("name", "regtask", "task", "enabled", "description")}),
        (
            "Schedule (exactly one)",
            {"fields": (*SCHEDULE_FIELDS, "start_time", "expires", "one_off")},
        ),
        ("Arguments", {"fields": ("args", "kwargs")}),
        (
            "Message",
            {
                "classes": ("collapse",),
                "fields": (
                    "queue",
                    "exchange",
                    "routing_key",
                    "priority",
                    "headers",
                    "expire_seconds",
                ),
            },
        ),
        (
            "Runs",
            {"fields": ("schedule_text", "next_run", "last_run_at", "total_run_count")},
        ),
    )

    def get_queryset(self, request: HttpRequest) -> QuerySet[PeriodicTask]:
        return super().get_queryset(request).select_related(*SCHEDULE_FIELDS)

    @admin.display(description="schedule")
    def schedule_text(self, obj: PeriodicTask) -> str:
        return obj.schedule_text()

    @admin.display(description="next run")
    def next_run(self, obj: PeriodicTask) -> dt.datetime | str:
        when = obj.next_run_at()
        return timezone.localtime(when) if when is not None else "—"

    def save_model(self, request: HttpRequest, obj: PeriodicTask, form: Any, change: bool) -> None:
        if change:  # beat may have recorded a run since the form was opened: keep it
            fields = [
                f.name
                for f in obj._meta.concrete_fields
                if f.name not in ("id", "last_run_at", "total_run_count")
            ]
            obj.save(update_fields=fields)
        else:
            obj.save()

    @admin.action(description="Enable selected periodic tasks")
    def enable_tasks(self, request: HttpRequest, queryset: QuerySet[PeriodicTask]) -> None:
        self._set_enabled(request, queryset, True)

    @admin.action(description="Disable selected periodic tasks")
    def disable_tasks(self, request: HttpRequest, queryset: QuerySet[PeriodicTask]) -> None:
        self._set_enabled(request, queryset, False)

    def _set_enabled(
        self, request: HttpRequest, queryset: QuerySet[PeriodicTask], enabled: bool
    ) -> None:
        count = queryset.update(enabled=enabled, date_changed=timezone.now())
        PeriodicTasks.update_changed()  # update() sends no signal
        word = "enabled" if enabled else "disabled"
        self.message_user(request, f"{count} periodic task(s) {word}.", messages.SUCCESS)

    @admin.action(description="Run selected tasks now")
    def run_tasks_now(self, request: HttpRequest, queryset: QuerySet[PeriodicTask]) -> None:
        from .... import current_app

        sent = []
        for row in queryset:
            try:
                entry = row.to_entry(current_app)
                result = current_app.send_task(
                    entry.task, entry.args, entry.kwargs, **entry.options
                )
            except Exception as exc:  # a broker that is down: say so on the page
                self.message_user(request, f"{row.name} could not be sent: {exc}", messages.ERROR)
                continue
            sent.append(f"{row.name} ({result.id})")
        if sent:
            self.message_user(
                request, f"Sent {len(sent)} task(s) now: {', '.join(sent)}", messages.SUCCESS
            )

    @admin.action(description="Duplicate selected periodic tasks (copies start disabled)")
    def duplicate_tasks(self, request: HttpRequest, queryset: QuerySet[PeriodicTask]) -> None:
        made = []
        with transaction.atomic():
            for row in queryset:
                made.append(duplicate(row).name)
        self.message_user(request, f"Made {', '.join(made)} (disabled).", messages.SUCCESS)


def duplicate(row: PeriodicTask) -> PeriodicTask:
    """A disabled copy of ``row``, with a schedule of its own and no runs."""
    schedule = row.schedule_row()
    if schedule is not None and not isinstance(schedule, SolarSchedule):  # solar: unique rows
        schedule.pk = None
        schedule.save()
        setattr(row, next(f for f in SCHEDULE_FIELDS if getattr(row, f"{f}_id")), schedule)
    base = f"{row.name} (copy)"
    name, n = base, 1
    while PeriodicTask.objects.filter(name=name).exists():
        n += 1
        name = f"{base} {n}"
    row.pk = None
    row.name = name
    row.enabled = False
    row.last_run_at = None
    row.total_run_count = 0
    row.save()
    return row


@admin.register(IntervalSchedule)
class IntervalScheduleAdmin(admin.ModelAdmin):
    list_display = ("__str__", "every", "period")


@admin.register(CrontabSchedule)
class CrontabScheduleAdmin(admin.ModelAdmin):
    list_display = ("__str__", "in_words")

    @admin.display(description="in words")
    def in_words(self, obj: CrontabSchedule) -> str:
        try:
            return f"{obj.schedule.human()} ({obj.timezone})"
        except ValueError as exc:
            return f"invalid: {exc}"


@admin.register(SolarSchedule)
class SolarScheduleAdmin(admin.ModelAdmin):
    list_display = ("__str__", "event", "latitude", "longitude")


@admin.register(ClockedSchedule)
class ClockedScheduleAdmin(admin.ModelAdmin):
    list_display = ("__str__", "clocked_time")
