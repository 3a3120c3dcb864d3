"""A platform's fleet of brand accounts: one simulated base per account, sizes skewed as real
fleets are (most brands small, a few large).

Account sizes follow a lognormal law (``SIZE_SIGMA`` 1.5): over 10,000 accounts the largest 1%
hold 17% of all contacts, the largest 10% hold 56%, and the median account a third of the mean
(a lognormal body with a long right tail is the usual fit for customers per merchant).
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np

from .retail import SimulationConfig, simulate_base, write_base

__all__ = ["MIN_CONTACTS", "SIZE_SIGMA", "account_name", "account_sizes", "simulate_accounts"]

SIZE_SIGMA = 1.5
"""Spread of log(contacts) between accounts."""
MIN_CONTACTS = 100
"""Smallest base: enough contacts for every score to train."""


def account_name(i: int, n: int) -> str:
    """``brand0042``: zero-padded so names sort in creation order."""
    return f"brand{i:0{max(4, len(str(n - 1)))}d}"


def account_sizes(n_accounts: int, total_contacts: int, seed: int = 0) -> np.ndarray:
    """Contacts per account: ``total_contacts`` shared by lognormal weights, each at least
    ``MIN_CONTACTS`` (so the total can exceed the one asked for by that floor)."""
    if n_accounts <= 0:
        raise ValueError(f"n_accounts must be > 0, got {n_accounts}")
    weights = np.random.default_rng(seed).lognormal(0.0, SIZE_SIGMA, n_accounts)
    return np.maximum(np.round(total_contacts * weights / weights.sum()).astype(np.int64), MIN_CONTACTS)


def simulate_accounts(
    n_accounts: int, total_contacts: int, out_dir: Path, config: SimulationConfig | None = None, *, overwrite: bool = False
) -> dict[str, int]:
    """Write one base per account into ``out_dir/<account>/`` (``config`` for the rest, each
    account its own seed); returns contacts by account."""
    config = config or SimulationConfig()
    sizes = account_sizes(n_accounts, total_contacts, config.seed)
    written = {}
    for i, size in enumerate(sizes):
        name = account_name(i, n_accounts)
        base = simulate_base(replace(config, n_contacts=int(size), seed=config.seed * 1_000_003 + i))
        write_base(base, Path(out_dir) / name, overwrite=overwrite)
        written[name] = int(size)
    return written
