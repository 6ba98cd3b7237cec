"""ruff and mypy (strict, over src, tests and bench) are part of the suite, so CI holds them;
and every property test runs under the Hypothesis profile the session loaded."""

from __future__ import annotations

import importlib
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import hypothesis
import pytest
from hypothesis.internal.detection import is_hypothesis_test

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize(
    "command",
    [
        ["ruff", "check", "src", "tests", "bench"],
        ["ruff", "format", "--check", "src", "tests", "bench"],
        ["mypy"],
    ],
    ids=["ruff-check", "ruff-format", "mypy"],
)
@pytest.mark.slow
def test_tool_is_clean(command: list[str]) -> None:
    result = subprocess.run(
        [sys.executable, "-m", *command],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
        timeout=600,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def _property_tests() -> list[tuple[str, Any]]:
    """Every @given test in the suite, with the settings it runs under."""
    found = []
    for path in sorted((ROOT / "tests").rglob("test_*.py")):
        if "@given" not in path.read_text():
            continue
        # tests/ is on sys.path (its conftest has no package), as pytest imports them.
        name = ".".join(path.relative_to(ROOT / "tests").with_suffix("").parts)
        module = importlib.import_module(name)
        for attribute, value in vars(module).items():
            if attribute.startswith("test_") and is_hypothesis_test(value):
                found.append((f"{name}.{attribute}", value._hypothesis_internal_use_settings))
    return found


def test_every_property_test_runs_under_the_loaded_hypothesis_profile() -> None:
    profile = hypothesis.settings.default
    assert profile is not None
    found = _property_tests()
    assert len(found) >= 6  # the occurrence properties and the API body fuzzing at least
    for name, settings in found:
        # A decorator's @settings names what it changes and inherits the rest; one built
        # before the profile was loaded, or from another parent, would run on its own seed.
        assert (settings.derandomize, settings.database, settings.deadline) == (
            profile.derandomize,
            profile.database,
            None,
        ), name


def test_the_default_hypothesis_profile_is_derandomized_without_a_database() -> None:
    # The README's test command gives the same result on every run; `dev` is opted into.
    ci = hypothesis.settings.get_profile("ci")
    assert (ci.derandomize, ci.database, ci.deadline) == (True, None, None)
    dev = hypothesis.settings.get_profile("dev")
    assert (dev.derandomize, dev.deadline) == (False, None)
    assert dev.database is not None
    expected = os.environ.get("TICKWORK_HYPOTHESIS_PROFILE") or "ci"
    assert hypothesis.settings.get_current_profile_name() == expected
