"""The command runner: an argument list with placeholders, its environment, a time limit.

Exit 0 is passed, anything else failed. A command can do anything the worker's user can, so
a worker runs only the programs its operator allowed (TICKWORK_COMMAND_ALLOWED): a token for
the API must not be a shell on every worker.
"""

from __future__ import annotations

import shutil
import threading
from pathlib import Path

from tickwork.core.lifecycle import Outcome
from tickwork.core.runner_specs import CommandSpec, expand
from tickwork.worker.runners.base import RunInput, RunnerOptions, Verdict
from tickwork.worker.runners.processes import child_env, supervise

ALLOW_ANY = "*"


def is_allowed(program: str, allowed: tuple[str, ...], *, path: str | None) -> bool:
    """Whether ``program`` (argv[0]) may run: listed by name or by resolved path, or ``*``."""
    if ALLOW_ANY in allowed or program in allowed:
        return True
    resolved = shutil.which(program, path=path)
    return resolved is not None and str(Path(resolved).resolve()) in {
        str(Path(entry).resolve()) for entry in allowed if "/" in entry
    }


class CommandRunner:
    def __init__(self, spec: CommandSpec, options: RunnerOptions) -> None:
        self._spec = spec
        self._options = options

    def run(self, run: RunInput, cancel: threading.Event) -> Verdict:
        script_path: Path | None = None
        if run.script is not None:
            script_path = run.work_dir / "script.js"
            script_path.write_bytes(run.script)
        values = run.placeholders(script_path)
        argv = [expand(arg, values) for arg in self._spec.argv]
        env = child_env(
            run.work_dir,
            {
                "TICKWORK_RUN_ID": values["run_id"],
                "TICKWORK_LOAD_TEST_ID": values["load_test_id"],
                **{name: expand(text, values) for name, text in self._spec.env.items()},
            },
        )
        if not is_allowed(argv[0], self._options.command_allowed, path=env.get("PATH")):
            return Verdict(
                outcome=Outcome.ERROR,
                detail=f"{argv[0]!r} is not allowed on this worker (TICKWORK_COMMAND_ALLOWED)",
                details={"runner": "command", "argv": argv},
            )
        try:
            ended = supervise(
                argv,
                cwd=run.work_dir,
                env=env,
                time_limit_s=run.time_limit_s,
                cancel=cancel,
                output=run.work_dir / "output.log",
                grace_s=self._options.stop_grace_s,
            )
        except OSError as exc:
            return Verdict(
                outcome=Outcome.ERROR,
                detail=f"{argv[0]!r} could not start: {exc}",
                details={"runner": "command", "argv": argv},
            )
        details = {
            "runner": "command",
            "argv": argv,
            "exit_code": ended.exit_code,
            "duration_s": round(ended.duration_s, 3),
            "output_tail": ended.output_tail,
        }
        if ended.stopped == "cancelled":
            return Verdict(
                outcome=Outcome.ABORTED_BY_USER, detail="command stopped", details=details
            )
        if ended.stopped == "timed_out":
            return Verdict(
                outcome=Outcome.TIMED_OUT,
                detail=f"command ran longer than the {run.time_limit_s:g} s limit",
                details=details,
            )
        if ended.exit_code == 0:
            return Verdict(outcome=Outcome.PASSED, details=details)
        return Verdict(
            outcome=Outcome.FAILED,
            detail=f"command exited with {ended.exit_code}",
            details=details,
        )
