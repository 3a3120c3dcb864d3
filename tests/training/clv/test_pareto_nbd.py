"""Pareto/NBD: the published CDNOW fit, and the A0-form quantities against quadrature over (λ, μ)."""

from __future__ import annotations

import functools

import numpy as np
import pytest
from scipy import stats

from scorecast.training.clv.pareto_nbd import ParetoNBDModel
from scorecast.training.simulate.cdnow import load_cdnow_summary

# Fader, Hardie & Lee (2005), Table 1: Pareto/NBD on CDNOW, weeks 1-39.
PUBLISHED = {"r": 0.553, "alpha": 10.578, "s": 0.606, "beta": 11.669}
PUBLISHED_LL = -9595.0
CUSTOMERS = [
    (0, 0.0, 38.86),
    (1, 1.71, 38.86),
    (2, 30.43, 38.86),
    (7, 35.0, 36.0),
    (3, 20.0, 20.0),
]
# α >= β (CDNOW) and α < β take different 2F1 branches of A0.
PARAM_SETS = [
    {"r": 0.5533, "alpha": 10.578, "s": 0.6062, "beta": 11.668},
    {"r": 0.5533, "alpha": 14.0, "s": 0.6062, "beta": 6.0},
    {"r": 1.3, "alpha": 3.0, "s": 1.7, "beta": 25.0},
]


@functools.cache
def _grid(r: float, alpha: float, s: float, beta: float):
    """(λ, μ, weights): Gauss-Legendre in quantile space of Gamma(r, α) × Gamma(s, β)."""
    u, w = np.polynomial.legendre.leggauss(600)
    u, w = (u + 1) / 2, w / 2
    lam = stats.gamma(r, scale=1 / alpha).ppf(u)[:, None]
    mu = stats.gamma(s, scale=1 / beta).ppf(u)[None, :]
    return lam, mu, w[:, None] * w[None, :]


def fitted(params: dict[str, float]) -> ParetoNBDModel:
    model = ParetoNBDModel()
    model.params_ = dict(params)
    return model


def test_fit_reproduces_published_cdnow_estimates() -> None:
    s = load_cdnow_summary()
    model = ParetoNBDModel().fit(s.x, s.t_x, s.T)
    assert model.model_type == "Pareto/NBD"
    for name, value in PUBLISHED.items():
        assert model.params_[name] == pytest.approx(value, rel=5e-3), name
    assert model.log_likelihood_ == pytest.approx(PUBLISHED_LL, abs=0.1)


@pytest.mark.parametrize(
    "params", PARAM_SETS, ids=["cdnow", "alpha>beta", "alpha<beta"]
)
@pytest.mark.parametrize(("x", "t_x", "T"), CUSTOMERS)
def test_quantities_match_quadrature(
    params: dict[str, float], x: int, t_x: float, T: float
) -> None:
    lam, mu, W = _grid(*params.values())
    t = 39.0
    alive = lam**x * np.exp(
        -(lam + mu) * T
    )  # alive at T, x purchases, none in (t_x, T]
    dead = (
        lam**x * mu / (lam + mu) * (np.exp(-(lam + mu) * t_x) - np.exp(-(lam + mu) * T))
    )  # died in (t_x, T]
    L = np.sum(W * (alive + dead))
    no_buy_if_alive = (mu + lam * np.exp(-(lam + mu) * t)) / (
        lam + mu
    )  # die first, or no purchase at all
    model = fitted(params)
    assert model.log_likelihood(x, t_x, T) == pytest.approx(np.log(L), rel=1e-6)
    assert model.p_alive(x, t_x, T) == pytest.approx(np.sum(W * alive) / L, rel=1e-5)
    cond = np.sum(W * alive * lam / mu * (1 - np.exp(-mu * t))) / L
    assert model.conditional_expected_purchases(t, x, t_x, T) == pytest.approx(
        cond, rel=1e-5
    )
    assert model.p_no_purchase(t, x, t_x, T) == pytest.approx(
        np.sum(W * (dead + alive * no_buy_if_alive)) / L, rel=1e-6
    )


def test_unconditional_expectation_matches_quadrature() -> None:
    params = PARAM_SETS[0]
    lam, mu, W = _grid(*params.values())
    t = np.array([1.0, 39.0, 78.0])
    ref = [np.sum(W * lam / mu * (1 - np.exp(-mu * ti))) for ti in t]
    np.testing.assert_allclose(fitted(params).expected_purchases(t), ref, rtol=1e-4)


def test_p_no_purchase_is_a_probability_decreasing_in_t() -> None:
    t = np.linspace(0, 500, 101)
    for params in PARAM_SETS:
        for x, t_x, T in CUSTOMERS:
            p = fitted(params).p_no_purchase(t, x, t_x, T)
            assert (
                p[0] == pytest.approx(1.0)
                and np.all((p >= 0) & (p <= 1))
                and np.all(np.diff(p) <= 1e-12)
            )


def test_large_frequency_stays_finite() -> None:
    model = fitted(PARAM_SETS[0])
    out = model.p_alive([300, 300], [50.0, 70.0], [70.0, 70.0])
    assert (
        np.all(np.isfinite(out)) and out[1] == pytest.approx(1.0) and 0 < out[0] < 1e-6
    )


def test_invalid_input_is_rejected() -> None:
    with pytest.raises(ValueError, match=r"T must be >= 0, got T\[0\]=-2.0"):
        fitted(PARAM_SETS[0]).p_alive([1], [1.0], [-2.0])
    with pytest.raises(ValueError, match="ParetoNBDModel is not fitted"):
        ParetoNBDModel().expected_purchases(1.0)
