"""The simple baselines a recommendation model must beat on its time holdout.

Each takes the contacts' purchase counts before the cutoff (``counts``: contacts x SKUs,
sparse, SKU codes in descending popularity order) and returns each row's top-k codes:

- ``popularity``: the k best-selling SKUs, for everyone;
- ``popularity_unseen``: the best-sellers the contact has not bought;
- ``personal_frequency``: the contact's own most-bought SKUs, best-sellers after them;
- ``item_item``: the sum of the cosine similarity rows of what the contact bought.

Ties go to the lower code (the more popular SKU), as in the served model.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import scipy.sparse as sp

__all__ = ["BASELINES", "best_baseline", "top_k"]


def top_k(scores: np.ndarray, k: int) -> np.ndarray:
    """Codes of the k highest scores per row, by descending score then ascending code."""
    n, width = scores.shape
    k = min(k, width)
    if k == width:
        return np.argsort(-scores, axis=1, kind="stable")
    part = np.argpartition(-scores, k - 1, axis=1)[:, :k]
    kth = np.take_along_axis(scores, part, axis=1).min(axis=1, keepdims=True)
    rows, cols = np.nonzero(scores >= kth)  # the top k and every tie at the boundary
    order = np.lexsort((cols, -scores[rows, cols], rows))
    rows, cols = rows[order], cols[order]
    starts = np.searchsorted(rows, np.arange(n))
    take = starts[:, None] + np.arange(k)[None, :]
    return cols[take]


def _rank_prior(n_items: int) -> np.ndarray:
    """A tie-break below any count: higher for lower codes (more popular SKUs)."""
    return (1.0 - np.arange(n_items) / max(n_items, 1)).astype(np.float64) * 1e-3


def popularity(counts: sp.csr_matrix, k: int) -> np.ndarray:
    """The k most popular codes for every row."""
    return np.tile(np.arange(min(k, counts.shape[1])), (counts.shape[0], 1))


def popularity_unseen(counts: sp.csr_matrix, k: int) -> np.ndarray:
    """The most popular codes each row has not bought."""
    scores = np.tile(_rank_prior(counts.shape[1]), (counts.shape[0], 1))
    rows, cols = counts.nonzero()
    scores[rows, cols] = -np.inf
    return top_k(scores, k)


def personal_frequency(counts: sp.csr_matrix, k: int) -> np.ndarray:
    """Each row's most-bought codes, then the most popular others."""
    scores = counts.toarray().astype(np.float64) + _rank_prior(counts.shape[1])
    return top_k(scores, k)


def item_item(counts: sp.csr_matrix, k: int, similarity: sp.csr_matrix) -> np.ndarray:
    """The sum of the bought codes' cosine rows (a tiny popularity tie-break)."""
    bought = counts.copy()
    bought.data[:] = 1.0
    scores = np.asarray((bought @ similarity).todense()) + _rank_prior(counts.shape[1])
    return top_k(scores, k)


def cosine(counts: sp.csr_matrix) -> sp.csr_matrix:
    """Item-item cosine similarity of the bought / not-bought columns (for ``item_item``)."""
    bought = counts.copy().tocsr()
    bought.data[:] = 1.0
    co = (bought.T @ bought).tocsr().astype(np.float64)
    norms = np.sqrt(np.maximum(co.diagonal(), 1.0))
    return (sp.diags(1 / norms) @ co @ sp.diags(1 / norms)).tocsr()


BASELINES: dict[str, Callable[..., np.ndarray]] = {
    "popularity": popularity,
    "popularity_unseen": popularity_unseen,
    "personal_frequency": personal_frequency,
    "item_item": item_item,
}
"""Name -> top-k function; ``item_item`` also takes the ``cosine`` similarity."""


def best_baseline(metrics: dict[str, float], k: int) -> tuple[str, float]:
    """The baseline with the highest holdout NDCG@k in ``metrics`` and that NDCG."""
    name = max(BASELINES, key=lambda b: (metrics[f"{b}_ndcg_at_{k}"], -list(BASELINES).index(b)))
    return name, metrics[f"{name}_ndcg_at_{k}"]
