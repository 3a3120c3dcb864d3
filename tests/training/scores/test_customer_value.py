"""clv and churn: model choice on the holdout, and the served graphs vs the fitted models."""

from __future__ import annotations

from datetime import UTC, datetime

import numpy as np
import onnxruntime as ort
import pyarrow as pa
import pytest

from scorecast.kernels import FeatureFrame
from scorecast.training.clv.graph import LAPSE_WINDOW_DAYS
from scorecast.training.scores.customer_value import CANDIDATES, CHURN_FEATURES, CLV_FEATURES, MIN_CUSTOMERS, fit_customer_value
from scorecast.training.simulate.products import ProductConfig
from scorecast.training.simulate.retail import SimulationConfig, simulate_base

AS_OF = datetime(2026, 1, 1, tzinfo=UTC)
TIMES = {"version": "1", "trained_at": "2026-01-02T00:00:00+00:00", "data_as_of": AS_OF.isoformat()}


@pytest.fixture(scope="module")
def fitted():  # noqa: ANN201
    sim = simulate_base(SimulationConfig(n_contacts=8_000, seed=5))
    tables = {"contacts": sim.contacts, "orders": sim.orders}
    return tables, fit_customer_value(tables, AS_OF)


def _run(model, x: np.ndarray) -> dict[str, np.ndarray]:  # noqa: ANN001
    session = ort.InferenceSession(model.SerializeToString())
    names = [o.name for o in session.get_outputs()]
    return dict(zip(names, session.run(names, {"features": x}), strict=True))


@pytest.mark.slow
def test_chosen_model_beats_the_naive_baseline(fitted) -> None:  # noqa: ANN001
    """The model with the lowest holdout MAE is chosen, and it beats past-rate x horizon."""
    _, models = fitted
    assert models.chosen in CANDIDATES
    maes = {name: models.metrics[f"{name}:mae"] for name in CANDIDATES}
    assert models.chosen == min(maes, key=maes.get)
    assert models.metrics[f"{models.chosen}:mae"] < models.metrics["naive:mae"]


@pytest.mark.slow
def test_clv_graph_equals_the_fitted_models(fitted) -> None:  # noqa: ANN001
    """Served value, expected orders and P(alive) equal the float64 model methods (1e-5)."""
    tables, models = fitted
    frame = FeatureFrame(tables, int(AS_OF.timestamp() * 1e6))
    data = frame.matrix([f for f in CLV_FEATURES if not f.startswith("request:")])
    x = np.column_stack([data[:, :4], np.full(len(data), 365.0), np.full(len(data), 0.5), data[:, 4]]).astype(np.float32)
    out = _run(models.clv_onnx(**TIMES), x)
    buyers = np.isfinite(data[:, 2])
    f, tx, T, zbar = (data[buyers, i].astype(np.float64) for i in range(4))
    m = models.purchase_model
    np.testing.assert_allclose(out["p_alive"][buyers, 0], m.p_alive(f, tx, T), rtol=1e-5, atol=1e-7)
    expected = m.conditional_expected_purchases(365.0, f, tx, T)
    np.testing.assert_allclose(out["expected_orders"][buyers, 0], expected, rtol=1e-5, atol=1e-7)
    spenders = f >= 1
    value = expected[spenders] * models.spend_model.conditional_expected_average_value(f[spenders], zbar[spenders])
    np.testing.assert_allclose(out["value"][buyers, 0][spenders], value, rtol=1e-5, atol=1e-5)
    assert np.isnan(out["p_alive"][~buyers]).all()  # prospects: no value (served as nulls)


@pytest.mark.slow
def test_churn_decisive_moment(fitted) -> None:  # noqa: ANN001
    """days_left = T*(threshold) - T, the lapse age of MBG/NBD; risk bands follow P(no order in 90 days)."""
    tables, models = fitted
    frame = FeatureFrame(tables, int(AS_OF.timestamp() * 1e6))
    data = frame.matrix(CHURN_FEATURES[:4])
    for threshold in (0.5, 0.2):
        x = np.column_stack([data, np.full(len(data), threshold)]).astype(np.float32)
        out = _run(models.churn_onnx(**TIMES), x)
        buyers = np.isfinite(data[:, 2])
        f, tx, T = (data[buyers, i].astype(np.float64) for i in range(3))
        expected = models.churn_model.lapse_T(f, tx, threshold, LAPSE_WINDOW_DAYS) - T
        np.testing.assert_allclose(out["decisive_days_left"][buyers, 0], expected, rtol=1e-5, atol=1e-3)
    p = out["p_no_order"][:, 0]
    bands = out["risk_band"][:, 0]
    assert (bands[buyers] == (p[buyers] > 1 / 3).astype(int) + (p[buyers] > 2 / 3).astype(int)).all()
    assert (bands[~buyers] == -1).all()  # served as null


@pytest.mark.slow
def test_churn_threshold_from_the_projection(fitted) -> None:  # noqa: ANN001
    """The simulator's base (BG/NBD truth: one-time buyers never drop out, which MBG/NBD cannot
    see) reaches no projected 90 %: the threshold is the largest within one standard error of
    the best projection, over a year (the history is three), and MBG/NBD under-predicts the
    orders after a date on the inner holdout."""
    _, models = fitted
    m = models.metrics
    assert m["decisive:horizon_days"] == m["decisive:window_days"] == 365
    assert models.churn_threshold == m["decisive:threshold"] == pytest.approx(0.06)
    assert 0.7 < m["decisive:projected_precision"] < 0.9
    assert m["decisive:return_factor_one_time"] > 1 and m["decisive:return_factor_repeat"] > 1


def test_thin_base_is_refused() -> None:
    """Too few customers is refused with the threshold in the message."""
    orders = pa.table(
        {
            "contact_id": np.arange(100),
            "ts": pa.array(np.full(100, 1_700_000_000_000_000), pa.timestamp("us", tz="UTC")),
            "amount": np.ones(100),
        }
    )
    with pytest.raises(ValueError, match=f"need at least {MIN_CUSTOMERS}"):
        fit_customer_value({"orders": orders}, AS_OF)


@pytest.mark.slow
def test_fits_recover_the_simulators_parameters() -> None:
    """On a base drawn from BG/NBD + Gamma-Gamma, the fits recover the generating parameters
    (within 15 %: 20k contacts leave a few % of sampling error, the rest is the day grid)."""
    from scorecast.training.clv.bg_nbd import BetaGeoModel
    from scorecast.training.clv.gamma_gamma import GammaGammaModel

    config = SimulationConfig(n_contacts=20_000, seed=9, products=ProductConfig(n_campaigns=0))  # campaigns perturb BG/NBD
    sim = simulate_base(config)
    frame = FeatureFrame({"orders": sim.orders}, int(config.end.timestamp() * 1e6))
    s = frame.matrix(["repeat_frequency", "repeat_recency_days", "age_days", "repeat_monetary"]).astype(np.float64)
    bg = BetaGeoModel().fit(s[:, 0], s[:, 1], s[:, 2])
    for name in ("r", "alpha", "a", "b"):
        assert bg.params_[name] == pytest.approx(getattr(config, name), rel=0.15), name
    spenders = (s[:, 0] >= 1) & (s[:, 3] > 0)
    gg = GammaGammaModel().fit(s[spenders, 0], s[spenders, 3])
    for name in ("p", "q", "gamma"):
        assert gg.params_[name] == pytest.approx(getattr(config, name), rel=0.15), name


@pytest.mark.slow
@pytest.mark.parametrize("chosen", ["BG/NBD", "MBG/NBD", "Pareto/NBD"])
def test_every_candidate_can_be_served(fitted, chosen: str) -> None:  # noqa: ANN001
    """Whichever model the holdout picks, its clv graph builds and equals its float64 methods."""
    from dataclasses import replace

    tables, models = fitted
    frame = FeatureFrame(tables, int(AS_OF.timestamp() * 1e6))
    data = frame.matrix([f for f in CLV_FEATURES if not f.startswith("request:")]).astype(np.float64)
    buyers = np.flatnonzero(np.isfinite(data[:, 2]))
    model = CANDIDATES[chosen]().fit(data[buyers, 0], data[buyers, 1], data[buyers, 2])
    served = replace(models, chosen=chosen, purchase_model=model)
    x = np.column_stack([data[:, :4], np.full(len(data), 365.0), np.full(len(data), 0.5), data[:, 4]]).astype(np.float32)
    out = _run(served.clv_onnx(**TIMES), x)
    f, tx, T = (data[buyers, i] for i in range(3))
    np.testing.assert_allclose(out["p_alive"][buyers, 0], model.p_alive(f, tx, T), rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(out["expected_orders"][buyers, 0], model.conditional_expected_purchases(365.0, f, tx, T), rtol=1e-5, atol=1e-7)


@pytest.mark.slow
def test_holdout_views_for_the_report(fitted) -> None:  # noqa: ANN001
    """By-frequency means and the weekly curves add up to the holdout MAE's own totals."""
    _, models = fitted
    views = models.report
    rows = views["by_frequency"]
    assert [r["x"] for r in rows] == sorted(r["x"] for r in rows) and rows[0]["x"] == 0
    weekly = views["weekly"]
    assert len(weekly["days"]) == len(weekly["model"]) == len(weekly["naive"]) == len(weekly["actual"])
    assert weekly["days"][-1] == models.holdout_days
    assert np.all(np.diff(weekly["actual"]) >= 0) and np.all(np.diff(weekly["model"]) >= 0)
    total_actual = sum(r["actual"] * r["count"] for r in rows)
    total_model = sum(r["model"] * r["count"] for r in rows)
    assert weekly["actual"][-1] == pytest.approx(total_actual, rel=0.02)
    assert weekly["model"][-1] == pytest.approx(total_model, rel=1e-6)
    # the chosen model's total is closer to the truth than the naive rate's
    assert abs(weekly["model"][-1] - weekly["actual"][-1]) < abs(weekly["naive"][-1] - weekly["actual"][-1])
    assert sum(views["p_alive_histogram"]) > MIN_CUSTOMERS
