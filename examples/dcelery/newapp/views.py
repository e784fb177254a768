"""A page with a button per course snippet, and a task's state as JSON."""

from __future__ import annotations

from dcelery.celery import app
from django.conf import settings
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render
from django.views.decorators.http import require_POST

from celeriac.result import AsyncResult

from .course import SNIPPETS


def index(request: HttpRequest) -> HttpResponse:
    snippets = [(name, (run.__doc__ or "").strip()) for name, run in SNIPPETS.items()]
    context = {"snippets": snippets, "dashboard_url": settings.DASHBOARD_URL}
    return render(request, "newapp/index.html", context)


@require_POST
def run(request: HttpRequest, name: str) -> HttpResponse:
    if name not in SNIPPETS:
        raise Http404(name)
    results = SNIPPETS[name]()
    context = {
        "name": name,
        "results": results,
        "snippets": [],
        "dashboard_url": settings.DASHBOARD_URL,
    }
    if request.headers.get("Accept") == "application/json":
        return JsonResponse({"snippet": name, "task_ids": [r.id for r in results]})
    return render(request, "newapp/index.html", context)


def result(request: HttpRequest, task_id: str) -> JsonResponse:
    found = AsyncResult(task_id, app=app)
    value = found.result if found.ready() else None
    if isinstance(value, BaseException):
        value = repr(value)
    return JsonResponse({"task_id": task_id, "state": found.state, "result": value})


def health(request: HttpRequest) -> HttpResponse:
    return HttpResponse("OK", content_type="text/plain")
