"""Planted regressions: scores fitted on shuffled labels (their holdouts keep the true ones), and
recommendations whose learned item parameters are scrambled across SKUs."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np

from scorecast.training.lead import scorecard
from scorecast.training.lead import training as lead
from scorecast.training.recommendations.model import RecommendationModel
from scorecast.training.run import Fitted, TrainingRun
from scorecast.training.scores import affinity, cross_sell, engagement, promo_appetence, recommendations


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


def scrambled_recommendations(run: TrainingRun, version: str) -> Fitted:
    """``recommendations.fit`` whose served model has each SKU's popularity and item factors
    given to another SKU (the SKU labels of what it learned shuffled); its holdout is the true
    one. Shuffling the orders' SKUs before fitting is no regression: the holdout then chooses
    the contact's own history, which serving reads from the true orders."""
    rng = np.random.default_rng(7)

    def make(real: Callable) -> Callable:
        def to_onnx(self: RecommendationModel, **kw: Any) -> Any:
            order = rng.permutation(len(self.skus_))
            self.prior_, self.item_factors_ = self.prior_[order], self.item_factors_[order]
            return real(self, **kw)

        return to_onnx

    with _replaced(RecommendationModel, "to_onnx", make):
        return recommendations.fit(run, version)


def shuffled_promo_appetence(run: TrainingRun, version: str) -> Fitted:
    """``promo_appetence.fit`` with the campaign rows' outcomes shuffled before fitting."""
    rng = np.random.default_rng(7)

    def make(real: Callable) -> Callable:
        return lambda self, X, names, treated, bought, contact: real(self, X, names, treated, rng.permutation(bought), contact)

    with _replaced(promo_appetence.PromoAppetenceModel, "fit", make):
        return promo_appetence.fit(run, version)


def shuffled_lead(run: TrainingRun, version: str) -> Fitted:
    """``lead``'s fit with the leads' conversions shuffled before the scorecard is fitted."""
    rng = np.random.default_rng(7)

    def make(real: Callable) -> Callable:
        return lambda self, X, y: real(self, X, rng.permutation(y))

    with _replaced(scorecard.LeadModel, "fit", make):
        return lead.fit(run, version)
