"""The console through HTTP (no browser): sign-in and its cookie, CSRF refusals, the rule
editor's messages, tenancy, and /docs without outside addresses. The browser tests
(tests/e2e/test_console_browser.py) drive the same pages in Chromium against real processes."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
from fastapi import FastAPI
from fastapi.routing import iter_route_contexts
from fastapi.testclient import TestClient
from starlette.routing import Mount

from tickwork.dialects.k6 import parse_create_schedule
from tickwork.store import Store

from .api_support import ALICE, BOB, CAROL, snapshot

BASE = "http://127.0.0.1:8080"


@pytest.fixture
def browser(app: FastAPI) -> Iterator[TestClient]:
    """A cookie-keeping client, like a browser tab, on the app's own origin."""
    with TestClient(app, base_url=BASE) as client:
        yield client


def _sign_in(client: TestClient, token: str, zone: str = "Europe/Berlin") -> str:
    """Sign in through the form; the session's CSRF token (from the next page)."""
    page = client.get("/ui/sign-in")
    nonce = re.search(r'name="nonce" value="([^"]+)"', page.text)
    assert nonce is not None
    answer = client.post(
        "/ui/sign-in",
        data={"nonce": nonce.group(1), "token": token, "zone": zone, "next": "/ui/"},
        follow_redirects=False,
    )
    assert answer.status_code == 303, answer.text
    return _csrf(client.get("/ui/").text)


def _csrf(html: str) -> str:
    found = re.search(r'name="csrf" value="([^"]+)"', html)
    assert found is not None, html[:500]
    return found.group(1)


def _created(answer: object) -> int:
    location = getattr(answer, "headers", {}).get("location", "")
    assert re.fullmatch(r"/ui/[a-z-]+/[0-9]+", location), location
    return int(location.rsplit("/", 1)[1])


def _project_and_test(client: TestClient, csrf: str) -> tuple[int, int]:
    project = client.post(
        "/ui/projects", data={"csrf": csrf, "name": "web"}, follow_redirects=False
    )
    project_id = _created(project)
    test = client.post(
        f"/ui/projects/{project_id}/load-tests",
        data={"csrf": csrf, "name": "homepage", "script": "export default function () {}"},
        files={"script_file": ("", b"")},
        follow_redirects=False,
    )
    return project_id, _created(test)


def test_a_stranger_is_sent_to_sign_in_from_every_page(browser: TestClient) -> None:
    assert browser.get("/", follow_redirects=False).headers["location"] == "/ui/"
    assert browser.get("/ui", follow_redirects=False).headers["location"].endswith("/ui/")
    for path in ("/ui/", "/ui/schedules", "/ui/runs/1", "/ui/load-tests/1/schedule"):
        answer = browser.get(path, follow_redirects=False)
        assert answer.status_code == 303
        assert answer.headers["location"].startswith("/ui/sign-in?next=")
    refused = browser.post("/ui/projects", data={"name": "x"}, follow_redirects=False)
    assert refused.status_code == 401


def test_signing_in_keeps_a_strict_httponly_session_cookie_and_never_the_token(
    browser: TestClient, store: Store
) -> None:
    page = browser.get("/ui/sign-in")
    nonce = re.search(r'name="nonce" value="([^"]+)"', page.text)
    assert nonce is not None
    answer = browser.post(
        "/ui/sign-in",
        data={"nonce": nonce.group(1), "token": ALICE, "zone": "Europe/Berlin", "next": "/ui/"},
        follow_redirects=False,
    )
    assert answer.status_code == 303
    assert answer.headers["location"] == "/ui/"
    cookie = next(c for c in answer.headers.get_list("set-cookie") if c.startswith("tw_session="))
    assert "HttpOnly" in cookie
    assert "SameSite=strict" in cookie
    assert ALICE not in cookie
    assert ALICE not in str(snapshot(store))
    overview = browser.get("/ui/")
    assert "alice@example.com" in overview.text
    assert ALICE not in overview.text


def test_every_page_is_uncached_unframeable_and_loads_only_the_apps_own_resources(
    browser: TestClient,
) -> None:
    pages = [browser.get("/ui/sign-in")]
    _sign_in(browser, ALICE)
    pages += [browser.get(path) for path in ("/ui/", "/ui/schedules", "/ui/runs/999999")]
    assert [page.status_code for page in pages] == [200, 200, 200, 404]
    for page in pages:
        assert page.headers["Cache-Control"] == "no-store"
        assert page.headers["X-Frame-Options"] == "DENY"
        policy = dict(
            part.strip().split(" ", 1)
            for part in page.headers["Content-Security-Policy"].split(";")
        )
        for directive in ("default-src", "script-src", "style-src"):
            assert policy[directive] == "'self'", (directive, policy)
        assert policy["frame-ancestors"] == "'none'"


def test_a_wrong_token_or_a_forged_sign_in_form_opens_no_session(
    browser: TestClient, store: Store
) -> None:
    page = browser.get("/ui/sign-in")
    nonce = re.search(r'name="nonce" value="([^"]+)"', page.text)
    assert nonce is not None
    wrong = browser.post(
        "/ui/sign-in", data={"nonce": nonce.group(1), "token": "nope"}, follow_redirects=False
    )
    assert wrong.status_code == 401
    assert "not valid" in wrong.text
    forged = browser.post(
        "/ui/sign-in", data={"nonce": "made-up", "token": ALICE}, follow_redirects=False
    )
    assert forged.status_code == 403
    assert snapshot(store) == {}


def test_a_write_without_the_csrf_token_or_from_another_origin_changes_nothing(
    browser: TestClient, store: Store
) -> None:
    csrf = _sign_in(browser, ALICE)
    before = snapshot(store)
    missing = browser.post("/ui/projects", data={"name": "x"}, follow_redirects=False)
    wrong = browser.post("/ui/projects", data={"name": "x", "csrf": "x" + csrf})
    cross = browser.post(
        "/ui/projects",
        data={"name": "x", "csrf": csrf},
        headers={"Origin": "https://evil.example"},
    )
    assert [missing.status_code, wrong.status_code, cross.status_code] == [403, 403, 403]
    assert "another site" in missing.text
    assert snapshot(store) == before
    made = browser.post("/ui/projects", data={"name": "x", "csrf": csrf}, follow_redirects=False)
    assert made.status_code == 303


def test_the_rule_editor_shows_the_apis_messages_by_the_fields_and_saves_nothing(
    browser: TestClient, store: Store
) -> None:
    csrf = _sign_in(browser, ALICE)
    _, test_id = _project_and_test(browser, csrf)
    bad = {
        "csrf": csrf,
        "kind": "cron",
        "starts": "2026-11-23T09:00:00Z",
        "cron.schedule": "0 25 * * *",
        "cron.time_zone": "Mars/Olympus",
    }
    preview = browser.post("/ui/schedules/preview", data=bad, headers={"X-CSRF-Token": csrf})
    assert preview.json()["ok"] is False
    errors = preview.json()["errors"]
    assert errors["cron.schedule"] == ["Bad hour field '25': 25 is outside 0-23."]
    assert "Mars/Olympus" in errors["cron.time_zone"][0]
    before = snapshot(store)
    saved = browser.post(f"/ui/load-tests/{test_id}/schedule", data=bad)
    assert saved.status_code == 400
    assert 'id="err-cron.schedule"' in saved.text
    assert "Bad hour field &#39;25&#39;: 25 is outside 0-23." in saved.text
    assert snapshot(store) == before

    good = bad | {"cron.schedule": "0 9 * * 1-5", "cron.time_zone": "Europe/Berlin"}
    preview = browser.post("/ui/schedules/preview", data=good, headers={"X-CSRF-Token": csrf})
    assert preview.json()["words"] == "every weekday at 09:00 Europe/Berlin"
    assert len(preview.json()["occurrences"]) == 10
    saved = browser.post(f"/ui/load-tests/{test_id}/schedule", data=good, follow_redirects=False)
    schedule_id = _created(saved)
    page = browser.get(f"/ui/schedules/{schedule_id}")
    assert "every weekday at 09:00 Europe/Berlin" in page.text
    assert store.schedules.get(1, schedule_id).load_test_id == test_id


def test_another_tenant_sees_none_of_it(app: FastAPI, browser: TestClient, store: Store) -> None:
    csrf = _sign_in(browser, ALICE)
    project_id, test_id = _project_and_test(browser, csrf)
    schedule_id = _created(
        browser.post(
            f"/ui/load-tests/{test_id}/schedule",
            data={"csrf": csrf, "kind": "once", "starts": "2027-01-01T00:00:00Z"},
            follow_redirects=False,
        )
    )
    with TestClient(app, base_url=BASE) as bob_browser:
        bob_csrf = _sign_in(bob_browser, BOB)
        for path in (
            f"/ui/schedules/{schedule_id}",
            f"/ui/load-tests/{test_id}",
            f"/ui/projects/{project_id}",
            f"/ui/load-tests/{test_id}/schedule",
        ):
            assert bob_browser.get(path).status_code == 404, path
        for path in ("/ui/schedules", "/ui/load-tests", "/ui/projects"):
            assert "homepage" not in bob_browser.get(path).text
        before = snapshot(store)
        for action in ("pause", "delete", "run-now"):
            answer = bob_browser.post(
                f"/ui/schedules/{schedule_id}/{action}", data={"csrf": bob_csrf}
            )
            assert answer.status_code == 404
        assert snapshot(store) == before
        # nor may Bob's session switch into Alice's stack
        assert (
            bob_browser.post("/ui/stack", data={"csrf": bob_csrf, "stack": "1"}).status_code == 403
        )


def test_carol_configured_by_digest_signs_in_and_stacks_switch_within_the_token(
    browser: TestClient,
) -> None:
    csrf = _sign_in(browser, CAROL)
    assert "carol@example.com" in browser.get("/ui/").text
    refused = browser.post("/ui/stack", data={"csrf": csrf, "stack": "2"})
    assert refused.status_code == 403


def test_signing_out_ends_the_session_for_good(browser: TestClient, store: Store) -> None:
    csrf = _sign_in(browser, ALICE)
    cookie = browser.cookies.get("tw_session")
    assert cookie
    out = browser.post("/ui/sign-out", data={"csrf": csrf}, follow_redirects=False)
    assert out.headers["location"] == "/ui/sign-in"
    browser.cookies.set("tw_session", cookie)  # a copy of the old cookie opens nothing
    assert browser.get("/ui/", follow_redirects=False).status_code == 303
    assert list(store.client.scan_iter(match=f"{store.prefix}:session:*")) == []


def test_docs_and_redoc_load_every_asset_from_the_app(browser: TestClient) -> None:
    for path in ("/docs", "/redoc"):
        html = browser.get(path).text
        addresses = re.findall(r'(?:src|href)="([^"]+)"', html) + re.findall(
            r"url: '([^']+)'", html
        )
        assert addresses, html
        assert all(address.startswith("/") for address in addresses), addresses
        assert "cdn" not in html
        assert "fonts.googleapis" not in html
        for address in addresses:
            assert browser.get(address).status_code == 200, address


def test_the_schedule_list_pages_and_filters_by_project_name_and_state(
    browser: TestClient, store: Store
) -> None:
    _sign_in(browser, ALICE)
    now = datetime.now(UTC)
    request, schedule = parse_create_schedule(
        b'{"starts": "2030-01-01T00:00:00Z", "cron": {"schedule": "0 9 * * 1-5",'
        b' "time_zone": "Europe/Berlin"}}'
    )
    odd = store.projects.create(1, name="odd", now=now)
    even = store.projects.create(1, name="even", now=now)
    for n in range(120):
        test = store.load_tests.create(
            1, project_id=(odd if n % 2 else even).id, name=f"lt {n}", script=b"x", now=now
        )
        record = store.schedules.put(
            stack=1,
            load_test_id=test.id,
            schedule=schedule,
            request=request.model_dump_json(),
            created_by=None,
            now=now,
        )
        if n % 3 == 0:
            store.schedules.deactivate(1, record.id, now=now, note=f"why {n}")

    def rows(query: str) -> tuple[int, bool]:
        html = browser.get(f"/ui/schedules{query}").text
        return len(re.findall(r'data-schedule="[0-9]+"', html)), "Next →" in html

    assert rows("") == (50, True)
    assert rows("?page=3") == (20, False)
    assert rows("?state=paused") == (40, False)
    assert rows("?state=active&page=2") == (30, False)
    assert rows(f"?project={odd.id}") == (50, True)
    assert rows(f"?project={odd.id}&page=2") == (10, False)
    assert rows(f"?project={odd.id}&state=active") == (40, False)  # odd n, not a multiple of 3
    assert rows("?name=lt+9") == (1, False)
    assert rows("?name=lt") == (0, False)
    page = browser.get("/ui/schedules?name=lt+9").text
    assert "every weekday at 09:00 Europe/Berlin" in page
    assert "why 9" in page  # paused, with its note


def _console_routes(app: FastAPI) -> list[tuple[str, str]]:
    (mount,) = [r for r in app.routes if isinstance(r, Mount) and r.path == "/ui"]
    assert isinstance(mount.app, FastAPI)
    return sorted(
        (method, "/ui" + route.path)
        for route in iter_route_contexts(mount.app.routes)
        if route.path
        for method in route.methods or ()
        if method != "HEAD"
    )


def _any(template: str) -> str:
    path = template.replace("{report_id}", "6f1c2e0a-3b7d-4c55-9a8e-2d4f6b8c0e13")
    return re.sub(r"\{[^}]+\}", "1", path)


OPEN_PAGES = {("GET", "/ui/sign-in"), ("POST", "/ui/sign-in")}
OPEN_PAGES |= {("GET", "/ui/docs-assets/redoc.standalone.js")}


def test_every_console_page_needs_a_session_and_every_write_its_csrf_token(
    app: FastAPI, browser: TestClient, store: Store
) -> None:
    """The console's own auth matrix, enumerated from its routes: a route added later is in
    it without anyone listing it (the API's matrix, test_auth_matrix, covers bearer routes)."""
    routes = [route for route in _console_routes(app) if route not in OPEN_PAGES]
    assert len(routes) >= 30
    for method, template in routes:
        answer = browser.request(method, _any(template), follow_redirects=False)
        expected = 303 if method == "GET" else 401
        assert answer.status_code == expected, (method, template)
    csrf = _sign_in(browser, ALICE)
    _project_and_test(browser, csrf)
    before = snapshot(store)
    for method, template in routes:
        if method == "POST":
            answer = browser.post(_any(template), data={"csrf": "forged"})
            assert answer.status_code == 403, template
    assert snapshot(store) == before


def test_the_editor_sets_the_dst_policy_and_jitter_and_the_schedule_page_shows_them(
    browser: TestClient, store: Store
) -> None:
    csrf = _sign_in(browser, ALICE)
    _, test_id = _project_and_test(browser, csrf)
    form = {
        "csrf": csrf,
        "kind": "cron",
        "starts": "2026-11-23T09:00:00Z",
        "cron.schedule": "30 2 * * *",
        "cron.time_zone": "Europe/Berlin",
        "cron.dst.gap": "skip",
        "cron.dst.repeat": "both",
        "jitter_seconds": "90000",
    }
    refused = browser.post(f"/ui/load-tests/{test_id}/schedule", data=form)
    assert refused.status_code == 400
    assert 'id="err-jitter_seconds"' in refused.text
    assert "jitter_seconds" in refused.text
    saved = browser.post(
        f"/ui/load-tests/{test_id}/schedule",
        data=form | {"jitter_seconds": "30"},
        follow_redirects=False,
    )
    schedule_id = _created(saved)
    record = store.schedules.get(1, schedule_id)
    assert record.jitter_s == 30
    page = browser.get(f"/ui/schedules/{schedule_id}").text
    assert "up to 30 s after each instant" in page
    assert "a skipped local time runs nothing that day; a repeated one runs at both passes" in page
    editor = browser.get(f"/ui/load-tests/{test_id}/schedule").text
    assert re.search(r'<option value="skip" selected>', editor)
    assert 'name="jitter_seconds" type="text" inputmode="numeric" value="30"' in editor
