"""Sentry: failed tasks reach a Sentry endpoint as real envelopes, sent by sentry-sdk to a
local HTTP server that stands in for Sentry."""

from __future__ import annotations

import gzip
import json
import signal
import threading
import zlib
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from celeriac import Celery
from conftest import Project, wait_until

sentry_sdk = pytest.importorskip("sentry_sdk")
from celeriac.contrib.sentry import CeleriacIntegration  # noqa: E402


class Envelopes:
    """What the stand-in Sentry received: the events of every envelope posted to it."""

    def __init__(self) -> None:
        self.events: list[dict[str, Any]] = []
        self.paths: list[str] = []
        received = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                encoding = self.headers.get("Content-Encoding")
                if encoding == "gzip":
                    body = gzip.decompress(body)
                elif encoding == "deflate":
                    body = zlib.decompress(body)
                received.paths.append(self.path)
                lines = body.split(b"\n")
                for header, payload in zip(lines[1::2], lines[2::2], strict=False):
                    if json.loads(header).get("type") == "event":
                        received.events.append(json.loads(payload))
                self.send_response(200)
                self.end_headers()
                self.wfile.write(b"{}")

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.dsn = f"http://public@127.0.0.1:{self.server.server_address[1]}/42"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def sentry() -> Iterator[Envelopes]:
    envelopes = Envelopes()
    yield envelopes
    sentry_sdk.init()  # a client without a DSN: nothing more is sent
    envelopes.close()


class PaymentError(Exception):
    pass


def test_a_failed_task_is_reported_with_its_name_id_and_queue(sentry: Envelopes) -> None:
    sentry_sdk.init(dsn=sentry.dsn, integrations=[CeleriacIntegration()])
    app = Celery("billing", broker="memory://sentry", backend="memory://sentry")

    @app.task(name="billing.charge")
    def charge(amount):
        raise PaymentError(f"card declined for {amount}")

    @app.task(name="billing.ok")
    def ok():
        return 1

    @app.task(name="billing.flaky", bind=True, max_retries=2, default_retry_delay=0)
    def flaky(self):
        if self.request.retries < 2:
            raise self.retry(exc=ConnectionError("again"))
        return "done"

    failed, fine, retried = charge.delay(42), ok.delay(), flaky.delay()
    worker = app.Worker(install_signal_handlers=False, pool="threads", concurrency=2)
    thread = threading.Thread(target=worker.start)
    thread.start()
    try:
        with pytest.raises(PaymentError):
            failed.get(timeout=15)
        assert fine.get(timeout=15) == 1 and retried.get(timeout=15) == "done"
        sentry_sdk.flush(timeout=5)
        wait_until(lambda: sentry.events)
    finally:
        worker.stop()
        thread.join(30)
    assert sentry.paths and all(p.startswith("/api/42/envelope/") for p in sentry.paths)
    [event] = sentry.events  # the success and the retries are not errors
    [exc] = event["exception"]["values"]
    assert exc["type"] == "PaymentError" and exc["value"] == "card declined for 42"
    assert exc["mechanism"] == {"type": "celeriac", "handled": False}
    assert event["tags"]["celeriac.task"] == "billing.charge"
    assert event["tags"]["celeriac.task_id"] == failed.id
    assert event["tags"]["celeriac.queue"] == "celery"
    assert event["contexts"]["celeriac"]["id"] == failed.id
    assert "args" not in event["contexts"]["celeriac"]  # send_default_pii is off
    assert event["transaction"] == "billing.charge"


def test_a_prefork_child_reports_and_flushes_when_the_worker_stops(
    sentry: Envelopes, project: Project
) -> None:
    project.set(CELERIAC_TEST_SENTRY_DSN=sentry.dsn)
    worker = project.worker("-c", "1")
    failed = project.send("fail", "from a child")
    with pytest.raises(Exception, match="from a child"):
        failed.get(timeout=20)
    worker.signal(signal.SIGTERM)
    assert worker.wait() == 0
    wait_until(lambda: sentry.events, timeout=10)
    [event] = sentry.events
    assert event["exception"]["values"][0]["type"] == "CustomError"
    assert event["tags"]["celeriac.task"] == "proj.tasks.fail"
    assert event["tags"]["celeriac.task_id"] == failed.id
