"""A planted regression: affinity fitted on shuffled labels (its holdout keeps the true ones)."""

from __future__ import annotations

import numpy as np

from scorecast.training.run import Fitted, TrainingRun
from scorecast.training.scores import affinity


def shuffled_affinity(run: TrainingRun, version: str) -> Fitted:
    """``affinity.fit`` with each group's labels shuffled across contacts before fitting: a model
    that ranks at chance, validated (by the gate) on the true holdout labels."""
    real = affinity.fit_affinity
    rng = np.random.default_rng(7)

    def shuffled(X, names, labels, **params):  # noqa: ANN001, ANN202, ANN003
        return real(X, names, {g: rng.permutation(y) for g, y in labels.items()}, **params)

    affinity.fit_affinity = shuffled
    try:
        return affinity.fit(run, version)
    finally:
        affinity.fit_affinity = real
