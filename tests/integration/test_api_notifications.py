"""Notification channels and rules through the API: what is stored, what is answered (never a
secret), and every mistake a 400 naming its field that changes nothing."""

from __future__ import annotations

import json
from typing import Any

import pytest

from tickwork.store import Store

from .api_support import BOB, Api, snapshot

CHANNELS = "/cloud/v6/notifications/channels"
RULES = "/cloud/v6/notifications/rules"
SLACK_URL = "https://hooks.slack.com/services/T000/B000/slack-secret-path-123"
TEAMS_URL = "https://example.webhook.office.com/webhookb2/teams-secret-path-456"
HOOK_URL = "https://ci.example/hooks/notify?token=hook-secret-query-789"
SIGNING = "signing-secret-0123456789abcdef"
HEADER_VALUE = "Bearer header-secret-value-abc"
SECRETS = (
    "slack-secret-path-123",
    "teams-secret-path-456",
    "hook-secret-query-789",
    SIGNING,
    "header-secret-value-abc",
)


def _channel(api: Api, body: dict[str, Any]) -> dict[str, Any]:
    response = api.post(CHANNELS, json=body)
    assert response.status_code == 201, response.text
    result: dict[str, Any] = response.json()
    return result


def _webhook(api: Api, **extra: Any) -> dict[str, Any]:
    return _channel(
        api,
        {
            "name": "ci hook",
            "type": "webhook",
            "url": HOOK_URL,
            "secret": SIGNING,
            "headers": {"Authorization": HEADER_VALUE},
            **extra,
        },
    )


def _details(response: Any) -> list[tuple[str, str]]:
    return [(d["target"], d["code"]) for d in response.json()["error"]["details"]]


def test_each_kind_of_channel_is_created_and_read_back_without_its_secrets(api: Api) -> None:
    hook = _webhook(api)
    slack = _channel(api, {"name": "ops", "type": "slack", "url": SLACK_URL})
    teams = _channel(api, {"name": "perf", "type": "teams", "url": TEAMS_URL})
    mail = _channel(
        api,
        {
            "name": "team",
            "type": "email",
            "to": ["ops@example.com", "perf@example.com"],
            "subject": "[tickwork] ${event.title}",
        },
    )

    assert {k: hook[k] for k in ("type", "url_origin", "secret_set", "header_names", "to")} == {
        "type": "webhook",
        "url_origin": "https://ci.example",
        "secret_set": True,
        "header_names": ["Authorization"],
        "to": None,
    }
    assert (slack["url_origin"], slack["secret_set"]) == ("https://hooks.slack.com", False)
    assert teams["url_origin"] == "https://example.webhook.office.com"
    assert (mail["url_origin"], mail["to"]) == (None, ["ops@example.com", "perf@example.com"])
    listed = api.get(CHANNELS)
    read = [api.get(f"{CHANNELS}/{c['id']}") for c in (hook, slack, teams, mail)]
    assert [r.json() for r in read] == [hook, slack, teams, mail]
    assert listed.json()["value"] == [hook, slack, teams, mail]
    for text in [listed.text, *(r.text for r in read), json.dumps([hook, slack, teams, mail])]:
        for secret in SECRETS:
            assert secret not in text


def test_a_patch_changes_what_it_names_and_keeps_the_secrets_it_leaves_out(
    api: Api, store: Store
) -> None:
    hook = _webhook(api)

    patched = api.patch(f"{CHANNELS}/{hook['id']}", json={"name": "renamed", "template": None})

    assert patched.status_code == 200, patched.text
    assert patched.json()["name"] == "renamed"
    stored = store.notifications.channels.get(1, hook["id"])
    assert (stored.url, stored.secret, dict(stored.headers)) == (
        HOOK_URL,
        SIGNING,
        {"Authorization": HEADER_VALUE},
    )
    cleared = api.patch(f"{CHANNELS}/{hook['id']}", json={"secret": None, "headers": None})
    assert (cleared.json()["secret_set"], cleared.json()["header_names"]) == (False, [])


def test_a_channel_read_from_the_api_can_be_sent_back_as_a_patch(api: Api, store: Store) -> None:
    hook = _webhook(api)
    body = {k: v for k, v in hook.items() if k not in ("id", "created", "updated")}
    body = {k: v for k, v in body.items() if k not in ("url_origin", "secret_set", "header_names")}

    again = api.post(CHANNELS, json={**hook, "name": "copy", "url": HOOK_URL})

    assert again.status_code == 201, again.text
    assert api.patch(f"{CHANNELS}/{hook['id']}", json=body).status_code == 200
    assert store.notifications.channels.get(1, hook["id"]).secret == SIGNING


@pytest.mark.parametrize(
    ("body", "problems"),
    [
        ({"name": "x", "type": "slack"}, [("url", "required")]),
        ({"name": "x", "type": "email"}, [("to", "required")]),
        (
            {"name": "x", "type": "slack", "url": SLACK_URL, "secret": SIGNING, "to": ["a@b.io"]},
            [("secret", "not_allowed"), ("to", "not_allowed")],
        ),
        (
            {"name": "x", "type": "email", "to": ["a@b.io", "not an address"], "url": SLACK_URL},
            [("url", "not_allowed"), ("to[1]", "invalid_address")],
        ),
        ({"name": "x", "type": "teams", "url": "ftp://example.com/x"}, [("url", "invalid_url")]),
        (
            {"name": "x", "type": "webhook", "url": "http://169.254.169.254/latest/"},
            [("url", "egress_refused")],
        ),
        (
            {"name": "x", "type": "webhook", "url": HOOK_URL, "secret": "short"},
            [("secret", "invalid_length")],
        ),
        (
            {
                "name": "x",
                "type": "webhook",
                "url": HOOK_URL,
                "headers": {"Content-Type": "text/plain", "X-Tickwork-Event-Id": "1", "A": "b\nc"},
            },
            [
                ("headers.Content-Type", "reserved_header"),
                ("headers.X-Tickwork-Event-Id", "reserved_header"),
                ("headers.A", "invalid_header"),
            ],
        ),
        (
            {"name": "x", "type": "slack", "url": SLACK_URL, "template": "${run.id} ${os.system}"},
            [("template", "unknown_variable")],
        ),
        (
            {"name": "x", "type": "webhook", "url": HOOK_URL, "template": '{"r": ${run.result}}'},
            [("template", "invalid_json")],
        ),
        (
            {"name": "x", "type": "slack", "url": SLACK_URL, "colour": "red"},
            [("colour", "unknown_field")],
        ),
        (
            {"name": "", "type": "pager", "url": SLACK_URL},
            [("name", "invalid_type"), ("type", "invalid_type")],
        ),
    ],
)
def test_a_bad_channel_is_400_naming_each_field_and_changes_nothing(
    api: Api, store: Store, body: dict[str, Any], problems: list[tuple[str, str]]
) -> None:
    before = snapshot(store)

    response = api.post(CHANNELS, json=body)

    assert response.status_code == 400, response.text
    assert _details(response) == problems
    assert snapshot(store) == before
    for secret in SECRETS:
        assert secret not in response.text


def test_a_bad_patch_is_400_and_changes_nothing(api: Api, store: Store) -> None:
    slack = _channel(api, {"name": "ops", "type": "slack", "url": SLACK_URL})
    before = snapshot(store)

    for body, problems in (
        ({"type": "teams"}, [("type", "immutable")]),
        ({"secret": SIGNING}, [("secret", "not_allowed")]),
        ({"url": None}, [("url", "required")]),
        ({"name": None}, [("name", "invalid_type")]),
        ({"nmae": "typo"}, [("nmae", "unknown_field")]),
    ):
        response = api.patch(f"{CHANNELS}/{slack['id']}", json=body)
        assert response.status_code == 400, response.text
        assert _details(response) == problems

    assert snapshot(store) == before


def _rule(api: Api, body: dict[str, Any]) -> dict[str, Any]:
    response = api.post(RULES, json=body)
    assert response.status_code == 201, response.text
    result: dict[str, Any] = response.json()
    return result


def test_a_rule_binds_events_of_a_stack_project_or_load_test_to_channels(api: Api) -> None:
    hook = _webhook(api)
    project = api.project()
    load_test = api.load_test(project)

    stack_wide = _rule(api, {"name": "all", "events": ["run_failed"], "channels": [hook["id"]]})
    one = _rule(
        api,
        {
            "name": "checkout",
            "events": ["consecutive_failures", "recovered", "occurrence_skipped"],
            "channels": [hook["id"]],
            "load_test_id": load_test,
            "consecutive_failures": 3,
            "skip_reasons": ["overlap"],
            "quiet_seconds": 60,
        },
    )
    of_project = _rule(
        api,
        {"name": "p", "events": ["worker_lost"], "channels": [hook["id"]], "project_id": project},
    )

    assert {k: one[k] for k in ("load_test_id", "project_id", "consecutive_failures")} == {
        "load_test_id": load_test,
        "project_id": None,
        "consecutive_failures": 3,
    }
    assert (one["skip_reasons"], one["quiet_seconds"], one["held"]) == (["overlap"], 60, [])
    assert of_project["project_id"] == project
    assert [r["id"] for r in api.get(RULES).json()["value"]] == [
        stack_wide["id"],
        one["id"],
        of_project["id"],
    ]
    disabled = api.patch(f"{RULES}/{one['id']}", json={"enabled": False, "quiet_seconds": None})
    assert (disabled.json()["enabled"], disabled.json()["quiet_seconds"]) == (False, None)


def test_a_bad_rule_is_400_naming_each_field_and_changes_nothing(api: Api, store: Store) -> None:
    hook = _webhook(api)
    theirs = api.as_(BOB, 3).post(CHANNELS, json={"name": "b", "type": "slack", "url": SLACK_URL})
    assert theirs.status_code == 201
    before = snapshot(store)

    for body, problems in (
        (
            {"name": "r", "events": ["run_failed", "run_exploded"], "channels": [hook["id"]]},
            [("events.1", "invalid_type")],
        ),
        ({"name": "r", "events": [], "channels": [hook["id"]]}, [("events", "too_short")]),
        (
            {"name": "r", "events": ["consecutive_failures"], "channels": [hook["id"]]},
            [("consecutive_failures", "required")],
        ),
        (
            {
                "name": "r",
                "events": ["run_failed"],
                "channels": [hook["id"]],
                "consecutive_failures": 3,
                "skip_reasons": ["overlap"],
            },
            [("consecutive_failures", "not_allowed"), ("skip_reasons", "not_allowed")],
        ),
        (
            {
                "name": "r",
                "events": ["run_failed"],
                "channels": [hook["id"], theirs.json()["id"], 999],
                "project_id": 999,
            },
            [
                ("project_id", "not_found"),
                ("channels[1]", "not_found"),
                ("channels[2]", "not_found"),
            ],
        ),
        (
            {"name": "r", "events": ["run_failed"], "channels": [hook["id"], 999]},
            [("channels[1]", "not_found")],
        ),
        (
            {
                "name": "r",
                "events": ["run_failed"],
                "channels": [hook["id"]],
                "project_id": 1,
                "load_test_id": 1,
            },
            [("load_test_id", "not_allowed")],
        ),
        (
            {"name": "r", "events": ["run_failed"], "channels": [hook["id"]], "quiet_seconds": -1},
            [("quiet_seconds", "too_small")],
        ),
    ):
        response = api.post(RULES, json=body)
        assert response.status_code == 400, response.text
        assert _details(response) == problems, body

    assert snapshot(store) == before


def test_a_channel_a_rule_sends_to_cannot_be_deleted_until_the_rule_lets_go(
    api: Api, store: Store
) -> None:
    hook = _webhook(api)
    other = _channel(api, {"name": "ops", "type": "slack", "url": SLACK_URL})
    rule = _rule(api, {"name": "r", "events": ["run_error"], "channels": [hook["id"]]})
    before = snapshot(store)

    refused = api.delete(f"{CHANNELS}/{hook['id']}")

    assert refused.status_code == 409
    assert f"used by rule {rule['id']}" in refused.json()["error"]["message"]
    assert snapshot(store) == before
    moved = api.patch(f"{RULES}/{rule['id']}", json={"channels": [other["id"]]})
    assert moved.status_code == 200, moved.text
    assert api.delete(f"{CHANNELS}/{hook['id']}").status_code == 204
    assert api.get(f"{CHANNELS}/{hook['id']}").status_code == 404
    assert api.delete(f"{RULES}/{rule['id']}").status_code == 204
    assert api.delete(f"{CHANNELS}/{other['id']}").status_code == 204


def test_another_stacks_channels_and_rules_are_404(api: Api, store: Store) -> None:
    hook = _webhook(api)
    rule = _rule(api, {"name": "r", "events": ["run_error"], "channels": [hook["id"]]})
    bob = api.as_(BOB, 3)
    before = snapshot(store)

    for method, path in (
        ("GET", f"{CHANNELS}/{hook['id']}"),
        ("PATCH", f"{CHANNELS}/{hook['id']}"),
        ("DELETE", f"{CHANNELS}/{hook['id']}"),
        ("POST", f"{CHANNELS}/{hook['id']}/test"),
        ("GET", f"{CHANNELS}/{hook['id']}/deliveries"),
        ("GET", f"{RULES}/{rule['id']}"),
        ("PATCH", f"{RULES}/{rule['id']}"),
        ("DELETE", f"{RULES}/{rule['id']}"),
    ):
        kwargs = {"json": {"name": "mine"}} if method == "PATCH" else {}
        response = bob.request(method, path, **kwargs)
        assert response.status_code == 404, (method, path, response.text)
    assert bob.get(CHANNELS).json()["value"] == []
    assert snapshot(store) == before


def test_runs_of_a_stack_without_rules_record_no_event(api: Api, store: Store) -> None:
    _webhook(api)  # a channel alone sends nothing
    load_test = api.load_test()
    started = api.post(f"/cloud/v6/load_tests/{load_test}/start").json()["id"]

    aborted = api.post(f"/cloud/v6/test_runs/{started}/abort")

    assert aborted.status_code == 204, aborted.text
    assert store.notifications.event(f"run-{started}") is None
    assert api.get(f"/cloud/v6/test_runs/{started}/notifications").json()["value"] == []


def test_an_abort_before_the_run_started_records_its_event_when_the_stack_has_rules(
    api: Api, store: Store
) -> None:
    hook = _webhook(api)
    _rule(api, {"name": "r", "events": ["run_aborted"], "channels": [hook["id"]]})
    load_test = api.load_test()
    started = api.post(f"/cloud/v6/load_tests/{load_test}/start").json()["id"]

    api.post(f"/cloud/v6/test_runs/{started}/abort")

    event = store.notifications.event(f"run-{started}")
    assert event is not None
    assert (event["source"], event["run_id"], event["load_test_id"]) == ("run", started, load_test)
