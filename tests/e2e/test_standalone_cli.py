"""A real `tickwork standalone`, used with the tickwork CLI alone: its banner's `export`
line points the CLI at it, the CLI commands it prints work as printed, and `tickwork doctor`
run beside it checks the Redis it started."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from .test_standalone import start_standalone

pytestmark = pytest.mark.slow

EXPORT = re.compile(
    r"^  (export TICKWORK_API_URL=(\S+) TICKWORK_API_TOKEN=(\S+) TICKWORK_STACK_ID=1)$",
    re.MULTILINE,
)


@pytest.fixture(scope="module")
def standalone(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, str]]:
    tmp_path = tmp_path_factory.mktemp("standalone")
    process, banner = start_standalone(tmp_path)
    try:
        yield tmp_path / "data", banner
    finally:
        process.terminate()
        try:
            process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=30)
        if process.stdout is not None:
            process.stdout.close()


def _shell(script: str, **env: str) -> subprocess.CompletedProcess[str]:
    """``script`` run by bash as a user's terminal runs it: no TICKWORK_* set beforehand."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith("TICKWORK_")}
    # The CLI the banner names is this interpreter's (the banner prints its path).
    clean["PATH"] = f"{Path(sys.executable).parent}:{clean.get('PATH', '')}"
    return subprocess.run(
        ["bash", "-c", script],
        env={**clean, **env},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_the_banner_prints_the_export_line_the_cli_needs(standalone: tuple[Path, str]) -> None:
    data_dir, banner = standalone
    export = EXPORT.search(banner)
    assert export is not None, banner
    assert export[3] == (data_dir / "token").read_text().strip()
    assert re.search(rf"API:\s+{re.escape(export[2])}\s", banner)

    listed = _shell(f"{export[1]}\ntickwork load-tests list")

    assert listed.returncode == 0, listed.stderr
    assert re.search(r"^1\s+example\s+1\s+k6\s", listed.stdout, re.MULTILINE), listed.stdout


def test_the_cli_commands_the_banner_prints_work_as_printed(
    standalone: tuple[Path, str],
) -> None:
    _, banner = standalone
    export = EXPORT.search(banner)
    assert export is not None, banner
    schedule = re.search(r"^  (\S*tickwork schedules set 1 .*)$", banner, re.MULTILINE)
    follow = re.search(r"^  (\S*tickwork runs show --load-test 1 --follow)$", banner, re.MULTILINE)
    assert schedule is not None, banner
    assert follow is not None, banner

    result = _shell(f"{export[1]}\n{schedule[1]}")

    assert result.returncode == 0, result.stderr
    assert re.search(r"^cron:\s+\* \* \* \* \* \(UTC\)$", result.stdout, re.MULTILINE)
    assert re.search(r"^next_run:\s+\S+:00Z$", result.stdout, re.MULTILINE), result.stdout
    # Following the run the schedule fires next would wait for the minute: the README's
    # quick start (tests/e2e/test_readme_quickstart.py) does that with its own load test.


def test_doctor_beside_a_standalone_checks_the_redis_it_started(
    standalone: tuple[Path, str],
) -> None:
    data_dir, banner = standalone
    redis = re.search(r"Redis: embedded \S+ at (redis://\S+),", banner)
    assert redis is not None, banner

    result = _shell("tickwork doctor", TICKWORK_DATA_DIR=str(data_dir))

    assert result.returncode == 0, result.stdout
    lines = result.stdout.splitlines()
    assert any(
        line.startswith("[ok] standalone: tickwork standalone (pid ")
        and line.endswith(f"runs from {data_dir}; checking the Redis it started")
        for line in lines
    ), lines
    assert any(line.startswith(f"[ok] redis: {redis[1]} answers") for line in lines), lines
    assert "[ok] persistence: AOF is on" in lines
    assert any(line.startswith("[ok] tokens: the standalone's token is in ") for line in lines)
