"""One small simulated base shared by the product-score tests (simulated once per session)."""

from __future__ import annotations

import functools

from scorecast.training.simulate.retail import SimulatedBase, SimulationConfig, simulate_base

N_CONTACTS = 12_000


@functools.cache
def product_base() -> SimulatedBase:
    """12k contacts, 8 groups x 50 SKUs, three past promotion campaigns (seed 7)."""
    return simulate_base(SimulationConfig(n_contacts=N_CONTACTS, seed=7))
