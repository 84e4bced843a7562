"""Brokle's exception tree. Services raise these; the HTTP layer maps them once.

    BrokleError
    ├── ConfigurationError        settings that cannot work (raised at start-up)
    ├── InvalidInput              400  the request is malformed or breaks a rule
    │   └── ValidationFailed      400  field-level problems, listed in ``details``
    ├── Unauthenticated           401  no, unknown, expired or revoked credentials
    ├── PermissionDenied          403  authenticated, but the role or scope is too low
    ├── NotFound                  404  absent, or in a tenant the caller cannot see
    ├── Conflict                  409  a unique name or state clash
    ├── PayloadTooLarge           413
    ├── UnsupportedMediaType      415
    ├── RateLimited               429  carries ``retry_after`` seconds
    └── Unavailable               503  a backend is down or the queue is full

Nothing here imports HTTP machinery; ``STATUS_BY_ERROR`` is the one table that gives each
class its status code, used by :mod:`brokle_server.http_errors`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import ClassVar


class BrokleError(Exception):
    """Base of every error Brokle raises on purpose."""

    code: ClassVar[str] = "internal_error"

    def __init__(
        self,
        message: str,
        *,
        code: str | None = None,
        details: Mapping[str, object] | Sequence[object] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code  # type: ignore[misc]
        self.details = details


class ConfigurationError(BrokleError):
    code = "configuration_error"


class InvalidInput(BrokleError):
    code = "invalid_request"


class ValidationFailed(InvalidInput):
    code = "validation_error"


class Unauthenticated(BrokleError):
    code = "unauthenticated"


class PermissionDenied(BrokleError):
    code = "forbidden"


class NotFound(BrokleError):
    code = "not_found"


class Conflict(BrokleError):
    code = "conflict"


class PayloadTooLarge(BrokleError):
    code = "payload_too_large"


class UnsupportedMediaType(BrokleError):
    code = "unsupported_media_type"


class RetryableError(BrokleError):
    """An error the client should retry after ``retry_after`` seconds."""

    def __init__(
        self,
        message: str,
        *,
        retry_after: float = 1.0,
        code: str | None = None,
        details: Mapping[str, object] | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(message, code=code, details=details)
        self.retry_after = retry_after
        self.headers = dict(headers or {})


class RateLimited(RetryableError):
    code = "rate_limited"


class Unavailable(RetryableError):
    code = "unavailable"


STATUS_BY_ERROR: dict[type[BrokleError], int] = {
    InvalidInput: 400,
    Unauthenticated: 401,
    PermissionDenied: 403,
    NotFound: 404,
    Conflict: 409,
    PayloadTooLarge: 413,
    UnsupportedMediaType: 415,
    RateLimited: 429,
    Unavailable: 503,
}


def status_for(error: BrokleError) -> int:
    """HTTP status for an error: the entry of its nearest class in ``STATUS_BY_ERROR``."""
    for cls in type(error).__mro__:
        status = STATUS_BY_ERROR.get(cls)
        if status is not None:
            return status
    return 500
