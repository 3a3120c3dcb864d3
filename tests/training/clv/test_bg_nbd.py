"""BG/NBD: the published CDNOW fit (Fader, Hardie & Lee 2005), and every quantity against an
independent float64 reference: Gauss-Legendre quadrature over the (λ, p) mixing
distributions in quantile space, with the individual-level model written out directly."""

from __future__ import annotations

import functools

import numpy as np
import pytest
from scipy import stats
from scipy.optimize import brentq

from scorecast.training.clv.bg_nbd import BetaGeoModel
from scorecast.training.simulate.cdnow import load_cdnow_summary

# Fader, Hardie & Lee (2005), section 4 / Table 1: CDNOW, weeks, calibration weeks 1-39.
PUBLISHED = {"r": 0.243, "alpha": 4.414, "a": 0.793, "b": 2.426}
PUBLISHED_LL = -9582.4
PARAMS = {"r": 0.2426, "alpha": 4.4135, "a": 0.7929, "b": 2.4258}
CUSTOMERS = [
    (0, 0.0, 38.86),
    (1, 1.71, 38.86),
    (2, 30.43, 38.86),
    (7, 35.0, 36.0),
    (5, 10.0, 32.0),
]


def fitted(params: dict[str, float] = PARAMS) -> BetaGeoModel:
    model = BetaGeoModel()
    model.params_ = dict(params)
    return model


@pytest.fixture(scope="module")
def cdnow_fit() -> BetaGeoModel:
    s = load_cdnow_summary()
    return BetaGeoModel().fit(s.x, s.t_x, s.T)


@functools.cache  # the beta quantiles are the slow part; compute the grid once
def quadrature(n: int = 600):
    """(λ, p, weights) such that E[h(λ, p)] ≈ sum(weights · h) under Gamma(r, α) × Beta(a, b)."""
    u, w = np.polynomial.legendre.leggauss(n)
    u, w = (u + 1) / 2, w / 2
    lam = stats.gamma(PARAMS["r"], scale=1 / PARAMS["alpha"]).ppf(u)[:, None]
    p = stats.beta(PARAMS["a"], PARAMS["b"]).ppf(u)[None, :]
    return lam, p, w[:, None] * w[None, :]


def reference(x: int, t_x: float, T: float, t: float) -> dict[str, float]:
    """P(alive), E[Y(t) | data], P(no purchase in (T, T+t]) and ln L by direct integration."""
    lam, p, W = quadrature()
    alive = (
        (1 - p) ** x * lam**x * np.exp(-lam * T)
    )  # survived x dropout draws, no purchase in (t_x, T]
    dead = p * (1 - p) ** (x - 1) * lam**x * np.exp(-lam * t_x) if x > 0 else 0 * alive
    L = np.sum(W * (alive + dead))
    return {
        "p_alive": np.sum(W * alive) / L,
        "cond": np.sum(W * alive * (1 - np.exp(-lam * p * t)) / p) / L,
        "no_purchase": np.sum(W * (dead + alive * np.exp(-lam * t))) / L,
        "ll": np.log(L),
    }


def test_fit_reproduces_published_cdnow_estimates(cdnow_fit: BetaGeoModel) -> None:
    assert cdnow_fit.model_type == "BG/NBD"
    for name, value in PUBLISHED.items():
        assert cdnow_fit.params_[name] == pytest.approx(value, rel=5e-3), name
    assert cdnow_fit.log_likelihood_ == pytest.approx(PUBLISHED_LL, abs=0.1)
    s = load_cdnow_summary()
    assert np.sum(cdnow_fit.log_likelihood(s.x, s.t_x, s.T)) == pytest.approx(
        cdnow_fit.log_likelihood_, abs=1e-6
    )


def test_conditional_expectation_of_papers_example_customer(
    cdnow_fit: BetaGeoModel,
) -> None:
    # FHL 2005 (and Hardie's spreadsheet): customer 1, x=2, t_x=30.43, T=38.86, next 39 weeks -> 1.226
    assert cdnow_fit.conditional_expected_purchases(
        39, 2, 30.43, 38.86
    ) == pytest.approx(1.226, abs=1e-3)


@pytest.mark.parametrize(("x", "t_x", "T"), CUSTOMERS)
def test_quantities_match_quadrature(x: int, t_x: float, T: float) -> None:
    model, ref = fitted(), reference(x, t_x, T, t=39.0)
    assert model.p_alive(x, t_x, T) == pytest.approx(ref["p_alive"], rel=1e-6)
    assert model.conditional_expected_purchases(39.0, x, t_x, T) == pytest.approx(
        ref["cond"], rel=1e-6
    )
    assert model.p_no_purchase(39.0, x, t_x, T) == pytest.approx(
        ref["no_purchase"], rel=1e-6
    )
    assert model.log_likelihood(x, t_x, T) == pytest.approx(ref["ll"], rel=1e-6)


def test_unconditional_expectation_matches_quadrature() -> None:
    lam, p, W = quadrature()
    t = np.array([0.0, 1.0, 10.0, 39.0, 78.0])
    ref = [np.sum(W * (1 - np.exp(-lam * p * ti)) / p) for ti in t]
    np.testing.assert_allclose(
        fitted().expected_purchases(t), ref, rtol=1e-5, atol=1e-12
    )  # 1/p near p = 0 costs the quadrature digits


def test_p_alive_is_one_without_repeat_purchase() -> None:
    np.testing.assert_array_equal(
        fitted().p_alive([0, 0], [0, 0], [1.0, 100.0]), [1.0, 1.0]
    )


def test_p_no_purchase_is_a_probability_decreasing_in_t() -> None:
    model = fitted()
    t = np.linspace(0, 500, 201)
    for x, t_x, T in CUSTOMERS:
        p = model.p_no_purchase(t, x, t_x, T)
        assert p[0] == pytest.approx(1.0)
        assert np.all((p >= 0) & (p <= 1)) and np.all(np.diff(p) <= 1e-15)
        # the history "no purchase in (t_x, T + t]" has likelihood L(x, t_x, T + t)
        ratio = np.exp(
            model.log_likelihood(x, t_x, T + t) - model.log_likelihood(x, t_x, T)
        )
        np.testing.assert_allclose(p, ratio, rtol=1e-10)


@pytest.mark.parametrize("threshold", [0.2, 0.5, 0.7])
def test_decisive_T_closed_form_matches_root_of_p_alive(threshold: float) -> None:
    model = fitted()
    for x, t_x, _ in CUSTOMERS[1:]:
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
        assert T_star == pytest.approx(root, rel=1e-9)
        assert model.p_alive(x, t_x, T_star) == pytest.approx(threshold, rel=1e-9)


def test_decisive_T_is_infinite_without_repeat_purchase_and_vectorised() -> None:
    out = fitted().decisive_T([0, 2, 2], [0.0, 30.43, 30.43], [0.5, 0.5, 0.3])
    assert out.dtype == np.float64 and out.shape == (3,)
    assert out[0] == np.inf and 30.43 < out[1] < out[2]


def test_scalars_in_give_floats_out_and_arrays_broadcast() -> None:
    model = fitted()
    assert isinstance(model.p_alive(2, 30.43, 38.86), float)
    out = model.conditional_expected_purchases(np.array([1.0, 39.0]), 2, 30.43, 38.86)
    assert out.shape == (2,) and out[0] < out[1]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (([1.5], [1.0], [2.0]), r"x must be a whole number, got x\[0\]=1.5"),
        (([-1], [0.0], [2.0]), r"x must be >= 0, got x\[0\]=-1.0"),
        (([1], [3.0], [2.0]), r"t_x must be <= T, got t_x\[0\]=3.0 > T\[0\]=2.0"),
        (([0], [1.0], [2.0]), r"t_x must be 0 where x is 0"),
        (([1], [np.nan], [2.0]), r"t_x must be finite"),
        (([1, 2], [1.0, 1.0, 1.0], [2.0]), r"same length"),
        (([[1]], [1.0], [2.0]), r"x must be a scalar or 1-d"),
    ],
)
def test_invalid_summary_is_rejected_with_the_argument_named(
    args, message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        BetaGeoModel().fit(*args)
    with pytest.raises(ValueError, match=message):
        fitted().p_alive(*args)


def test_bad_t_threshold_and_unfitted_are_rejected() -> None:
    with pytest.raises(ValueError, match=r"t must be >= 0, got t\[0\]=-1.0"):
        fitted().expected_purchases([-1.0])
    with pytest.raises(
        ValueError, match=r"threshold must be in \(0, 1\), got threshold\[0\]=1.0"
    ):
        fitted().decisive_T(1, 1.0, 1.0)
    with pytest.raises(ValueError, match="BetaGeoModel is not fitted"):
        BetaGeoModel().p_alive(1, 1.0, 2.0)
