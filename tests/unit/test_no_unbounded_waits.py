"""No wait in the suite is unbounded (issue 19 §3): a hang becomes a failure naming what did not
happen, never a CI run that stops at its own limit saying nothing.

The suite is read with ``ast``, not imported; what it flags:

- ``.join()``, ``.wait()``, ``.communicate()``, and a queue's ``.get()`` or a future's
  ``.result()``, without a timeout (a string's ``join`` always has its argument, a dict's or
  Redis's ``get`` its key, so a bare call is a wait);
- ``subprocess.run``, ``check_output``, ``check_call`` and ``call`` without ``timeout=``;
- a ``readline()``/``read()``/``readlines()`` straight off a child's ``stdout`` or ``stderr``,
  or a ``for`` over one: a pipe read takes no timeout, so it belongs in a reader thread the
  test waits on with a deadline;
- a ``while`` loop that sleeps without a deadline (no ``time.monotonic()``, ``time.time()``
  or ``datetime.now()``, and no name with ``deadline``, in the loop);
- a thread's ``join(timeout=...)`` with no ``is_alive()`` after it in the same function: a
  join that timed out returns quietly, and the test would go on beside a running thread.

A function passed as a thread's ``target`` may read a pipe and loop without a deadline: that
is its job, and the test waits on it with a bound.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
TESTS = ROOT / "tests"

# Single calls allowed, as (file, the call's source text): each says why it cannot hang a test.
ALLOWED: dict[tuple[str, str], str] = {
    # The proxy's blackhole: its pumps hold traffic until the test heals it; asyncio's Event
    # takes no timeout, and the test's thread never awaits it (shutting down sets it, and
    # every call into the proxy's loop is bounded: TcpProxy._call, TcpProxy.stop).
    ("tests/e2e/tcp_proxy.py", "self._flowing.wait()"): "a proxy-side hold, set on shutdown",
}

WAITS = {"join", "wait", "communicate", "get", "result"}
RUNNERS = {"run", "check_output", "check_call", "call"}
PIPE_READS = {"readline", "read", "readlines"}
PIPES = {"stdout", "stderr"}
CLOCKS = {"monotonic", "time", "perf_counter", "now"}  # datetime.now(): until an instant


def _has_timeout(call: ast.Call) -> bool:
    return any(k.arg == "timeout" for k in call.keywords)


def _unbounded_wait(call: ast.Call) -> str | None:
    func = call.func
    if not isinstance(func, ast.Attribute) or func.attr not in WAITS or _has_timeout(call):
        return None
    if func.attr == "communicate":
        # communicate(input, timeout): a second positional is its timeout.
        return None if len(call.args) >= 2 else "communicate() without a timeout"
    if call.args or any(k.arg is None for k in call.keywords):
        return None  # join(5), wait(5), get(key), or **kwargs: not a bare wait
    blocks = [k.value for k in call.keywords if k.arg == "block"]
    if blocks:  # a queue's get(block=False) does not wait; get(block=True) does
        nonblocking = isinstance(blocks[0], ast.Constant) and blocks[0].value is False
        return None if nonblocking else f"{func.attr}() without a timeout"
    if call.keywords:
        return None  # get(key=...) and the like name what they read
    return f"{func.attr}() without a timeout"


def _subprocess_names(tree: ast.Module) -> set[str]:
    """Names bound by ``from subprocess import ...`` in this module."""
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module == "subprocess":
            names |= {alias.asname or alias.name for alias in node.names}
    return names


def _unbounded_runner(call: ast.Call, imported: set[str]) -> str | None:
    func = call.func
    if (
        isinstance(func, ast.Attribute)
        and isinstance(func.value, ast.Name)
        and func.value.id == "subprocess"
        and func.attr in RUNNERS
    ):
        name = f"subprocess.{func.attr}"
    elif isinstance(func, ast.Name) and func.id in RUNNERS & imported:
        name = func.id
    else:
        return None
    return None if _has_timeout(call) else f"{name}() without timeout="


def _is_pipe(node: ast.expr) -> bool:
    return isinstance(node, ast.Attribute) and node.attr in PIPES


def _pipe_read(node: ast.AST) -> str | None:
    if isinstance(node, ast.Call):
        func = node.func
        if isinstance(func, ast.Attribute) and func.attr in PIPE_READS and _is_pipe(func.value):
            return f"{func.attr}() on a child's pipe, outside a reader thread"
    if isinstance(node, ast.For | ast.comprehension) and _is_pipe(node.iter):
        return "a loop over a child's pipe, outside a reader thread"
    return None


def _loop_names(loop: ast.While) -> Iterator[ast.AST]:
    """The loop's own nodes: its test and body, not functions or classes defined inside."""
    stack: list[ast.AST] = [loop.test, *loop.body, *loop.orelse]
    while stack:
        node = stack.pop()
        yield node
        for child in ast.iter_child_nodes(node):
            if not isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda):
                stack.append(child)


def _undeadlined_poll(loop: ast.While) -> str | None:
    sleeps = False
    for node in _loop_names(loop):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute | ast.Name):
            name = node.func.attr if isinstance(node.func, ast.Attribute) else node.func.id
            if name == "sleep":
                sleeps = True
            elif name in CLOCKS:
                return None
        if isinstance(node, ast.Name) and "deadline" in node.id.lower():
            return None
        if isinstance(node, ast.Attribute) and "deadline" in node.attr.lower():
            return None
    return "a sleeping loop with no deadline" if sleeps else None


def _thread_targets(tree: ast.Module) -> set[int]:
    """Lines of the functions passed as a thread's ``target``: blocking there is their job."""
    targets = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            for keyword in node.keywords:
                value = keyword.value
                if keyword.arg == "target" and isinstance(value, ast.Name | ast.Attribute):
                    targets.add(value.id if isinstance(value, ast.Name) else value.attr)
    lines = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef) and node.name in targets:
            lines |= set(range(node.lineno, (node.end_lineno or node.lineno) + 1))
    return lines


def _unchecked_joins(function: ast.FunctionDef | ast.AsyncFunctionDef) -> Iterator[ast.Call]:
    """``X.join(timeout=...)`` calls with no ``is_alive()`` after them in ``function``."""
    joins, checks = [], []
    for node in ast.walk(function):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
            if node.func.attr == "join" and _has_timeout(node):
                joins.append(node)
            elif node.func.attr == "is_alive":
                checks.append(node.lineno)
    for join in joins:
        if not any(line > join.lineno for line in checks):
            yield join


def _findings(source: str) -> Iterator[tuple[int, str, str]]:
    """(line, what, the call's source text) for each unbounded wait in ``source``."""
    tree = ast.parse(source)
    imported = _subprocess_names(tree)
    in_threads = _thread_targets(tree)
    for node in ast.walk(tree):
        found = None
        if isinstance(node, ast.Call):
            found = _unbounded_wait(node) or _unbounded_runner(node, imported)
        line = getattr(node, "lineno", 0)
        if found is None and line not in in_threads:
            found = _pipe_read(node)
            if found is None and isinstance(node, ast.While):
                found = _undeadlined_poll(node)
        if found is not None:
            text = ast.get_source_segment(source, node) if isinstance(node, ast.Call) else ""
            yield line, found, text or ""
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            # A nested function's joins are its own, and its outer function's too.
            for join in _unchecked_joins(node):
                text = ast.get_source_segment(source, join) or ""
                yield join.lineno, "join(timeout=...) with no is_alive() check after it", text


def _unbounded() -> list[str]:
    found = []
    for path in sorted(TESTS.rglob("*.py")):
        name = str(path.relative_to(ROOT))
        for line, what, text in set(_findings(path.read_text())):
            if (name, text) not in ALLOWED:
                found.append(f"{name}:{line}: {what}" + (f": {text}" if text else ""))
    return sorted(found)


def test_every_wait_in_the_suite_has_a_bound() -> None:
    assert _unbounded() == []


def test_the_allow_list_names_only_calls_that_are_there() -> None:
    """An allowance outliving its call would let the next one like it in unseen."""
    for file, text in ALLOWED:
        assert any(t == text for _, _, t in _findings((ROOT / file).read_text())), (file, text)


UNBOUNDED = {
    "thread.join()": "join() without a timeout",
    "process.wait()": "wait() without a timeout",
    "process.communicate()": "communicate() without a timeout",
    "process.communicate(b'in')": "communicate() without a timeout",
    "lines.get()": "get() without a timeout",
    "lines.get(block=True)": "get() without a timeout",
    "future.result()": "result() without a timeout",
    "subprocess.run(['true'])": "subprocess.run() without timeout=",
    "subprocess.check_output(['true'])": "subprocess.check_output() without timeout=",
    "from subprocess import check_call\ncheck_call(['true'])": "check_call() without timeout=",
    "process.stderr.readline()": "readline() on a child's pipe, outside a reader thread",
    "for line in process.stdout:\n    pass": "a loop over a child's pipe, outside a reader thread",
    "while not done():\n    time.sleep(0.1)": "a sleeping loop with no deadline",
    "def stop():\n    thread.join(timeout=30)": (
        "join(timeout=...) with no is_alive() check after it"
    ),
}
BOUNDED = [
    "thread.join(timeout=30)\nassert not thread.is_alive()",
    "', '.join(names)",
    "process.wait(timeout=30)",
    "event.wait(5)",
    "process.communicate(timeout=30)",
    "process.communicate(b'in', 30)",
    "lines.get(timeout=5)",
    "lines.get(block=False)",
    "store.get(key)",
    "subprocess.run(['true'], timeout=60)",
    "deadline = time.monotonic() + 30\nwhile not done():\n    assert time.monotonic() < deadline\n"
    "    time.sleep(0.1)",
    "while datetime.now(UTC) < until:\n    time.sleep(0.1)",
    "def read():\n    for line in process.stdout:\n        pass\n"
    "threading.Thread(target=read, daemon=True).start()",
]


@pytest.mark.parametrize(("source", "what"), UNBOUNDED.items(), ids=list(UNBOUNDED))
def test_the_scan_names_an_unbounded_wait(source: str, what: str) -> None:
    assert [found for _, found, _ in _findings(source)] == [what]


@pytest.mark.parametrize("source", BOUNDED)
def test_the_scan_passes_a_bounded_wait(source: str) -> None:
    assert list(_findings(source)) == []
