"""`tickwork standalone` brought up as a user would, used through the API, stopped cleanly."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from tickwork.embedded import free_port

pytestmark = pytest.mark.slow


def _call(url: str, token: str, method: str = "GET", body: object = None) -> Any:
    request = urllib.request.Request(
        url,
        method=method,
        data=None if body is None else json.dumps(body).encode(),
        headers={
            "Authorization": f"Bearer {token}",
            "X-Stack-Id": "1",
            "Content-Type": "application/json",
        },
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.loads(response.read() or b"null")


def read_banner(process: subprocess.Popen[str], timeout_s: float = 60) -> str:
    assert process.stdout is not None
    lines: list[str] = []
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        line = process.stdout.readline()
        if not line:
            break
        lines.append(line)
        if line.startswith("Ctrl-C stops everything."):
            return "".join(lines)
    raise AssertionError("no banner:\n" + "".join(lines))


def start_standalone(
    tmp_path: Path, python: str = sys.executable
) -> tuple[subprocess.Popen[str], str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TICKWORK_")}
    port = free_port()
    process = subprocess.Popen(
        [
            python,
            "-m",
            "tickwork",
            "standalone",
            "--port",
            str(port),
            "--data-dir",
            str(tmp_path / "data"),
        ],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    return process, read_banner(process)


def test_standalone_runs_a_real_k6_test_and_stops_leaving_nothing_behind(
    tmp_path: Path,
) -> None:
    process, banner = start_standalone(tmp_path)
    try:
        api = re.search(r"API:\s+(\S+)", banner)
        token = re.search(r"token:\s+(\S+)", banner)
        redis_port = re.search(r"redis://127\.0\.0\.1:(\d+)", banner)
        assert api is not None, banner
        assert token is not None, banner
        assert redis_port is not None, banner
        assert "curl" in banner
        base, secret = api.group(1), token.group(1)

        run = _call(f"{base}/cloud/v6/load_tests/1/start", secret, "POST")
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            run = _call(f"{base}/cloud/v6/test_runs/{run['id']}", secret)
            if run["status"] in ("completed", "aborted"):
                break
            time.sleep(0.5)
        assert (run["status"], run["result"]) == ("completed", "passed")
    finally:
        process.send_signal(signal.SIGTERM)
        code = process.wait(timeout=30)
        assert process.stdout is not None
        process.stdout.close()
    assert code == 0
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", int(redis_port.group(1))), timeout=1).close()
    leftovers = subprocess.run(
        ["pgrep", "-f", str(tmp_path / "data")], capture_output=True, text=True, check=False
    ).stdout.split()
    assert leftovers == []
