"""Errors the kernels raise on bad input data.

    ValueError
     └── InputError(field, message)   a column or argument holds data the kernels cannot use

The server maps ``InputError`` to gRPC ``INVALID_ARGUMENT``; anything else escaping the kernels
is a bug (``INTERNAL``).
"""

from __future__ import annotations

__all__ = ["InputError"]


class InputError(ValueError):
    """Bad data in ``field`` (``"orders.ts"``, ``"contact_ids"``); the message names the value."""

    field: str

    def __init__(self, field: str, message: str) -> None:
        self.field = field
        self.message = message
        super().__init__(f"{field}: {message}")

    def __reduce__(self) -> tuple[type[InputError], tuple[str, str]]:
        # Ray and multiprocessing ship errors between processes; the default reduce would
        # call __init__ with the single formatted string.
        return (type(self), (self.field, self.message))
