"""Health, readiness, metrics, and the OpenAPI document matching the routes served."""

from __future__ import annotations

import json
import re
import socket

from fastapi.testclient import TestClient

from tickwork.api import create_app
from tickwork.api.rate_limits import EXEMPT
from tickwork.store import Store, connect

from .api_support import ALICE, Api, tokens


def _dead_store() -> Store:
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    return Store(connect(f"redis://127.0.0.1:{port}/0", timeout_s=0.5), "dead")


def test_healthz_and_readyz_answer_ok(api: Api) -> None:
    assert api.get("/healthz").json() == {"status": "ok"}
    assert api.get("/readyz").json() == {"status": "ready"}


def test_without_redis_readyz_is_503_and_cloud_routes_are_503() -> None:
    with TestClient(create_app(_dead_store(), tokens=tokens())) as http:
        api = Api(http)

        assert api.get("/healthz").status_code == 200
        ready = api.get("/readyz")
        listed = api.get("/cloud/v6/schedules")
        metrics = api.get("/metrics")

    assert ready.status_code == 503
    assert ready.json()["error"]["code"] == "store_unavailable"
    assert listed.status_code == 503
    assert listed.json()["error"]["code"] == "store_unavailable"
    assert metrics.status_code == 200
    assert "tickwork_schedules{" not in metrics.text


def test_metrics_count_requests_by_route_template_and_status(api: Api) -> None:
    lt = api.load_test()
    sid = api.schedule(lt)["id"]
    api.get(f"/cloud/v6/schedules/{sid}")
    api.get("/cloud/v6/schedules/424242")
    api.get("/no/such/route")

    text = api.get("/metrics").text

    series = 'tickwork_api_requests_total{method="GET",route="/cloud/v6/schedules/{id}"'
    assert f'{series},status="200"}} 1.0' in text
    assert f'{series},status="404"}} 1.0' in text
    assert 'route="unmatched",status="404"' in text
    assert "tickwork_api_request_duration_seconds_bucket{" in text
    assert "424242" not in text


def test_metrics_count_schedules_by_state(api: Api) -> None:
    active = api.schedule(api.load_test())["id"]
    paused = api.schedule(api.load_test())["id"]
    api.schedule(api.load_test(), {"starts": "2020-01-01T00:00:00Z"})  # expired
    api.post(f"/cloud/v6/schedules/{paused}/deactivate")
    assert active

    text = api.get("/metrics").text

    assert 'tickwork_schedules{state="active"} 1.0' in text
    assert 'tickwork_schedules{state="inactive"} 2.0' in text


def test_docs_page_is_served(api: Api) -> None:
    response = api.get("/docs")

    assert response.status_code == 200
    assert "openapi.json" in response.text


SERVED = {
    ("get", "/healthz"),
    ("get", "/readyz"),
    ("get", "/metrics"),
    ("get", "/cloud/v6/projects"),
    ("post", "/cloud/v6/projects"),
    ("get", "/cloud/v6/projects/{id}"),
    ("patch", "/cloud/v6/projects/{id}"),
    ("delete", "/cloud/v6/projects/{id}"),
    ("get", "/cloud/v6/projects/{id}/load_tests"),
    ("post", "/cloud/v6/projects/{id}/load_tests"),
    ("get", "/cloud/v6/load_tests"),
    ("get", "/cloud/v6/load_tests/{id}"),
    ("patch", "/cloud/v6/load_tests/{id}"),
    ("delete", "/cloud/v6/load_tests/{id}"),
    ("get", "/cloud/v6/load_tests/{id}/script"),
    ("put", "/cloud/v6/load_tests/{id}/script"),
    ("post", "/cloud/v6/load_tests/{id}/start"),
    ("get", "/cloud/v6/load_tests/{id}/test_runs"),
    ("get", "/cloud/v6/load_tests/{id}/schedule"),
    ("post", "/cloud/v6/load_tests/{id}/schedule"),
    ("get", "/cloud/v6/schedules"),
    ("get", "/cloud/v6/schedules/{id}"),
    ("delete", "/cloud/v6/schedules/{id}"),
    ("post", "/cloud/v6/schedules/{id}/activate"),
    ("post", "/cloud/v6/schedules/{id}/deactivate"),
    ("post", "/cloud/v6/schedules/bulk/activate"),
    ("post", "/cloud/v6/schedules/bulk/deactivate"),
    ("get", "/cloud/v6/schedules/{id}/occurrences"),
    ("post", "/cloud/v6/schedules/preview"),
    ("post", "/cloud/v6/schedules/{id}/backfill"),
    ("get", "/cloud/v6/schedules/{id}/health"),
    ("get", "/cloud/v6/schedules/health"),
    ("get", "/cloud/v6/schedules/{id}/audit"),
    ("post", "/cloud/v6/blackout_windows"),
    ("get", "/cloud/v6/blackout_windows"),
    ("get", "/cloud/v6/blackout_windows/{id}"),
    ("delete", "/cloud/v6/blackout_windows/{id}"),
    ("post", "/cloud/v6/schedules/{id}/blackout_windows"),
    ("get", "/cloud/v6/schedules/{id}/blackout_windows"),
    ("get", "/cloud/v6/schedules/{id}/blackout_windows/{window_id}"),
    ("delete", "/cloud/v6/schedules/{id}/blackout_windows/{window_id}"),
    ("post", "/cloud/v6/notifications/channels"),
    ("get", "/cloud/v6/notifications/channels"),
    ("get", "/cloud/v6/notifications/channels/{id}"),
    ("patch", "/cloud/v6/notifications/channels/{id}"),
    ("delete", "/cloud/v6/notifications/channels/{id}"),
    ("post", "/cloud/v6/notifications/channels/{id}/test"),
    ("get", "/cloud/v6/notifications/channels/{id}/deliveries"),
    ("post", "/cloud/v6/notifications/rules"),
    ("get", "/cloud/v6/notifications/rules"),
    ("get", "/cloud/v6/notifications/rules/{id}"),
    ("patch", "/cloud/v6/notifications/rules/{id}"),
    ("delete", "/cloud/v6/notifications/rules/{id}"),
    ("get", "/cloud/v6/test_runs/{id}/notifications"),
    ("get", "/cloud/v6/load_tests/{id}/audit"),
    ("get", "/cloud/v6/audit"),
    ("get", "/cloud/v6/test_runs"),
    ("get", "/cloud/v6/test_runs/{id}"),
    ("patch", "/cloud/v6/test_runs/{id}"),
    ("delete", "/cloud/v6/test_runs/{id}"),
    ("post", "/cloud/v6/test_runs/{id}/abort"),
    ("get", "/cloud/v6/test_runs/{id}/summary"),
    ("get", "/cloud/v6/test_runs/{id}/output"),
    ("get", "/cloud/v6/load_tests/{id}/trend"),
    ("get", "/kragle/schedules"),
    ("post", "/kragle/schedules"),
    ("put", "/kragle/schedules/"),
    ("get", "/kragle/schedules/byid/{id}"),
    ("delete", "/kragle/schedules/byid/{id}"),
    ("get", "/kragle/jobs"),
    ("post", "/kragle/jobs"),
    ("get", "/kragle/jobs/byid/{id}"),
    ("delete", "/kragle/jobs/byid/{id}"),
    ("get", "/kragle/jobs/byid/{id}/occurrences"),
    ("get", "/kragle/schedules/byid/{id}/audit"),
    ("get", "/kragle/jobs/byid/{id}/audit"),
    ("get", "/api/v1/reports/schedules"),
    ("post", "/api/v1/reports/schedules"),
    ("get", "/api/v1/reports/schedules/{schedule_id}"),
    ("put", "/api/v1/reports/schedules/{schedule_id}"),
    ("get", "/api/v1/reports/schedules/{schedule_id}/occurrences"),
    ("get", "/api/v1/reports/schedules/{schedule_id}/audit"),
    ("delete", "/api/v1/reports/registries"),
}


def test_openapi_document_lists_exactly_the_served_operations(api: Api) -> None:
    document = api.get("/openapi.json").json()

    documented = {(method, path) for path, item in document["paths"].items() for method in item}

    assert documented == SERVED
    for method, path in documented:
        response = api.request(method.upper(), path.replace("{id}", "1"))
        assert response.status_code != 405, (method, path)
        if response.status_code == 404:
            assert response.json()["error"]["message"] != "No such route.", (method, path)


def test_every_reference_in_the_openapi_document_resolves(api: Api) -> None:
    # A body schema named but never defined: ReDoc refuses to render the whole document.
    document = api.get("/openapi.json").json()
    named = set(re.findall(r'"#/components/schemas/([^"]+)"', json.dumps(document)))
    assert named - set(document["components"]["schemas"]) == set()


def test_openapi_cloud_operations_declare_auth_stack_and_error_bodies(api: Api) -> None:
    document = api.get("/openapi.json").json()

    for path, item in document["paths"].items():
        for method, operation in item.items():
            responses = operation["responses"]
            assert "422" not in responses, (method, path)
            if not path.startswith("/cloud/"):
                continue
            assert operation["security"] == [{"k6ApiToken": []}], (method, path)
            assert {"$ref": "#/components/parameters/stackId"} in operation["parameters"]
            for status in ("400", "401", "403"):
                schema = responses[status]["content"]["application/json"]["schema"]
                assert schema == {"$ref": "#/components/schemas/ErrorResponseApiModel"}
    assert document["components"]["securitySchemes"]["k6ApiToken"] == {
        "type": "http",
        "scheme": "bearer",
        "description": document["components"]["securitySchemes"]["k6ApiToken"]["description"],
    }


def test_openapi_schedule_shapes_follow_the_k6_spec(api: Api) -> None:
    schemas = api.get("/openapi.json").json()["components"]["schemas"]

    schedule = schemas["ScheduleApiModel"]
    assert set(schedule["required"]) >= {
        "id", "load_test_id", "starts", "recurrence_rule", "cron", "deactivated", "next_run",
        "created_by",
    }  # fmt: skip
    assert schemas["CreateScheduleRequest"]["required"] == ["starts"]
    assert "@nextLink" in schemas["ScheduleListResponse"]["properties"]
    assert schemas["TestRunApiModel"]["required"]


def test_every_rate_limited_operation_documents_its_429_with_retry_after(api: Api) -> None:
    document = api.get("/openapi.json").json()

    exempt = set()
    for path, item in document["paths"].items():
        for method, operation in item.items():
            answer = operation["responses"].get("429")
            if path in EXEMPT:  # probes, scrapes and the documents are never limited
                assert answer is None, (method, path)
                exempt.add((method, path))
                continue
            assert answer is not None, (method, path)
            assert answer["headers"]["Retry-After"]["schema"] == {"type": "integer", "minimum": 1}
            # the body its other errors have: the report envelope there, the k6 body elsewhere
            assert answer["content"] == operation["responses"]["400"]["content"], (method, path)
            envelope = path.startswith("/api/v1/reports/")
            schema = answer["content"]["application/json"]["schema"]["$ref"]
            assert schema.endswith("ReportErrorEnvelope" if envelope else "ErrorResponseApiModel")
    assert exempt == {("get", "/healthz"), ("get", "/readyz"), ("get", "/metrics")}


def test_an_authenticated_request_is_not_logged_with_its_token(api: Api) -> None:
    text = api.get("/metrics").text

    assert ALICE not in text
