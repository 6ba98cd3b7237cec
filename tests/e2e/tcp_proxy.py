"""A TCP proxy between one process and Redis, for fault injection: asyncio, in a thread.

Modes (``set_mode``), for every connection at once:

- ``PASS``: bytes flow both ways.
- ``BLACKHOLE``: connections are accepted and kept, but nothing is forwarded either way.
  What was sent meanwhile is held, not lost, and flows on the way back to ``PASS``: a
  partition that heals before TCP gives up, so a request sent into it reaches Redis late.
- ``RESET``: every open connection is closed with RST, and each new one as soon as it is
  accepted.

One-shot actions on the next fire commit (``arm``): the proxy reads the RESP stream in both
directions, so it knows which command each reply answers. The fire commit is the EVALSHA of
``store/scripts/commit_fires.lua``; its sixth argument after the SHA (ARGV[1]) is the
committer's lease value ``{term}:{token}``. Every commit that passes is recorded with what
Redis answered (``:-1`` when the lease was not held: nothing written; an array when it
committed).
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import socket
import struct
import threading
import time
from collections import deque
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any

CHUNK = 1 << 16
_KEPT_ELEMENTS = 8  # EVALSHA sha numkeys k1 k2 k3 k4 lease_value
_KEPT_SIZE = 512


class Mode(enum.Enum):
    PASS = "pass"
    BLACKHOLE = "blackhole"
    RESET = "reset"


class Action(enum.Enum):
    BLACKHOLE = "blackhole"  # the commit and everything after it held: set_mode(PASS) heals
    DROP_REPLY = "drop_reply"  # the commit reaches Redis; its reply never comes back
    DROP_REPLY_RESET = "drop_reply_reset"  # ... and the connection is then reset


class ProtocolError(Exception):
    pass


@dataclass(frozen=True, slots=True)
class Frame:
    """One top-level RESP value: its first line (type byte included: ``:-1``, ``*3``,
    ``-OOM ...``) and, for an array, its first few elements by position (short ones)."""

    first: bytes
    elements: dict[int, bytes]


class RespScanner:
    """Finds where each top-level RESP value ends in a stream fed in arbitrary chunks.

    Resumable: a value split across chunks is never scanned twice, so a 500-fire commit of
    half a megabyte costs one pass."""

    def __init__(self, keep: int = 0) -> None:
        self._keep = keep
        self._line = bytearray()
        self._skip = 0  # bytes of a bulk payload (and its CRLF) still to pass
        self._bulk: bytearray | None = None  # that payload, when it is a kept element
        self._bulk_at = -1
        self._stack: list[int] = []  # elements still due at each open aggregate
        self._top_count = 0
        self._first: bytes | None = None
        self._elements: dict[int, bytes] = {}

    def feed(self, data: bytes) -> list[tuple[int, Frame]]:
        """Each value completed in ``data``, with the offset in ``data`` where it ends."""
        done: list[tuple[int, Frame]] = []
        i, n = 0, len(data)
        while i < n:
            if self._skip:
                take = min(self._skip, n - i)
                if self._bulk is not None:
                    self._bulk += data[i : i + take]
                i += take
                self._skip -= take
                if self._skip == 0:
                    if self._bulk is not None:
                        self._elements[self._bulk_at] = bytes(self._bulk[:-2])
                        self._bulk = None
                    if self._element_done():
                        done.append((i, self._frame()))
                continue
            end = data.find(b"\n", i)
            if end < 0:
                self._line += data[i:]
                break
            self._line += data[i : end + 1]
            i = end + 1
            if not self._line.endswith(b"\r\n"):
                raise ProtocolError(f"a line not ended by CRLF: {bytes(self._line[:40])!r}")
            line = bytes(self._line[:-2])
            self._line.clear()
            if self._on_line(line):
                done.append((i, self._frame()))
        return done

    def _on_line(self, line: bytes) -> bool:
        kind, rest = line[:1], line[1:]
        if self._first is None:
            self._first = line
        at = self._top_count - self._stack[0] if len(self._stack) == 1 else -1
        kept = 0 <= at < self._keep
        if kind in (b"$", b"=", b"!"):
            size = int(rest)
            if size < 0:
                return self._element_done()
            self._skip = size + 2
            if kept and size <= _KEPT_SIZE:
                self._bulk, self._bulk_at = bytearray(), at
            return False
        if kind in (b"*", b"~", b">", b"%"):
            count = int(rest) * (2 if kind == b"%" else 1)
            if count <= 0:
                return self._element_done()
            if not self._stack:
                self._top_count = count
            self._stack.append(count)
            return False
        if kind and kind in b"+-:,#_(":
            if kept:
                self._elements[at] = rest
            return self._element_done()
        raise ProtocolError(f"not RESP: {line[:40]!r}")

    def _element_done(self) -> bool:
        """Count one element done; True when that completes the top-level value."""
        while self._stack:
            self._stack[-1] -= 1
            if self._stack[-1] > 0:
                return False
            self._stack.pop()  # an aggregate done is itself one element of its parent
        return True

    def _frame(self) -> Frame:
        assert self._first is not None
        frame = Frame(self._first, self._elements)
        self._first, self._elements, self._top_count = None, {}, 0
        return frame


@dataclass
class CommitSeen:
    """A fire commit that passed the proxy."""

    lease_value: str
    connection: int
    forwarded_at: float | None = None  # monotonic: handed to Redis's socket
    reply: bytes | None = None  # first line of Redis's reply (``:-1``: lease not held)
    replied_at: float | None = None
    dropped: bool = False  # the reply was swallowed by the proxy

    @property
    def term(self) -> int:
        return int(self.lease_value.split(":", 1)[0])

    @property
    def committed(self) -> bool:
        return self.reply is not None and self.reply.startswith(b"*")


@dataclass
class Armed:
    """A one-shot action waiting for its commit; ``done`` is set once it happened."""

    action: Action | Callable[[], None]
    after: int  # commits Redis must have accepted since it was armed
    since: int  # how many commits had passed when it was armed
    done: threading.Event = field(default_factory=threading.Event)
    commit: CommitSeen | None = None


@dataclass
class _Pending:
    commit: CommitSeen | None = None
    drop: Armed | None = None
    reset_after: bool = False


@dataclass(eq=False)  # kept in a set: hashed by identity
class _Connection:
    number: int
    client_r: asyncio.StreamReader
    client_w: asyncio.StreamWriter
    upstream_r: asyncio.StreamReader | None = None
    upstream_w: asyncio.StreamWriter | None = None
    requests: RespScanner = field(default_factory=lambda: RespScanner(keep=_KEPT_ELEMENTS))
    replies: RespScanner = field(default_factory=RespScanner)
    pending: deque[_Pending] = field(default_factory=deque)
    tasks: list[asyncio.Task[None]] = field(default_factory=list)
    aborted: bool = False


class TcpProxy:
    """``127.0.0.1:{port}`` forwarding to ``upstream``; ``commit_sha`` names the fire commit."""

    def __init__(self, upstream: tuple[str, int], *, commit_sha: str) -> None:
        self._upstream = upstream
        self._sha = commit_sha.encode()
        self._lock = threading.Lock()
        self._commits: list[CommitSeen] = []
        self._armed: Armed | None = None
        self._errors: list[str] = []
        self._connections: set[_Connection] = set()
        self._handlers: set[asyncio.Task[Any]] = set()
        self._numbered = 0
        self._mode = Mode.PASS
        self._loop = asyncio.new_event_loop()
        self._flowing = asyncio.Event()
        self._server: asyncio.Server | None = None
        self._thread = threading.Thread(target=self._loop.run_forever, name="tcp-proxy")
        self.port = 0

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    # --- control, from the test's thread -------------------------------------------------

    def start(self) -> TcpProxy:
        self._thread.start()
        self._call(self._start())
        return self

    def stop(self) -> None:
        if not self._thread.is_alive():
            return
        self._call(self._shutdown())
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=30)
        assert not self._thread.is_alive(), "the TCP proxy's event loop did not stop"
        self._loop.close()

    def set_mode(self, mode: Mode) -> None:
        self._call(self._set_mode(mode))

    def arm(self, action: Action | Callable[[], None], *, after: int = 0) -> Armed:
        """Act on the next fire commit once Redis has accepted ``after`` more (a refused
        or NOSCRIPT-answered attempt does not count): an ``Action``, or a function called
        (in the proxy's thread) just before that commit is forwarded."""
        with self._lock:
            assert self._armed is None, "one action at a time"
            self._armed = Armed(action, after, len(self._commits))
            return self._armed

    def commits(self) -> list[CommitSeen]:
        with self._lock:
            return [CommitSeen(**vars(c)) for c in self._commits]

    @property
    def errors(self) -> list[str]:
        with self._lock:
            return list(self._errors)

    def _call(self, coroutine: Coroutine[Any, Any, None]) -> None:
        asyncio.run_coroutine_threadsafe(coroutine, self._loop).result(timeout=10)

    # --- the proxy, in its own thread ----------------------------------------------------

    async def _start(self) -> None:
        self._flowing.set()
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]

    async def _shutdown(self) -> None:
        if self._server is not None:
            self._server.close()
        self._flowing.set()
        for connection in list(self._connections):
            self._abort(connection)
        await asyncio.gather(*self._handlers, return_exceptions=True)
        if self._server is not None:
            await self._server.wait_closed()

    async def _set_mode(self, mode: Mode) -> None:
        self._mode = mode
        if mode is Mode.BLACKHOLE:
            self._flowing.clear()
            return
        self._flowing.set()
        if mode is Mode.RESET:
            for connection in list(self._connections):
                self._abort(connection)

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._numbered += 1
        connection = _Connection(self._numbered, reader, writer)
        self._connections.add(connection)
        handler = asyncio.current_task()
        assert handler is not None
        self._handlers.add(handler)
        try:
            if self._mode is Mode.RESET:
                self._abort(connection)
                return
            try:
                connection.upstream_r, connection.upstream_w = await asyncio.open_connection(
                    *self._upstream
                )
            except OSError:
                self._abort(connection)
                return
            connection.tasks = [
                asyncio.create_task(self._requests(connection)),
                asyncio.create_task(self._replies(connection)),
            ]
            await asyncio.gather(*connection.tasks, return_exceptions=True)
        finally:
            self._close(connection)
            self._connections.discard(connection)
            self._handlers.discard(handler)

    async def _requests(self, connection: _Connection) -> None:
        """Client to Redis: note each command (and act on an armed commit), then forward."""
        upstream = connection.upstream_w
        assert upstream is not None
        with contextlib.suppress(ConnectionError, OSError):
            while True:
                data = await connection.client_r.read(CHUNK)
                if not data:
                    break
                await self._flowing.wait()
                forwarded = self._note_requests(connection, data)
                await self._flowing.wait()  # an armed blackhole holds this very commit
                upstream.write(data)
                await upstream.drain()
                now = time.monotonic()
                with self._lock:
                    for commit in forwarded:
                        commit.forwarded_at = now
            if upstream.can_write_eof():
                upstream.write_eof()  # Redis still answers what it got: keep reading

    async def _replies(self, connection: _Connection) -> None:
        """Redis to client: forward each reply, except one an armed action swallows."""
        upstream = connection.upstream_r
        assert upstream is not None
        client_gone = False
        with contextlib.suppress(ConnectionError, OSError):
            while True:
                data = await upstream.read(CHUNK)
                if not data:
                    break
                await self._flowing.wait()
                out, reset = self._sift_replies(connection, data)
                if out and not client_gone:
                    try:
                        connection.client_w.write(out)
                        await connection.client_w.drain()
                    except (ConnectionError, OSError):
                        client_gone = True  # keep reading: what Redis answers is recorded
                if reset:
                    self._abort(connection)
                    return

    def _note_requests(self, connection: _Connection, data: bytes) -> list[CommitSeen]:
        commits: list[CommitSeen] = []
        try:
            frames = connection.requests.feed(data)
        except ProtocolError as exc:
            self._error(f"connection {connection.number}, request: {exc}")
            return commits
        for _, frame in frames:
            pending = _Pending()
            elements = frame.elements
            if elements.get(0, b"").upper() == b"EVALSHA" and elements.get(1) == self._sha:
                commit = CommitSeen(elements.get(7, b"?").decode(), connection.number)
                pending.commit = commit
                commits.append(commit)
                with self._lock:
                    self._commits.append(commit)
                self._act(pending, commit)
            connection.pending.append(pending)
        return commits

    def _act(self, pending: _Pending, commit: CommitSeen) -> None:
        with self._lock:
            armed = self._armed
            if armed is None:
                return
            # Commits go one at a time per leader: the earlier ones have their answers.
            if sum(c.committed for c in self._commits[armed.since :]) < armed.after:
                return
            self._armed = None
            armed.commit = commit
        if armed.action is Action.BLACKHOLE:
            self._mode = Mode.BLACKHOLE
            self._flowing.clear()
            armed.done.set()
        elif armed.action is Action.DROP_REPLY or armed.action is Action.DROP_REPLY_RESET:
            pending.drop = armed
            pending.reset_after = armed.action is Action.DROP_REPLY_RESET
        else:
            try:
                armed.action()
            except Exception as exc:  # recorded for the test to see; the commit goes on
                self._error(f"the armed action failed: {exc!r}")
            armed.done.set()

    def _sift_replies(self, connection: _Connection, data: bytes) -> tuple[bytes, bool]:
        """The bytes of ``data`` to forward, and whether to reset the connection now."""
        try:
            frames = connection.replies.feed(data)
        except ProtocolError as exc:
            self._error(f"connection {connection.number}, reply: {exc}")
            return data, False
        out = bytearray()
        start = 0
        for end, frame in frames:
            if not connection.pending:
                self._error(f"connection {connection.number}: a reply no command asked for")
                return data, False
            pending = connection.pending.popleft()
            if pending.drop is None:
                out += data[start:end]
            start = end
            if pending.commit is not None:
                with self._lock:
                    pending.commit.reply = frame.first
                    pending.commit.replied_at = time.monotonic()
                    pending.commit.dropped = pending.drop is not None
            if pending.drop is not None:
                pending.drop.done.set()
                if pending.reset_after:
                    return bytes(out), True
        # The start of a reply still on its way belongs to the oldest command waiting.
        if start < len(data) and not (connection.pending and connection.pending[0].drop):
            out += data[start:]
        return bytes(out), False

    def _abort(self, connection: _Connection) -> None:
        """Close both sides with RST (SO_LINGER 0), dropping whatever is buffered."""
        connection.aborted = True
        for writer in (connection.client_w, connection.upstream_w):
            if writer is None or writer.transport.is_closing():
                continue
            sock = writer.get_extra_info("socket")
            if sock is not None:
                with contextlib.suppress(OSError):
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            writer.transport.abort()
        for task in connection.tasks:
            task.cancel()

    def _close(self, connection: _Connection) -> None:
        for writer in (connection.client_w, connection.upstream_w):
            if writer is not None and not writer.transport.is_closing():
                writer.transport.close()

    def _error(self, text: str) -> None:
        with self._lock:
            self._errors.append(text)
