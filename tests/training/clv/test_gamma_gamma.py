"""Gamma-Gamma: the published CDNOW fit (Fader & Hardie 2013) and its quantities."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import integrate, stats

from scorecast.training.clv.gamma_gamma import GammaGammaModel
from scorecast.training.simulate.cdnow import load_cdnow_summary

PUBLISHED = {
    "p": 6.25,
    "q": 3.74,
    "gamma": 15.44,
}  # Fader & Hardie (2013): CDNOW's 946 repeat buyers


def test_fit_reproduces_published_cdnow_estimates() -> None:
    s = load_cdnow_summary()
    buyers = s.x >= 1
    assert buyers.sum() == 946
    model = GammaGammaModel().fit(s.x[buyers], s.zbar[buyers])
    assert model.model_type == "Gamma-Gamma"
    for name, value in PUBLISHED.items():
        assert model.params_[name] == pytest.approx(value, rel=5e-3), name
    assert np.sum(model.log_likelihood(s.x[buyers], s.zbar[buyers])) == pytest.approx(
        model.log_likelihood_
    )
    p, q, g = (model.params_[k] for k in ("p", "q", "gamma"))
    assert model.expected_average_value() == pytest.approx(p * g / (q - 1))


def test_quantities_match_numerical_integration_over_nu() -> None:
    model = GammaGammaModel()
    model.params_ = dict(PUBLISHED)
    p, q, g = PUBLISHED.values()
    prior = stats.gamma(q, scale=1 / g)
    for x, zbar in [(1, 10.0), (2, 22.35), (10, 80.0)]:
        # x·zbar | ν ~ Gamma(px, ν), so zbar | ν ~ Gamma(px, x ν)
        def like(nu, x=x, zbar=zbar):
            return stats.gamma.pdf(zbar, p * x, scale=1 / (x * nu)) * prior.pdf(nu)

        f = integrate.quad(like, 0, np.inf, epsabs=0, epsrel=1e-11)[0]
        mean = (
            integrate.quad(
                lambda nu, like=like: p / nu * like(nu),
                0,
                np.inf,
                epsabs=0,
                epsrel=1e-11,
            )[0]
            / f
        )
        assert model.log_likelihood(x, zbar) == pytest.approx(np.log(f), rel=1e-8)
        assert model.conditional_expected_average_value(x, zbar) == pytest.approx(
            mean, rel=1e-7
        )


def test_conditional_value_shrinks_towards_population_mean() -> None:
    model = GammaGammaModel()
    model.params_ = dict(PUBLISHED)
    out = model.conditional_expected_average_value([1, 5, 50], [100.0, 100.0, 100.0])
    assert (
        out.dtype == np.float64
        and model.expected_average_value() < out[0] < out[1] < out[2] < 100
    )


@pytest.mark.parametrize(
    ("x", "zbar", "message"),
    [
        (
            [0, 1],
            [1.0, 1.0],
            r"x must be a whole number >= 1 \(repeat buyers only\), got x\[0\]=0.0",
        ),
        ([1, 2], [1.0, 0.0], r"zbar must be > 0, got zbar\[1\]=0.0"),
        ([1, 2], [1.0, 2.0, 3.0], r"same length"),
    ],
)
def test_invalid_input_is_rejected(x, zbar, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        GammaGammaModel().fit(x, zbar)


def test_unfitted_is_rejected() -> None:
    with pytest.raises(ValueError, match="GammaGammaModel is not fitted"):
        GammaGammaModel().expected_average_value()
