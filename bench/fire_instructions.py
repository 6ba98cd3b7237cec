"""Redis instructions per fire: what committing one-shots costs the server, counted exactly.

``bench/fire.py`` measures the fire path as users see it (lag, fires/s), but on a shared
virtual machine its figures move by 20-40 % from one run to the next, so a change of a few
per cent to the commit script cannot be seen in them. This counts instead the instructions
the Redis server executes (valgrind's callgrind), which repeat to within 0.5 %:

* for each tree (the working tree, and each ``--rev`` checked out in a temporary worktree
  with its own ``src`` and ``bench``), N one-shot schedules are written as that tree's
  ``bench/fire.py`` writes them, encoded ahead by its look-ahead, then committed at their
  instant by ``Firer.fire_ahead`` in batches of 500, on a fake clock. Two servers are run:
  one that only loads and encodes, one that also fires; the difference over N is the cost
  of one fire (the script, its AOF propagation, everything the server does for it).
* the peer: the same N jobs put on an RQ queue by ``Queue.enqueue_many`` (RQ's own bulk
  enqueue, pipelined), as the least any RQ-based scheduler must cost the server per fire.

Each server runs under callgrind with AOF ``everysec``, as ``EmbeddedServer`` sets it.
Instructions are not time: a change that writes new keys can cost cache misses they do not
show. ``--cycles`` runs callgrind's cache simulation and reports its estimate of cycles
instead (Ir + 10 x L1 misses + 100 x last-level misses; about 3x slower).
Needs valgrind (``apt-get install valgrind``); about 20 s per tree at N = 3,000.

    .venv/bin/python bench/fire_instructions.py [--n 3000] [--rev c51a4c7 ...] [--cycles]
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path

import redis

from tickwork.embedded import free_port

ROOT = Path(__file__).resolve().parent.parent
QUEUE = "bench-runs"


def _server(workdir: Path, *, cycles: bool) -> tuple[subprocess.Popen[bytes], int, Path]:
    port = free_port()
    out = workdir / "callgrind.out"
    argv = ["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}"]
    argv += ["--cache-sim=yes", "redis-server"] if cycles else ["redis-server"]
    argv += ["--port", str(port), "--save", "", "--appendonly", "yes"]
    argv += ["--appendfsync", "everysec", "--dir", str(workdir)]
    process = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return process, port, out


def _total(out: Path, *, cycles: bool) -> int:
    """Instructions executed; with ``cycles``, callgrind's estimate of cycles instead, which
    weighs its simulated cache misses (Ir + 10 x L1 misses + 100 x last-level misses): a
    change that writes new keys can cost time that instructions do not show."""
    events: list[str] = []
    for line in out.read_text().splitlines():
        if line.startswith("events:"):
            events = line.split()[1:]
        if line.startswith(("totals:", "summary:")):
            counts = dict(zip(events, (int(v) for v in line.split()[1:]), strict=False))
            if not cycles:
                return counts["Ir"]
            l1 = sum(counts.get(e, 0) for e in ("I1mr", "D1mr", "D1mw"))
            last = sum(counts.get(e, 0) for e in ("ILmr", "DLmr", "DLmw"))
            return counts["Ir"] + 10 * l1 + 100 * last
    raise RuntimeError(f"no totals in {out}")


def child(system: str, n: int, fire: bool, *, cycles: bool) -> int:
    """One server's instructions (or estimated cycles): load (and, with ``fire``, commit) N
    fires."""
    workdir = Path(tempfile.mkdtemp(prefix="tickwork-bench-instructions-"))
    process, port, out = _server(workdir, cycles=cycles)
    client = redis.Redis(port=port, socket_timeout=600)
    deadline = time.monotonic() + 120
    while True:
        try:
            client.ping()
            break
        except redis.ConnectionError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)
    try:
        if system == "rq":
            _rq(client, n, fire)
        else:
            _tickwork(client, n, fire, workdir)
        client.shutdown(nosave=True)
    except redis.ConnectionError:
        pass  # the shutdown closes the connection
    process.wait(timeout=120)
    total = _total(out, cycles=cycles)
    shutil.rmtree(workdir, ignore_errors=True)
    return total


def _rq(client: redis.Redis, n: int, fire: bool) -> None:
    from rq import Queue

    queue = Queue(QUEUE, connection=client)
    jobs = [Queue.prepare_data("fire_processes.cpu_seconds", args=(i,)) for i in range(n)]
    if fire:
        for start in range(0, n, 500):
            queue.enqueue_many(jobs[start : start + 500])


def _tickwork(client: redis.Redis, n: int, fire: bool, workdir: Path) -> None:
    import fire as tree_bench  # the tree's own bench/fire.py
    from tickwork.scheduler.firing import Firer
    from tickwork.store import Store

    try:
        from tickwork.store.queue import queue as make_queue

        rq_queue = make_queue(client, tree_bench.QUEUE)
    except ImportError:  # trees from before store.queue
        from rq import Queue

        rq_queue = Queue(tree_bench.QUEUE, connection=client)
    bench = tree_bench.Bench(argparse.Namespace(jitter=0, timeout=60), workdir)
    bench.client = client
    at = (datetime.now(UTC) + timedelta(minutes=30)).replace(microsecond=0)
    bench.load_schedules(n, at)
    store = Store(client, tree_bench.PREFIX)
    lease = store.leases.acquire("scheduler", "bench", 10**9)
    assert lease is not None
    now = [at - timedelta(minutes=1)]
    firer = Firer(
        store,
        rq_queue,
        clock=lambda: now[0],
        catch_up=timedelta(minutes=5),
        lookahead=timedelta(minutes=5),
    )
    while firer.prepare():
        pass
    if fire:
        now[0] = at
        while firer.fire_ahead(lease) is not None:
            pass
        queued = client.llen(f"rq:queue:{tree_bench.QUEUE}")
        if queued != n:
            raise RuntimeError(f"{queued} of {n} fires queued")


def _measure(tree: Path, system: str, n: int, *, cycles: bool) -> float:
    env = {**os.environ, "PYTHONPATH": str(tree / "src")}
    totals = []
    for phase in ("load", "fire"):
        argv = [sys.executable, __file__, "--child", system, "--n", str(n), "--phase", phase]
        argv += ["--cycles"] if cycles else []
        reply = subprocess.run(argv, env=env, cwd=tree, capture_output=True, text=True, check=False)
        if reply.returncode != 0:
            raise RuntimeError(f"{tree} {system} {phase}:\n{reply.stderr[-2000:]}")
        totals.append(int(reply.stdout.split()[-1]))
    return (totals[1] - totals[0]) / n


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=3000, help="one-shots due at one instant")
    parser.add_argument("--rev", action="append", default=[], help="a git revision to compare")
    parser.add_argument(
        "--cycles",
        action="store_true",
        help="estimated cycles (a simulated cache weighs misses) instead of instructions",
    )
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--phase", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        # The tree's bench before this file's own directory, which Python put first.
        sys.path.insert(0, str(Path.cwd() / "bench"))
        print(child(args.child, args.n, args.phase == "fire", cycles=args.cycles))
        return 0
    if shutil.which("valgrind") is None:
        parser.error("valgrind is not installed (apt-get install valgrind)")
    trees: list[tuple[str, Path]] = [("working tree", ROOT)]
    scratch = Path(tempfile.mkdtemp(prefix="tickwork-bench-revs-"))
    try:
        for n, rev in enumerate(args.rev):
            path = scratch / str(n)
            subprocess.run(
                ["git", "-C", str(ROOT), "worktree", "add", "-f", "--detach", str(path), rev],
                check=True,
                capture_output=True,
            )
            trees.append((rev, path))
        rows = [("rq enqueue_many (peer)", _measure(ROOT, "rq", args.n, cycles=args.cycles))]
        rows += [
            (f"tickwork {name}", _measure(path, "tickwork", args.n, cycles=args.cycles))
            for name, path in trees
        ]
    finally:
        for _, path in trees[1:]:
            subprocess.run(
                ["git", "-C", str(ROOT), "worktree", "remove", "--force", str(path)],
                capture_output=True,
                check=False,
            )
        shutil.rmtree(scratch, ignore_errors=True)
    peer = rows[0][1]
    what = "estimated cycles" if args.cycles else "instructions"
    print(f"\n## Redis {what} per fire, {args.n:,} one-shots due at one instant\n")
    print(f"| system | {what} / fire | ratio to the peer |")
    print("|---|---|---|")
    for name, per_fire in rows:
        print(f"| {name} | {per_fire:,.0f} | {per_fire / peer:.2f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
