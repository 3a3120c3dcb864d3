"""Fixtures shared by the training tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from threadpoolctl import threadpool_limits


@pytest.fixture(scope="module")
def one_thread() -> Iterator[None]:
    """Fit on one OpenMP thread: small fits gain nothing from threads, and on a busy 2-core
    machine OpenMP barriers made a module's fits ~30x slower (0.6 s -> 21 s)."""
    with threadpool_limits(1):
        yield
