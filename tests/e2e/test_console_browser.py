"""The console in a real browser: Debian's Chromium driven by Playwright against real
`tickwork api`, `tickwork scheduler` and `tickwork worker` processes on the real Redis, with
real k6 runs against a local target.

Every request the browser makes is routed through a handler that lets 127.0.0.1 through and
aborts anything else, recording it: each test ends by asserting the page asked for nothing
outside the machine. Each page visited is saved as a screenshot under the test's tmp path;
with TICKWORK_UPDATE_SCREENSHOTS=1 the README's three are written to docs/screenshots/ too.

Skipped only when Chromium or Playwright is missing outside CI; in CI (CI set) they must run.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest

from .processes import Process, Processes

pytestmark = pytest.mark.slow

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
ALICE = "console-alice-0123456789"
BOB = "console-bob-0123456789ab"
README_SHOTS = Path(__file__).resolve().parents[2] / "docs" / "screenshots"

K6_QUICK = """import http from 'k6/http';
import { check } from 'k6';
export const options = { vus: 1, iterations: 5,
  thresholds: { http_req_failed: ['rate<0.01'], http_req_duration: ['p(95)<2000'] } };
export default function () {
  check(http.get(__ENV.TARGET), { 'status is 200': (r) => r.status === 200 });
}
"""
K6_LONG = """import http from 'k6/http';
import { sleep } from 'k6';
export const options = { vus: 1, duration: '60s' };
export default function () { http.get(__ENV.TARGET); sleep(0.1); }
"""

try:
    from playwright.sync_api import Browser, Page, Route, expect, sync_playwright
except ImportError:  # pragma: no cover - the skip below says why
    if os.environ.get("CI"):
        raise
    pytest.skip("Playwright is not installed (pip install playwright)", allow_module_level=True)

if not Path(CHROMIUM).exists():
    if os.environ.get("CI"):
        raise RuntimeError(f"Chromium is not at {CHROMIUM}: apt-get install -y chromium")
    pytest.skip("Chromium is not installed (apt-get install -y chromium)", allow_module_level=True)


@dataclass
class Outside:
    """Requests the browser tried to send beyond 127.0.0.1 (each was aborted)."""

    urls: list[str] = field(default_factory=list)

    def route(self, route: Route) -> None:
        host = urlsplit(route.request.url).hostname
        if route.request.url.startswith(("data:", "blob:")) or host == "127.0.0.1":
            route.continue_()
            return
        self.urls.append(route.request.url)
        route.abort("internetdisconnected")


@dataclass
class Console:
    base: str
    api: Process
    browser: Browser
    target: str
    outside: Outside
    shots: Path

    def page(self, *, width: int = 1280, height: int = 900) -> Page:
        context = self.browser.new_context(
            viewport={"width": width, "height": height},
            timezone_id="Europe/Berlin",
            base_url=self.base,
        )
        context.route("**/*", self.outside.route)
        return context.new_page()

    def shot(self, page: Page, name: str, *, readme: bool = False) -> None:
        path = self.shots / f"{name}.png"
        page.screenshot(path=str(path), full_page=True)
        if readme and os.environ.get("TICKWORK_UPDATE_SCREENSHOTS") == "1":
            README_SHOTS.mkdir(parents=True, exist_ok=True)
            shutil.copy(path, README_SHOTS / f"{name}.png")


@pytest.fixture(scope="module")
def target() -> Iterator[str]:
    """The system under load: answers every GET with 200."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"ok")

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/"
    server.shutdown()
    server.server_close()


@pytest.fixture(scope="module")
def console(
    redis_url: str, target: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Console]:
    prefix = f"e2ec{uuid.uuid4().hex[:8]}"
    env = {
        "TICKWORK_REDIS_URL": redis_url,
        "TICKWORK_KEY_PREFIX": prefix,
        "TICKWORK_QUEUES": json.dumps([f"{prefix}-runs"]),
        "TICKWORK_LEASE_TTL_SECONDS": "2",
        "TICKWORK_RUN_HEARTBEAT_SECONDS": "1",
        "TICKWORK_TOKENS": json.dumps(
            [
                {"token": ALICE, "email": "alice@example.com", "stacks": [1]},
                {"token": BOB, "email": "bob@example.com", "stacks": [2]},
            ]
        ),
    }
    logs = tmp_path_factory.mktemp("console-e2e")
    shots = logs / "screenshots"
    shots.mkdir()
    processes = Processes(env, logs)
    try:
        api = processes.api("api")
        scheduler = processes.scheduler("scheduler")
        processes.worker("worker")
        for process in (api, scheduler):
            processes.wait_healthy(process)
        processes.leader()
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            try:
                yield Console(
                    f"http://127.0.0.1:{api.port}", api, browser, target, Outside(), shots
                )
            finally:
                browser.close()
    finally:
        processes.stop_all()


def _until(predicate: Callable[[], bool], timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.25)


def _sign_in(page: Page, token: str) -> None:
    page.goto("/ui")
    expect(page).to_have_url(re.compile(r"/ui/sign-in\?next="))
    page.get_by_label("API token").fill(token)
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("heading", name=re.compile("^Overview"))).to_be_visible()


def _new_load_test(page: Page, console: Console, project: str, name: str, script: str) -> int:
    page.get_by_role("link", name="Projects", exact=True).click()
    page.get_by_label("Name").fill(project)
    page.get_by_role("button", name="Create the project").click()
    expect(page.get_by_role("heading", name=f"Project {project}", exact=False)).to_be_visible()
    page.get_by_label("Name").fill(name)
    page.get_by_label("k6 script").fill(script)
    runner = {"type": "k6", "env": {"TARGET": console.target}, "timeout_seconds": 120}
    page.get_by_label("Runner").fill(json.dumps(runner))
    page.get_by_role("button", name="Create the load test").click()
    expect(page.get_by_role("heading", name=re.compile(name))).to_be_visible()
    found = re.search(r"/ui/load-tests/([0-9]+)$", page.url)
    assert found is not None, page.url
    return int(found.group(1))


def _no_overflow(page: Page) -> bool:
    width: bool = page.evaluate("document.documentElement.scrollWidth <= window.innerWidth + 1")
    return width


def test_docs_and_redoc_render_with_the_network_cut_off(console: Console) -> None:
    page = console.page()
    page.goto("/docs")
    expect(page.locator(".swagger-ui .info .title")).to_contain_text("tickwork")
    expect(page.locator(".opblock-tag-section").first).to_be_visible()
    console.shot(page, "docs")
    page.goto("/redoc")
    # ReDoc lays out the whole ~80-operation document before its first heading: seconds of
    # CPU, more while the other test worker runs (5 s, Playwright's default, was not enough).
    heading = page.get_by_role("heading", name=re.compile("tickwork")).first
    expect(heading).to_be_visible(timeout=30_000)
    console.shot(page, "redoc")
    assert console.outside.urls == []


def test_a_user_schedules_watches_pauses_and_signs_out(console: Console) -> None:
    page = console.page()
    page.goto("/ui")
    page.keyboard.press("Tab")  # the first stop of the keyboard: the skip link
    console.shot(page, "sign-in")
    _sign_in(page, ALICE)
    load_test_id = _new_load_test(page, console, "shop", "checkout", K6_QUICK)
    console.shot(page, "load-test")

    # Schedule it from the edit form, a few seconds ahead, watching the preview.
    page.get_by_role("link", name="Schedule it").click()
    starts = (datetime.now(UTC) + timedelta(seconds=6)).replace(microsecond=0)
    page.locator("#starts").fill("not a time")
    expect(page.locator('[id="err-starts"]')).not_to_be_empty()
    page.locator("#starts").fill(starts.strftime("%Y-%m-%dT%H:%M:%SZ"))
    expect(page.locator('[id="err-starts"]')).to_be_empty()
    expect(page.locator("#preview-words")).to_have_text(re.compile("^once at "))
    expect(page.locator("#preview li")).to_have_count(1)
    page.get_by_role("button", name="Save the schedule").click()
    expect(page.locator("#words")).to_have_text(re.compile("^once at "))
    schedule_url = page.url
    assert re.search(r"/ui/schedules/[0-9]+$", schedule_url)
    console.shot(page, "schedule-once")

    # The run appears in the runs list, and its page follows it to its end by itself.
    page.get_by_role("link", name="Runs", exact=True).click()

    def fired() -> bool:
        page.reload()
        return page.locator("#runs tbody tr").count() == 1

    _until(fired, 30, "the schedule to fire")
    page.locator("#runs tbody tr a").first.click()
    expect(page.locator("#run-status")).to_have_text("completed · passed", timeout=60_000)
    expect(page.locator("#thresholds")).to_contain_text("http_req_failed")
    expect(page.locator("#thresholds")).to_contain_text("✓ held")
    expect(page.locator("#metrics")).to_contain_text("http_reqs")
    expect(page.locator("#output")).to_contain_text("checks")
    expect(page.locator("ol.timeline li")).to_have_count(
        4
    )  # created, initializing, running, completed
    console.shot(page, "run", readme=True)

    # Edit the rule to every minute with the preview, then pause it with a note: the next
    # occurrence passes and is recorded as skipped (paused).
    page.goto(schedule_url)
    page.get_by_role("link", name="Edit the rule").click()
    page.get_by_label("cron expression").check()
    page.locator("#cron-schedule").fill("* * * * *")
    page.locator("#cron-zone").fill("Europe/Berlin")
    expect(page.locator("#preview-words")).to_have_text("every minute Europe/Berlin")
    expect(page.locator("#preview li")).to_have_count(10)
    page.locator("#cron-schedule").fill("* * * * * *")
    expect(page.locator('[id="err-cron.schedule"]')).to_have_text(
        "A cron expression has exactly 5 fields; 6 given."
    )
    page.locator("#cron-schedule").fill("* * * * *")
    expect(page.locator('[id="err-cron.schedule"]')).to_be_empty()
    console.shot(page, "rule-editor", readme=True)
    # Save early in a minute, so that the pause comes before the minute's occurrence.
    _until(lambda: datetime.now(UTC).second < 40, 25, "the start of a minute")
    page.get_by_role("button", name="Save the schedule").click()
    expect(page.locator("#words")).to_have_text("every minute Europe/Berlin")
    page.get_by_label("Note").fill("database migration")
    page.get_by_role("button", name="Pause").click()
    expect(page.locator("#state")).to_contain_text("paused")
    expect(page.locator("#pause-note")).to_have_text("database migration")

    def skipped_paused() -> bool:
        page.reload()
        return page.locator('#past tr[data-outcome="skipped"]').count() >= 1

    _until(skipped_paused, 90, "an occurrence skipped while paused")
    expect(page.locator('#past tr[data-outcome="skipped"]').first).to_contain_text(
        "skipped (paused)"
    )
    console.shot(page, "schedule", readme=True)
    page.get_by_role("link", name="Schedules", exact=True).click()
    row = page.locator("#schedules tbody tr")
    expect(row).to_have_count(1)
    expect(row).to_contain_text("every minute Europe/Berlin")
    expect(row).to_contain_text("database migration")
    console.shot(page, "schedules")

    # The same list on a narrow screen: readable, nothing wider than the screen.
    narrow = console.page(width=390, height=844)
    narrow.context.add_cookies(
        [
            {"name": c["name"], "value": c["value"], "url": console.base}
            for c in page.context.cookies()
        ]
    )
    for path in ("/ui/", "/ui/schedules", schedule_url):
        narrow.goto(path)
        assert _no_overflow(narrow), path
    console.shot(narrow, "schedule-narrow")

    # A run that is still running is aborted from its page.
    page.goto(f"/ui/load-tests/{load_test_id}")
    long_id = _new_load_test(page, console, "soak", "long soak", K6_LONG)
    assert long_id != load_test_id
    page.get_by_role("button", name="Start a run").click()
    expect(page.locator("#run-status")).to_have_text("running", timeout=30_000)
    page.get_by_role("button", name="Abort the run").click()
    expect(page.locator("#run-status")).to_have_text(re.compile("^aborted · error"), timeout=30_000)
    expect(page.get_by_role("button", name="Abort the run")).to_have_count(0)

    # The overview counts the day and sees the processes.
    page.get_by_role("link", name="Overview").click()
    expect(page.locator("#fired")).to_have_text("1")
    expect(page.locator("#passed")).to_have_text("1")
    expect(page.locator("#leader")).to_contain_text("held")
    expect(page.locator("#workers")).to_have_text("1")
    console.shot(page, "overview")

    # Report and Kragle schedules set through their APIs: listed with their next run; a
    # report is deleted from the console after its confirmation.
    api = httpx.Client(
        base_url=console.base,
        headers={"Authorization": f"Bearer {ALICE}", "X-Stack-Id": "1"},
        timeout=10,
    )
    template = api.post("/kragle/schedules", json={"name": "hourly", "config": {"period": 3600}})
    assert template.status_code in (200, 201), template.text
    job = api.post(
        "/kragle/jobs", json={"schedule_id": template.json()["id"], "load_test_id": load_test_id}
    )
    assert job.status_code in (200, 201), job.text
    report = api.post(
        "/api/v1/reports/schedules",
        json={
            "attrs": {
                "name": "daily digest",
                "schedule": "daily",
                "send_via": "email",
                "send_to": ["ops@example.com"],
                "timezone": "Europe/Berlin",
                "type": "generic",
                "hosts": ["example.com"],
            }
        },
    )
    assert report.status_code in (200, 201), report.text
    api.close()
    page.get_by_role("link", name="Kragle", exact=True).click()
    expect(page.locator("main tbody tr")).to_contain_text("every hour")
    expect(page.locator("main tbody tr")).to_contain_text("checkout")
    console.shot(page, "kragle")
    page.get_by_role("link", name="Reports", exact=True).click()
    expect(page.locator("main tbody tr")).to_contain_text("daily digest")
    console.shot(page, "reports")
    page.get_by_role("link", name="Delete…").click()
    page.get_by_role("button", name="Delete the report").click()
    expect(page.locator("main")).to_contain_text("No report schedules.")

    # Signing out ends it: the console asks for the token again.
    page.get_by_role("button", name="Sign out").click()
    expect(page.get_by_label("API token")).to_be_visible()
    page.goto("/ui/schedules")
    expect(page).to_have_url(re.compile(r"/ui/sign-in"))

    # Another tenant's token sees none of it.
    other = console.page()
    _sign_in(other, BOB)
    for path in ("/ui/schedules", "/ui/runs", "/ui/load-tests", "/ui/projects"):
        other.goto(path)
        expect(other.locator("main")).not_to_contain_text("checkout")
        expect(other.locator("main")).not_to_contain_text("long soak")
    other.goto(schedule_url)
    expect(other.locator("main")).to_contain_text("not found")
    other.goto(f"/ui/load-tests/{load_test_id}")
    expect(other.locator("main")).to_contain_text("not found")
    console.shot(other, "other-tenant")

    assert console.outside.urls == []
