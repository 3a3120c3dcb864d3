"""The root of scorecast's error tree, shared by every layer that checks a request.

``ScorecastError`` carries the gRPC status a caller sees; ``InvalidArgument`` is a request
field with a value that is not allowed. Both live in the bottom layer because the request
contract (``scorecast.options``) checks option ranges there, for the server, ``rescore`` and
training's probe alike; ``scorecast.server.errors`` grows the rest of the tree from them.
"""

from __future__ import annotations

import grpc

__all__ = ["InvalidArgument", "ScorecastError"]


class ScorecastError(Exception):
    """Base of our errors; ``status`` is the gRPC code a caller sees."""

    status: grpc.StatusCode = grpc.StatusCode.INTERNAL


class InvalidArgument(ScorecastError, ValueError):
    """A request field has a value that is not allowed (a ValueError to Python callers too,
    such as the client's keywords)."""

    status = grpc.StatusCode.INVALID_ARGUMENT

    def __init__(self, field: str, value: object, allowed: str) -> None:
        self.field = field
        super().__init__(f"{field}: got {value!r}; {allowed}")
