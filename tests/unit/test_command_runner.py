"""The command runner: placeholders, environment, exit status, time limit, abort, allow-list."""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest

from tickwork.core.lifecycle import Outcome
from tickwork.core.runner_specs import CommandSpec
from tickwork.worker.runners import CommandRunner, RunInput, RunnerOptions
from tickwork.worker.runners.processes import OUTPUT_TAIL_BYTES

SH = RunnerOptions(command_allowed=("sh",), stop_grace_s=0.3)
SLACK_S = 5.0
"""What a loaded 2-core host may add to a stop; far below the 30 s the commands would run."""


def _input(work_dir: Path, *, limit_s: float = 10.0, script: bytes | None = None) -> RunInput:
    return RunInput(
        run_id=41,
        load_test_id=7,
        project_id=3,
        stack=1,
        created=datetime(2026, 11, 23, 12, tzinfo=UTC),
        scheduled_for=datetime(2026, 11, 23, 12, 0, 5, tzinfo=UTC),
        script=script,
        work_dir=work_dir,
        time_limit_s=limit_s,
    )


def _alive(pid: int) -> bool:
    """Whether ``pid`` runs (a zombie waiting for an init that does not reap is dead)."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except FileNotFoundError:
        return False
    return "\nState:\tZ" not in status


def _sh(code: str, *args: str, env: dict[str, str] | None = None) -> CommandSpec:
    return CommandSpec(argv=("sh", "-c", code, "sh", *args), env=env or {})


def test_exit_zero_passes_and_placeholders_fill_argv_and_env(tmp_path: Path) -> None:
    spec = _sh(
        'echo "$1 $2 $3 $4 $RUN $TICKWORK_RUN_ID"; cat "$3"',
        "{run_id}",
        "{load_test_id}",
        "{script_path}",
        "{scheduled_for}",
        env={"RUN": "run-{run_id}-of-{project_id}"},
    )
    verdict = CommandRunner(spec, SH).run(
        _input(tmp_path, script=b"export default () => {}"), threading.Event()
    )
    assert verdict.outcome is Outcome.PASSED
    script_path = tmp_path / "script.js"
    assert verdict.details["output_tail"] == (
        f"41 7 {script_path} 2026-11-23T12:00:05Z run-41-of-3 41\nexport default () => {{}}"
    )
    assert verdict.details["exit_code"] == 0
    assert verdict.details["argv"][4:] == ["41", "7", str(script_path), "2026-11-23T12:00:05Z"]


def test_non_zero_exit_fails(tmp_path: Path) -> None:
    verdict = CommandRunner(_sh("echo nope >&2; exit 3"), SH).run(
        _input(tmp_path), threading.Event()
    )
    assert verdict.outcome is Outcome.FAILED
    assert verdict.detail == "command exited with 3"
    assert verdict.details["output_tail"] == "nope\n"


def test_worker_environment_is_not_passed_on(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TICKWORK_REDIS_URL", "redis://:secret@db:6379/0")
    verdict = CommandRunner(_sh('echo "[$TICKWORK_REDIS_URL]" "$HOME"'), SH).run(
        _input(tmp_path), threading.Event()
    )
    assert verdict.details["output_tail"] == f"[] {tmp_path}\n"


@pytest.mark.slow  # waits out a run's time limit (1 s)
def test_time_limit_stops_the_command_and_everything_it_started(tmp_path: Path) -> None:
    # Many grandchildren: SIGKILL reaches each when the kernel next schedules it, so a runner
    # that returned once the command itself was reaped left some of them running (it did).
    pid_file = tmp_path / "grandchildren.pid"
    spec = _sh(f"for i in $(seq 1 100); do sleep 30 & echo $! >> {pid_file}; done; wait")
    started = time.monotonic()
    verdict = CommandRunner(spec, SH).run(_input(tmp_path, limit_s=1.0), threading.Event())
    assert verdict.outcome is Outcome.TIMED_OUT
    assert time.monotonic() - started < 1.0 + SH.stop_grace_s + SLACK_S
    pids = [int(pid) for pid in pid_file.read_text().split()]
    assert pids
    assert [pid for pid in pids if _alive(pid)] == []


def test_command_ignoring_sigterm_is_killed_after_the_grace_period(tmp_path: Path) -> None:
    spec = _sh("trap '' TERM; sleep 30")
    started = time.monotonic()
    verdict = CommandRunner(spec, SH).run(_input(tmp_path, limit_s=0.3), threading.Event())
    assert verdict.outcome is Outcome.TIMED_OUT
    assert time.monotonic() - started < 0.3 + SH.stop_grace_s + SLACK_S


def test_cancel_stops_the_command(tmp_path: Path) -> None:
    cancel = threading.Event()
    threading.Timer(0.3, cancel.set).start()
    started = time.monotonic()
    verdict = CommandRunner(_sh("sleep 30"), SH).run(_input(tmp_path), cancel)
    assert verdict.outcome is Outcome.ABORTED_BY_USER
    assert time.monotonic() - started < 0.3 + SH.stop_grace_s + SLACK_S


def test_program_not_allowed_is_an_error_and_never_runs(tmp_path: Path) -> None:
    marker = tmp_path / "ran"
    spec = CommandSpec(argv=("touch", str(marker)))
    verdict = CommandRunner(spec, SH).run(_input(tmp_path), threading.Event())
    assert verdict.outcome is Outcome.ERROR
    assert "not allowed" in verdict.detail
    assert not marker.exists()


def test_allow_list_accepts_names_paths_and_star(tmp_path: Path) -> None:
    spec = CommandSpec(argv=("true",))
    for allowed in (("true",), ("/usr/bin/true", "/bin/true"), ("*",)):
        options = RunnerOptions(command_allowed=allowed)
        verdict = CommandRunner(spec, options).run(_input(tmp_path), threading.Event())
        assert verdict.outcome is Outcome.PASSED, allowed


def test_missing_program_is_an_error(tmp_path: Path) -> None:
    spec = CommandSpec(argv=("/nonexistent/tool",))
    options = RunnerOptions(command_allowed=("*",))
    verdict = CommandRunner(spec, options).run(_input(tmp_path), threading.Event())
    assert verdict.outcome is Outcome.ERROR
    assert "could not start" in verdict.detail


def test_only_the_tail_of_a_long_output_is_kept(tmp_path: Path) -> None:
    spec = _sh("i=0; while [ $i -lt 3000 ]; do echo line-$i-xxxxxxxxxxxxxxxxxxxx; i=$((i+1)); done")
    verdict = CommandRunner(spec, SH).run(_input(tmp_path), threading.Event())
    tail = verdict.details["output_tail"]
    assert len(tail.encode()) <= OUTPUT_TAIL_BYTES
    assert tail.startswith("line-")  # cut at a line boundary
    assert tail.endswith("line-2999-xxxxxxxxxxxxxxxxxxxx\n")
