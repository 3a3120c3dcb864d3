"""The lead score: scorecard vs its ONNX graph, reasons that reproduce the score, rules as
configured, data sufficiency, and (slow) accuracy against the simulator's Bayes-optimal AUC."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

import numpy as np
import onnxruntime as ort
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pytest

from scorecast.kernels import FeatureFrame
from scorecast.training.evaluation import roc_auc
from scorecast.training.lead.rules import parse_rules
from scorecast.training.lead.scorecard import MIN_CONVERSIONS, MIN_LEADS, LeadModel, base_vocabulary, fit_lead
from scorecast.training.simulate.b2b import B2BConfig, simulate_b2b

RULES = {
    "rules": [
        {"name": "demo request", "points": 30, "interaction": "demo_request", "days": 21},
        {"name": "enterprise", "points": 10, "attribute": "employees", "range": [200, None]},
        {"name": "target industry", "points": 5, "attribute": "industry", "in": ["software", "finance"]},
        {"name": "competitor", "points": -50, "attribute": "email_domain", "equals": "competitor"},
        {"name": "careers visitor", "points": -20, "web_page": "/careers", "days": 90, "min_count": 2},
    ],
    "filters": [
        {"attribute": "country", "exclude": ["RU", "IR"]},
        {"attribute": "ip_country", "include": ["US", "GB", "DE", "FR", "NL", "ES"]},
    ],
    "weights": {"industry": 2},
}


def _tables(base) -> dict[str, pa.Table]:  # noqa: ANN001
    return {"contacts": base.contacts, "interactions": base.interactions, "web_events": base.web_events}


def _us(t) -> int:  # noqa: ANN001
    return int(t.timestamp() * 1_000_000)


@pytest.fixture(scope="module")
def small():  # noqa: ANN201
    base = simulate_b2b(B2BConfig(n_contacts=3000, seed=11))
    tables = _tables(base)
    vocab = base_vocabulary(tables)
    rules = parse_rules(RULES, vocab.attributes, vocab.kinds, vocab.pages)
    fitted = fit_lead(tables, base.config.end, rules, compare_hgb=False)
    onnx_model = fitted.to_onnx(version="1", trained_at="2026-01-01T00:00:00+00:00", data_as_of=base.config.end.isoformat())
    session = ort.InferenceSession(onnx_model.SerializeToString(), providers=["CPUExecutionProvider"])
    X = FeatureFrame(tables, _us(base.config.end)).matrix(fitted.all_features)
    floats, ints = session.run(["lead_float", "lead_int"], {"features": X})
    return base, fitted, X, floats, ints


def _cols(fitted, floats, ints) -> dict[str, np.ndarray]:  # noqa: ANN001
    meta = fitted.model.metadata(
        version="1", trained_at="", data_as_of="", all_features=fitted.all_features, rules=fitted.rules, metrics={}, params={}
    )
    return {o.name: (floats if o.onnx_output == "lead_float" else ints)[:, o.column] for o in meta.outputs}


def test_onnx_matches_the_numpy_scorecard(small) -> None:  # noqa: ANN001
    _, fitted, X, floats, ints = small
    model = fitted.model
    cols = _cols(fitted, floats, ints)
    Xm = X[:, : len(model.features)]
    logit = model.logit(Xm)
    np.testing.assert_allclose(cols["logit"], logit, atol=2e-5)
    np.testing.assert_allclose(cols["probability"], 1 / (1 + np.exp(-logit)), rtol=1e-4, atol=1e-6)
    np.testing.assert_array_equal(cols["score"], model.score_of(cols["logit"]))
    assert cols["score"].min() >= 1 and cols["score"].max() <= 99
    np.testing.assert_array_equal(cols["tier"], model.tier_of(cols["score"]))


def test_reasons_reproduce_each_score(small) -> None:  # noqa: ANN001
    """intercept + shown reasons + rest == logit; the score follows from it; the reasons are
    the true top factors of the full contribution vector."""
    _, fitted, X, floats, ints = small
    model = fitted.model
    cols = _cols(fitted, floats, ints)
    shown = np.zeros(len(X))
    for side in ("pos", "neg"):
        for i in (1, 2, 3):
            values = cols[f"{side}_{i}_value"]
            codes = cols[f"{side}_{i}"]
            assert ((codes == 0) == np.isnan(values)).all()
            assert (values[~np.isnan(values)] > 0).all() if side == "pos" else (values[~np.isnan(values)] < 0).all()
            shown += np.nan_to_num(values)
    rebuilt = model.intercept_ + shown + cols["reasons_rest"]
    np.testing.assert_allclose(rebuilt, cols["logit"], atol=1e-4)
    assert (model.score_of(rebuilt.astype(np.float32)) == cols["score"]).mean() > 0.999
    contributions = model.contributions(X[:, : len(model.features)])
    np.testing.assert_allclose(model.intercept_ + contributions.astype(np.float64).sum(axis=1), cols["logit"], atol=2e-5)
    order = np.argsort(-contributions, axis=1, kind="stable")
    for i in (1, 2, 3):
        top = contributions[np.arange(len(X)), order[:, i - 1]]
        expected_code = np.where(top > 0, order[:, i - 1] + 1, 0)
        ties = np.isclose(top, contributions[np.arange(len(X)), order[:, min(i, contributions.shape[1] - 1)]])
        assert (cols[f"pos_{i}"][~ties] == expected_code[~ties]).all()
        np.testing.assert_allclose(np.nan_to_num(cols[f"pos_{i}_value"]), np.where(top > 0, top, 0), atol=1e-6)


def test_rules_fire_as_configured_from_the_raw_tables(small) -> None:  # noqa: ANN001
    """Rule bits, points and filters recomputed with pandas straight from the base's tables."""
    base, fitted, X, floats, ints = small
    cols = _cols(fitted, floats, ints)
    contacts = base.contacts.to_pandas().set_index("contact_id")
    rows = FeatureFrame(_tables(base), 0).contact_ids.to_pylist()
    contacts = contacts.loc[rows]
    end = pd.Timestamp(base.config.end)
    inter = base.interactions.to_pandas()
    web = base.web_events.to_pandas()
    demo = inter[(inter["kind"] == "demo_request") & (inter["ts"] > end - timedelta(days=21)) & (inter["ts"] <= end)]
    careers = web[(web["page"] == "/careers") & (web["ts"] > end - timedelta(days=90)) & (web["ts"] <= end)]
    fired = np.stack(
        [
            contacts.index.isin(demo["contact_id"]),
            contacts["employees"].to_numpy() >= 200,
            contacts["industry"].isin(["software", "finance"]).to_numpy(),
            (contacts["email_domain"] == "competitor").to_numpy(),
            contacts.index.map(careers["contact_id"].value_counts()).fillna(0).to_numpy() >= 2,
        ],
        axis=1,
    )
    bits = (fired * (1 << np.arange(5))).sum(axis=1)
    np.testing.assert_array_equal(cols["rules_fired"], bits)
    excluded = (
        contacts["country"].isin(["RU", "IR"]).to_numpy()
        | ~contacts["ip_country"].isin(["US", "GB", "DE", "FR", "NL", "ES"]).to_numpy()
    )
    np.testing.assert_array_equal(cols["rule_excluded"], excluded)
    points = np.where(excluded, 0, fired @ np.array([30, 10, 10, -50, -20]))
    np.testing.assert_array_equal(cols["rule_points"], points)
    assert fired.any(axis=0).all() and excluded.any() and (~excluded).any()  # every rule and filter was exercised


def test_metadata_carries_the_validation_report(small) -> None:  # noqa: ANN001
    _, fitted, _, _, _ = small
    meta = fitted.model.metadata(
        version="1",
        trained_at="",
        data_as_of="",
        all_features=fitted.all_features,
        rules=fitted.rules,
        metrics=fitted.metrics,
        params={"validation": fitted.validation},
    )
    for key in ("auc", "lift10", "ece", "tier_rate:low", "tier_rate:high", "tier_ratio:high_low", "auc:scorecard"):
        assert np.isfinite(meta.metrics[key]), key
    assert len(fitted.validation["reliability"]) == 10 and [t["tier"] for t in fitted.validation["tiers"]] == [
        "low",
        "medium",
        "high",
    ]
    assert sum(t["count"] for t in fitted.validation["tiers"]) == meta.metrics["holdout_leads"]
    assert {o.name for o in meta.outputs} >= {
        "score",
        "tier",
        "probability",
        "pos_1",
        "neg_3",
        "reasons_rest",
        "rules_fired",
        "rule_points",
    }


def test_tier_thresholds_are_configurable() -> None:
    model = LeadModel(["attr:x"], tier_thresholds=(50, 90))
    assert model.tier_of(np.array([1, 49, 50, 89, 90, 99])).tolist() == [0, 0, 1, 1, 2, 2]
    with pytest.raises(ValueError, match="tier_thresholds"):
        LeadModel(["attr:x"], tier_thresholds=(70, 30))


def test_too_few_leads_is_refused() -> None:
    base = simulate_b2b(B2BConfig(n_contacts=MIN_LEADS - 100, seed=1))
    with pytest.raises(ValueError, match=f"need at least {MIN_LEADS}"):
        fit_lead(_tables(base), base.config.end)


def test_too_few_conversions_is_refused(small) -> None:  # noqa: ANN001
    base = small[0]
    inter = base.interactions
    conversions = pc.equal(inter["kind"], "conversion")
    keep = pc.or_(pc.invert(conversions), pc.less(pa.array(np.random.default_rng(0).random(inter.num_rows)), 0.2))
    thinned = replace(base, interactions=inter.filter(keep))
    with pytest.raises(ValueError, match=f"need at least {MIN_CONVERSIONS} conversions"):
        fit_lead(_tables(thinned), base.config.end)


def test_no_interactions_is_refused(small) -> None:  # noqa: ANN001
    with pytest.raises(ValueError, match="interactions"):
        fit_lead({"contacts": small[0].contacts}, small[0].config.end)


@pytest.mark.slow
def test_accuracy_against_the_bayes_optimal_auc() -> None:
    """20,000 simulated leads: holdout AUC within 0.03 of the Bayes-optimal AUC on the same
    leads, calibrated, high tier converting >= 3x the low tier, HGB compared."""
    base = simulate_b2b(B2BConfig(n_contacts=20_000, seed=0))
    fitted = fit_lead(_tables(base), base.config.end)
    truth = base.truth.to_pandas().set_index("contact_id").loc[fitted.holdout_contact_ids.to_pylist()]
    np.testing.assert_array_equal(truth["converted"].to_numpy(), fitted.holdout_labels)
    bayes = roc_auc(truth["converted"].to_numpy(), truth["p_true"].to_numpy())
    assert bayes == base.bayes_auc_holdout  # what truth/metadata.json states
    m = fitted.metrics
    print(
        f"lead: holdout AUC {m['auc']:.4f}, Bayes {bayes:.4f}, HGB {m['auc:hgb']:.4f}, ECE {m['ece']:.4f}, tier ratio {m['tier_ratio:high_low']:.1f}"
    )
    assert bayes - m["auc"] < 0.03
    assert m["ece"] < 0.02
    assert m["tier_ratio:high_low"] >= 3
    assert np.isfinite(m["auc:hgb"])
    # calibration in the large: mean predicted vs observed
    assert abs(m["mean_probability"] - m["holdout_conversion_rate"]) < 0.01
