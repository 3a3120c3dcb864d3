"""ONNX graphs of BG/NBD, MBG/NBD, Pareto/NBD (+ Gamma-Gamma) against a float64 scipy reference."""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from scipy import integrate
from scipy.special import expit, hyp2f1

from scorecast.training.clv.graph import LAPSE_CAP_DAYS, LAPSE_WINDOW_DAYS, bgnbd_graph, pareto_nbd_graph

RTOL = 1e-6  # float32 outputs: ~6e-8 is the rounding floor

# Ops with CUDA kernels in ONNX Runtime's CUDAExecutionProvider (written from its kernel registry).
ORT_CUDA_OPS = {
    "Abs", "Add", "Cast", "Concat", "CumSum", "Div", "Equal", "Exp", "Gather", "Greater", "GreaterOrEqual",
    "Identity", "IsNaN", "Less", "LessOrEqual", "Log", "Max", "Min", "Mul", "Neg", "NonZero", "Not", "Pow",
    "Range", "Reciprocal", "ReduceMax", "ReduceSum", "Reshape", "ScatterND", "Sign", "Slice", "Sqrt", "Sub",
    "Unsqueeze", "Where",
}  # fmt: skip

GG = {"p": 6.25, "q": 3.74, "gamma": 15.44}


def run(model: onnx.ModelProto, X: np.ndarray, providers: tuple[str, ...] = ("CPUExecutionProvider",)) -> dict[str, np.ndarray]:
    sess = ort.InferenceSession(model.SerializeToString(), providers=list(providers))
    names = [o.name for o in sess.get_outputs()]
    return {n: v[:, 0].astype(np.float64) for n, v in zip(names, sess.run(None, {"features": X}), strict=True)}


def ref_bg(p: dict, X: np.ndarray, mbg: bool) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """Closed forms (BG/NBD eq. 10 and the MBG/NBD analogue) in float64 with scipy's hyp2f1.

    Also returns where scipy's hyp2f1 is trustworthy: the direct form and its Euler transform
    agree to 1e-9 (near z = 1 with large parameters scipy itself loses accuracy)."""
    r, al, a, b = p["r"], p["alpha"], p["a"], p["b"]
    x, tx, T, zbar, t, theta = (X[:, i].astype(np.float64) for i in range(6))
    B = b + x + (1.0 if mbg else 0.0)
    A, C = r + x, a + B - 1
    z = t / (al + T + t)
    with np.errstate(all="ignore"):
        p_direct = np.exp(A * np.log1p(-z)) * hyp2f1(A, B, C, z)
        p_euler = (1 - z) ** (a - 1) * hyp2f1(C - A, a - 1, C, z)
        e_alive = C / (a - 1) * (1 - p_direct)
        e_euler = C / (a - 1) * (1 - p_euler)
        trusted = np.abs(e_alive - e_euler) <= 1e-9 * np.abs(e_alive) + 1e-300
        lo = np.log(a) - np.log(B - 1) + A * (np.log(al + T) - np.log(al + tx))
        if not mbg:
            lo = np.where(x > 0, lo, -np.inf)
        pa = expit(-lo)
        out = {
            "expected_orders": e_alive * pa,
            "p_alive": pa,
            "p_no_order": 1 - pa + pa * ((al + T) / (al + T + t)) ** A,
            "expected_days_to_next_order": (al + T) / A,
            "value": e_alive * pa * GG["p"] * (GG["gamma"] + x * np.nan_to_num(zbar)) / (GG["p"] * x + GG["q"] - 1),
        }
        if mbg:
            out["decisive_days_left"] = ref_lapse_age(p, x, tx, theta) - T
    return out, trusted


def ref_lapse_age(p: dict, x: np.ndarray, tx: np.ndarray, theta: np.ndarray) -> np.ndarray:
    """MBG/NBD: the age where P(any order in the next LAPSE_WINDOW_DAYS) = P(alive) (1 - ((al+T)/(al+T+W))^A)
    falls below theta, by 80 bisections in float64 (the graph does 32)."""
    r, al, a, b = p["r"], p["alpha"], p["a"], p["b"]
    A = r + x
    lo, hi = np.zeros_like(x), np.full_like(x, LAPSE_CAP_DAYS)
    for _ in range(80):
        mid = (lo + hi) / 2
        aT = al + tx + mid
        alive = expit(-(np.log(a) - np.log(b + x) + A * (np.log(aT) - np.log(al + tx))))
        below = alive * -np.expm1(-A * np.log1p(LAPSE_WINDOW_DAYS / aT)) < theta
        hi, lo = np.where(below, mid, hi), np.where(below, lo, mid)
    return tx + hi


def draws(seed: int, n: int = 4000) -> np.ndarray:
    """Rows over the supported ranges: x 0..300, T <= 3650, t <= 1825, plus small-x/young/short-t corners."""
    rng = np.random.default_rng(seed)
    x = rng.integers(0, 301, n).astype(float)
    x[: n // 4] = rng.integers(0, 5, n // 4)
    T = rng.uniform(0, 3650, n)
    T[n // 4 : n // 2] = rng.uniform(0, 30, n // 4)
    tx = np.where(x > 0, rng.uniform(0, 1, n) * T, 0.0)
    t = rng.uniform(0, 1825, n)
    t[: n // 8] = rng.uniform(0, 1, n // 8)
    zbar = np.where(x > 0, rng.uniform(1, 200, n), np.nan)
    theta = rng.uniform(0.05, 0.95, n)
    return np.stack([x, tx, T, zbar, t, theta], axis=1).astype(np.float32)


def params(seed: int) -> dict[str, float]:
    rng = np.random.default_rng(seed)
    lu = lambda lo, hi: float(np.exp(rng.uniform(np.log(lo), np.log(hi))))  # noqa: E731
    return {"r": lu(0.05, 5), "alpha": lu(0.5, 500), "a": lu(0.1, 20), "b": lu(0.1, 20)}


def assert_close(got: dict, ref: dict, mask: np.ndarray, rtol: float = RTOL) -> None:
    for name, want in ref.items():
        m = mask & np.isfinite(want) & (np.abs(want) > 1e-30)
        # the decisive date is a bisection to 1e-5 days: its error is absolute, near 0 too
        floor = 1e-3 if name == "decisive_days_left" else 0.0
        rel = np.maximum(np.abs(got[name][m] - want[m]) - floor, 0.0) / np.abs(want[m])
        assert rel.max(initial=0) <= rtol, f"{name}: max relative error {rel.max():.3g}"


@pytest.mark.parametrize("model", ["BG/NBD", "MBG/NBD"])
@pytest.mark.parametrize("seed", range(6))
def test_bg_matches_reference(model: str, seed: int) -> None:
    p = params(seed)
    X = draws(100 + seed)
    got = run(bgnbd_graph(p, model, gg=GG), X)
    ref, trusted = ref_bg(p, X, model == "MBG/NBD")
    if model == "BG/NBD":
        assert "decisive_days_left" not in got
    # p_alive below float32's range flushes; compare where it is representable
    assert_close(got, ref, trusted & (ref["p_alive"] > 1e-30))
    assert trusted.mean() > 0.9


@pytest.mark.parametrize("model", ["BG/NBD", "MBG/NBD"])
def test_bg_corners(model: str) -> None:
    """x = 0, t = 0, huge T, a near 1, tiny/huge alpha, NaN zbar; CDNOW-like parameters."""
    rows = []
    for x in (0, 1, 300):
        for T in (0.0, 1.0, 3650.0):
            for t in (0.0, 1.0, 90.0, 1825.0):
                tx = 0.0 if x == 0 else T * 0.9
                rows.append([x, tx, T, np.nan if x == 0 else 42.0, t, 0.5])
    X = np.array(rows, dtype=np.float32)
    for p in (
        {"r": 0.243, "alpha": 4.414 * 7, "a": 0.793, "b": 2.426},
        {"r": 0.05, "alpha": 0.5, "a": 20.0, "b": 0.1},
        {"r": 5.0, "alpha": 500.0, "a": 0.1, "b": 20.0},
        {"r": 1.0, "alpha": 10.0, "a": 1.0 + 1e-7, "b": 1.0},
    ):
        got = run(bgnbd_graph(p, model, gg=GG), X)
        ref, trusted = ref_bg(p, X, model == "MBG/NBD")
        assert all(np.isfinite(v).all() for v in got.values())
        t0 = X[:, 4] == 0
        assert np.all(got["expected_orders"][t0] == 0) and np.allclose(got["p_no_order"][t0], 1)
        assert_close(got, ref, trusted & (ref["p_alive"] > 1e-30) & ~(np.abs(p["a"] - 1) < 1e-6))
        pop = GG["p"] * GG["gamma"] / (GG["q"] - 1)
        x0 = (X[:, 0] == 0) & ~t0
        np.testing.assert_allclose(got["value"][x0] / got["expected_orders"][x0], pop, rtol=1e-6)


def test_a_equal_one_is_finite() -> None:
    """At a = 1 the closed form is 0/0; the quadrature has no singularity there."""
    X = draws(7, 200)
    lo = run(bgnbd_graph({"r": 1.0, "alpha": 10.0, "a": 1 - 1e-4, "b": 2.0}), X)["expected_orders"]
    mid = run(bgnbd_graph({"r": 1.0, "alpha": 10.0, "a": 1.0, "b": 2.0}), X)["expected_orders"]
    hi = run(bgnbd_graph({"r": 1.0, "alpha": 10.0, "a": 1 + 1e-4, "b": 2.0}), X)["expected_orders"]
    assert np.isfinite(mid).all()
    m = mid > 1e-30
    assert np.all(np.abs(mid[m] - (lo[m] + hi[m]) / 2) <= 1e-4 * mid[m])


def ref_pareto_alive(p: dict, x: float, tx: float, T: float) -> float:
    """Fader & Hardie (2005) P(alive) with the 2F1 of A0, both cases of alpha vs beta."""
    r, al, s, be = p["r"], p["alpha"], p["s"], p["beta"]
    rsx = r + s + x
    if al >= be:
        f = lambda y: hyp2f1(rsx, s + 1, rsx + 1, (al - be) / (al + y)) / (al + y) ** rsx  # noqa: E731
    else:
        f = lambda y: hyp2f1(rsx, r + x, rsx + 1, (be - al) / (be + y)) / (be + y) ** rsx  # noqa: E731
    a0 = f(tx) - f(T)
    return 1 / (1 + s / rsx * (al + T) ** (r + x) * (be + T) ** s * a0)


def test_pareto_matches_reference() -> None:
    rng = np.random.default_rng(3)
    for p in ({"r": 0.55, "alpha": 10.58 * 7, "s": 0.61, "beta": 11.67 * 7}, {"r": 2.0, "alpha": 5.0, "s": 1.5, "beta": 300.0},
              {"r": 0.3, "alpha": 400.0, "s": 0.2, "beta": 2.0}):  # fmt: skip
        n = 60
        x = rng.integers(0, 60, n).astype(float)
        T = rng.uniform(1, 3650, n)
        tx = np.where(x > 0, rng.uniform(0, 1, n) * T, 0.0)
        t = rng.uniform(0, 1825, n)
        X = np.stack([x, tx, T, np.full(n, np.nan), t, np.full(n, 0.5)], axis=1).astype(np.float32)
        got = run(pareto_nbd_graph(p, gg=GG), X)
        xd, txd, Td, td = (X[:, i].astype(np.float64) for i in (0, 1, 2, 4))
        pa = np.array([ref_pareto_alive(p, *row) for row in zip(xd, txd, Td, strict=True)])
        r, al, s, be = p["r"], p["alpha"], p["s"], p["beta"]
        e = (r + xd) * (be + Td) / ((al + Td) * (s - 1)) * (1 - ((be + Td) / (be + Td + td)) ** (s - 1)) * pa
        ok = np.isfinite(pa) & (pa > 1e-30)
        np.testing.assert_allclose(got["p_alive"][ok], pa[ok], rtol=1e-5)
        np.testing.assert_allclose(got["expected_orders"][ok], e[ok], rtol=1e-5)


def test_pareto_integral_form_matches_quad() -> None:
    """The graph's death-time integral against scipy.integrate.quad, where A0's 2F1 has z near 1."""
    p = {"r": 0.3, "alpha": 500.0, "s": 0.2, "beta": 0.5}
    X = np.array([[0, 0, 3650, np.nan, 90, 0.5], [3, 10, 2000, 5, 90, 0.5], [300, 3000, 3650, 5, 90, 0.5]], np.float32)
    got = run(pareto_nbd_graph(p), X)["p_alive"]
    for row, g in zip(X.astype(np.float64), got, strict=True):
        x, tx, T = row[:3]
        A = p["r"] + x
        f = lambda tau: (p["s"] * np.exp(A * np.log((p["alpha"] + T) / (p["alpha"] + tau))  # noqa: E731
                         + p["s"] * np.log((p["beta"] + T) / (p["beta"] + tau))) / (p["beta"] + tau))  # fmt: skip
        val, _ = integrate.quad(f, tx, T, limit=500, epsabs=0, epsrel=1e-12)
        assert abs(g - 1 / (1 + val)) <= 1e-6 * (1 / (1 + val))


@pytest.mark.parametrize(
    "build",
    [
        lambda: bgnbd_graph(params(0), "BG/NBD", gg=GG),
        lambda: bgnbd_graph(params(1), "MBG/NBD"),
        lambda: pareto_nbd_graph({"r": 0.55, "alpha": 74.0, "s": 0.61, "beta": 81.7}, gg=GG),
    ],
)
def test_graph_is_valid_and_cuda_friendly(build) -> None:
    model = build()
    onnx.checker.check_model(model, full_check=True)
    assert [i.name for i in model.graph.input] == ["features"]
    ops = {n.op_type for n in model.graph.node}
    assert ops <= ORT_CUDA_OPS, ops - ORT_CUDA_OPS
    assert not ops & {"Loop", "If", "Scan", "TreeEnsembleRegressor", "TreeEnsembleClassifier"}
    assert all(n.domain in ("", "ai.onnx") for n in model.graph.node)
    assert all(o.type.tensor_type.elem_type == onnx.TensorProto.FLOAT for o in model.graph.output)


def test_rejects_bad_input() -> None:
    with pytest.raises(ValueError, match="model must be"):
        bgnbd_graph(params(0), "NBD")
    with pytest.raises(ValueError, match="alpha"):
        bgnbd_graph({"r": 1.0, "alpha": -1.0, "a": 1.0, "b": 1.0})
    with pytest.raises(ValueError, match="feature_order"):
        bgnbd_graph(params(0), feature_order=("a", "b"))
    with pytest.raises(ValueError, match="q="):
        bgnbd_graph(params(0), gg={"p": 1.0, "q": 0.5, "gamma": 1.0})


@pytest.mark.gpu
def test_runs_on_cuda() -> None:
    if "CUDAExecutionProvider" not in ort.get_available_providers():
        pytest.skip("no CUDAExecutionProvider")
    X = draws(11, 2000)
    model = bgnbd_graph(params(2), "MBG/NBD", gg=GG)
    sess = ort.InferenceSession(model.SerializeToString(), providers=["CUDAExecutionProvider"])
    assert sess.get_providers()[0] == "CUDAExecutionProvider"
    cpu = run(model, X)
    gpu = run(model, X, ("CUDAExecutionProvider",))
    for name in cpu:
        np.testing.assert_allclose(gpu[name], cpu[name], rtol=1e-5, atol=1e-30)
