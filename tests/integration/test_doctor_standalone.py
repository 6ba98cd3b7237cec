"""`tickwork doctor` beside a `tickwork standalone`: it checks the Redis the standalone
started (recorded in the data directory's lock file) when one runs from the data directory
and TICKWORK_REDIS_URL names no other.

The standalone is stood in for by what doctor reads of it: its lock, held (flock) with the
holder's record, as `tickwork standalone` holds and writes it; tests/e2e/test_standalone_cli.py
does the same with a real standalone.
"""

from __future__ import annotations

import fcntl
import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from tickwork.cli import main
from tickwork.standalone import running

from .private_redis import private_redis


@contextmanager
def held_lock(data_dir: Path, holder: dict[str, object]) -> Iterator[None]:
    """The data directory's lock, held as a running standalone holds it."""
    data_dir.mkdir(parents=True, exist_ok=True)
    fd = os.open(data_dir / "lock", os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        os.pwrite(fd, json.dumps(holder).encode(), 0)
        yield
    finally:
        os.close(fd)


@pytest.fixture
def doctor(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> tuple[Path, pytest.CaptureFixture[str]]:
    for name in list(os.environ):
        if name.startswith("TICKWORK_"):
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)  # no .env of anyone else's
    data_dir = tmp_path / "data"
    monkeypatch.setenv("TICKWORK_DATA_DIR", str(data_dir))
    return data_dir, capsys


def _doctor(capsys: pytest.CaptureFixture[str]) -> tuple[int, list[str]]:
    capsys.readouterr()
    status = main(["doctor"])
    return status, capsys.readouterr().out.splitlines()


def test_running_reads_the_holder_only_while_the_lock_is_held(tmp_path: Path) -> None:
    holder = {"pid": 4321, "api": "http://127.0.0.1:8080", "stack": 1, "redis": "redis://x/0"}
    assert running(tmp_path) is None  # no lock file
    with held_lock(tmp_path, holder):
        assert running(tmp_path) == holder
    assert running(tmp_path) is None  # the file is left, the lock is not
    assert (tmp_path / "lock").exists()


def test_doctor_checks_the_redis_a_running_standalone_started(
    doctor: tuple[Path, pytest.CaptureFixture[str]],
) -> None:
    data_dir, capsys = doctor
    (data_dir / "token").parent.mkdir(parents=True)
    (data_dir / "token").write_text("standalone-token")
    with private_redis("--appendonly", "yes") as url:
        holder = {"pid": 4321, "api": "http://127.0.0.1:8080", "stack": 1, "redis": url}
        with held_lock(data_dir, holder):
            status, lines = _doctor(capsys)

    assert status == 0, lines
    assert (
        f"[ok] standalone: tickwork standalone (pid 4321, API http://127.0.0.1:8080) runs from "
        f"{data_dir}; checking the Redis it started"
    ) in lines
    assert any(line.startswith(f"[ok] redis: {url} answers") for line in lines), lines
    assert (
        f"[ok] tokens: the standalone's token is in {data_dir / 'token'}; for the CLI, export "
        "TICKWORK_API_TOKEN as its banner says"
    ) in lines


def test_doctor_checks_the_redis_the_settings_name_over_the_standalones(
    doctor: tuple[Path, pytest.CaptureFixture[str]], monkeypatch: pytest.MonkeyPatch
) -> None:
    data_dir, capsys = doctor
    with private_redis("--appendonly", "yes") as mine, private_redis() as theirs:
        monkeypatch.setenv("TICKWORK_REDIS_URL", mine)
        holder = {"pid": 4321, "api": "http://127.0.0.1:8080", "redis": theirs}
        with held_lock(data_dir, holder):
            _, lines = _doctor(capsys)

    assert any(line.startswith(f"[ok] redis: {mine} answers") for line in lines), lines
    (standalone,) = [line for line in lines if line.startswith("[ok] standalone:")]
    assert standalone.endswith(f"on {theirs}; TICKWORK_REDIS_URL names another, checked")


def test_without_a_running_standalone_doctor_checks_the_settings_redis(
    doctor: tuple[Path, pytest.CaptureFixture[str]], monkeypatch: pytest.MonkeyPatch
) -> None:
    data_dir, capsys = doctor
    data_dir.mkdir()
    # A standalone that has stopped leaves its lock file behind, unlocked.
    (data_dir / "lock").write_text(json.dumps({"pid": 4321, "redis": "redis://127.0.0.1:1/0"}))
    with private_redis("--appendonly", "yes") as url:
        monkeypatch.setenv("TICKWORK_REDIS_URL", url)
        _, lines = _doctor(capsys)

    assert not any("standalone" in line for line in lines), lines
    assert any(line.startswith(f"[ok] redis: {url} answers") for line in lines), lines
    assert "[warn] tokens: TICKWORK_TOKENS is empty: the API rejects every request" in lines
