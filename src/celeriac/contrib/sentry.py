"""Sentry for celeriac: a task that fails (after its retries) is reported with its name, id,
queue, retries and worker.

    import sentry_sdk
    from celeriac.contrib.sentry import CeleriacIntegration

    sentry_sdk.init(dsn="https://<key>@<host>/<project>", integrations=[CeleriacIntegration()])

Call ``sentry_sdk.init`` where the worker imports the app (the app's module), so every pool
process reports. The task's arguments go with the event only when ``send_default_pii`` is
on. Retries, revocations and rejections are not errors and are not reported. Events waiting
to be sent are flushed when a pool process or the worker stops.
"""

from __future__ import annotations

from typing import Any

from .. import signals
from ..exceptions import Ignore, ImproperlyConfigured, Reject, Retry

try:
    import sentry_sdk
    from sentry_sdk.integrations import Integration
    from sentry_sdk.integrations.logging import ignore_logger
    from sentry_sdk.utils import event_from_exception
except ModuleNotFoundError as exc:  # pragma: no cover - depends on the installation
    raise ImproperlyConfigured(
        "celeriac.contrib.sentry needs sentry-sdk: pip install 'celeriac[sentry]'"
    ) from exc

#: Exceptions that steer a task rather than report an error.
CONTROL_FLOW = (Retry, Ignore, Reject)


class CeleriacIntegration(Integration):
    """Reports failed tasks to Sentry (see the module's documentation)."""

    identifier = "celeriac"

    @staticmethod
    def setup_once() -> None:
        # the failure is reported here, with the task's context: not again as a log line
        ignore_logger("celeriac.app.trace")
        signals.task_failure.connect(_report, dispatch_uid="celeriac.sentry.report")
        signals.worker_process_shutdown.connect(_flush, dispatch_uid="celeriac.sentry.flush")
        signals.worker_shutdown.connect(_flush, dispatch_uid="celeriac.sentry.flush-worker")


def _report(
    sender: Any = None,
    task_id: str | None = None,
    exception: BaseException | None = None,
    args: Any = None,
    kwargs: Any = None,
    **_: Any,
) -> None:
    client = sentry_sdk.get_client()
    if client.get_integration(CeleriacIntegration) is None or exception is None:
        return
    if isinstance(exception, CONTROL_FLOW):
        return
    name = getattr(sender, "name", str(sender))
    request = getattr(sender, "request", None)
    delivery = getattr(request, "delivery_info", None) or {}
    task = {
        "task": name,
        "id": task_id,
        "retries": getattr(request, "retries", 0),
        "queue": delivery.get("routing_key"),
        "hostname": getattr(request, "hostname", None),
        "root_id": getattr(request, "root_id", None),
        "parent_id": getattr(request, "parent_id", None),
    }
    if client.options.get("send_default_pii"):  # what argsrepr/kwargsrepr show, if given
        task["args"] = getattr(request, "argsrepr", None) or list(args or ())
        task["kwargs"] = getattr(request, "kwargsrepr", None) or dict(kwargs or {})
    event, hint = event_from_exception(
        exception,
        client_options=client.options,
        mechanism={"type": CeleriacIntegration.identifier, "handled": False},
    )
    with sentry_sdk.new_scope() as scope:
        scope.set_tag("celeriac.task", name)
        scope.set_tag("celeriac.task_id", str(task_id))
        if task["queue"]:
            scope.set_tag("celeriac.queue", task["queue"])
        scope.set_context("celeriac", task)
        scope.set_transaction_name(name)
        sentry_sdk.capture_event(event, hint=hint)


def _flush(**_: Any) -> None:
    client = sentry_sdk.get_client()
    if client.get_integration(CeleriacIntegration) is not None:
        client.flush(timeout=2.0)
