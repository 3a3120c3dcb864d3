"""Fixtures for the kernel tests: seeded random generators, and builders of order tables."""

from __future__ import annotations

import os

import numpy as np
import pytest

# Seeds for the random (property-style) cases; SCORECAST_TEST_SEEDS=0-99 widens the search.
_SEEDS = os.environ.get("SCORECAST_TEST_SEEDS", "0-4")
_LOW, _, _HIGH = _SEEDS.partition("-")
SEEDS = list(range(int(_LOW), int(_HIGH or _LOW) + 1))


@pytest.fixture(params=SEEDS, ids=lambda s: f"seed{s}")
def rng(request: pytest.FixtureRequest) -> np.random.Generator:
    """A generator seeded from SEEDS, one test run per seed."""
    return np.random.default_rng(request.param)
