"""A bad setting, as a user meets it: every command stops at once with one line naming it."""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest

from tickwork.api.server import limits_of
from tickwork.errors import SettingsError
from tickwork.settings import load_settings
from tickwork.store.quotas import Limits, Quotas

BODY = '{"starts": "2030-01-01T00:00:00Z"}'
NOT_A_LIST = ("TICKWORK_TOKENS", "[")
NOT_JSON = ("TICKWORK_QUEUES", "x")
# Every command, each with one of the two settings the README's example lists.
CASES = [
    (("api", "--port", "1"), NOT_A_LIST),
    (("scheduler", "--health-port", "0"), NOT_JSON),
    (("worker",), NOT_A_LIST),
    (("standalone", "--port", "1", "--data-dir", "{tmp}/data"), NOT_JSON),
    (("doctor",), NOT_A_LIST),
    (("doctor",), NOT_JSON),
    (("schedules", "list", "--token", "t"), NOT_JSON),
    (("runs", "list", "--token", "t"), NOT_A_LIST),
    (("preview", BODY), NOT_JSON),
]


def _tickwork(
    args: tuple[str, ...], env: dict[str, str], cwd: Path
) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("TICKWORK_")}
    return subprocess.run(
        [sys.executable, "-m", "tickwork", *args],
        env={**clean, **env},
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@pytest.mark.parametrize(
    ("command", "setting"), CASES, ids=[f"{c[0]}-{v}" for (c, (v, _)) in CASES]
)
def test_a_setting_that_is_not_json_stops_every_command_with_one_line_naming_it(
    command: tuple[str, ...], setting: tuple[str, str], tmp_path: Path
) -> None:
    variable, value = setting
    args = tuple(arg.replace("{tmp}", str(tmp_path)) for arg in command)
    result = _tickwork(args, {variable: value}, tmp_path)

    assert "Traceback" not in result.stdout + result.stderr
    if command[0] == "doctor":
        # doctor reports the settings among its findings, on stdout, and fails the check.
        assert result.returncode == 1
        assert result.stderr == ""
        (named,) = [line for line in result.stdout.splitlines() if variable in line]
        assert named.startswith(f"[fail] settings: {variable}: not valid JSON")
    else:
        assert result.returncode == 2
        assert result.stdout == ""
        assert result.stderr.splitlines() == [
            f"{variable}: not valid JSON (Expecting value at character "
            f"{1 if value == 'x' else 2}); expected a JSON array"
        ]
    assert not (tmp_path / "data").exists()  # the standalone started nothing


def test_a_bad_setting_in_dot_env_is_named_with_where_it_was_found(tmp_path: Path) -> None:
    (tmp_path / ".env").write_text("TICKWORK_COMMAND_ALLOWED={sh}\n")
    result = _tickwork(("worker",), {}, tmp_path)
    assert result.returncode == 2
    assert result.stderr.splitlines() == [
        "TICKWORK_COMMAND_ALLOWED (in .env): not valid JSON (Expecting property name "
        "enclosed in double quotes at character 2); expected a JSON array"
    ]


def test_the_line_about_a_token_setting_never_shows_the_token(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    secret = "s3cret-token-that-must-not-leak"
    monkeypatch.setenv("TICKWORK_TOKENS", f'[{{"token": "{secret}", "email": "a@b.c"')
    with pytest.raises(SettingsError) as raised:
        load_settings(_env_file=None)
    assert str(raised.value).startswith("TICKWORK_TOKENS: not valid JSON")
    assert secret not in str(raised.value)


def test_stack_quotas_override_only_the_quotas_they_name(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("TICKWORK_QUOTA_SCHEDULES", "500")
    monkeypatch.setenv("TICKWORK_STACK_QUOTAS", '{"7": {"schedules": 50, "script_bytes": 0}}')

    limits = limits_of(load_settings(_env_file=None))

    assert limits.of(1) == replace(Quotas(), schedules=500)
    assert limits.of(7) == replace(Quotas(), schedules=50, script_bytes=0)


def test_a_deployment_that_sets_no_quota_holds_the_generous_defaults(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for name in os.environ:
        if name.startswith(("TICKWORK_QUOTA_", "TICKWORK_MIN_")) or name == "TICKWORK_STACK_QUOTAS":
            monkeypatch.delenv(name)

    limits = limits_of(load_settings(_env_file=None))

    assert limits == Limits()
    assert limits.of(7) == Quotas(
        schedules=10_000,
        load_tests=10_000,
        kragle_templates=100,
        kragle_jobs=10_000,
        report_schedules=1_000,
        script_bytes=1_048_576,
    )
    assert (limits.min_interval_s, limits.min_kragle_period_s) == (0, 1)


@pytest.mark.parametrize(
    ("value", "line"),
    [
        pytest.param(
            '{"7": {"schedule": 50}}',
            "TICKWORK_STACK_QUOTAS[7]: Value error, unknown quota 'schedule'; the quotas are "
            "schedules, load_tests, kragle_templates, kragle_jobs, report_schedules, script_bytes",
            id="unknown_quota",
        ),
        pytest.param(
            '{"7": {"schedules": -1}}',
            "TICKWORK_STACK_QUOTAS[7.schedules]: Input should be greater than or equal to 0",
            id="negative",
        ),
        pytest.param(
            '{"0": {"schedules": 1}}',
            "TICKWORK_STACK_QUOTAS: Value error, stack ids are positive integers, not 0",
            id="stack_zero",
        ),
        pytest.param(
            '{"7": 50}',
            "TICKWORK_STACK_QUOTAS[7]: Input should be a valid dictionary or instance of "
            "StackQuotas",
            id="not_an_object",
        ),
        pytest.param(
            '{"7": {"schedules": 50}',
            "TICKWORK_STACK_QUOTAS: not valid JSON (Expecting ',' delimiter at character 24); "
            "expected JSON",
            id="not_json",
        ),
    ],
)
def test_a_bad_stack_quota_stops_the_start_with_one_line_naming_the_setting(
    monkeypatch: pytest.MonkeyPatch, value: str, line: str
) -> None:
    monkeypatch.setenv("TICKWORK_STACK_QUOTAS", value)

    with pytest.raises(SettingsError) as raised:
        load_settings(_env_file=None)

    assert str(raised.value) == line
