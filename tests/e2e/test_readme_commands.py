"""The README's two first-screen commands, run as written on a fresh virtual environment."""

from __future__ import annotations

import os
import re
import signal
import subprocess
from pathlib import Path

import pytest

from tickwork.embedded import free_port

from .test_standalone import read_banner

pytestmark = [pytest.mark.slow, pytest.mark.timeout(1200)]  # fresh venvs: its own steps allow 900 s

ROOT = Path(__file__).resolve().parents[2]


def _commands() -> tuple[str, str]:
    readme = (ROOT / "README.md").read_text()
    blocks = re.findall(r"```sh\n(.*?)\n```", readme, flags=re.DOTALL)
    run, test = blocks[0].strip(), blocks[1].strip()
    return run, test


def _fresh_copy(tmp_path: Path) -> Path:
    """The project as a fresh clone has it: tracked files only, no venv, no caches."""
    copy = tmp_path / "project"
    files = (
        subprocess.run(
            ["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=True, timeout=60
        )
        .stdout.decode()
        .split("\0")
    )
    for name in filter(None, files):
        source = ROOT / name
        if source.is_file():
            target = copy / name
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(source.read_bytes())
    return copy


def _env() -> dict[str, str]:
    return {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("TICKWORK_", "VIRTUAL_ENV", "PYTHON"))
    }


def _install(command: str, project: Path) -> None:
    """Run the install half of a README command, as a shell runs it, in ``project``."""
    subprocess.run(
        command,
        shell=True,
        cwd=project,
        env=_env(),
        check=True,
        capture_output=True,
        timeout=600,
    )


def test_ci_runs_the_readme_test_command_verbatim() -> None:
    _, test = _commands()
    assert test in (ROOT / ".ci" / "run").read_text()


def test_install_and_run_command_brings_up_tickwork_on_a_fresh_venv(tmp_path: Path) -> None:
    run, _ = _commands()
    install, _, start = run.rpartition(" && ")
    assert start == ".venv/bin/tickwork standalone"
    project = _fresh_copy(tmp_path)
    _install(install, project)
    process = subprocess.Popen(
        [*start.split(), "--port", str(free_port()), "--data-dir", str(tmp_path / "data")],
        cwd=project,
        env=_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        banner = read_banner(process)
    finally:
        process.send_signal(signal.SIGTERM)
        code = process.wait(timeout=30)
        assert process.stdout is not None
        process.stdout.close()
    assert "curl" in banner
    assert re.search(r"token:\s+\S+", banner)
    assert code == 0


def test_test_command_installs_and_runs_pytest_on_a_fresh_venv(tmp_path: Path) -> None:
    _, test = _commands()
    install, _, pytest_command = test.rpartition(" && ")
    assert pytest_command == ".venv/bin/python -m pytest -n 2"
    project = _fresh_copy(tmp_path)
    _install(install, project)
    # The whole suite would run itself again; a known-answer file shows the command works.
    result = subprocess.run(
        [
            *pytest_command.split(),
            "-q",
            "-p",
            "no:cacheprovider",
            "tests/unit/test_issue_examples.py",
        ],
        cwd=project,
        env=_env(),
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert re.search(r"\d+ passed", result.stdout)
