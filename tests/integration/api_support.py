"""Helpers of the API tests: the callers, a hand-set clock, a client that speaks as one token
in one stack, and a snapshot of the store to prove that a refused request changed nothing."""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import httpx2 as httpx
import redis
from fastapi.testclient import TestClient

from tickwork.api import ApiToken
from tickwork.store import Store

T0 = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)
ALICE = "alice-token-0123456789"  # stacks 1 and 2
BOB = "bob-token-0123456789ab"  # stack 3
CAROL = "carol-token-0123456789"  # stack 1, configured by its SHA-256 only
MAX_BODY = 64 * 1024


class Clock:
    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


@dataclass
class Api:
    """Requests as one token in one stack; ``as_`` gives the same client as another caller."""

    http: TestClient
    token: str | None = ALICE
    stack: int | str | None = 1

    def headers(self, extra: dict[str, str] | None = None) -> dict[str, str]:
        headers = {}
        if self.token is not None:
            headers["Authorization"] = f"Bearer {self.token}"
        if self.stack is not None:
            headers["X-Stack-Id"] = str(self.stack)
        return headers | (extra or {})

    def as_(self, token: str | None = ALICE, stack: int | str | None = 1) -> Api:
        return Api(self.http, token, stack)

    def request(
        self, method: str, path: str, *, headers: dict[str, str] | None = None, **kwargs: Any
    ) -> httpx.Response:
        return self.http.request(method, path, headers=self.headers(headers), **kwargs)

    def get(self, path: str, **kwargs: Any) -> httpx.Response:
        return self.request("GET", path, **kwargs)

    def post(self, path: str, **kwargs: Any) -> httpx.Response:
        return self.request("POST", path, **kwargs)

    def patch(self, path: str, **kwargs: Any) -> httpx.Response:
        return self.request("PATCH", path, **kwargs)

    def put(self, path: str, **kwargs: Any) -> httpx.Response:
        return self.request("PUT", path, **kwargs)

    def delete(self, path: str, **kwargs: Any) -> httpx.Response:
        return self.request("DELETE", path, **kwargs)

    # Setting the scene

    def project(self, name: str | None = None) -> int:
        response = self.post("/cloud/v6/projects", json={"name": name or uuid.uuid4().hex})
        assert response.status_code == 201, response.text
        return int(response.json()["id"])

    def load_test(
        self, project_id: int | None = None, *, name: str | None = None, script: str = "x"
    ) -> int:
        project_id = project_id if project_id is not None else self.project()
        response = self.post(
            f"/cloud/v6/projects/{project_id}/load_tests",
            json={"name": name or uuid.uuid4().hex, "script": script},
        )
        assert response.status_code == 201, response.text
        return int(response.json()["id"])

    def schedule(self, load_test_id: int, body: dict[str, Any] | None = None) -> dict[str, Any]:
        response = self.post(
            f"/cloud/v6/load_tests/{load_test_id}/schedule",
            json=body or {"starts": "2026-12-01T08:00:00.000Z", "cron": None},
        )
        assert response.status_code == 200, response.text
        result: dict[str, Any] = response.json()
        return result


def tokens() -> list[ApiToken]:
    return [
        ApiToken.from_plain(ALICE, email="alice@example.com", stacks=[1, 2]),
        ApiToken.from_plain(BOB, email="bob@example.com", stacks=[3]),
        ApiToken.from_hex(
            hashlib.sha256(CAROL.encode()).hexdigest(), email="carol@example.com", stacks=[1]
        ),
    ]


def snapshot(store: Store) -> dict[bytes, tuple[bytes, Any]]:
    """Every key of the store's prefix with its type and content: equal snapshots, equal data.
    Content, not DUMP: a read that steps a large hash's incremental rehash reorders its DUMP
    and changes nothing."""
    client = store.client
    keys = sorted(client.scan_iter(match=f"{store.keys.prefix}:*", count=1000))
    return {key: _content(client, key) for key in keys}


def _content(client: redis.Redis, key: bytes) -> tuple[bytes, Any]:
    kind: bytes = client.type(key)  # type: ignore[assignment]  # redis-py types replies loosely
    readers: dict[bytes, Callable[[], Any]] = {
        b"string": lambda: client.get(key),
        b"hash": lambda: sorted(client.hgetall(key).items()),
        b"zset": lambda: client.zrange(key, 0, -1, withscores=True),
        b"list": lambda: client.lrange(key, 0, -1),
        b"set": lambda: sorted(client.smembers(key)),
        b"stream": lambda: client.xrange(key),
    }
    return kind, readers[kind]() if kind in readers else client.dump(key)
