"""Planted regressions: scores fitted on shuffled labels (their holdouts keep the true ones)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np

from scorecast.training.run import Fitted, TrainingRun
from scorecast.training.scores import affinity, cross_sell, engagement


@contextmanager
def _replaced(owner: Any, name: str, make: Callable[[Callable], Callable]) -> Iterator[None]:
    real = getattr(owner, name)
    setattr(owner, name, make(real))
    try:
        yield
    finally:
        setattr(owner, name, real)


def shuffled_affinity(run: TrainingRun, version: str) -> Fitted:
    """``affinity.fit`` with each group's labels shuffled across contacts before fitting: a model
    that ranks at chance, validated (by the gate) on the true holdout labels."""
    rng = np.random.default_rng(7)

    def make(real: Callable) -> Callable:
        return lambda X, names, labels, **params: real(X, names, {g: rng.permutation(y) for g, y in labels.items()}, **params)

    with _replaced(affinity, "fit_affinity", make):
        return affinity.fit(run, version)


def shuffled_cross_sell(run: TrainingRun, version: str) -> Fitted:
    """``cross_sell.fit`` with each group's first-purchase labels shuffled before fitting."""
    rng = np.random.default_rng(7)

    def make(real: Callable) -> Callable:
        return lambda self, X, names, labels: real(self, X, names, {g: rng.permutation(y) for g, y in labels.items()})

    with _replaced(cross_sell.CrossSellModel, "fit", make):
        return cross_sell.fit(run, version)


def shuffled_engagement(run: TrainingRun, version: str) -> Fitted:
    """``engagement.fit`` with the opens and clicks of the next send shuffled before fitting."""
    rng = np.random.default_rng(7)

    def make(real: Callable) -> Callable:
        return lambda now, cut, names, sent, opened, clicked, **kw: real(
            now, cut, names, sent, rng.permutation(opened), rng.permutation(clicked), **kw
        )

    with _replaced(engagement, "fit_engagement", make):
        return engagement.fit(run, version)
