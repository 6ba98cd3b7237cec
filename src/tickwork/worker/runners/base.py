"""What every runner takes and gives back: the port the worker's job calls.

A runner turns one run into a Verdict. It owns its process or request and must give up
promptly when ``cancel`` is set (an abort, or the worker losing the run), and when
``time_limit_s`` has passed. A runner never writes the run's record: the job records the
verdict. The k6, command and webhook runners touch no store at all; the report runner reads
the store and notes its execution on its report (see ``report.py``).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Protocol

from tickwork.core.egress import EgressPolicy
from tickwork.core.instants import format_instant
from tickwork.core.lifecycle import Outcome
from tickwork.worker.reports.mail import SmtpOptions

STOP_GRACE_S = 5.0
"""How long a stopped k6 or command has, after SIGTERM, to write its summary and exit."""


@dataclass(frozen=True, slots=True, kw_only=True)
class RunInput:
    run_id: int
    load_test_id: int
    project_id: int
    stack: int
    created: datetime
    schedule_id: int | None = None
    scheduled_for: datetime | None = None
    script: bytes | None = None
    work_dir: Path
    time_limit_s: float

    def placeholders(self, script_path: Path | None) -> dict[str, str]:
        """Values of the command placeholders (see core.runner_specs.PLACEHOLDERS)."""
        return {
            "run_id": str(self.run_id),
            "load_test_id": str(self.load_test_id),
            "project_id": str(self.project_id),
            "stack": str(self.stack),
            "script_path": str(script_path) if script_path is not None else "",
            "work_dir": str(self.work_dir),
            "scheduled_for": format_instant(self.scheduled_for) if self.scheduled_for else "",
        }


@dataclass(frozen=True, slots=True, kw_only=True)
class Verdict:
    """How the run went. ``ABORTED_BY_USER`` means "stopped because cancel was set"; the job
    knows the real reason. ``details`` is kept with the run (summary, output tail, ...)."""

    outcome: Outcome
    detail: str = ""
    details: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True, kw_only=True)
class RunnerOptions:
    """Worker-wide settings the runners need; plain values, built by the CLI from Settings."""

    k6_path: str | None = None
    command_allowed: tuple[str, ...] = ()
    webhook_secret: str | None = None
    # Where webhooks may connect besides public addresses (default: nowhere else).
    egress: EgressPolicy = field(default_factory=EgressPolicy)
    stop_grace_s: float = STOP_GRACE_S
    smtp: SmtpOptions | None = None  # where report e-mails go (None: none can be sent)
    public_url: str | None = None  # base of the links in reports (else paths)


class Runner(Protocol):
    def run(self, run: RunInput, cancel: threading.Event) -> Verdict: ...
