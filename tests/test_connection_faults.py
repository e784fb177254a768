"""Producers facing a broker that is not there: clear errors, retries, no secrets shown."""

from __future__ import annotations

import logging
import socket
import time

import pytest

from celeriac import Celery
from celeriac.exceptions import OperationalError


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


URLS = {
    "redis": "redis://:s3cret@127.0.0.1:{port}/0",
    "amqp": "amqp://guest:s3cret@127.0.0.1:{port}//",
    "postgresql": "postgresql://postgres:s3cret@127.0.0.1:{port}/test",
}


@pytest.mark.parametrize("kind", ["redis", "amqp", "postgresql"])
def test_publish_retries_then_names_the_broker_without_its_password(
    kind: str, caplog: pytest.LogCaptureFixture
) -> None:
    url = URLS[kind].format(port=_closed_port())
    app = Celery("faults", broker=url, backend=None)
    app.conf.result_backend = "disabled"
    caplog.set_level(logging.DEBUG)
    started = time.monotonic()
    with pytest.raises(OperationalError) as raised:
        app.send_task(
            "anything",
            retry=True,
            retry_policy={
                "max_retries": 2,
                "interval_start": 0.1,
                "interval_step": 0.1,
                "interval_max": 0.5,
            },
        )
    elapsed = time.monotonic() - started
    message = str(raised.value)
    assert "after 3 attempt(s)" in message
    assert ":***@127.0.0.1" in message
    assert "s3cret" not in message and "s3cret" not in caplog.text
    assert 0.3 <= elapsed < 15
    app.close()


def test_no_retry_means_one_attempt() -> None:
    app = Celery("faults", broker=URLS["redis"].format(port=_closed_port()))
    app.conf.result_backend = "disabled"
    with pytest.raises(OperationalError, match=r"after 1 attempt\(s\)"):
        app.send_task("anything", retry=False)
    app.close()
