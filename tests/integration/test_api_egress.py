"""A webhook runner aimed at a link-local or cloud metadata address is refused when it is
written: a 400 naming runner.url, and nothing changes."""

from __future__ import annotations

import json

import pytest

from tickwork.store import Store

from .api_support import Api, snapshot


@pytest.mark.parametrize(
    "url",
    [
        "http://169.254.169.254/",
        "http://169.254.169.254/latest/meta-data/iam/security-credentials/",
        "http://[fd00:ec2::254]/latest/meta-data/",
        "http://[::ffff:169.254.169.254]/",
        "http://0xa9fea9fe/",
        "http://100.100.100.200/latest/meta-data/",
    ],
)
def test_creating_a_load_test_with_a_metadata_webhook_is_400_naming_runner_url(
    api: Api, store: Store, url: str
) -> None:
    pid = api.project()
    before = snapshot(store)

    response = api.post(
        f"/cloud/v6/projects/{pid}/load_tests",
        json={"name": "ssrf", "runner": {"type": "webhook", "url": url}},
    )

    assert response.status_code == 400
    error = response.json()["error"]
    [detail] = [d for d in error["details"] if d["target"] == "runner.url"]
    assert "egress refused" in detail["message"]
    assert "cloud metadata address" in detail["message"]
    assert snapshot(store) == before


def test_a_form_upload_with_a_metadata_webhook_is_400_and_creates_nothing(
    api: Api, store: Store
) -> None:
    pid = api.project()
    before = snapshot(store)

    response = api.post(
        f"/cloud/v6/projects/{pid}/load_tests",
        data={
            "name": "ssrf",
            "runner": json.dumps({"type": "webhook", "url": "http://169.254.169.254/"}),
        },
        files={"script": ("s.js", b"export default function () {}")},
    )

    assert response.status_code == 400
    assert "runner.url" in [d["target"] for d in response.json()["error"]["details"]]
    assert snapshot(store) == before


def test_pointing_a_load_test_s_webhook_at_metadata_is_400_and_changes_nothing(
    api: Api, store: Store
) -> None:
    pid = api.project()
    lt = api.load_test(pid, name="hook")
    before = snapshot(store)

    response = api.patch(
        f"/cloud/v6/load_tests/{lt}",
        json={"runner": {"type": "webhook", "url": "http://[fe80::1]:8080/"}},
    )

    assert response.status_code == 400
    [detail] = response.json()["error"]["details"]
    assert detail["target"] == "runner.url"
    assert "link-local address" in detail["message"]
    assert snapshot(store) == before


def test_a_webhook_url_that_cannot_be_parsed_is_400_not_500(api: Api, store: Store) -> None:
    pid = api.project()
    before = snapshot(store)

    response = api.post(
        f"/cloud/v6/projects/{pid}/load_tests",
        json={"name": "broken", "runner": {"type": "webhook", "url": "http://[::1/"}},
    )

    assert response.status_code == 400
    assert [d["target"] for d in response.json()["error"]["details"]] == ["runner.url"]
    assert snapshot(store) == before


def test_a_loopback_webhook_is_written_the_worker_s_policy_decides_at_run_time(
    api: Api,
) -> None:
    pid = api.project()
    runner = {"type": "webhook", "url": "http://127.0.0.1:8080/hook"}

    response = api.post(
        f"/cloud/v6/projects/{pid}/load_tests", json={"name": "l", "runner": runner}
    )

    assert response.status_code == 201
    assert response.json()["runner"] == runner
