"""Bearer tokens and the stacks they may act in.

Only SHA-256 digests are kept in memory: a plain token from the settings is hashed when the
app is built. A presented token is hashed and compared with every known digest in constant
time (``hmac.compare_digest``, no early exit), so response timing says nothing about how
close a guess came.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from tickwork.errors import Forbidden, Problem, Unauthenticated, ValidationError

# A plain decimal integer that fits in int64: int() alone would also take "1_000" and
# non-ASCII digits.
_STACK_ID = re.compile(r"-?[0-9]{1,18}")


@dataclass(frozen=True, slots=True)
class ApiToken:
    """A token's digest, its user's e-mail, and the stacks it may act in."""

    sha256: bytes
    email: str
    stacks: frozenset[int]

    @classmethod
    def from_plain(cls, token: str, *, email: str, stacks: Iterable[int]) -> ApiToken:
        return cls(_digest(token), email, frozenset(stacks))

    @classmethod
    def from_hex(cls, sha256_hex: str, *, email: str, stacks: Iterable[int]) -> ApiToken:
        return cls(bytes.fromhex(sha256_hex), email, frozenset(stacks))


@dataclass(frozen=True, slots=True)
class Principal:
    """Who is calling, and in which stack."""

    email: str
    stack: int


def _digest(token: str) -> bytes:
    return hashlib.sha256(token.encode("utf-8", "surrogateescape")).digest()


class TokenBook:
    def __init__(self, tokens: Iterable[ApiToken]) -> None:
        self._tokens = tuple(tokens)

    def identify(self, token: str | None) -> ApiToken:
        """The token's entry; Unauthenticated when it is missing or unknown."""
        if not token:
            raise Unauthenticated("Authentication credentials were not provided.")
        digest = _digest(token)
        found: ApiToken | None = None
        for entry in self._tokens:
            if hmac.compare_digest(entry.sha256, digest) and found is None:
                found = entry
        if found is None:
            raise Unauthenticated("Invalid token.")
        return found

    def authorize(self, token: str | None, stack_headers: Sequence[str]) -> Principal:
        """401 before 400 before 403: an unknown caller learns nothing about stacks."""
        entry = self.identify(token)
        stack = parse_stack(stack_headers)
        if stack not in entry.stacks:
            raise Forbidden(f"The token may not act in stack {stack}.")
        return Principal(entry.email, stack)


def parse_stack(headers: Sequence[str]) -> int:
    """The X-Stack-Id header (each value sent) as an integer; ValidationError when it is
    missing or not one, or sent twice with different values: acting in either stack could be
    acting in one the client did not mean."""
    values = {header.strip() for header in headers}
    if not values or values == {""}:
        raise ValidationError(
            [Problem("required", "X-Stack-Id", "The X-Stack-Id header is required.")],
            "The X-Stack-Id header is required.",
        )
    if len(values) > 1:
        message = "X-Stack-Id is sent more than once, with different values."
        raise ValidationError([Problem("ambiguous", "X-Stack-Id", message)], message)
    (text,) = values
    if _STACK_ID.fullmatch(text) is None:
        raise ValidationError(
            [Problem("invalid_type", "X-Stack-Id", f"X-Stack-Id {text!r} is not an integer.")],
            "The X-Stack-Id header must be an integer.",
        )
    return int(text)
