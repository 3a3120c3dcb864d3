"""The e-mail scores (engagement, pressure, interests) on a simulated base: ONNX parity with the
NumPy models, and each score against the simulator's truth and a simple baseline."""

from __future__ import annotations

import json
from collections import Counter
from datetime import datetime
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pyarrow.parquet as pq
import pytest

from scorecast.kernels import FeatureFrame
from scorecast.metadata import METADATA_KEY, ModelMetadata
from scorecast.training.scores import engagement, interests, pressure
from scorecast.training.scores.interests import keyword_vocabulary
from scorecast.training.evaluation import expected_calibration_error, roc_auc
from scorecast.training.simulate.retail import SimulationConfig, simulate_base, write_base
from scorecast.training.train import train

pytestmark = pytest.mark.slow
EMAIL = ("engagement", "pressure", "interests")


@pytest.fixture(scope="module")
def base(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("email") / "base"
    write_base(simulate_base(SimulationConfig(n_contacts=30_000, seed=11)), out)
    return out


@pytest.fixture(scope="module")
def models(base: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("models")
    train(base, out, scores=list(EMAIL))
    return out


@pytest.fixture(scope="module")
def scored(base: Path, models: Path) -> dict[str, tuple[ModelMetadata, dict[str, np.ndarray], np.ndarray]]:
    """Each model run over the whole base as of its end: (metadata, ONNX outputs, features)."""
    tables = {n: pq.read_table(base / f"{n}.parquet") for n in ("contacts", "email_events", "campaigns")}
    frame = FeatureFrame(tables, _as_of_us(base))
    out = {}
    for score in EMAIL:
        session = ort.InferenceSession(str(models / score / "1.onnx"))
        meta = ModelMetadata.from_json(session.get_modelmeta().custom_metadata_map[METADATA_KEY])
        X = frame.matrix(list(meta.features), meta.params.get("feature_params"))
        names = [o.name for o in session.get_outputs()]
        out[score] = (meta, dict(zip(names, session.run(None, {"features": X}), strict=True)), X)
    return out


def _as_of(base: Path) -> datetime:
    return datetime.fromisoformat(json.loads((base / "base.json").read_text())["as_of"])


def _as_of_us(base: Path) -> int:
    return int(_as_of(base).timestamp() * 1_000_000)


def _truth(base: Path):  # noqa: ANN202
    return pq.read_table(base / "truth" / "email_contacts.parquet").to_pandas()


def test_onnx_matches_numpy_models(base: Path) -> None:
    tables = {n: pq.read_table(base / f"{n}.parquet") for n in ("contacts", "email_events", "campaigns")}
    as_of = _as_of(base)
    frame = FeatureFrame(tables, _as_of_us(base))
    for score in EMAIL:
        model = {
            "engagement": lambda: engagement.fit_from_tables(tables, as_of),
            "pressure": lambda: pressure.fit_from_tables(tables, as_of),
            "interests": lambda: interests.fit_from_tables(tables, as_of, k=4),
        }[score]()
        params = model.metadata(version="1", trained_at="t", data_as_of="d").params.get("feature_params")
        X = frame.matrix(list(model.features), params)
        session = ort.InferenceSession(model.to_onnx(version="1", trained_at="t", data_as_of="d").SerializeToString())
        for got, want in zip(session.run(None, {"features": X}), model.predict(X, list(model.features)), strict=True):
            assert got.shape == want.shape and got.dtype.kind == want.dtype.kind, score
            if got.dtype.kind == "i":
                np.testing.assert_array_equal(got, want, err_msg=score)
            else:
                np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6, equal_nan=True, err_msg=score)
    assert session.get_outputs()[0].shape[1] == 4  # interests: k = 4 columns


def test_engagement_beats_recency_and_is_calibrated(base: Path, scored: dict) -> None:
    """P(open), P(click) as of the end vs whether the contact reacted to its next send (truth)."""
    meta, out, X = scored["engagement"]
    truth = _truth(base)
    has = truth.opened_next.notna().to_numpy()
    for k, what, recency_col in ((0, "open", 0), (1, "click", 2)):
        y = truth[f"{what}ed_next"].to_numpy()[has]
        p = out["probabilities"][has, k]
        baseline = -np.nan_to_num(X[has, recency_col], nan=1e9)
        auc, base_auc = roc_auc(y, p), roc_auc(y, baseline)
        assert auc > base_auc + 0.02, (what, auc, base_auc)
        assert expected_calibration_error(y, p) < 0.02, what
        assert abs(p.mean() - y.mean()) < 0.015, what
    # holdout metrics recorded in the metadata tell the same story
    assert meta.metrics["auc_open"] > meta.metrics["baseline_auc_open"]
    scores = out["scores"]
    assert set(np.unique(scores[:, 0])) <= set(range(6)) and (scores[:, 1] > 0).mean() == pytest.approx(
        meta.metrics["ever_opened"], abs=0.05
    )


def test_interests_recover_the_true_top_keyword(base: Path, scored: dict) -> None:
    meta, out, X = scored["interests"]
    truth = _truth(base)
    keywords = meta.params["keywords"]
    top = out["interests"][:, 0]
    predicted = np.array([keywords[i] if i >= 0 else "" for i in top])
    right = predicted == truth.top_keyword.to_numpy()
    frame_clicks = scored["engagement"][2][:, list(scored["engagement"][0].features).index("email_clicks")]
    popular = truth.top_keyword.value_counts().index[0]
    baseline = (truth.top_keyword.to_numpy() == popular)[frame_clicks >= 1].mean()
    share = right[frame_clicks >= 1].mean()
    assert share > 0.35 and share > 2.5 * baseline, (share, baseline)
    # weights come sorted, null (-1) exactly where the weight is 0
    assert (np.diff(out["weights"], axis=1) <= 0).all()
    assert ((out["interests"] < 0) == (out["weights"] <= 0)).all()


def test_pressure_gap_and_fatigue_match_the_simulator(base: Path, scored: dict) -> None:
    meta, out, _ = scored["pressure"]
    config = SimulationConfig().email_config
    assert meta.params["min_gap_days"] == config.fatigue_days  # opens drop under 3 days
    truth = _truth(base)
    fatigue = out["counts"][:, 2] == 1
    tired = (truth.fatigued_sends_30d / truth.sends_30d.where(truth.sends_30d > 0)).to_numpy()
    assert 0.01 < fatigue.mean() < 0.3
    assert np.nanmean(tired[fatigue]) > 1.5 * np.nanmean(tired[~fatigue])
    unsubscribed = truth.email_unsubscribed.to_numpy()
    assert np.isnan(out["wait_days"][unsubscribed, 0]).all()


def test_keyword_vocabulary_and_errors(base: Path) -> None:
    campaigns = pq.read_table(base / "campaigns.parquet")
    vocabulary = keyword_vocabulary(campaigns, limit=5)
    counts = Counter(k for ks in campaigns["keywords"].to_pylist() for k in ks)
    assert vocabulary == sorted(counts, key=lambda k: (-counts[k], k))[:5]
    with pytest.raises(ValueError, match="campaigns.keywords"):
        keyword_vocabulary(None)
