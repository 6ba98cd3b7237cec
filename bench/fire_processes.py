"""Processes and time for bench/fire.py: the children it starts, their CPU and memory from
/proc, and the small time helpers its runs share."""

from __future__ import annotations

import math
import os
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

CLK_TCK = os.sysconf("SC_CLK_TCK")
CHUNK = 2000  # commands pipelined per round trip when writing or reading in bulk


def log(message: str) -> None:
    print(f"[{datetime.now(UTC):%H:%M:%S}] {message}", file=sys.stderr, flush=True)


def utcnow() -> datetime:
    return datetime.now(UTC)


def sleep_until(instant: datetime) -> None:
    delay = (instant - utcnow()).total_seconds()
    if delay > 0:
        time.sleep(delay)


def whole_second_after(instant: datetime) -> datetime:
    return instant.replace(microsecond=0) + timedelta(seconds=1)


def whole_minute_after(instant: datetime) -> datetime:
    return instant.replace(second=0, microsecond=0) + timedelta(minutes=1)


def parse_rq_time(text: str) -> datetime:
    value = datetime.fromisoformat(text)
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def chunks(items: Sequence[Any], size: int = CHUNK) -> Iterator[Sequence[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


# -- processes ---------------------------------------------------------------------------------


def cpu_seconds(pid: int) -> float:
    """utime + stime of a live process, from /proc (its children are not counted)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def peak_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return math.nan


def rss_mb(pid: int) -> float:
    """Resident memory of a live process now (VmRSS), in MB; NaN once it is gone."""
    try:
        lines = Path(f"/proc/{pid}/status").read_text().splitlines()
    except OSError:
        return math.nan
    for line in lines:
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return math.nan


@dataclass
class Child:
    name: str
    popen: subprocess.Popen[bytes]
    log: Path

    @property
    def pid(self) -> int:
        return self.popen.pid

    @property
    def alive(self) -> bool:
        return self.popen.poll() is None

    def tail(self, lines: int = 15) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def wait_idle(self, *, quiet_s: float = 0.5, limit_s: float = 60.0) -> None:
        """Return once the process used under 2% of a core over ``quiet_s``."""
        deadline = time.monotonic() + limit_s
        while self.alive and time.monotonic() < deadline:
            before = cpu_seconds(self.pid)
            time.sleep(quiet_s)
            if not self.alive or cpu_seconds(self.pid) - before < 0.02 * quiet_s:
                return
