"""Projects and load tests: what a user creates so there is something to schedule."""

from __future__ import annotations

import io
import json
import tarfile
from typing import Any

import httpx2 as httpx
import pytest

from tickwork.store import Store

from .api_support import Api, snapshot

SCRIPT = b"import http from 'k6/http';\nexport default function () { http.get('http://x'); }\n"


def _refused(
    response: httpx.Response, status: int, code: str, targets: set[str] | None = None
) -> dict[str, Any]:
    """The error of a refused request: its status, its code, and (given ``targets``) the
    fields its details name."""
    assert response.status_code == status, response.text
    error: dict[str, Any] = response.json()["error"]
    assert error["code"] == code, error
    if targets is not None:
        assert set(_targets(error)) == targets, error
    return error


def _targets(error: dict[str, Any]) -> list[str]:
    return [str(detail["target"]) for detail in error["details"]]


def _tar() -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as archive:
        info = tarfile.TarInfo("script.js")
        info.size = len(SCRIPT)
        archive.addfile(info, io.BytesIO(SCRIPT))
    return buffer.getvalue()


def test_project_create_read_rename_delete(api: Api) -> None:
    created = api.post("/cloud/v6/projects", json={"name": "Checkout"})
    assert created.status_code == 201
    body = created.json()
    assert set(body) >= {"id", "name", "is_default", "grafana_folder_uid", "created", "updated"}
    assert (body["name"], body["is_default"], body["grafana_folder_uid"]) == (
        "Checkout",
        False,
        None,
    )
    pid = body["id"]

    assert api.get(f"/cloud/v6/projects/{pid}").json() == body
    assert api.patch(f"/cloud/v6/projects/{pid}", json={"name": "Payments"}).status_code == 204
    assert api.get(f"/cloud/v6/projects/{pid}").json()["name"] == "Payments"
    assert api.get("/cloud/v6/projects?name=Payments").json()["value"][0]["id"] == pid
    assert api.get("/cloud/v6/projects?name=Checkout").json()["value"] == []

    assert api.delete(f"/cloud/v6/projects/{pid}").status_code == 204
    assert api.get(f"/cloud/v6/projects/{pid}").status_code == 404


def test_project_name_taken_is_409(api: Api, store: Store) -> None:
    api.project("One")
    other = api.project("Two")
    before = snapshot(store)

    _refused(api.post("/cloud/v6/projects", json={"name": "One"}), 409, "conflict")
    response = api.patch(f"/cloud/v6/projects/{other}", json={"name": "One"})
    assert "'One'" in _refused(response, 409, "conflict")["message"]
    assert snapshot(store) == before


@pytest.mark.parametrize(
    "body", [{}, {"name": ""}, {"name": "x" * 256}, {"name": None}, {"name": 1}]
)
def test_invalid_project_is_400(api: Api, store: Store, body: dict[str, object]) -> None:
    before = snapshot(store)

    response = api.post("/cloud/v6/projects", json=body)

    _refused(response, 400, "validation_error", {"name"})
    assert snapshot(store) == before


def test_project_patch_rejects_unknown_fields(api: Api, store: Store) -> None:
    pid = api.project("kept")
    before = snapshot(store)

    response = api.patch(f"/cloud/v6/projects/{pid}", json={"name": "ok", "color": "red"})

    _refused(response, 400, "validation_error", {"color"})
    assert snapshot(store) == before
    assert api.get(f"/cloud/v6/projects/{pid}").json()["name"] == "kept"


def test_load_test_created_from_multipart_form_like_k6(api: Api, store: Store) -> None:
    pid = api.project()

    response = api.post(
        f"/cloud/v6/projects/{pid}/load_tests",
        data={"name": "Orders API Soak Test"},
        files={"script": ("script.js", SCRIPT, "application/javascript")},
    )

    assert response.status_code == 201, response.text
    body = response.json()
    assert set(body) >= {
        "id",
        "project_id",
        "name",
        "baseline_test_run_id",
        "k6_version",
        "created",
        "updated",
    }
    assert (body["project_id"], body["name"], body["runner"]) == (
        pid,
        "Orders API Soak Test",
        {"type": "k6"},
    )
    script = api.get(f"/cloud/v6/load_tests/{body['id']}/script")
    assert script.status_code == 200
    assert script.headers["content-type"].startswith("text/javascript")
    assert script.content == SCRIPT
    # the fields the scheduler and the workers read
    fields = store.client.hgetall(store.keys.load_test(body["id"]))
    assert fields[b"stack"] == b"1"
    assert fields[b"project_id"] == str(pid).encode()
    assert json.loads(fields[b"runner"]) == {"type": "k6"}
    assert store.client.get(store.keys.load_test_script(body["id"])) == SCRIPT


def test_tar_archive_survives_byte_for_byte_and_is_served_as_tar(api: Api) -> None:
    pid = api.project()
    archive = _tar()

    created = api.post(
        f"/cloud/v6/projects/{pid}/load_tests",
        data={"name": "archived", "k6_version": "3"},
        files={"script": ("archive.tar", archive, "application/x-tar")},
    ).json()
    script = api.get(f"/cloud/v6/load_tests/{created['id']}/script")

    assert created["k6_version"] == 3
    assert script.headers["content-type"] == "application/x-tar"
    assert script.content == archive


def test_runner_extension_in_json_and_form(api: Api, store: Store) -> None:
    pid = api.project()
    runner = {"type": "command", "argv": ["echo", "{run_id}"]}

    from_json = api.post(
        f"/cloud/v6/projects/{pid}/load_tests", json={"name": "j", "runner": runner}
    ).json()
    from_form = api.post(
        f"/cloud/v6/projects/{pid}/load_tests",
        data={"name": "f", "runner": json.dumps(runner)},
    ).json()

    assert from_json["runner"] == from_form["runner"] == runner
    stored = store.client.hget(store.keys.load_test(from_json["id"]), "runner")
    assert json.loads(stored or b"{}") == runner


@pytest.mark.parametrize("runner", [{"type": "ssh"}, {"argv": ["x"]}, "k6", ["k6"]])
def test_runner_of_unknown_shape_is_400(api: Api, store: Store, runner: object) -> None:
    pid = api.project()
    before = snapshot(store)

    response = api.post(
        f"/cloud/v6/projects/{pid}/load_tests", json={"name": "r", "runner": runner}
    )

    targets = _targets(_refused(response, 400, "validation_error"))
    assert targets
    assert all(target.startswith("runner") for target in targets), targets
    assert snapshot(store) == before


@pytest.mark.parametrize(
    ("runner", "target"),
    [
        ({"type": "command"}, "runner.argv"),
        ({"type": "command", "argv": ["true"], "shell": True}, "runner.shell"),
        ({"type": "webhook", "url": "ftp://example.com/"}, "runner.url"),
        ({"type": "k6", "timeout_seconds": -1}, "runner.timeout_seconds"),
    ],
)
def test_runner_with_wrong_settings_is_400_naming_them_and_nothing_is_created(
    api: Api, store: Store, runner: dict[str, object], target: str
) -> None:
    pid = api.project()

    response = api.post(
        f"/cloud/v6/projects/{pid}/load_tests", json={"name": "r", "runner": runner}
    )

    assert response.status_code == 400
    details = response.json()["error"]["details"]
    assert target in [detail["target"] for detail in details]
    assert api.get(f"/cloud/v6/projects/{pid}/load_tests").json()["value"] == []


@pytest.mark.parametrize(
    "form",
    [
        {"k6_version": "three"},
        {"name": ""},
        {"name": "n", "k6_version": "x"},
        {"name": "n", "runner": "{not json"},
        {"name": "n", "runner": '{"type": "ftp"}'},
    ],
)
def test_invalid_form_is_400(api: Api, store: Store, form: dict[str, str]) -> None:
    pid = api.project()
    before = snapshot(store)

    response = api.post(
        f"/cloud/v6/projects/{pid}/load_tests", data=form, files={"script": ("s.js", b"x")}
    )

    assert response.status_code == 400
    assert response.json()["error"]["code"] == "validation_error"
    assert snapshot(store) == before


def test_load_test_name_is_unique_in_its_project_only(api: Api, store: Store) -> None:
    first, second = api.project(), api.project()
    api.load_test(first, name="smoke")
    before = snapshot(store)

    again = api.post(f"/cloud/v6/projects/{first}/load_tests", json={"name": "smoke"})
    assert "'smoke'" in _refused(again, 409, "conflict")["message"]
    assert snapshot(store) == before
    elsewhere = api.post(f"/cloud/v6/projects/{second}/load_tests", json={"name": "smoke"})

    assert elsewhere.status_code == 201


def test_load_test_in_a_missing_project_is_404(api: Api, store: Store) -> None:
    api.project()
    before = snapshot(store)

    response = api.post("/cloud/v6/projects/4242/load_tests", json={"name": "x"})

    assert "4242" in _refused(response, 404, "not_found")["message"]
    assert snapshot(store) == before


def test_patch_changes_only_the_given_fields(api: Api) -> None:
    pid = api.project()
    lt = api.load_test(pid, name="before")

    response = api.patch(
        f"/cloud/v6/load_tests/{lt}",
        json={"name": "after", "runner": {"type": "webhook", "url": "http://h/"}},
    )
    body = api.get(f"/cloud/v6/load_tests/{lt}").json()

    assert response.status_code == 204
    assert (body["name"], body["runner"], body["k6_version"]) == (
        "after",
        {"type": "webhook", "url": "http://h/"},
        None,
    )
    assert api.get("/cloud/v6/load_tests?name=after").json()["value"][0]["id"] == lt
    assert api.get("/cloud/v6/load_tests?name=before").json()["value"] == []
    assert api.get(f"/cloud/v6/projects/{pid}/load_tests?name=after").json()["value"][0]["id"] == lt

    assert api.patch(f"/cloud/v6/load_tests/{lt}", json={"runner": None}).status_code == 204
    assert api.get(f"/cloud/v6/load_tests/{lt}").json()["runner"] == {"type": "k6"}


@pytest.mark.parametrize(
    ("body", "target"),
    [
        ({"name": None}, "name"),
        ({"name": ""}, "name"),
        ({"color": "red"}, "color"),
        ({"k6_version": "1"}, "k6_version"),
    ],
)
def test_invalid_patch_is_400(api: Api, store: Store, body: dict[str, object], target: str) -> None:
    lt = api.load_test()
    before = snapshot(store)

    response = api.patch(f"/cloud/v6/load_tests/{lt}", json=body)

    targets = _targets(_refused(response, 400, "validation_error"))
    # Each detail names the field (a rejected name also carries the union member pydantic
    # tried: "name.constrained-str", "name.none").
    assert targets
    assert {name.split(".")[0] for name in targets} == {target}
    assert snapshot(store) == before


def test_rename_to_a_taken_name_is_409(api: Api, store: Store) -> None:
    pid = api.project()
    api.load_test(pid, name="a")
    b = api.load_test(pid, name="b")
    before = snapshot(store)

    response = api.patch(f"/cloud/v6/load_tests/{b}", json={"name": "a"})

    assert "'a'" in _refused(response, 409, "conflict")["message"]
    assert snapshot(store) == before
    assert api.get(f"/cloud/v6/load_tests/{b}").json()["name"] == "b"


def test_script_upload_replaces_the_script(api: Api) -> None:
    lt = api.load_test()

    response = api.put(
        f"/cloud/v6/load_tests/{lt}/script",
        content=b"export default () => {}",
        headers={"Content-Type": "application/octet-stream"},
    )

    assert response.status_code == 204
    assert api.get(f"/cloud/v6/load_tests/{lt}/script").content == b"export default () => {}"


def test_empty_script_upload_is_400(api: Api, store: Store) -> None:
    lt = api.load_test(script="kept")
    before = snapshot(store)

    response = api.put(f"/cloud/v6/load_tests/{lt}/script", content=b"")

    _refused(response, 400, "validation_error", {"script"})
    assert snapshot(store) == before
    assert api.get(f"/cloud/v6/load_tests/{lt}/script").content == b"kept"


def test_load_test_without_script_has_404_script(api: Api, store: Store) -> None:
    pid = api.project()
    lt = api.post(f"/cloud/v6/projects/{pid}/load_tests", json={"name": "bare"}).json()["id"]
    before = snapshot(store)

    response = api.get(f"/cloud/v6/load_tests/{lt}/script")

    assert "no script" in _refused(response, 404, "not_found")["message"]
    assert api.get(f"/cloud/v6/load_tests/{lt}").status_code == 200  # the load test is there
    assert snapshot(store) == before


@pytest.mark.parametrize(
    ("accept", "status"),
    [
        # What Grafana's Go client (and so the Terraform provider) sends: the k6 service
        # answers it with the script.
        ("application/json", 200),
        ("text/javascript, application/x-tar, application/json", 200),
        ("application/x-tar, application/json", 200),
        ("text/html", 200),
        ("application/json;q=0", 200),
        ("text/javascript", 200),
        ("application/javascript", 200),
        ("text/*", 200),
        ("*/*", 200),
        ("application/json, text/javascript;q=0.5", 200),
        ("text/javascript;q=nonsense", 200),
        # only another script type, or this one excluded
        ("application/x-tar", 406),
        ("text/javascript;q=0", 406),
        ("text/javascript;q=0.000, application/json", 406),
        ("*/*;q=0", 406),
        ("text/*;q=0, */*", 406),
        ("*/*, text/javascript;q=0", 406),
    ],
)
def test_script_download_honours_accept(api: Api, accept: str, status: int) -> None:
    lt = api.load_test()

    response = api.get(f"/cloud/v6/load_tests/{lt}/script", headers={"Accept": accept})

    assert response.status_code == status, response.text
    if status == 406:
        assert response.json()["error"]["code"] == "not_acceptable"
    else:
        assert response.content == b"x"
        assert response.headers["content-type"].startswith("text/javascript")


@pytest.mark.parametrize(
    ("accept", "status"),
    [
        ("application/json", 200),
        ("application/x-tar", 200),
        ("text/javascript", 406),
        ("text/javascript, application/javascript", 406),
        ("application/x-tar;q=0, */*", 406),
        ("text/*, application/json", 200),
    ],
)
def test_an_archive_download_honours_accept(api: Api, accept: str, status: int) -> None:
    lt = api.load_test()
    archive = _tar()
    assert api.put(f"/cloud/v6/load_tests/{lt}/script", content=archive).status_code == 204

    response = api.get(f"/cloud/v6/load_tests/{lt}/script", headers={"Accept": accept})

    assert response.status_code == status, response.text
    if status == 200:
        assert response.content == archive
        assert response.headers["content-type"] == "application/x-tar"
