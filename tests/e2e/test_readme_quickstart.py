"""The README's quick start, run as written: from a running standalone to a scheduled k6 run
and its readable result, with the tickwork CLI alone.

The quick start is the README's ``sh`` block that follows a load test's run
(``tickwork runs show --load-test``). Its commands run in one bash, in order, in a directory
whose ``.venv`` is this checkout's (the install command before it is run as written by
tests/e2e/test_readme_commands.py); its ``export`` line stands for the one the standalone's
banner printed, and is replaced by it. Each command's output and exit status are kept apart,
and checked for what a reader is told to expect.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
from pathlib import Path

import pytest

from tickwork.embedded import free_port

from .test_standalone import read_banner

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"
EXPORT = re.compile(r"^export TICKWORK_API_URL=\S+ TICKWORK_API_TOKEN=\S+ TICKWORK_STACK_ID=\d+$")


def quick_start(readme: str) -> list[str] | None:
    """The quick start's commands (a heredoc with its lines is one), or None when the README
    has none."""
    for block in re.findall(r"```sh\n(.*?)\n```", readme, flags=re.DOTALL):
        if "tickwork runs show --load-test" in block:
            return commands(block)
    return None


def commands(block: str) -> list[str]:
    found: list[str] = []
    lines = iter(block.splitlines())
    for line in lines:
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        heredoc = re.search(r"<<\s*'?(\w+)'?", line)
        if heredoc is None:
            found.append(line)
            continue
        body = [line]
        for following in lines:
            body.append(following)
            if following == heredoc[1]:
                break
        found.append("\n".join(body))
    return found


def _env() -> dict[str, str]:
    return {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("TICKWORK_", "VIRTUAL_ENV", "PYTHON"))
    }


def _run_in_one_shell(steps: list[str], cwd: Path, timeout_s: float) -> list[tuple[int, str, str]]:
    """Each step's exit status, stdout and stderr, the steps run in order by one bash (so an
    ``export`` holds for the steps after it)."""
    script = ""
    for index, step in enumerate(steps):
        script += f"{{ {step}\n}} >out.{index} 2>err.{index}; echo $? >rc.{index}\n"
    (cwd / "quickstart.sh").write_text(script)
    subprocess.run(["bash", "quickstart.sh"], cwd=cwd, env=_env(), timeout=timeout_s, check=False)
    return [
        (
            int((cwd / f"rc.{i}").read_text()),
            (cwd / f"out.{i}").read_text(),
            (cwd / f"err.{i}").read_text(),
        )
        for i in range(len(steps))
    ]


def test_the_quick_start_schedules_a_k6_run_and_shows_its_result(tmp_path: Path) -> None:
    steps = quick_start(README.read_text())
    if steps is None:
        pytest.skip("README.md has no quick start yet (a sh block with `tickwork runs show`)")
    (tmp_path / ".venv").symlink_to(ROOT / ".venv")
    standalone = subprocess.Popen(
        [".venv/bin/tickwork", "standalone", "--port", str(free_port()), "--data-dir", "data"],
        cwd=tmp_path,
        env=_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        banner = read_banner(standalone)
        printed = [line.strip() for line in banner.splitlines() if EXPORT.match(line.strip())]
        assert len(printed) == 1, banner
        exports = [i for i, step in enumerate(steps) if step.startswith("export ")]
        assert exports == [0], steps  # the reader pastes the banner's line first
        assert EXPORT.match(steps[0].split("#")[0].strip().replace("…", "x")), steps[0]
        # A minute at most for the cron to fire, then the k6 run itself.
        results = _run_in_one_shell([printed[0], *steps[1:]], tmp_path, timeout_s=240)
    finally:
        standalone.send_signal(signal.SIGTERM)
        standalone.wait(timeout=60)
        assert standalone.stdout is not None
        standalone.stdout.close()

    by_command = dict(zip(steps, results, strict=True))
    create = next(r for s, r in by_command.items() if "load-tests create" in s)
    assert create[0] == 0, create
    load_test = re.search(r"^id:\s+(\d+)$", create[1], re.MULTILINE)
    assert load_test is not None, create
    schedule = next(r for s, r in by_command.items() if "schedules set" in s)
    assert schedule[0] == 0, schedule
    assert re.search(r"^next_run:\s+\S+:00Z$", schedule[1], re.MULTILINE), schedule

    rc, shown, status = next(r for s, r in by_command.items() if "runs show" in s)
    # Half of the script's requests are 404s: its http_req_failed threshold is crossed.
    assert rc == 1, (rc, shown, status)
    assert status.splitlines()[0].startswith(f"waiting for load test {load_test[1]}'s first run")
    assert re.search(r"completed, failed \(ran \d+ s\)$", status.splitlines()[-1]), status
    assert re.search(r"^trigger:\s+schedule \d+, occurrence \S+:00Z$", shown, re.MULTILINE)
    assert re.search(r"^status:\s+completed, failed$", shown, re.MULTILINE), shown
    assert re.search(
        r"^  ✗ http_req_failed\s+rate<0\.01\s+rate = 50\.00 %, 49\.00 points over the limit$",
        shown,
        re.MULTILINE,
    ), shown
    assert re.search(r"^  http_req_duration: p50 .* p95 .* p99 .* max ", shown, re.MULTILINE)

    rc, trend, _ = next(r for s, r in by_command.items() if "runs trend" in s)
    assert rc == 0, trend
    header, row = trend.splitlines()[:2]
    assert header.split()[:5] == ["RUN", "CREATED", "RESULT", "DURATION", "P95"]
    assert row.split()[2] == "failed"
    assert re.search(r"\s50\.00 %\s", row), trend
    assert row.endswith("http_req_failed: rate<0.01"), trend
