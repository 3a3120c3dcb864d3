"""Errors the server raises, each carrying the gRPC status it maps to.

    ScorecastError                 (INTERNAL)          ┐ scorecast/errors.py: the bottom layer's
    ├── InvalidArgument            (INVALID_ARGUMENT)  ┘ (options.py checks ranges with it)
    │   └── MalformedPayload       (INVALID_ARGUMENT)  bytes that are not an Arrow IPC stream
    ├── ModelNotFound              (NOT_FOUND)         no such score, or no such version of it
    ├── AccountNotFound            (NOT_FOUND)         no such account, or one the token may not see
    ├── AccountUnavailable         (UNAVAILABLE)       an account's models failed to load; retried later
    ├── ModelNotReady              (UNAVAILABLE)       known but not loaded / warmed up
    ├── ResourceExhausted          (RESOURCE_EXHAUSTED) a configured limit was exceeded
    ├── ModelLoadError             (FAILED_PRECONDITION) an ONNX file that cannot be served
    ├── PathNotAllowed             (PERMISSION_DENIED) a base path outside the allowed roots
    └── BaseNotFound               (NOT_FOUND)         an allowed base path that is no base

Bad input *data* found by the kernels (a missing column, a wrong type) is
``scorecast.kernels.InputError``; ``servicer.handle_errors`` maps it to INVALID_ARGUMENT too.
"""

from __future__ import annotations

from collections.abc import Iterable

import grpc

from scorecast.errors import InvalidArgument, ScorecastError

__all__ = [
    "AccountNotFound",
    "AccountUnavailable",
    "BaseNotFound",
    "InvalidArgument",
    "MalformedPayload",
    "ModelLoadError",
    "ModelNotFound",
    "ModelNotReady",
    "PathNotAllowed",
    "ResourceExhausted",
    "ScorecastError",
]


class MalformedPayload(InvalidArgument):
    """A bytes field that should hold an Arrow IPC stream does not."""

    def __init__(self, field: str, reason: str) -> None:
        self.field = field
        ScorecastError.__init__(self, f"{field}: not a readable Arrow IPC stream ({reason})")


class ModelNotFound(ScorecastError):
    """No model serves this score (or this version of it)."""

    status = grpc.StatusCode.NOT_FOUND

    def __init__(self, score: str, version: str | None, available: Iterable[str], load_error: str | None = None) -> None:
        what = f"score {score!r}" if not version else f"version {version!r} of score {score!r}"
        why = f" (its file failed to load: {load_error})" if load_error else ""
        super().__init__(f"no model for {what}{why}; available: {sorted(available)}")


class AccountNotFound(ScorecastError):
    """No account of this name, or one the caller's token does not cover: the same answer, so a
    token cannot learn which other accounts exist."""

    status = grpc.StatusCode.NOT_FOUND

    def __init__(self, account: str) -> None:
        self.account = account
        shown = account if len(account) <= 80 else f"{account[:40]}… ({len(account)} chars)"  # status details stay small
        super().__init__(f"account {shown!r} not found")


class AccountUnavailable(ScorecastError):
    """An account's models failed to load. UNAVAILABLE, not FAILED_PRECONDITION: the server
    retries the load itself after ``retry_in_s`` (a file replaced, memory freed, a disk back),
    so the same call may succeed later unchanged, and standard gRPC retry policies retry
    UNAVAILABLE with backoff while they never retry FAILED_PRECONDITION."""

    status = grpc.StatusCode.UNAVAILABLE

    def __init__(self, account: str, reason: str, retry_in_s: float) -> None:
        self.account = account
        super().__init__(f"account {account!r} could not be loaded: {reason}; the server tries again in {retry_in_s:.0f}s")


class ModelNotReady(ScorecastError):
    """The model exists but is not ready to serve."""

    status = grpc.StatusCode.UNAVAILABLE


class ResourceExhausted(ScorecastError):
    """A configured per-request limit was exceeded."""

    status = grpc.StatusCode.RESOURCE_EXHAUSTED

    def __init__(self, what: str, value: int, limit: int, setting: str) -> None:
        super().__init__(f"{what} is {value}, over the limit of {limit} (setting {setting})")


class ModelLoadError(ScorecastError):
    """An ONNX file in the repository cannot be served; the message says which and why."""

    status = grpc.StatusCode.FAILED_PRECONDITION

    def __init__(self, path: object, reason: str) -> None:
        super().__init__(f"cannot serve {path}: {reason}")


class PathNotAllowed(ScorecastError):
    """A path the server was asked to read lies outside the folders it may read."""

    status = grpc.StatusCode.PERMISSION_DENIED

    def __init__(self, field: str, path: str, reason: str) -> None:
        super().__init__(f"{field}: {path!r} {reason}")


class BaseNotFound(ScorecastError):
    """An allowed path that is not a base folder (missing, or no known table in it)."""

    status = grpc.StatusCode.NOT_FOUND

    def __init__(self, field: str, path: str, reason: str) -> None:
        super().__init__(f"{field}: {path!r} {reason}")
