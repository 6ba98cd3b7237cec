"""The one exception tree of tickwork.

    TickworkError
    ├── ValidationError        bad input; carries one Problem per violation   (HTTP 400)
    ├── NotFound               no such resource in the caller's stack         (HTTP 404)
    ├── Conflict               the resource's state forbids the request       (HTTP 409)
    │   └── QuotaExceeded      a quota of the stack refuses one more thing    (HTTP 409)
    ├── AuthError
    │   ├── Unauthenticated    missing or unknown token                       (HTTP 401)
    │   └── Forbidden          token not valid for the stack                  (HTTP 403)
    ├── StoreError
    │   ├── StoreUnavailable   Redis could not be reached                     (HTTP 503)
    │   │   └── StoreOutOfMemory  Redis refuses writes: maxmemory reached     (HTTP 503)
    │   └── StoreUnsafe        Redis may evict keys: exactly-once cannot hold
    ├── LeaseLost              this process no longer leads; stop committing
    ├── JobRefused             a queued job names a function workers do not run
    ├── EgressRefused          an address the egress policy refuses (tickwork.egress)
    └── SettingsError          the configuration cannot be used

Every layer raises from this tree; the HTTP edge translates it into the k6 error body and the
CLI into an exit status. Driver errors (redis, rq) are mapped at the store boundary.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Problem:
    """One violation in a request: a stable machine code, the field it concerns, a sentence."""

    code: str
    target: str | None
    message: str


class TickworkError(Exception):
    """Root of every error tickwork raises on purpose."""

    code = "error"


class ValidationError(TickworkError):
    code = "validation_error"

    def __init__(self, problems: list[Problem], message: str = "Invalid request.") -> None:
        super().__init__(message)
        self.problems = problems
        self.message = message


class NotFound(TickworkError):
    code = "not_found"


class Conflict(TickworkError):
    code = "conflict"


class QuotaExceeded(Conflict):
    """A quota of the caller's stack refuses the request: it holds ``limit`` of what the
    quota counts already (or, for a size quota, the thing is larger than ``limit``).
    ``quota`` is the quota's name, as the settings and the error body's ``target`` spell it."""

    code = "quota_exceeded"

    def __init__(self, quota: str, limit: int, message: str) -> None:
        super().__init__(message)
        self.quota = quota
        self.limit = limit


class AuthError(TickworkError):
    code = "auth_error"


class Unauthenticated(AuthError):
    code = "unauthenticated"


class Forbidden(AuthError):
    code = "forbidden"


class StoreError(TickworkError):
    code = "store_error"


class StoreUnavailable(StoreError):
    code = "store_unavailable"


class StoreOutOfMemory(StoreUnavailable):
    code = "store_out_of_memory"


class StoreUnsafe(StoreError):
    code = "store_unsafe"


class LeaseLost(TickworkError):
    code = "lease_lost"


class JobRefused(TickworkError):
    code = "job_refused"


class SettingsError(TickworkError):
    code = "settings_error"
