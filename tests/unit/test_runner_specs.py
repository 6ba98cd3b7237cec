"""A load test's runner field: parsed into a spec, or refused with one problem per mistake."""

from __future__ import annotations

from typing import Any

import pytest

from tickwork.core.egress import EgressPolicy
from tickwork.core.runner_specs import (
    CommandSpec,
    K6Spec,
    WebhookSpec,
    expand,
    parse_runner_spec,
    runner_spec_from_json,
)
from tickwork.errors import ValidationError


def test_no_runner_means_k6() -> None:
    assert runner_spec_from_json(None) == K6Spec()
    assert runner_spec_from_json("") == K6Spec()
    assert runner_spec_from_json("null") == K6Spec()
    assert parse_runner_spec({"type": "k6"}) == K6Spec()


def test_each_runner_type_parses() -> None:
    assert parse_runner_spec({"timeout_seconds": 5, "env": {"A": "b"}}) == K6Spec(
        timeout_s=5.0, env={"A": "b"}
    )
    assert parse_runner_spec(
        {"type": "command", "argv": ["./go", "{run_id}", "{script_path}"], "env": {"X": "1"}}
    ) == CommandSpec(argv=("./go", "{run_id}", "{script_path}"), env={"X": "1"})
    assert parse_runner_spec(
        {"type": "webhook", "url": "https://h.example/x", "max_attempts": 2}
    ) == WebhookSpec(url="https://h.example/x", max_attempts=2)


@pytest.mark.parametrize(
    ("data", "codes"),
    [
        pytest.param([], ["invalid_type"], id="not_an_object"),
        pytest.param({"type": "ssh"}, ["unknown_runner"], id="unknown_type"),
        pytest.param({"type": "k6", "argv": ["x"]}, ["unknown_field"], id="field_of_other_type"),
        pytest.param({"timeout_seconds": 0}, ["invalid_timeout"], id="zero_timeout"),
        pytest.param({"timeout_seconds": True}, ["invalid_timeout"], id="boolean_timeout"),
        pytest.param({"timeout_seconds": 10**9}, ["too_large"], id="timeout_over_maximum"),
        pytest.param({"type": "command"}, ["invalid_argv"], id="missing_argv"),
        pytest.param({"type": "command", "argv": "ls"}, ["invalid_argv"], id="argv_string"),
        pytest.param({"type": "command", "argv": [""]}, ["invalid_argv"], id="empty_program"),
        pytest.param(
            {"type": "command", "argv": ["x", "{password}"]},
            ["unknown_placeholder"],
            id="unknown_placeholder",
        ),
        pytest.param(
            {"type": "command", "argv": ["x"], "env": {"1BAD": "v"}},
            ["invalid_name"],
            id="bad_env_name",
        ),
        pytest.param({"type": "k6", "env": {"A": 1}}, ["invalid_type"], id="env_value_not_text"),
        pytest.param({"type": "webhook", "url": "ftp://x/"}, ["invalid_url"], id="not_http"),
        pytest.param({"type": "webhook"}, ["invalid_url"], id="missing_url"),
        pytest.param({"type": "webhook", "url": "http://[::1/"}, ["invalid_url"], id="bad_ipv6"),
        pytest.param({"type": "webhook", "url": "http://h:99999/"}, ["invalid_url"], id="bad_port"),
        pytest.param(
            {"type": "webhook", "url": "http://169.254.169.254/latest/meta-data/"},
            ["egress_refused"],
            id="metadata_address",
        ),
        pytest.param(
            {"type": "webhook", "url": "http://[::ffff:a9fe:a9fe]/"},
            ["egress_refused"],
            id="metadata_address_ipv4_mapped",
        ),
        pytest.param(
            {"type": "webhook", "url": "http://0xa9fea9fe/"},
            ["egress_refused"],
            id="metadata_address_hex",
        ),
        pytest.param(
            {"type": "webhook", "url": "http://[fe80::1]:8080/"},
            ["egress_refused"],
            id="link_local_address",
        ),
        pytest.param(
            {"type": "webhook", "url": "http://x/", "max_attempts": 0},
            ["invalid_attempts"],
            id="zero_attempts",
        ),
        pytest.param(
            {"type": "webhook", "url": "http://x/", "headers": {"Bad Header": "v"}},
            ["invalid_name"],
            id="bad_header_name",
        ),
        pytest.param(
            {"type": "command", "argv": [], "timeout_seconds": -1, "extra": 1},
            ["unknown_field", "invalid_timeout", "invalid_argv"],
            id="every_problem_reported",
        ),
    ],
)
def test_bad_runner_is_refused_with_a_problem_each(data: Any, codes: list[str]) -> None:
    with pytest.raises(ValidationError) as caught:
        parse_runner_spec(data)
    assert [problem.code for problem in caught.value.problems] == codes


def test_a_webhook_at_a_metadata_address_is_refused_naming_the_field_and_why() -> None:
    with pytest.raises(ValidationError) as caught:
        parse_runner_spec({"type": "webhook", "url": "http://169.254.169.254/"})
    [problem] = caught.value.problems
    assert problem.target == "runner.url"
    assert problem.message == (
        "runner.url: egress refused: 169.254.169.254 is a cloud metadata address, which "
        "webhooks may never reach."
    )


def test_a_webhook_on_loopback_is_written_unless_the_policy_given_refuses_it() -> None:
    data = {"type": "webhook", "url": "http://127.0.0.1:6379/"}
    assert parse_runner_spec(data) == WebhookSpec(url="http://127.0.0.1:6379/")
    with pytest.raises(ValidationError) as caught:
        parse_runner_spec(data, egress=EgressPolicy())
    assert [p.code for p in caught.value.problems] == ["egress_refused"]


def test_a_stored_webhook_at_a_metadata_address_is_refused_when_the_worker_reads_it() -> None:
    with pytest.raises(ValidationError) as caught:
        runner_spec_from_json('{"type": "webhook", "url": "http://169.254.169.254/"}')
    assert [p.code for p in caught.value.problems] == ["egress_refused"]


def test_runner_that_is_not_json_is_refused() -> None:
    with pytest.raises(ValidationError) as caught:
        runner_spec_from_json("{nope")
    assert caught.value.problems[0].code == "invalid_json"


def test_expand_replaces_known_placeholders_and_leaves_other_braces() -> None:
    values = {"run_id": "7", "script_path": "/w/script.js"}
    assert expand("--run={run_id}", values) == "--run=7"
    assert expand("{script_path}", values) == "/w/script.js"
    assert expand('{"json": {run_id}}', values) == '{"json": 7}'
    assert expand("{stack}", values) == "{stack}"  # no value given: kept
