"""The MBG/NBD model of repeat buying (Batislam, Denizel & Filiztekin 2007): ``ModifiedBetaGeoModel``."""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike
from scipy.special import betaln, gammaln, hyp2f1

from .bg_nbd import _BetaGeoBase, _check_nonneg, _check_rft, _check_threshold, _shape_out

__all__ = ["ModifiedBetaGeoModel"]


class ModifiedBetaGeoModel(_BetaGeoBase):
    r"""The MBG/NBD model ("modified BG/NBD", Batislam, Denizel & Filiztekin 2007).

    The BG/NBD model ([2], :class:`~scorecast.training.clv.bg_nbd.BetaGeoModel`) with one change:
    a customer may also drop out right after the *first* purchase (time 0), so a customer
    with no repeat purchase is not certainly alive. Assumptions, per customer:

    1. While active, purchases follow a Poisson process with rate λ ~ Gamma(r, α).
    2. At time 0 and after each repeat purchase the customer becomes inactive with
       probability p ~ Beta(a, b); λ and p independent.

    Data as for BG/NBD: ``x`` repeat purchases, ``t_x`` the time of the last, ``T`` the age.
    The alive branch has survived x + 1 dropout draws, the dead branch x draws and one dropout.

    Quantities (equation numbers of [1] where it states them; each is the BG/NBD one of [2]
    with the beta weights shifted by one, derived the same way):

    - likelihood (all x, including 0):
      L = B(a, b+x+1)/B(a, b) · Γ(r+x) α^r / (Γ(r) (α+T)^{r+x})
      + B(a+1, b+x)/B(a, b) · Γ(r+x) α^r / (Γ(r) (α+t_x)^{r+x});
    - E[X(t)] = b/(a-1) · [1 - (α/(α+t))^r ₂F₁(r, b+1; a+b; t/(α+t))]
      (E[X | λ, p] is (1-p) times BG/NBD's (1/p)(1 - e^{-λpt}));
    - E[Y(t) | x, t_x, T] = (a+b+x)/(a-1)
      · [1 - ((α+T)/(α+T+t))^{r+x} ₂F₁(r+x, b+x+1; a+b+x; t/(α+T+t))] · P(alive);
    - P(alive | x, t_x, T) = 1 / (1 + a/(b+x) · ((α+T)/(α+t_x))^{r+x}): below 1 for x = 0
      as well, and it falls with T for every customer;
    - P(no purchase in (T, T+t]) = 1 - P(alive) + P(alive) ((α+T)/(α+T+t))^{r+x};
    - the decisive age (P(alive) falls to θ with no new order), closed form:
      T* = (α + t_x) · (((1-θ)/θ) · (b+x)/a)^{1/(r+x)} - α, floored at t_x;
    - the lapse age (:meth:`lapse_T`, the served decisive date): where P(any purchase in the
      next W days) = P(alive) (1 - ((α+T)/(α+T+W))^{r+x}) falls to ε with no new order.

    Attributes
    ----------
    params_ : dict[str, float]
        ``r``, ``alpha``, ``a``, ``b``.
    log_likelihood_ : float
    n_customers_ : int

    References
    ----------
    [1] E. P. Batislam, M. Denizel, A. Filiztekin (2007), "Empirical validation and
        comparison of models for customer base analysis", International Journal of Research
        in Marketing 24(3), 201-209.
    [2] P. S. Fader, B. G. S. Hardie, K. L. Lee (2005), "'Counting Your Customers' the Easy
        Way: An Alternative to the Pareto/NBD Model", Marketing Science 24(2), 275-284.
    Cf. lifetimes' ``ModifiedBetaGeoFitter`` and BTYDplus' ``mbgcnbd`` with k = 1.
    """

    model_type = "MBG/NBD"
    _b_shift = 1

    @staticmethod
    def _ll_terms(r, alpha, a, b, x, t_x, T):
        common = gammaln(r + x) - gammaln(r) + r * np.log(alpha)
        alive = betaln(a, b + x + 1) - betaln(a, b) - (r + x) * np.log(alpha + T)
        dead = betaln(a + 1, b + x) - betaln(a, b) - (r + x) * np.log(alpha + t_x)
        return common + np.logaddexp(alive, dead)

    @staticmethod
    def _p_alive(r, alpha, a, b, x, t_x, T):
        log_odds = (
            np.log(a)
            - np.log(b + x)
            + (r + x) * (np.log(alpha + T) - np.log(alpha + t_x))
        )
        return 1.0 / (1.0 + np.exp(log_odds))

    def lapse_T(self, x: ArrayLike, t_x: ArrayLike, threshold: ArrayLike, window: float,
                cap: float = 36_500.0, steps: int = 32) -> np.ndarray | float:  # fmt: skip
        """The age T* >= t_x at which, with no new order, P(any purchase in the next ``window``
        days) falls below ``threshold``; by bisection of (t_x, t_x + cap), as the served graph
        does (both factors of that probability decrease in T). Never below: t_x + cap."""
        r, alpha, a, b = self._check_fitted()
        th = _check_threshold(threshold)
        xs, txs, _ = _check_rft(x, t_x, _check_nonneg("t_x", t_x))
        xs, txs, th = np.broadcast_arrays(xs, txs, th)
        lo, hi = np.zeros(xs.shape), np.full(xs.shape, float(cap))
        for _ in range(steps):
            mid = (lo + hi) / 2
            aT = alpha + txs + mid
            alive = self._p_alive(r, alpha, a, b, xs, txs, txs + mid)
            below = alive * -np.expm1(-(r + xs) * np.log1p(window / aT)) < th
            hi, lo = np.where(below, mid, hi), np.where(below, lo, mid)
        return _shape_out(txs + hi, x, t_x, threshold)

    def expected_purchases(self, t: ArrayLike) -> np.ndarray | float:
        """E[X(t)]: repeat purchases of a new customer in (0, t]."""
        r, alpha, a, b = self._check_fitted()
        ts = _check_nonneg("t", t)
        z = ts / (alpha + ts)
        value = (
            b / (a - 1) * (1 - (alpha / (alpha + ts)) ** r * hyp2f1(r, b + 1, a + b, z))
        )
        return _shape_out(value, t)

