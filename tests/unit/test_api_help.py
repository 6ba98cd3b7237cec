"""``tickwork api --help`` names every setting the API process reads, the four request rate
limit settings included (issue 13), and what a client meets past a limit."""

from __future__ import annotations

import pytest

from tickwork.cli import main

RATE_LIMIT_SETTINGS = (
    "TICKWORK_RATE_LIMIT_PER_SECOND",
    "TICKWORK_RATE_LIMIT_BURST",
    "TICKWORK_STACK_RATE_LIMIT_PER_SECOND",
    "TICKWORK_STACK_RATE_LIMIT_BURST",
)


def test_the_api_help_names_the_rate_limit_settings_and_the_429(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with pytest.raises(SystemExit) as exit_:
        main(["api", "--help"])

    assert exit_.value.code == 0
    text = " ".join(capsys.readouterr().out.split())  # argparse wraps lines
    for name in RATE_LIMIT_SETTINGS:
        assert name in text
    assert "429 rate_limited with Retry-After" in text
