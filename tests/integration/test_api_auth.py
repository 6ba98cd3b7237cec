"""Bearer tokens and stacks: 401 before 400 before 403, and every answer an error body."""

from __future__ import annotations

import pytest

from .api_support import ALICE, BOB, CAROL, Api


def _error(response_json: object) -> dict[str, object]:
    assert isinstance(response_json, dict)
    error = response_json["error"]
    assert isinstance(error, dict)
    return error


def test_request_without_token_is_401_with_bearer_challenge(api: Api) -> None:
    response = api.as_(token=None).get("/cloud/v6/schedules")

    assert response.status_code == 401
    assert response.headers["www-authenticate"] == "Bearer"
    assert _error(response.json())["code"] == "unauthenticated"


@pytest.mark.parametrize(
    "authorization",
    [
        pytest.param("Bearer not-a-known-token", id="unknown_token"),
        pytest.param(f"Basic {ALICE}", id="wrong_scheme"),
        pytest.param("Bearer", id="scheme_without_token"),
        pytest.param(f"bearer {ALICE}x", id="token_with_extra_character"),
        pytest.param(ALICE, id="no_scheme"),
    ],
)
def test_unknown_or_malformed_credentials_are_401(api: Api, authorization: str) -> None:
    response = api.as_(token=None).get(
        "/cloud/v6/schedules", headers={"Authorization": authorization}
    )

    assert response.status_code == 401
    assert _error(response.json())["code"] == "unauthenticated"


def test_missing_token_is_401_even_without_stack_header(api: Api) -> None:
    assert api.as_(token=None, stack=None).get("/cloud/v6/schedules").status_code == 401


def test_missing_stack_header_is_400(api: Api) -> None:
    response = api.as_(stack=None).get("/cloud/v6/schedules")

    assert response.status_code == 400
    error = _error(response.json())
    assert error["code"] == "validation_error"
    assert error["details"] == [
        {
            "code": "required",
            "target": "X-Stack-Id",
            "message": "The X-Stack-Id header is required.",
        }
    ]


@pytest.mark.parametrize(
    "stack", ["abc", "1.5", "--1", "1_000", "\u00b2", "", " ", "1 2", "99999999999999999999"]
)
def test_stack_header_that_is_not_an_integer_is_400(api: Api, stack: str) -> None:
    headers = {b"Authorization": f"Bearer {ALICE}".encode(), b"X-Stack-Id": stack.encode("latin-1")}

    response = api.http.get("/cloud/v6/schedules", headers=headers)

    assert response.status_code == 400
    assert _error(response.json())["code"] == "validation_error"


def test_token_not_valid_for_the_stack_is_403(api: Api) -> None:
    response = api.as_(token=BOB, stack=1).get("/cloud/v6/schedules")

    assert response.status_code == 403
    assert _error(response.json())["code"] == "forbidden"


def test_a_token_acts_in_each_of_its_stacks(api: Api) -> None:
    assert api.as_(ALICE, 1).get("/cloud/v6/schedules").status_code == 200
    assert api.as_(ALICE, 2).get("/cloud/v6/schedules").status_code == 200
    assert api.as_(BOB, 3).get("/cloud/v6/schedules").status_code == 200


def test_token_configured_by_its_sha256_authenticates(api: Api) -> None:
    carol = api.as_(CAROL, 1)
    load_test = carol.load_test()

    schedule = carol.schedule(load_test)

    assert schedule["created_by"] == "carol@example.com"


def test_stack_header_with_surrounding_spaces_is_read(api: Api) -> None:
    assert api.as_(stack=" 1 ").get("/cloud/v6/schedules").status_code == 200


@pytest.mark.parametrize("path", ["/healthz", "/readyz", "/metrics", "/openapi.json", "/docs"])
def test_operational_routes_need_no_token(api: Api, path: str) -> None:
    assert api.as_(token=None, stack=None).get(path).status_code == 200


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/cloud/v6/projects"),
        ("POST", "/cloud/v6/projects"),
        ("GET", "/cloud/v6/projects/1"),
        ("PATCH", "/cloud/v6/projects/1"),
        ("DELETE", "/cloud/v6/projects/1"),
        ("GET", "/cloud/v6/projects/1/load_tests"),
        ("POST", "/cloud/v6/projects/1/load_tests"),
        ("GET", "/cloud/v6/load_tests"),
        ("GET", "/cloud/v6/load_tests/1"),
        ("PATCH", "/cloud/v6/load_tests/1"),
        ("DELETE", "/cloud/v6/load_tests/1"),
        ("GET", "/cloud/v6/load_tests/1/script"),
        ("PUT", "/cloud/v6/load_tests/1/script"),
        ("POST", "/cloud/v6/load_tests/1/start"),
        ("GET", "/cloud/v6/load_tests/1/test_runs"),
        ("GET", "/cloud/v6/load_tests/1/schedule"),
        ("POST", "/cloud/v6/load_tests/1/schedule"),
        ("GET", "/cloud/v6/schedules"),
        ("GET", "/cloud/v6/schedules/1"),
        ("DELETE", "/cloud/v6/schedules/1"),
        ("POST", "/cloud/v6/schedules/1/activate"),
        ("POST", "/cloud/v6/schedules/1/deactivate"),
        ("GET", "/cloud/v6/test_runs"),
        ("GET", "/cloud/v6/test_runs/1"),
        ("PATCH", "/cloud/v6/test_runs/1"),
        ("POST", "/cloud/v6/test_runs/1/abort"),
    ],
)
def test_every_cloud_route_requires_a_token(api: Api, method: str, path: str) -> None:
    response = api.as_(token=None).request(method, path, json={"name": "x"})

    assert response.status_code == 401
    assert _error(response.json())["code"] == "unauthenticated"
