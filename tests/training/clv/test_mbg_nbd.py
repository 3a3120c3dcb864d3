"""MBG/NBD: the CDNOW fit against BTYDplus/lifetimes' values, and the quantities against quadrature."""

from __future__ import annotations

import functools

import numpy as np
import pytest
from scipy import stats
from scipy.optimize import brentq

from scorecast.training.clv.bg_nbd import BetaGeoModel
from scorecast.training.clv.mbg_nbd import ModifiedBetaGeoModel
from scorecast.training.simulate.cdnow import load_cdnow_summary

# lifetimes' ModifiedBetaGeoFitter test (there checked against BTYDplus) on CDNOW, weeks.
KNOWN = {"r": 0.525, "alpha": 6.183, "a": 0.891, "b": 1.614}
PARAMS = {"r": 0.5248, "alpha": 6.1830, "a": 0.8914, "b": 1.6140}
CUSTOMERS = [
    (0, 0.0, 38.86),
    (0, 0.0, 5.0),
    (1, 1.71, 38.86),
    (2, 30.43, 38.86),
    (7, 35.0, 36.0),
]


def fitted() -> ModifiedBetaGeoModel:
    model = ModifiedBetaGeoModel()
    model.params_ = dict(PARAMS)
    return model


@functools.cache  # the beta quantiles are the slow part; compute the grid once
def quadrature(n: int = 600):
    u, w = np.polynomial.legendre.leggauss(n)
    u, w = (u + 1) / 2, w / 2
    lam = stats.gamma(PARAMS["r"], scale=1 / PARAMS["alpha"]).ppf(u)[:, None]
    p = stats.beta(PARAMS["a"], PARAMS["b"]).ppf(u)[None, :]
    return lam, p, w[:, None] * w[None, :]


def test_fit_matches_known_cdnow_values_and_is_no_worse_than_bg_nbd() -> None:
    s = load_cdnow_summary()
    model = ModifiedBetaGeoModel().fit(s.x, s.t_x, s.T)
    assert model.model_type == "MBG/NBD"
    for name, value in KNOWN.items():
        assert model.params_[name] == pytest.approx(value, rel=5e-3), name
    bg = BetaGeoModel().fit(s.x, s.t_x, s.T)
    assert model.log_likelihood_ == pytest.approx(-9582.13, abs=0.1)
    assert bg.log_likelihood_ - 3 < model.log_likelihood_ < bg.log_likelihood_ + 3


@pytest.mark.parametrize(("x", "t_x", "T"), CUSTOMERS)
def test_quantities_match_quadrature(x: int, t_x: float, T: float) -> None:
    lam, p, W = quadrature()
    t = 39.0
    alive = (
        (1 - p) ** (x + 1) * lam**x * np.exp(-lam * T)
    )  # x + 1 dropout draws survived
    dead = p * (1 - p) ** x * lam**x * np.exp(-lam * t_x)
    L = np.sum(W * (alive + dead))
    model = fitted()
    assert model.p_alive(x, t_x, T) == pytest.approx(np.sum(W * alive) / L, rel=1e-6)
    cond = np.sum(W * alive * (1 - np.exp(-lam * p * t)) / p) / L
    assert model.conditional_expected_purchases(t, x, t_x, T) == pytest.approx(
        cond, rel=1e-6
    )
    assert model.p_no_purchase(t, x, t_x, T) == pytest.approx(
        np.sum(W * (dead + alive * np.exp(-lam * t))) / L, rel=1e-6
    )
    assert model.log_likelihood(x, t_x, T) == pytest.approx(np.log(L), rel=1e-6)


def test_unconditional_expectation_matches_quadrature() -> None:
    lam, p, W = quadrature()
    t = np.array([1.0, 10.0, 39.0, 78.0])
    ref = [np.sum(W * (1 - p) / p * (1 - np.exp(-lam * p * ti))) for ti in t]
    np.testing.assert_allclose(fitted().expected_purchases(t), ref, rtol=1e-5)


def test_p_alive_decreases_with_age_even_without_repeat_purchase() -> None:
    p = fitted().p_alive(np.zeros(4), np.zeros(4), [0.0, 5.0, 20.0, 80.0])
    assert p[0] == pytest.approx(PARAMS["b"] / (PARAMS["a"] + PARAMS["b"]))
    assert np.all(np.diff(p) < 0)


def test_p_no_purchase_is_a_probability_decreasing_in_t() -> None:
    t = np.linspace(0, 500, 101)
    for x, t_x, T in CUSTOMERS:
        p = fitted().p_no_purchase(t, x, t_x, T)
        assert (
            p[0] == pytest.approx(1.0)
            and np.all((p >= 0) & (p <= 1))
            and np.all(np.diff(p) <= 1e-15)
        )


@pytest.mark.parametrize("threshold", [0.2, 0.4, 0.6])
def test_decisive_T_closed_form_matches_root_of_p_alive(threshold: float) -> None:
    model = fitted()
    for x, t_x, _ in CUSTOMERS:
        T_star = model.decisive_T(x, t_x, threshold)
        if model.p_alive(x, t_x, t_x) <= threshold:
            assert T_star == t_x
            continue
        root = brentq(
            lambda T, x=x, t_x=t_x: model.p_alive(x, t_x, T) - threshold,
            t_x,
            1e7,
            xtol=1e-12,
            rtol=1e-14,
        )
        assert np.isfinite(T_star) and T_star == pytest.approx(root, rel=1e-9)


@pytest.mark.parametrize("threshold", [0.05, 0.2, 0.6])
def test_lapse_T_is_the_root_of_p_any_order(threshold: float) -> None:
    """lapse_T: the age where P(alive) (1 - ((alpha+T)/(alpha+T+W))^(r+x)) falls to the threshold."""
    model = fitted()
    r, alpha = model.params_["r"], model.params_["alpha"]
    p_any = lambda x, t_x, T: model.p_alive(x, t_x, T) * (1 - ((alpha + T) / (alpha + T + 52)) ** (r + x))  # noqa: E731
    for x, t_x, _ in CUSTOMERS:
        T_star = model.lapse_T(x, t_x, threshold, 52.0)
        if p_any(x, t_x, t_x) < threshold:
            assert T_star == pytest.approx(t_x, abs=1e-5)
            continue
        root = brentq(lambda T, x=x, t_x=t_x: p_any(x, t_x, T) - threshold, t_x, t_x + 36_500, xtol=1e-12)
        assert T_star == pytest.approx(root, abs=1e-4)


def test_invalid_input_is_rejected() -> None:
    with pytest.raises(
        ValueError, match=r"t_x must be <= T, got t_x\[1\]=5.0 > T\[1\]=4.0"
    ):
        fitted().p_alive([1, 1], [1.0, 5.0], [2.0, 4.0])
    with pytest.raises(ValueError, match="ModifiedBetaGeoModel is not fitted"):
        ModifiedBetaGeoModel().decisive_T(1, 1.0)
