"""The Gamma-Gamma model of spend per transaction (Fader, Hardie & Lee 2005; Fader & Hardie 2013): ``GammaGammaModel``."""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike
from scipy.special import gammaln

from .bg_nbd import _as_1d, _first_bad, _fit_log_params, _shape_out, _unique_rows

__all__ = ["GammaGammaModel"]


def _check_x_zbar(x: ArrayLike, zbar: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    """Repeat buyers only: x a whole number >= 1, zbar (mean repeat value) > 0."""
    xs = _as_1d("x", x)
    _first_bad(
        "x",
        xs,
        (xs < 1) | (np.abs(xs - np.round(xs)) > 1e-9),
        "a whole number >= 1 (repeat buyers only)",
    )
    zs = _as_1d("zbar", zbar)
    _first_bad("zbar", zs, zs <= 0, "> 0")
    try:
        xs, zs = (np.atleast_1d(a) for a in np.broadcast_arrays(xs, zs))
    except ValueError:
        raise ValueError(
            f"x and zbar must have the same length, got shapes {np.shape(x)} and {np.shape(zbar)}"
        ) from None
    return np.round(xs), zs


class GammaGammaModel:
    r"""The Gamma-Gamma model of the average transaction value (Fader, Hardie & Lee 2005 [1]; Fader & Hardie 2013 [2]).

    Assumptions, per customer:

    1. Transaction values z_1, …, z_x vary around the customer's mean: z_j ~ Gamma(p, ν)
       (shape p, rate ν), so E[z | ν] = p/ν.
    2. ν varies across customers as Gamma(q, γ).
    3. Spend is independent of the purchase process (so it pairs with BG/NBD or Pareto/NBD).

    Data: ``x`` repeat transactions (>= 1) and ``zbar`` their mean value; x·zbar | ν ~ Gamma(px, ν).

    Quantities (as derived in [2]):

    - likelihood of zbar (after integrating ν out):
      f(zbar | p, q, γ, x) = Γ(px+q) / (Γ(px) Γ(q)) · γ^q zbar^{px-1} x^{px} / (γ + x·zbar)^{px+q};
    - E[M] = p γ / (q - 1), the population mean transaction value (q > 1);
    - E[M | x, zbar] = p (γ + x·zbar) / (p x + q - 1): a weighted
      mean of E[M] and zbar with weight (px) / (px + q - 1) on zbar.

    Attributes
    ----------
    params_ : dict[str, float]
        ``p``, ``q``, ``gamma`` (lifetimes calls γ ``v``).
    log_likelihood_ : float
    n_customers_ : int

    References
    ----------
    [1] P. S. Fader, B. G. S. Hardie, K. L. Lee (2005), "RFM and CLV: Using Iso-Value Curves
        for Customer Base Analysis", Journal of Marketing Research 42(4), 415-430.
    [2] P. S. Fader, B. G. S. Hardie (2013), "The Gamma-Gamma Model of Monetary Value",
        http://brucehardie.com/notes/025/.
    """

    model_type = "Gamma-Gamma"
    _param_names = ("p", "q", "gamma")

    def __init__(self) -> None:
        pass

    @staticmethod
    def _ll_terms(p, q, gamma, x, zbar):
        px = p * x
        return (
            gammaln(px + q) - gammaln(px) - gammaln(q) + q * np.log(gamma)
            + (px - 1) * np.log(zbar) + px * np.log(x) - (px + q) * np.log(gamma + x * zbar)
        )  # fmt: skip

    def fit(self, x: ArrayLike, zbar: ArrayLike) -> GammaGammaModel:
        """Maximum likelihood on the repeat buyers' (x, zbar)."""
        x, zbar = _check_x_zbar(x, zbar)
        ux, uz, w = _unique_rows(x, zbar)

        def neg_ll(theta: np.ndarray) -> float:
            p, q, gamma = np.exp(theta)
            return -float(w @ self._ll_terms(p, q, gamma, ux, uz))

        # start where the population mean spend p*gamma/(q-1) equals the sample's: from
        # (1, 1, 1) Nelder-Mead can follow the p/gamma ridge away from the optimum
        init = (1.0, 2.0, float(np.average(uz, weights=w)))
        self.params_, self.log_likelihood_ = _fit_log_params(
            neg_ll, self._param_names, x.size, init=init
        )
        self.n_customers_ = int(x.size)
        return self

    def _check_fitted(self) -> tuple[float, float, float]:
        if not hasattr(self, "params_"):
            raise ValueError(f"{type(self).__name__} is not fitted: call fit() first")
        return self.params_["p"], self.params_["q"], self.params_["gamma"]

    def log_likelihood(self, x: ArrayLike, zbar: ArrayLike) -> np.ndarray | float:
        """Each customer's ln f(zbar | p, q, γ, x) at the fitted parameters."""
        params = self._check_fitted()
        xs, zs = _check_x_zbar(x, zbar)
        return _shape_out(self._ll_terms(*params, xs, zs), x, zbar)

    def expected_average_value(self) -> float:
        """E[M] = p γ / (q - 1): a new customer's expected mean transaction value (+inf for q <= 1)."""
        p, q, gamma = self._check_fitted()
        return float(p * gamma / (q - 1)) if q > 1 else float("inf")

    def conditional_expected_average_value(
        self, x: ArrayLike, zbar: ArrayLike
    ) -> np.ndarray | float:
        """E[M | x, zbar] = p (γ + x·zbar) / (p x + q - 1)."""
        p, q, gamma = self._check_fitted()
        xs, zs = _check_x_zbar(x, zbar)
        return _shape_out(p * (gamma + xs * zs) / (p * xs + q - 1), x, zbar)
