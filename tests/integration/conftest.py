"""Fixtures for the API tests: a real Store under a key prefix of its own, the app built from
values, a hand-set clock, and a client speaking as one token in one stack; the app's RQ
queue, and a leader's firer and lease for tests that fire in-process."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import timedelta

import pytest
import redis
from fastapi import FastAPI
from fastapi.testclient import TestClient
from rq import Queue

from tickwork.api import create_app
from tickwork.scheduler.firing import Firer
from tickwork.store import Lease, Store
from tickwork.store.queue import queue

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


@pytest.fixture
def rq_queue(store: Store) -> Queue:
    return queue(store.client, f"{store.keys.prefix}-runs")


@pytest.fixture
def firer(store: Store, rq_queue: Queue, clock: Clock) -> Firer:
    return Firer(store, rq_queue, clock=clock, catch_up=timedelta(minutes=5))


@pytest.fixture
def lease(store: Store) -> Lease:
    lease = store.leases.acquire("scheduler", "me", 10**9)
    assert lease is not None
    return lease
