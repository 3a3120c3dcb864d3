"""A synthetic affinity base whose labels depend nonlinearly on the order features: for the
affinity tests, the tree-GEMM tests and ``benchmarks/trees.py``."""

from __future__ import annotations

import numpy as np

__all__ = ["synthetic_base"]


def synthetic_base(n: int, groups: tuple[str, ...], seed: int) -> tuple[np.ndarray, list[str], dict[str, np.ndarray]]:
    """Features as the kernels name them, and labels where buying in G depends nonlinearly on
    them: a replenishment cycle (the chance peaks ~60 days after the last purchase in G and
    falls after), and an interaction of repeat buying in G with the average basket."""
    rng = np.random.default_rng(seed)
    frequency = rng.poisson(1.5, n).astype(np.float64)
    buyer = frequency > 0
    recency = np.where(buyer, rng.exponential(150, n), np.nan)
    tenure = np.where(buyer, recency + rng.exponential(300, n), np.nan)
    monetary = np.where(buyer, rng.gamma(2.0, 40.0, n), np.nan)
    columns = [recency, frequency, monetary, np.nan_to_num(monetary) * frequency, tenure, np.maximum(frequency - 1, 0)]
    names = ["recency_days", "frequency", "monetary", "total_amount", "tenure_days", "repeat_count"]
    share = rng.dirichlet(np.full(len(groups), 0.5), n)
    labels = {}
    for j, group in enumerate(groups):
        count = rng.binomial(frequency.astype(np.int64), share[:, j]).astype(np.float64)
        group_recency = np.where(count > 0, recency + rng.exponential(60, n) * (count < frequency), np.nan)
        cycle = np.exp(-(((np.nan_to_num(group_recency, nan=1e4) - 60.0) / 25.0) ** 2))
        big_basket = np.nan_to_num(monetary) > 80
        logit = -3.0 + 4.0 * cycle + 1.5 * (count >= 2) * big_basket - 1.0 * (count >= 2) * ~big_basket
        labels[group] = rng.random(n) < 1 / (1 + np.exp(-logit))
        columns += [count, group_recency]
        names += [f"group_count:{group}", f"group_recency_days:{group}"]
    return np.column_stack(columns).astype(np.float32), names, labels
