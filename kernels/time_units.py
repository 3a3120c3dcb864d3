"""Time units of the pipeline: timestamps are int64 microseconds since the epoch (UTC)."""

from __future__ import annotations

__all__ = ["US_PER_DAY", "US_PER_SECOND"]

US_PER_SECOND = 1_000_000
US_PER_DAY = 86_400 * US_PER_SECOND
"""Microseconds in a day. An int: exact in int64 arithmetic, and true division by it gives the
same float64 as division by ``86_400_000_000.0`` (the value is exactly representable)."""
