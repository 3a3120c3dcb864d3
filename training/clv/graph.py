"""ONNX graphs of the served CLV quantities (BG/NBD, MBG/NBD, Pareto/NBD + Gamma-Gamma).

The fitters produce plain float parameters; the builders here turn them into an ONNX graph
with one input ``features`` (float32 ``[N, 6]``) and one float32 ``[N, 1]`` output per
quantity. Parameters are initializers; the graph computes in float64 and casts at the end.
Only standard ``ai.onnx`` ops with CPU and CUDA kernels in ONNX Runtime are used
(:data:`CUDA_OPS` lists them; no Loop/If, no ml-domain ops).

Why quadrature and not the 2F1 power series
-------------------------------------------
The BG/NBD (and MBG/NBD) conditional expectation needs
``P = (1-z)^(r+x) 2F1(r+x, B; a+B-1; z)`` with ``z = t/(alpha+T+t)`` and
``B = b+x`` (BG/NBD) or ``b+x+1`` (MBG/NBD). ``z`` reaches ``1 - 3e-4`` in the supported
ranges (``alpha=0.5, T=0, t=1825``). No fixed-length series converges there:

- plain series: terms peak near ``n ~ x z/(1-z)`` (thousands of terms for x=300, z=0.9);
- Pfaff, ``P = 2F1(r+x, a-1; a+B-1; w)`` with ``w = -t/(alpha+T)``: diverges for ``z > 1/2``;
- Euler, ``P = (1-z)^(a-1) 2F1(a+b-1-r, a-1; a+B-1; z)``: fine for large x, but for x=0
  (the most common row) the terms decay like ``n^(a-2-r) z^n``: with a=0.8, r=0.25, z->1 the
  tail after 200 terms is still ~20 % of the sum;
- the z -> 1-z connection formula is singular when the parameter differences are integers,
  which depends on the row's x.

So we use the identity (posterior of the drop-out probability p ~ Beta(a, B), of the rate
lambda ~ Gamma(r+x, alpha+T), and E[X(t) | lambda, p, alive] = (1 - e^(-lambda p t))/p)::

    (a+B-1)/(a-1) * (1 - P) = E_{p ~ Beta(a, B)}[ (1 - (1 + p u)^-(r+x)) / p ],  u = t/(alpha+T)

and evaluate the right-hand side by tanh-sinh (double exponential) quadrature on p in (0, 1)
with fixed nodes, self-normalised by the same quadrature of the Beta density (no lgamma
needed). The integrand is bounded (``<= (r+x) u``) and ``1 - (1+pu)^-A`` is computed as
``-expm1(-A log1p(pu))`` with accurate expm1/log1p built from elementary ops, so there is
no cancellation for small t. The identity also holds at a = 1 and a < 1, where the closed
form has 0/0 or needs care. Node count: step h = 1/16 in the tanh-sinh variable over the
range the parameters need (|logit p| <= 40/a on one side, 40/B_min on the other, capped at
700): 100-180 nodes. Measured error vs a float64 scipy reference: see the tests.

Pareto/NBD P(alive) likewise avoids the 2F1 (Fader & Hardie 2005 note: its argument
(alpha-beta)/(alpha+t_x) can be 0.999) with the integral over the death time tau,
``A0``-free form::

    1/P(alive) - 1 = s * int_{t_x}^{T} ((alpha+T)/(alpha+tau))^(r+x) ((beta+T)/(beta+tau))^s dtau/(beta+tau)

by tanh-sinh quadrature on tau in (t_x, T).

Outputs (all float32 ``[N, 1]``, in this order):

- ``expected_orders``: E[X(T, T+t)] for t = the horizon column;
- ``p_alive``;
- ``p_no_order`` (BG/NBD, MBG/NBD): 1 - p_alive + p_alive ((alpha+T)/(alpha+T+t))^(r+x);
- ``expected_days_to_next_order``: (alpha+T)/(r+x), 1 / posterior mean purchase rate of an
  alive customer (Pareto/NBD and BG/NBD alike);
- ``value`` (with ``gg``): expected_orders * p(gamma + x zbar)/(p x + q - 1); a NaN zbar (x = 0)
  gives the population mean p gamma/(q - 1);
- ``decisive_days_left`` (MBG/NBD only): T* - T with T* the age >= t_x at which, with no new
  order, P(any order in the next ``lapse_window`` days) = p_alive(T*) (1 - ((alpha+T*)/(alpha+T*+W))^(r+x))
  falls below the threshold column theta (see ``ModifiedBetaGeoModel.lapse_T``). It decreases
  in T* (both factors do), so T* is found by bisection, :data:`LAPSE_STEPS` halvings of
  (t_x, t_x + :data:`LAPSE_CAP_DAYS`) unrolled (no Loop); a row never below theta gets the cap.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np
import onnx
from onnx import TensorProto, helper

from scorecast.metadata import INPUT_NAME
from scorecast.onnx_graph import GraphBuilder, make_model

__all__ = [
    "CUDA_OPS",
    "LAPSE_CAP_DAYS",
    "LAPSE_STEPS",
    "LAPSE_WINDOW_DAYS",
    "DEFAULT_FEATURES",
    "bgnbd_graph",
    "pareto_nbd_graph",
    "tanh_sinh_nodes",
]

# role -> default column name
DEFAULT_FEATURES: tuple[str, ...] = (
    "repeat_frequency",
    "repeat_recency_days",
    "age_days",
    "repeat_monetary",
    "request:horizon_days",
    "request:churn_threshold",
)
_ROLES = ("x", "t_x", "T", "zbar", "t", "theta")

# Standard ops with CUDA kernels in ONNX Runtime (CUDAExecutionProvider) that these graphs may use.
CUDA_OPS: frozenset[str] = frozenset(
    {
        "Abs", "Add", "Cast", "Concat", "CumSum", "Div", "Equal", "Exp", "Gather", "Greater",
        "GreaterOrEqual", "Identity", "IsNaN", "Less", "LessOrEqual", "Log", "Max", "Min", "Mul",
        "Neg", "NonZero", "Not", "Pow", "Range", "Reciprocal", "ReduceMax", "ReduceSum", "Reshape",
        "ScatterND", "Sign", "Slice", "Sqrt", "Sub", "Unsqueeze", "Where",
    }
)  # fmt: skip

LAPSE_WINDOW_DAYS = 365.0  # the decisive date's window: P(any order in the next year)
LAPSE_CAP_DAYS = 36_500.0  # the decisive date's search range after the last order (100 years)
LAPSE_STEPS = 32  # bisection halvings: the cap / 2^32 < 1e-5 days

_H = 1.0 / 16.0  # tanh-sinh step
_TAIL = 40.0  # e^-40 ~ 4e-18: where the power-law tails of the integrands are cut


def tanh_sinh_nodes(
    lo_rate: float, hi_rate: float, h: float = _H, tail: float = _TAIL
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Tanh-sinh nodes on (0, 1): ``log p``, ``log(1-p)``, ``log(weight)`` (weight = h dp/dt).

    The integrand is assumed to vanish like ``p^lo_rate`` at 0 and ``(1-p)^hi_rate`` at 1;
    the node range stops where that is below e^-tail of its peak (peak within |logit p| <= 12).
    """
    # + 12: the bump of the integrand may sit at logit p = -log(B/a), with B = b + x up to ~1e5 a
    y_lo = min(tail / max(lo_rate, 1e-3) + 12.0, 700.0)
    y_hi = min(tail / max(hi_rate, 1e-3) + 12.0, 700.0)
    t_lo = math.asinh(y_lo / math.pi)
    t_hi = math.asinh(y_hi / math.pi)
    t = np.arange(-math.ceil(t_lo / h), math.ceil(t_hi / h) + 1) * h
    y = math.pi * np.sinh(t)  # logit p
    log_p = -np.logaddexp(0.0, -y)
    log_q = -np.logaddexp(0.0, y)
    log_w = math.log(h * math.pi) + np.log(np.cosh(t)) + log_p + log_q
    return log_p, log_q, log_w


class _Builder(GraphBuilder):
    """GraphBuilder with float64 constants by default, varargs ``op`` and the arithmetic of the formulas."""

    def const(self, value: float | np.ndarray, hint: str = "c", dtype: type = np.float64) -> str:  # type: ignore[override]
        return super().const(value, hint, dtype)

    def op(self, op_type: str, *inputs: str, hint: str | None = None, **attrs: object) -> str:  # type: ignore[override]
        return super().op(op_type, inputs, hint=hint, **attrs)

    # arithmetic shorthands
    def add(self, a: str, b: str) -> str:
        return self.op("Add", a, b)

    def sub(self, a: str, b: str) -> str:
        return self.op("Sub", a, b)

    def mul(self, a: str, b: str) -> str:
        return self.op("Mul", a, b)

    def div(self, a: str, b: str) -> str:
        return self.op("Div", a, b)

    def log(self, a: str) -> str:
        return self.op("Log", a)

    def exp(self, a: str) -> str:
        return self.op("Exp", a)

    def where(self, cond: str, a: str, b: str) -> str:
        return self.op("Where", cond, a, b)

    def log1p(self, y: str) -> str:
        """log(1 + y) for y >= 0, accurate to a few ulps (series below 1e-5, Kahan's trick above)."""
        small = self.op("Less", y, self.const(1e-5))
        # y (1 - y/2 + y^2/3)
        series = self.mul(y, self.sub(self.const(1.0), self.mul(y, self.sub(self.const(0.5), self.mul(y, self.const(1.0 / 3.0))))))
        v = self.add(self.const(1.0), y)
        kahan = self.div(self.mul(self.log(v), y), self.sub(v, self.const(1.0)))
        return self.where(small, series, kahan)

    def expm1(self, q: str) -> str:
        """exp(q) - 1, accurate to a few ulps for all q <= 0 (and moderate q > 0)."""
        e = self.exp(q)
        tiny = self.op("Less", self.op("Abs", q), self.const(1e-5))
        series = self.mul(q, self.add(self.const(1.0), self.mul(q, self.add(self.const(0.5), self.mul(q, self.const(1.0 / 6.0))))))
        big = self.op("Less", self.op("Abs", q), self.const(1.0))
        em1 = self.sub(e, self.const(1.0))
        # Kahan: (e - 1) q / log(e), used for 1e-5 <= |q| < 1 where log(e) is far from 0
        kahan = self.div(self.mul(em1, q), self.log(e))
        return self.where(tiny, series, self.where(big, kahan, em1))


_SERIES_TERMS = 40  # Pfaff series terms computed for every row
_SERIES_TOL = 1e-11  # a row is "converged" when |last term| <= tol (1-u) |sum|
_QUAD_H = 1.0 / 13.0  # tanh-sinh step of the BG-type quadrature (1/12: 6e-7 at u ~ 3000, x = 100)
_QUAD_TAIL = 27.0  # e^-27 ~ 2e-12: tail cut of the BG-type quadrature


def _pfaff_series(g: _Builder, A: str, C: str, u: str, a: float) -> str:
    """sum_{n>=1} s_n, s_1 = A u, s_{n+1} = -s_n u (A+n)(a+n-1)/((C+n)(n+1)) — the expected orders
    given alive, without the 0/0 at a = 1. Returns [N, 1]; rows that did not converge are
    marked by :func:`_quadrature_rows` (it re-reads the last term via ``g.series_last``)."""
    neg_u = g.op("Neg", u)
    s = g.mul(A, u)
    total = s
    for n in range(1, _SERIES_TERMS):
        c_n = g.const((a + n - 1.0) / (n + 1.0))
        num = g.mul(g.mul(s, g.add(A, g.const(float(n)))), g.mul(neg_u, c_n))
        s = g.div(num, g.add(C, g.const(float(n))))
        total = g.add(total, s)
    g.series_last = s  # type: ignore[attr-defined]
    return total


def _quadrature_rows(g: _Builder, e_series: str, A: str, B: str, u: str, a: float, b_eff: float) -> str:
    """Replace the rows where the series did not converge by the tanh-sinh quadrature of
    E_{p~Beta(a,B)}[(1 - (1+pu)^-A)/p] (self-normalised), computed on those rows only."""
    one = g.const(1.0)
    s_last = g.series_last  # type: ignore[attr-defined]
    ok = g.op(
        "LessOrEqual",
        g.op("Abs", s_last),
        g.mul(g.mul(g.const(_SERIES_TOL), g.sub(one, u)), g.op("Abs", e_series)),
    )  # NaN (overflowed series) compares False: quadrature
    hard = g.op("Reshape", g.op("Not", ok), g.const(np.array([-1], np.int64), "flat", dtype=np.int64))
    idx = g.op("NonZero", hard)  # [1, M]
    idx_flat = g.op("Reshape", idx, g.const(np.array([-1], np.int64), "flat", dtype=np.int64))
    idx_col = g.op("Reshape", idx, g.const(np.array([-1, 1], np.int64), "col", dtype=np.int64))
    Ah, Bh, uh = (g.op("Gather", v, idx_flat, axis=0) for v in (A, B, u))  # [M, 1]

    # the Beta(a, B) bump has width ~1/sqrt(a) in logit p: a smaller step for large a
    h = min(_QUAD_H, 1.0 / (4.0 * math.sqrt(a)))
    log_p, log_q, log_w = tanh_sinh_nodes(a, b_eff, h, _QUAD_TAIL)
    k = len(log_p)
    # log of the weights: a log p + B log(1-p) + log(h pi cosh t) - c, with c the row's maximum
    # of a log p + B log(1-p) over p (at p = a/(a+B)), so no ReduceMax is needed
    base = g.const(((a - 1.0) * log_p + log_w).reshape(1, k), "quad_base")  # [1, K]
    lq = g.const(log_q.reshape(1, k), "quad_log1mp")
    pk = g.const(np.exp(log_p).reshape(1, k), "quad_p")
    neg_inv_p = g.const((-np.exp(-log_p)).reshape(1, k), "quad_neg_inv_p")
    ca = g.const(a)
    aB = g.add(ca, Bh)
    c = g.add(g.mul(ca, g.log(g.div(ca, aB))), g.mul(Bh, g.log(g.div(Bh, aB))))  # [M, 1]
    logW = g.add(g.mul(g.sub(Bh, one), lq), g.sub(base, c))  # [M, K]
    W = g.exp(logW)
    pu = g.mul(pk, uh)  # [M, K]
    # log1p(pu): 2-term series below 1e-5 (error < 4e-16), else Log(1+pu) (relative error < 2e-11)
    lp1 = g.where(
        g.op("Less", pu, g.const(1e-5)),
        g.mul(pu, g.sub(one, g.mul(pu, g.const(0.5)))),
        g.log(g.add(one, pu)),
    )
    q = g.mul(g.op("Neg", Ah), lp1)  # <= 0
    # expm1(q): 3-term series for |q| < 1e-5, else exp(q) - 1 (relative error < 2e-11);
    # every term of the sums is positive, so the sums keep that relative accuracy
    em1 = g.where(
        g.op("Greater", q, g.const(-1e-5)),
        g.mul(q, g.add(one, g.mul(q, g.add(g.const(0.5), g.mul(q, g.const(1.0 / 6.0)))))),
        g.sub(g.exp(q), one),
    )
    hk = g.mul(em1, neg_inv_p)  # (1 - (1+pu)^-A)/p
    axes = g.const(np.array([1], dtype=np.int64), "axis1", dtype=np.int64)
    num = g.op("ReduceSum", g.mul(W, hk), axes, keepdims=1)
    den = g.op("ReduceSum", W, axes, keepdims=1)
    e_quad = g.div(num, den)  # [M, 1]
    return g.op("ScatterND", e_series, idx_col, e_quad)


def _lapse_age(g: _Builder, prm: Mapping[str, float], x: str, tx: str, A: str, theta: str, window: float) -> str:
    """MBG/NBD: the age T* >= t_x where P(any order in the next ``window`` days) falls below theta
    with no new order (module docstring), by bisection on the offset after t_x.

    Each of the :data:`LAPSE_STEPS` unrolled steps is 17 nodes (it was 47: a session's build time
    goes with its node count, and this loop was 80 % of a trained account's nodes). The interval
    after k halvings is ``[lo, lo + cap / 2^k]``, so only ``lo`` is carried: every value is a
    multiple of cap / 2^32 below 2^53 of them, exact in float64, so ``lo + cap / 2^(k+1)`` is the
    midpoint ``(lo + hi) / 2`` bit for bit. ``1 - ((alpha+T)/(alpha+T+W))^A`` is
    ``1 - exp(A (log aT - log(aT + W)))``: without expm1/log1p its relative error stays below
    1e-12 over the supported ranges (A >= 0.05, W/aT >= 0.009), far below what moves the root by
    the bisection's resolution."""
    one = g.const(1.0)
    w = g.const(float(window))
    atx = g.add(g.const(prm["alpha"]), tx)
    # log odds of death = log a - log(b + x) + A (log(alpha + T) - log(alpha + t_x)): the terms
    # without T once, so a step adds A log(alpha + T)
    log_b = g.sub(g.const(math.log(prm["a"])), g.log(g.add(g.const(prm["b"]), x)))
    fixed = g.sub(log_b, g.mul(A, g.log(atx)))
    lo = g.mul(tx, g.const(0.0))  # [N, 1] zeros (NaN rows stay NaN)
    for k in range(1, LAPSE_STEPS + 1):
        mid = g.add(lo, g.const(LAPSE_CAP_DAYS / 2.0**k))
        aT = g.add(atx, mid)
        log_aT = g.log(aT)
        p_alive = g.op("Reciprocal", g.add(one, g.exp(g.add(fixed, g.mul(A, log_aT)))))
        p_none = g.exp(g.mul(A, g.sub(log_aT, g.log(g.add(aT, w)))))  # ((alpha+T)/(alpha+T+W))^A
        below = g.op("Less", g.mul(p_alive, g.sub(one, p_none)), theta)
        lo = g.where(below, lo, mid)
    return g.add(tx, g.add(lo, g.const(LAPSE_CAP_DAYS / 2.0**LAPSE_STEPS)))


def _check_features(feature_order: Sequence[str]) -> tuple[str, ...]:
    names = tuple(feature_order)
    if len(names) != len(_ROLES) or len(set(names)) != len(names):
        raise ValueError(f"feature_order must name {len(_ROLES)} distinct columns for {_ROLES}, got {names}")
    return names


def _positive(params: Mapping[str, float], keys: Sequence[str], model: str) -> dict[str, float]:
    out = {}
    for k in keys:
        if k not in params:
            raise ValueError(f"{model}: missing parameter {k!r}")
        v = float(params[k])
        if not (math.isfinite(v) and v > 0):
            raise ValueError(f"{model}: parameter {k}={v} must be finite and > 0")
        out[k] = v
    return out


def _inputs(g: _Builder) -> dict[str, str]:
    """Cast ``features`` to double and slice out the six columns as [N, 1]."""
    xd = g.op("Cast", INPUT_NAME, hint="features_f64", to=TensorProto.DOUBLE)
    cols = {}
    for j, role in enumerate(_ROLES):
        idx = g.const(np.array([j], dtype=np.int64), f"col_{role}", dtype=np.int64)
        cols[role] = g.op("Gather", xd, idx, hint=role, axis=1)
    return cols


def _gg_mean(g: _Builder, gg: Mapping[str, float], x: str, zbar: str) -> str:
    """Gamma-Gamma conditional mean spend per order; population mean where zbar is NaN."""
    prm = _positive(gg, ("p", "q", "gamma"), "Gamma-Gamma")
    if prm["q"] <= 1:
        raise ValueError(f"Gamma-Gamma: q={prm['q']} must be > 1 for a finite mean spend")
    p, q, gam = g.const(prm["p"], "gg_p"), g.const(prm["q"], "gg_q"), g.const(prm["gamma"], "gg_gamma")
    nan = g.op("IsNaN", zbar)
    zsafe = g.where(nan, g.const(0.0), zbar)
    num = g.mul(p, g.add(gam, g.mul(x, zsafe)))
    den = g.sub(g.add(g.mul(p, x), q), g.const(1.0))
    cond = g.div(num, den)
    pop = g.const(prm["p"] * prm["gamma"] / (prm["q"] - 1.0), "gg_population_mean")
    return g.where(nan, pop, cond)


def _finish(g: _Builder, outputs: dict[str, str], name: str) -> onnx.ModelProto:
    outs = []
    for oname, tensor in outputs.items():
        g.nodes.append(helper.make_node("Cast", [tensor], [oname], name=f"out_{oname}", to=TensorProto.FLOAT))
        outs.append(helper.make_tensor_value_info(oname, TensorProto.FLOAT, [None, 1]))
    graph = helper.make_graph(
        g.nodes,
        name,
        [helper.make_tensor_value_info(INPUT_NAME, TensorProto.FLOAT, [None, len(_ROLES)])],
        outs,
        initializer=g.initializers,
    )
    model = make_model(graph)
    onnx.checker.check_model(model, full_check=True)
    return model


def bgnbd_graph(
    params: Mapping[str, float],
    model: str = "BG/NBD",
    gg: Mapping[str, float] | None = None,
    feature_order: Sequence[str] = DEFAULT_FEATURES,
    lapse_window: float = LAPSE_WINDOW_DAYS,
) -> onnx.ModelProto:
    """ONNX graph of a fitted BG/NBD or MBG/NBD model (and Gamma-Gamma spend model).

    ``params``: r, alpha, a, b. ``feature_order``: the names of the input columns for
    (x, t_x, T, zbar, horizon t, churn threshold theta) — the graph reads them by position,
    the names only document the caller's contract. Outputs: see the module docstring
    (``decisive_days_left`` only for MBG/NBD, over ``lapse_window`` days; ``value`` only with ``gg``).
    """
    if model not in ("BG/NBD", "MBG/NBD"):
        raise ValueError(f"model must be 'BG/NBD' or 'MBG/NBD', got {model!r}")
    _check_features(feature_order)
    prm = _positive(params, ("r", "alpha", "a", "b"), model)
    mbg = model == "MBG/NBD"
    g = _Builder()
    c = _inputs(g)
    x, tx, T, t = c["x"], c["t_x"], c["T"], c["t"]
    one = g.const(1.0, "one")
    r, alpha = g.const(prm["r"], "r"), g.const(prm["alpha"], "alpha")
    a_, b_ = g.const(prm["a"], "a"), g.const(prm["b"], "b")

    A = g.add(r, x)  # posterior shape of lambda
    B = g.add(b_, x)  # posterior Beta(a, B) of p
    if mbg:
        B = g.add(B, one)
    aT = g.add(alpha, T)
    atx = g.add(alpha, tx)

    # p_alive = 1 / (1 + [x>0] a/(B-1) ((alpha+T)/(alpha+t_x))^A)
    log_odds = g.add(
        g.sub(g.log(a_), g.log(g.sub(B, one))),
        g.mul(A, g.sub(g.log(aT), g.log(atx))),
    )
    if not mbg:
        # x = 0: alive for sure (log odds -inf), but a contact without orders (T NaN) must stay
        # NaN: -inf + 0 * T is -inf for a finite T and NaN for a NaN one
        certain = g.add(g.const(-np.inf), g.mul(T, g.const(0.0)))
        log_odds = g.where(g.op("Greater", x, g.const(0.0)), log_odds, certain)
    p_alive = g.op("Reciprocal", g.add(one, g.exp(log_odds)))  # ORT's double Sigmoid flushes 1e-19 to 0

    # E[X(T,T+t) | alive] = (a+B-1)/(a-1) (1 - 2F1(A, a-1; a+B-1; -u)), u = t/(alpha+T) (Pfaff).
    # Cheap path, every row: the Pfaff series, _SERIES_TERMS terms unrolled on [N, 1]. Rows whose
    # series has not converged (u near or above 1) are gathered and done by quadrature.
    u = g.div(t, aT)
    C = g.add(g.add(a_, B), g.const(-1.0))
    e_series = _pfaff_series(g, A, C, u, prm["a"])
    e_alive = _quadrature_rows(g, e_series, A, B, u, prm["a"], prm["b"] + (1.0 if mbg else 0.0))
    expected = g.mul(e_alive, p_alive)

    # P(no order | alive) = (1+u)^-A
    p_none_alive_m1 = g.expm1(g.op("Neg", g.mul(A, g.log1p(u))))  # (1+u)^-A - 1
    p_no_order = g.add(one, g.mul(p_alive, p_none_alive_m1))
    days_next = g.div(aT, A)

    outputs = {"expected_orders": expected, "p_alive": p_alive, "p_no_order": p_no_order, "expected_days_to_next_order": days_next}
    if gg is not None:
        outputs["value"] = g.mul(expected, _gg_mean(g, gg, x, c["zbar"]))
    if mbg:
        outputs["decisive_days_left"] = g.sub(_lapse_age(g, prm, x, tx, A, c["theta"], lapse_window), T)
    return _finish(g, outputs, model.replace("/", "_").lower())


def pareto_nbd_graph(
    params: Mapping[str, float],
    gg: Mapping[str, float] | None = None,
    feature_order: Sequence[str] = DEFAULT_FEATURES,
) -> onnx.ModelProto:
    """ONNX graph of a fitted Pareto/NBD model (and Gamma-Gamma spend model).

    ``params``: r, alpha, s, beta (s = 1, where the expected_orders formula is 0/0, is nudged
    to 1 + 1e-9). Outputs: expected_orders, p_alive, expected_days_to_next_order, value (gg).
    No p_no_order and no decisive_days_left: not implemented for Pareto/NBD.
    """
    _check_features(feature_order)
    prm = _positive(params, ("r", "alpha", "s", "beta"), "Pareto/NBD")
    s_val = prm["s"]
    if abs(s_val - 1.0) < 1e-9:
        s_val = 1.0 + 1e-9
    g = _Builder()
    c = _inputs(g)
    x, tx, T, t = c["x"], c["t_x"], c["T"], c["t"]
    one = g.const(1.0, "one")
    r, alpha = g.const(prm["r"], "r"), g.const(prm["alpha"], "alpha")
    s, beta = g.const(s_val, "s"), g.const(prm["beta"], "beta")
    A = g.add(r, x)
    aT, bT = g.add(alpha, T), g.add(beta, T)

    # 1/P(alive) - 1 = s int_{t_x}^{T} ((a+T)/(a+tau))^A ((b+T)/(b+tau))^s dtau/(b+tau);
    # tau = t_x + p (T - t_x), p in (0, 1) by tanh-sinh. The integrand is smooth and positive;
    # it rises steeply towards tau = t_x for large x, which the nodes' clustering resolves.
    log_p, log_q, log_w = tanh_sinh_nodes(1.0, 1.0)
    k = len(log_p)
    pk = g.const(np.exp(log_p).reshape(1, k), "quad_p")
    lw = g.const(log_w.reshape(1, k), "quad_logw")
    span = g.op("Max", g.sub(T, tx), g.const(0.0))
    tau = g.add(tx, g.mul(pk, span))  # [N, K]
    log_int = g.sub(
        g.add(
            g.mul(A, g.sub(g.log(aT), g.log(g.add(alpha, tau)))),
            g.mul(s, g.sub(g.log(bT), g.log(g.add(beta, tau)))),
        ),
        g.log(g.add(beta, tau)),
    )
    axes = g.const(np.array([1], dtype=np.int64), "axis1", dtype=np.int64)
    terms = g.add(g.add(log_int, lw), g.log(span))  # log(span)=-inf when T=t_x: integral 0
    m = g.op("ReduceMax", terms, axes, keepdims=1)
    m_safe = g.where(g.op("IsNaN", m), g.const(0.0), g.op("Max", m, g.const(-700.0)))
    integral_log = g.add(g.log(g.op("ReduceSum", g.exp(g.sub(terms, m_safe)), axes, keepdims=1)), m_safe)
    log_odds = g.add(g.log(s), integral_log)
    p_alive = g.op("Reciprocal", g.add(one, g.exp(log_odds)))  # ORT's double Sigmoid flushes 1e-19 to 0

    # E[X(T,T+t)|alive] = (r+x)(beta+T)/((alpha+T)(s-1)) (1 - ((beta+T)/(beta+T+t))^(s-1))
    sm1 = g.const(s_val - 1.0, "s_minus_1")
    lt = g.log1p(g.div(t, bT))
    factor = g.op("Neg", g.expm1(g.op("Neg", g.mul(sm1, lt))))  # 1 - (1+t/(b+T))^-(s-1)
    e_alive = g.div(g.mul(g.mul(A, bT), factor), g.mul(aT, sm1))
    expected = g.mul(e_alive, p_alive)
    days_next = g.div(aT, A)
    outputs = {"expected_orders": expected, "p_alive": p_alive, "expected_days_to_next_order": days_next}
    if gg is not None:
        outputs["value"] = g.mul(expected, _gg_mean(g, gg, x, c["zbar"]))
    return _finish(g, outputs, "pareto_nbd")
