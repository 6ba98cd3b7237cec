"""Fixtures for the API tests: a real Store under a key prefix of its own, the app built from
values, a hand-set clock, and a client speaking as one token in one stack."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest
import redis
from fastapi import FastAPI
from fastapi.testclient import TestClient

from tickwork.api import create_app
from tickwork.store import Store

from .api_support import MAX_BODY, T0, Api, Clock, tokens


@pytest.fixture
def store(redis_client: redis.Redis) -> Store:
    return Store(redis_client, f"t{uuid.uuid4().hex[:8]}")


@pytest.fixture
def clock() -> Clock:
    return Clock(T0)


@pytest.fixture
def app(store: Store, clock: Clock) -> FastAPI:
    return create_app(
        store,
        tokens=tokens(),
        max_body_bytes=MAX_BODY,
        queue_name=f"{store.keys.prefix}-runs",
        clock=clock,
    )


@pytest.fixture
def http(app: FastAPI) -> Iterator[TestClient]:
    with TestClient(app) as client:
        yield client


@pytest.fixture
def api(http: TestClient) -> Api:
    return Api(http)
