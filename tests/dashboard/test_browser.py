"""The dashboard's pages in a real browser: Debian's Chromium driven by Playwright, against a
dashboard and a worker on the SQLite broker (and one run on Redis).

Each test is what an operator does: open every page, find a task and open it, terminate a
running one, retry a failed one (alone and in bulk after a preview of the count), requeue a
dead letter once its task is deployed, watch a chart move, and be refused with a wrong
password. With ``CELERIAC_SCREENSHOTS=1`` the last test saves a screenshot of every page to
``docs/img/dashboard-<page>.png`` (for docs/monitoring.md); otherwise nothing is written.

Chromium must be at /usr/bin/chromium (``apt-get install chromium``): without it the tests
are skipped here and fail in CI.
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from celeriac import Celery, chain
from conftest import wait_until
from dashboard.conftest import (
    TASKS,
    LiveCluster,
    RunningDashboard,
    live_cluster,
    start_dashboard,
)
from services import IN_CI

try:
    from playwright.sync_api import Browser, Page, expect, sync_playwright
    from playwright.sync_api import Error as PlaywrightError
except ImportError:  # pragma: no cover - the test extra is not installed
    sync_playwright = None  # type: ignore[assignment]

pytestmark = pytest.mark.slow

CHROMIUM = Path("/usr/bin/chromium")
DOCS_IMG = Path(__file__).resolve().parents[2] / "docs" / "img"
USER, PASSWORD = "ann", "correct horse battery"
#: how long the page may take to show what the API says (it polls every 3-5 s)
SHOWN = 30_000


def require_browser() -> None:
    """Skip without Chromium or Playwright; in CI that is a failure."""
    missing = []
    if not CHROMIUM.exists():
        missing.append(f"chromium is not installed at {CHROMIUM} (apt-get install chromium)")
    if sync_playwright is None:
        missing.append("playwright is not installed (pip install 'celeriac[test]')")
    if missing:
        message = "; ".join(missing)
        if IN_CI:
            pytest.fail(f"{message} (CI=true: the browser tests are required)")
        pytest.skip(message)


@dataclass
class Site:
    """A dashboard (with basic auth) over a live cluster, as the browser reaches it."""

    cluster: LiveCluster
    board: RunningDashboard

    @property
    def app(self) -> Celery:
        return self.cluster.app

    @property
    def url(self) -> str:
        return self.board.url

    def send(self, short: str, *args: Any, **options: Any) -> Any:
        return self.cluster.send(short, *args, **options)

    def row(self, task_id: str, state: str | None = None, timeout: float = 30) -> Any:
        """The dashboard's store row of ``task_id`` once it is there (in ``state``)."""

        def found() -> Any:
            row = self.board.service.store.task(task_id)
            return row if row and (state is None or row["state"] == state) else None

        return wait_until(found, timeout=timeout, interval=0.1)


def open_site(cluster: LiveCluster, directory: Path) -> RunningDashboard:
    """A dashboard of ``cluster``'s app behind basic auth, with alert rules and a beat
    entry, on an event store of its own."""
    app = cluster.app
    app.conf.dashboard_alerts = [
        {
            "kind": "failure_ratio",
            "name": "failures",
            "window": 3600,
            "threshold": 0.05,
            "min_count": 1,
            "severity": "critical",
        },
        {"kind": "queue_depth", "queue": "celery", "threshold": 500},
        {"kind": "dead_letters_growth", "queue": "celery", "increase": 1, "window": 3600},
        {"kind": "worker_offline", "hostname": "*"},
    ]
    app.conf.beat_schedule = {
        "add-every-5-minutes": {"task": TASKS["add"], "schedule": 300.0, "args": (2, 3)},
    }
    return start_dashboard(
        app, store=f"sqlite:///{directory}/browser-events.db", basic_auth={USER: PASSWORD}
    )


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    """One headless Chromium for the module."""
    require_browser()
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(
            executable_path=str(CHROMIUM), args=["--no-sandbox"], headless=True
        )
        yield launched
        launched.close()


@pytest.fixture(scope="module")
def site(
    browser: Browser, live_sqlite: LiveCluster, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Site]:
    """The SQLite cluster's worker, seen through a dashboard with auth and alert rules."""
    board = open_site(live_sqlite, tmp_path_factory.mktemp("browser"))
    yield Site(live_sqlite, board)
    board.stop()


@pytest.fixture(params=["sqlite", "redis"])
def any_site(
    request: pytest.FixtureRequest,
    browser: Browser,
    site: Site,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Site]:
    """The SQLite site, or a cluster of its own on the test slot's Redis."""
    if request.param == "sqlite":
        yield site
        return
    directory = tmp_path_factory.mktemp("browser-redis")
    with live_cluster("redis", directory, basic_auth={USER: PASSWORD}) as cluster:
        yield Site(cluster, cluster.dashboard)


def _problems(page: Page) -> list[str]:
    found: list[str] = []

    def on_console(message: Any) -> None:
        text = message.text
        if message.type == "error" and "Failed to load resource" not in text:
            found.append(f"console: {text}")
        if "Content Security Policy" in text or "Content-Security-Policy" in text:
            found.append(f"CSP: {text}")

    page.on("console", on_console)
    page.on("pageerror", lambda error: found.append(f"page error: {error}"))
    return found


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    """A signed-in tab of 1280x800; a JavaScript error or a CSP violation fails the test."""
    context = browser.new_context(
        viewport={"width": 1280, "height": 800},
        http_credentials={"username": USER, "password": PASSWORD},
    )
    context.set_default_timeout(SHOWN)
    tab = context.new_page()
    problems = _problems(tab)
    yield tab
    context.close()
    assert not problems, problems


def visit(page: Page, site: Site, path: str) -> None:
    """Open ``path`` and wait until the page has its first data from the API."""
    response = page.goto(f"{site.url}{path}")
    assert response is not None and response.status == 200, path
    expect(page.locator("#live")).to_have_class(re.compile(r"\bok\b"))


def rows(page: Page, table: str) -> Any:
    return page.locator(f"{table} tr[data-id]")


# -- the pages --------------------------------------------------------------------------------


def test_every_page_loads_and_shows_the_cluster(page: Page, site: Site) -> None:
    done = site.send("add", 20, 22)
    site.row(done.id, "SUCCESS")
    hostname = site.cluster.hostname

    visit(page, site, "/")
    expect(page.locator("#card-workers")).to_have_text("1")
    expect(page.locator("#state-counts [data-state=SUCCESS]")).to_be_visible()
    expect(page.locator("#overview-queues")).to_contain_text("celery")
    expect(page.locator("#user")).to_have_text(f"signed in as {USER}")

    visit(page, site, "/workers")
    expect(page.locator(f'#workers-body tr[data-hostname="{hostname}"]')).to_contain_text("online")
    page.locator("#workers-body a", has_text=hostname).click()
    expect(page).to_have_url(re.compile(r"/worker/"))
    expect(page.locator("#worker-status")).to_have_text("online")
    expect(page.locator("#worker-pool")).to_contain_text("threads")
    expect(page.locator("#worker-queues")).to_contain_text("celery")
    expect(page.locator("#worker-registered")).to_contain_text(TASKS["sleep"])

    visit(page, site, f"/task/{done.id}")
    expect(page.locator("#task-state")).to_have_text("SUCCESS")
    expect(page.locator("#task-result")).to_have_text("42")

    for path, shows in [
        ("/tasks", ("#tasks-body", TASKS["add"])),
        ("/queues", ("#queues-body", "celery")),
        ("/deadletters", ("#dlq-body", "")),
        ("/schedules", ("#schedules-body", "add-every-5-minutes")),
        ("/charts", ("#runtimes-body", TASKS["add"])),
        ("/alerts", ("#rules-body", "failures")),
    ]:
        visit(page, site, path)
        selector, text = shows
        expect(page.locator(selector)).to_contain_text(text)
        assert page.locator(f'nav a.current[href$="{path}"]').count() == 1


def _statuses(browser: Browser, url: str, credentials: dict[str, str] | None) -> list[int]:
    """The HTTP statuses a tab opening ``url`` with ``credentials`` got."""
    context = browser.new_context(http_credentials=credentials)  # type: ignore[arg-type]
    tab = context.new_page()
    statuses: list[int] = []
    tab.on("response", lambda response: statuses.append(response.status))
    try:
        tab.goto(url)
    except PlaywrightError as exc:  # Chromium gives up on credentials it was refused
        assert "ERR_INVALID_AUTH_CREDENTIALS" in str(exc)
    finally:
        context.close()
    return statuses


def test_a_page_under_the_wrong_password_is_refused(browser: Browser, site: Site) -> None:
    for credentials in (None, {"username": USER, "password": "wrong"}):
        statuses = _statuses(browser, f"{site.url}/tasks", credentials)
        assert 401 in statuses and 200 not in statuses, (credentials, statuses)

    context = browser.new_context(http_credentials={"username": USER, "password": PASSWORD})
    try:
        tab = context.new_page()
        response = tab.goto(f"{site.url}/tasks")
        assert response is not None and response.status == 200
        expect(tab.locator("#user")).to_have_text(f"signed in as {USER}", timeout=SHOWN)
    finally:
        context.close()


def test_read_only_pages_show_no_action(browser: Browser, site: Site) -> None:
    board = start_dashboard(site.app, read_only=True)
    context = browser.new_context(viewport={"width": 1280, "height": 800})
    context.set_default_timeout(SHOWN)
    try:
        tab = context.new_page()
        tab.goto(f"{board.url}/queues")
        expect(tab.locator("#read-only")).to_be_visible()
        expect(tab.locator("#queues-body tr[data-queue=celery]")).to_be_visible()
        expect(tab.locator("#queues-body button[data-purge]")).to_be_hidden()
        tab.goto(f"{board.url}/tasks")
        expect(tab.locator("#read-only")).to_be_visible()
        expect(tab.locator("#bulk")).to_be_hidden()
    finally:
        context.close()
        board.stop()


# -- tasks ------------------------------------------------------------------------------------


def test_filter_the_tasks_and_open_one(page: Page, any_site: Site) -> None:
    site = any_site
    wanted = site.send("add", 4242, 17)
    other = site.send("add", 1, 1)
    site.row(wanted.id, "SUCCESS")
    site.row(other.id, "SUCCESS")

    visit(page, site, "/tasks")
    expect(rows(page, "#tasks-body").first).to_be_visible()
    page.select_option("#task-filter select[name=state]", "SUCCESS")
    page.fill("#task-filter input[name=search]", "4242")
    page.click("#task-filter button[type=submit]")
    expect(rows(page, "#tasks-body")).to_have_count(1)
    expect(rows(page, "#tasks-body").first).to_have_attribute("data-id", wanted.id)
    expect(page).to_have_url(re.compile(r"state=SUCCESS.*search=4242"))

    rows(page, "#tasks-body").first.locator("a.task-name").click()
    expect(page).to_have_url(re.compile(f"/task/{wanted.id}$"))
    expect(page.locator("#task-name")).to_have_text(TASKS["add"])
    expect(page.locator("#task-result")).to_have_text("4259")
    expect(page.locator("#task-args")).to_contain_text("4242")
    expect(page.locator("#task-timeline")).to_contain_text("SUCCESS")


def test_terminate_a_running_task(page: Page, site: Site) -> None:
    running = site.send("sleep", 60)
    site.row(running.id, "STARTED")

    visit(page, site, f"/task/{running.id}")
    expect(page.locator("#task-state")).to_have_text("STARTED")
    page.click("#task-terminate")
    expect(page.locator("#dialog")).to_be_visible()
    page.click("#dialog-ok")
    expect(page.locator("#task-state")).to_have_text("REVOKED")
    assert site.row(running.id)["state"] == "REVOKED"
    expect(page.locator("#task-terminate")).to_be_disabled()


def test_retry_a_failed_task_with_its_arguments(page: Page, site: Site) -> None:
    failed = site.send("fail", "retry me 77")
    site.row(failed.id, "FAILURE")

    visit(page, site, f"/task/{failed.id}")
    expect(page.locator("#task-exception")).to_contain_text("retry me 77")
    expect(page.locator("#task-traceback")).to_contain_text("ValueError")
    page.click("#task-retry")
    page.click("#dialog-ok")
    link = page.locator("#retried-link")
    expect(link).to_be_visible()
    new_id = (link.get_attribute("href") or "").rsplit("/", 1)[-1]
    assert new_id and new_id != failed.id
    again = site.row(new_id, "FAILURE")
    assert again["payload"] == {"args": ["retry me 77"], "kwargs": {}}

    link.click()
    expect(page.locator("#task-exception")).to_contain_text("retry me 77")


def test_bulk_retry_shows_the_count_first(page: Page, site: Site) -> None:
    first = site.send("fail", "bulk-q7")
    second = site.send("fail", "bulk-q7")
    site.row(first.id, "FAILURE")
    site.row(second.id, "FAILURE")

    visit(page, site, "/tasks?state=FAILURE&search=bulk-q7")
    expect(rows(page, "#tasks-body")).to_have_count(2)
    page.click("[data-bulk=retry][data-scope=filter]")
    expect(page.locator("#dialog-title")).to_have_text("Retry 2 tasks?")
    page.click("#dialog-ok")
    expect(page.locator("#toasts")).to_contain_text("Retried 2 tasks.")
    expect(rows(page, "#tasks-body")).to_have_count(4)

    # a selection: one of them, revoked
    rows(page, "#tasks-body").first.locator("input[type=checkbox]").check()
    expect(page.locator("#bulk-selected")).to_have_text("1 selected")
    page.click("[data-bulk=revoke][data-scope=selection]")
    expect(page.locator("#dialog-title")).to_have_text("Revoke 1 task?")
    page.click("#dialog-ok")
    expect(page.locator("#toasts")).to_contain_text("Revoked 1 task.")


# -- dead letters, charts -------------------------------------------------------------------


def test_requeue_a_dead_letter_once_its_task_exists(page: Page, site: Site) -> None:
    name = "dash.deployed_later"
    sent = site.app.send_task(name, (5,))
    wait_until(
        lambda: any(d.reason and name in d.reason for d in site.app.broker.dead_letters("celery")),
        timeout=30,
    )

    visit(page, site, "/deadletters")
    row = page.locator("#dlq-body tr", has_text=sent.id[:8])
    expect(row).to_contain_text("unknown task")

    @site.app.task(name=name)
    def deployed_later(x: int) -> int:
        return x * 2

    row.locator("button[data-requeue]").click()
    expect(page.locator("#toasts")).to_contain_text("Requeued 1 message.")
    expect(page.locator("#dlq-body tr", has_text=sent.id[:8])).to_have_count(0)
    assert site.row(sent.id, "SUCCESS")["result"] == "10"


def test_the_throughput_chart_moves_when_tasks_finish(page: Page, site: Site) -> None:
    visit(page, site, "/charts")
    chart = page.locator("#chart-throughput svg")
    expect(chart).to_have_attribute("data-sum", re.compile(r"\d"))
    before = float(chart.get_attribute("data-sum") or 0)

    results = [site.send("add", i, i) for i in range(3)]
    for result in results:
        site.row(result.id, "SUCCESS")
    page.wait_for_function(
        "before => Number(document.querySelector('#chart-throughput svg').dataset.sum)"
        " >= before + 3",
        arg=before,
        timeout=SHOWN,
    )


def test_acknowledge_and_silence_an_alert(page: Page, site: Site) -> None:
    failed = site.send("fail", "alarm")
    site.row(failed.id, "FAILURE")

    visit(page, site, "/alerts")
    row = page.locator("#alerts-body tr", has_text="failures")
    expect(row).to_contain_text("firing")
    row.locator("button[data-ack]").click()
    expect(row).to_contain_text(f"by {USER}")
    row.locator("button[data-silence]").click()
    page.select_option("#dialog select[name=minutes]", "15")
    page.click("#dialog-ok")
    expect(row).to_contain_text("until")


# -- screenshots for the docs -------------------------------------------------------------------


def _screenshot(page: Page, name: str, full: bool) -> None:
    page.wait_for_timeout(600)  # the charts drawn after the tables
    page.screenshot(path=str(DOCS_IMG / f"dashboard-{name}.png"), full_page=full)


@pytest.mark.skipif(
    os.environ.get("CELERIAC_SCREENSHOTS") != "1", reason="CELERIAC_SCREENSHOTS=1 saves them"
)
def test_screenshots_of_every_page(page: Page, site: Site) -> None:
    DOCS_IMG.mkdir(parents=True, exist_ok=True)
    app = site.app
    workflow = chain(
        app.signature(TASKS["add"], args=(1, 2)),
        app.signature(TASKS["add"], args=(3,)),
        app.signature(TASKS["fail"]),
    ).apply_async()
    for i in range(12):
        site.send("add", i, i * 3)
    sleeping = site.send("sleep", 30)
    app.send_task("dash.not_deployed_yet", (1,))
    failed = site.row(workflow.id, "FAILURE")
    wait_until(lambda: app.broker.dead_letters("celery"), timeout=30)
    time.sleep(3)  # a few samples for the queue and worker charts

    pages = [
        ("overview", "/"),
        ("workers", "/workers"),
        ("worker", f"/worker/{site.cluster.hostname}"),
        ("tasks", "/tasks"),
        ("task", f"/task/{failed['uuid']}"),
        ("queues", "/queues"),
        ("deadletters", "/deadletters"),
        ("schedules", "/schedules"),
        ("charts", "/charts?minutes=15"),
        ("alerts", "/alerts"),
    ]
    for name, path in pages:
        visit(page, site, path)
        if name == "task":
            expect(page.locator("#task-graph svg")).to_be_visible()
        _screenshot(page, name, full=name in ("task", "charts", "worker"))
    app.control.revoke(sleeping.id, terminate=True)
    assert all((DOCS_IMG / f"dashboard-{name}.png").exists() for name, _ in pages)
