"""Every 4xx and 5xx is an ErrorResponseApiModel with a stable code; no input makes a 500."""

from __future__ import annotations

import json

import pytest
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tickwork.dialects.k6 import ErrorResponseApiModel

from .api_support import ALICE, MAX_BODY, Api


def _code(response_json: object) -> str:
    return ErrorResponseApiModel.model_validate(response_json).error.code


def test_unknown_route_is_404_not_found(api: Api) -> None:
    response = api.get("/cloud/v6/nothing-here")

    assert response.status_code == 404
    assert _code(response.json()) == "not_found"


def test_unknown_route_outside_cloud_is_404_not_found(api: Api) -> None:
    response = api.as_(token=None).get("/nope")

    assert response.status_code == 404
    assert _code(response.json()) == "not_found"


def test_wrong_method_is_405_with_allow_header(api: Api) -> None:
    response = api.put("/cloud/v6/schedules")

    assert response.status_code == 405
    assert _code(response.json()) == "method_not_allowed"
    assert "GET" in response.headers["allow"]


def test_malformed_json_is_400_invalid_json(api: Api) -> None:
    load_test = api.load_test()

    response = api.post(
        f"/cloud/v6/load_tests/{load_test}/schedule",
        content=b'{"starts": ',
        headers={"Content-Type": "application/json"},
    )

    assert response.status_code == 400
    assert _code(response.json()) == "invalid_json"


def test_empty_json_body_is_400_invalid_json(api: Api) -> None:
    response = api.post(
        "/cloud/v6/projects", content=b"", headers={"Content-Type": "application/json"}
    )

    assert response.status_code == 400
    assert _code(response.json()) == "invalid_json"


@pytest.mark.parametrize("content_type", ["text/plain", "application/x-www-form-urlencoded", None])
def test_wrong_content_type_is_415(api: Api, content_type: str | None) -> None:
    headers = {"Content-Type": content_type} if content_type else {}

    response = api.post("/cloud/v6/projects", content=b'{"name": "x"}', headers=headers)

    assert response.status_code == 415
    assert _code(response.json()) == "unsupported_media_type"


def test_json_with_charset_and_vendor_json_types_are_accepted(api: Api) -> None:
    for content_type in ("application/json; charset=utf-8", "application/merge-patch+json"):
        response = api.post(
            "/cloud/v6/projects",
            content=json.dumps({"name": content_type}).encode(),
            headers={"Content-Type": content_type},
        )
        assert response.status_code == 201, response.text


def test_body_over_the_declared_limit_is_413(api: Api) -> None:
    load_test = api.load_test()

    response = api.put(f"/cloud/v6/load_tests/{load_test}/script", content=b"x" * (MAX_BODY + 1))

    assert response.status_code == 413
    assert _code(response.json()) == "payload_too_large"


def test_chunked_body_over_the_limit_is_413(api: Api) -> None:
    load_test = api.load_test()

    def chunks() -> object:
        for _ in range(MAX_BODY // 1024 + 2):
            yield b"y" * 1024

    response = api.put(f"/cloud/v6/load_tests/{load_test}/script", content=chunks())

    assert response.status_code == 413
    assert _code(response.json()) == "payload_too_large"


def test_body_at_the_limit_is_accepted(api: Api) -> None:
    load_test = api.load_test()

    response = api.put(f"/cloud/v6/load_tests/{load_test}/script", content=b"z" * MAX_BODY)

    assert response.status_code == 204


def test_validation_error_lists_each_problem_with_its_target(api: Api) -> None:
    response = api.post("/cloud/v6/projects", json={"name": 5})

    assert response.status_code == 400
    error = ErrorResponseApiModel.model_validate(response.json()).error
    assert error.code == "validation_error"
    assert error.details is not None
    assert [(d.code, d.target) for d in error.details] == [("invalid_type", "name")]


@pytest.mark.parametrize("path", ["/cloud/v6/schedules/abc", "/cloud/v6/schedules/1.5"])
def test_path_id_that_is_not_an_integer_is_400(api: Api, path: str) -> None:
    response = api.get(path)

    assert response.status_code == 400
    assert _code(response.json()) == "validation_error"


@pytest.mark.parametrize("path_id", ["0", "-1", "99999999999999999999999999"])
def test_path_id_out_of_range_is_404(api: Api, path_id: str) -> None:
    for path in (f"/cloud/v6/schedules/{path_id}", f"/cloud/v6/test_runs/{path_id}"):
        response = api.get(path)
        assert response.status_code == 404, path
        assert _code(response.json()) == "not_found"


BODY_ROUTES = [
    ("POST", "/cloud/v6/projects"),
    ("PATCH", "/cloud/v6/projects/{project}"),
    ("POST", "/cloud/v6/projects/{project}/load_tests"),
    ("PATCH", "/cloud/v6/load_tests/{load_test}"),
    ("PUT", "/cloud/v6/load_tests/{load_test}/script"),
    ("POST", "/cloud/v6/load_tests/{load_test}/schedule"),
    ("PATCH", "/cloud/v6/test_runs/{run}"),
]

CONTENT_TYPES = st.sampled_from(
    [
        "application/json",
        "multipart/form-data; boundary=b",
        "multipart/form-data",
        'multipart/form-data; boundary="a b"',
        "text/plain",
        "application/octet-stream",
        "",
        "application/json; charset=latin-1",
        "multipart/form-data; boundary=" + "x" * 300,
    ]
)

JSONISH = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda children: (
        st.lists(children, max_size=3)
        | st.dictionaries(
            st.sampled_from(["name", "starts", "cron", "recurrence_rule", "note", "runner", "x"]),
            children,
            max_size=4,
        )
    ),
    max_leaves=8,
)

BODIES = (
    st.binary(max_size=300)
    | JSONISH.map(lambda value: json.dumps(value).encode())
    | st.builds(
        lambda name, content: (
            b'--b\r\nContent-Disposition: form-data; name="'
            + name.encode()
            + b'"\r\n\r\n'
            + content
            + b"\r\n--b--\r\n"
        ),
        st.sampled_from(["name", "script", "runner", "k6_version", ""]),
        st.binary(max_size=40),
    )
)


@pytest.fixture
def existing(api: Api) -> dict[str, int]:
    """Real resources, so that bodies reach their parsers rather than a 404."""
    project = api.project()
    load_test = api.load_test(project)
    run = api.post(f"/cloud/v6/load_tests/{load_test}/start").json()["id"]
    return {"project": project, "load_test": load_test, "run": run}


@settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(route=st.sampled_from(BODY_ROUTES), content_type=CONTENT_TYPES, body=BODIES)
def test_no_body_makes_a_server_error(
    http: TestClient,
    existing: dict[str, int],
    route: tuple[str, str],
    content_type: str,
    body: bytes,
) -> None:
    # TestClient re-raises a server exception, so a 500 would fail here loudly.
    api = Api(http, ALICE, 1)
    method, template = route
    path = template.format(**existing)

    response = api.request(method, path, content=body, headers={"Content-Type": content_type})

    assert response.status_code < 500
    if response.status_code >= 400:
        ErrorResponseApiModel.model_validate(response.json())
