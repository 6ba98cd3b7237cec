"""The fire commit's protocol is written twice, once per language: in the Lua script's header
and body, and as the layouts Python encodes by (``HEAD``, ``ENTRY``, ``RUN``). They agree."""

from __future__ import annotations

import re

import pytest

from tickwork.store.fires import ENTRY, HEAD, RUN, SCRIPT

_FIELD = re.compile(r"^--\s+\+(\d+) (\w+)")


def _documented(title: str) -> tuple[str, ...]:
    """The ``+n name`` lines right after the header line ``-- <title>:``, in order."""
    lines = SCRIPT.splitlines()
    start = next(i for i, line in enumerate(lines) if re.fullmatch(rf"--\s+{title}:", line))
    fields = []
    for line in lines[start + 1 :]:
        match = _FIELD.match(line)
        if match is None:
            break
        fields.append((int(match.group(1)), match.group(2)))
    assert [offset for offset, _ in fields] == list(range(len(fields)))
    return tuple(name for _, name in fields)


def _read_in_body(names: tuple[str, ...]) -> tuple[str, ...]:
    """The names the body reads, in the order of their ``ARGV[i + n]`` offsets."""
    reads = re.findall(r"local (\w+) = (?:tonumber\()?ARGV\[i \+ (\d+)\]", SCRIPT)
    found = {int(offset): name for name, offset in reads if name in names}
    return tuple(found[offset] for offset in sorted(found))


@pytest.mark.parametrize(
    ("title", "layout"),
    [("head", HEAD), ("entry", ENTRY), ("then n_runs runs, each", RUN)],
    ids=["head", "entry", "run"],
)
def test_the_script_header_documents_the_python_layout(title: str, layout: tuple[str, ...]) -> None:
    assert _documented(title) == layout


@pytest.mark.parametrize("layout", [ENTRY, RUN], ids=["entry", "run"])
def test_the_script_body_reads_each_field_at_its_documented_offset(
    layout: tuple[str, ...],
) -> None:
    assert _read_in_body(layout) == layout


def test_the_script_body_reads_the_head_at_its_documented_positions() -> None:
    # The lease value is compared first (ARGV[1]); the rest are read by name.
    assert "call('GET', KEYS[1]) ~= ARGV[1]" in SCRIPT
    match = re.search(r"local ([\w, ]+) = (ARGV\[\d+\](?:, ARGV\[\d+\])*)\n", SCRIPT)
    assert match is not None
    names = tuple(name.strip() for name in match.group(1).split(","))
    positions = tuple(int(p) for p in re.findall(r"ARGV\[(\d+)\]", match.group(2)))
    assert names == HEAD[1:]
    assert positions == tuple(range(2, len(HEAD) + 1))
