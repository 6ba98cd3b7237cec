"""Console sessions: who signed in with which token, acting in which stack, until when.

The browser holds only a random session id (in an HttpOnly, SameSite=Strict cookie); Redis
holds the session under the SHA-256 of that id, so a copy of the database names no cookie
that would open a session. The API token itself is never stored: only its SHA-256, which the
console checks against the tokens the process was started with on every request (a token
removed from TICKWORK_TOKENS ends its sessions at the next restart). Each session expires
``ttl_s`` after sign-in (a Redis TTL): nothing kept grows without bound.
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import redis

from tickwork.core.instants import format_instant, parse_instant
from tickwork.store.connection import text_of, translated
from tickwork.store.keys import Keys

DEFAULT_TTL_S = 8 * 3600
"""A session lasts a working day from sign-in, then the console asks for the token again."""


@dataclass(frozen=True, slots=True)
class Session:
    email: str
    token_sha256: str  # hex: which configured token signed in
    stack: int  # the stack the console acts in (one the token allows)
    csrf: str  # the token every form and fetch of this session must carry
    zone: str  # the viewer's IANA time zone, as the browser reported it at sign-in
    created: datetime


def _digest(session_id: str) -> str:
    return hashlib.sha256(session_id.encode()).hexdigest()


def _decode(fields: Mapping[Any, Any]) -> Session:
    text = {text_of(k): text_of(v) for k, v in fields.items()}
    return Session(
        email=text["email"],
        token_sha256=text["token_sha256"],
        stack=int(text["stack"]),
        csrf=text["csrf"],
        zone=text.get("zone") or "UTC",
        created=parse_instant(text["created"]),
    )


# A plain HSET on a session that expired a moment before would revive it with no TTL.
_SWITCH = """
if redis.call('EXISTS', KEYS[1]) == 1 then
  return redis.call('HSET', KEYS[1], 'stack', ARGV[1])
end
return -1
"""


class Sessions:
    def __init__(self, client: redis.Redis, keys: Keys) -> None:
        self._client = client
        self._keys = keys
        self._switch = client.register_script(_SWITCH)

    def create(
        self,
        *,
        email: str,
        token_sha256: str,
        stack: int,
        zone: str,
        now: datetime,
        ttl_s: int = DEFAULT_TTL_S,
    ) -> tuple[str, Session]:
        """A new session and its id (the cookie's value: 256 random bits)."""
        session_id = secrets.token_urlsafe(32)
        session = Session(
            email=email,
            token_sha256=token_sha256,
            stack=stack,
            csrf=secrets.token_urlsafe(32),
            zone=zone,
            created=now,
        )
        key = self._keys.session(_digest(session_id))
        with translated(), self._client.pipeline() as pipe:
            pipe.hset(
                key,
                mapping={
                    "email": session.email,
                    "token_sha256": session.token_sha256,
                    "stack": str(session.stack),
                    "csrf": session.csrf,
                    "zone": session.zone,
                    "created": format_instant(now),
                },
            )
            pipe.expire(key, ttl_s)
            pipe.execute()
        return session_id, session

    def get(self, session_id: str) -> Session | None:
        """The live session with this id; None when unknown or expired."""
        if not session_id:
            return None
        with translated():
            fields = self._client.hgetall(self._keys.session(_digest(session_id)))
        return _decode(fields) if fields else None

    def switch_stack(self, session_id: str, stack: int) -> None:
        """Act in ``stack`` from now on (the caller checked that the token allows it). The
        session's expiry stays where sign-in put it; a session gone meanwhile stays gone."""
        with translated():
            self._switch(keys=[self._keys.session(_digest(session_id))], args=[str(stack)])

    def delete(self, session_id: str) -> None:
        """Sign out: the id opens nothing from now on."""
        with translated():
            self._client.delete(self._keys.session(_digest(session_id)))
