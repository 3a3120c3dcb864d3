"""``train``: a simulated base in, a model repository out, with honest holdout metrics."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest
from sklearn.metrics import roc_auc_score

from scorecast.kernels import FeatureFrame
from scorecast.kernels.time_units import US_PER_DAY
from scorecast.metadata import METADATA_KEY, ModelMetadata
from scorecast.training.simulate.retail import SimulationConfig, simulate_base, write_base
from scorecast.training.run import MIN_BUYERS
from scorecast.training.train import train


@pytest.fixture(scope="module")
def base(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("base") / "base"
    write_base(simulate_base(SimulationConfig(n_contacts=30_000, seed=11)), out)
    return out


@pytest.fixture(scope="module")
def models(base: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("models")
    train(base, out)
    return out


def _meta(path: Path) -> ModelMetadata:
    session = ort.InferenceSession(str(path))
    return ModelMetadata.from_json(session.get_modelmeta().custom_metadata_map[METADATA_KEY])


@pytest.mark.slow
def test_repository_layout_and_metadata(models: Path, base: Path) -> None:
    """One <score>/1.onnx per score; metadata carries the base's as-of and holdout metrics."""
    assert sorted(p.relative_to(models).as_posix() for p in models.rglob("*.onnx")) == [
        f"{score}/1.onnx"
        for score in ("affinity", "churn", "clv", "engagement", "interests", "pressure", "rfm", "segments", "web_heat")
    ]  # the simulated base has e-mail and web events, so those scores are trained too
    as_of = json.loads((base / "base.json").read_text())["as_of"]
    affinity = _meta(models / "affinity" / "1.onnx")
    assert affinity.horizon_days == 90
    assert datetime.fromisoformat(affinity.data_as_of) <= datetime.fromisoformat(as_of)
    assert set(affinity.params["groups"]) == set(json.loads((base / "base.json").read_text())["groups"])
    assert {"auc_mean", "lift10_mean", "baseline_auc_mean"} <= set(affinity.metrics)
    assert _meta(models / "rfm" / "1.onnx").model_type == "rfm-quintiles"


@pytest.mark.slow
def test_affinity_beats_recency_frequency_baseline(models: Path, base: Path) -> None:
    """On held-out contacts and on the simulator's true next 90 days, the model beats the
    recency/frequency baseline (a logistic regression on overall and in-group R and F)."""
    meta = _meta(models / "affinity" / "1.onnx")
    assert meta.metrics["auc_mean"] > meta.metrics["baseline_auc_mean"] + 0.01
    assert meta.metrics["lift10_mean"] > 2.0
    # the truth: score as of the base's end, compare with what each contact really buys next
    truth = pq.read_table(base / "truth" / "contacts.parquet")
    as_of = datetime.fromisoformat(json.loads((base / "base.json").read_text())["as_of"])
    orders = pq.read_table(base / "orders.parquet")
    frame = FeatureFrame({"orders": orders}, int(as_of.timestamp() * 1e6), contact_ids=truth["contact_id"].combine_chunks())
    session = ort.InferenceSession(str(models / "affinity" / "1.onnx"))
    probs = session.run(["probabilities"], {"features": frame.matrix(meta.features)})[0]
    counts = frame.matrix([f"group_count:{g}" for g in meta.params["groups"]])
    model_auc, count_auc = [], []
    for i, g in enumerate(meta.params["groups"]):
        y = truth[f"future_orders_90d:{g}"].to_numpy() > 0
        model_auc.append(roc_auc_score(y, probs[:, i]))
        count_auc.append(roc_auc_score(y, counts[:, i]))
    assert np.mean(model_auc) > np.mean(count_auc)
    assert np.mean(model_auc) > 0.8


@pytest.mark.slow
def test_versions_increase(base: Path, tmp_path: Path) -> None:
    """Training twice into one repository adds version 2 beside version 1."""
    train(base, tmp_path, scores=["rfm"])
    train(base, tmp_path, scores=["rfm"])
    assert sorted(p.name for p in (tmp_path / "rfm").glob("*.onnx")) == ["1.onnx", "2.onnx"]


def _tiny_base(tmp_path: Path, n_buyers: int, with_group: bool = True) -> Path:
    rng = np.random.default_rng(0)
    ids = rng.integers(0, n_buyers, n_buyers * 3)
    ts = pa.array(1_700_000_000_000_000 + rng.integers(0, 300 * US_PER_DAY, ids.size), pa.timestamp("us", tz="UTC"))
    columns = {"contact_id": ids, "ts": ts, "amount": rng.uniform(1, 100, ids.size)}
    if with_group:
        columns["product_group"] = rng.choice(["a", "b"], ids.size)
    tmp_path.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.table(columns), tmp_path / "orders.parquet")
    return tmp_path


@pytest.mark.parametrize(
    ("kwargs", "scores", "match"),
    [
        ({"n_buyers": 100}, ["rfm"], f"need at least {MIN_BUYERS}"),
        ({"n_buyers": 2000, "with_group": False}, ["affinity"], "orders.product_group"),
        ({"n_buyers": 2000}, ["nope"], "unknown scores"),
    ],
    ids=["too-few-buyers", "no-product-group", "unknown-score"],
)
def test_refusals_name_the_reason(tmp_path: Path, kwargs: dict, scores: list[str], match: str) -> None:
    """A base that cannot support a score is refused with the reason and the threshold."""
    base = _tiny_base(tmp_path / "base", **kwargs)
    with pytest.raises(ValueError, match=match):
        train(base, tmp_path / "models", scores=scores)
    assert not list((tmp_path / "models").rglob("*.onnx")) if (tmp_path / "models").exists() else True


def test_no_orders_is_refused(tmp_path: Path) -> None:
    """A base without orders.parquet is refused, naming it."""
    pq.write_table(pa.table({"contact_id": [1, 2]}), tmp_path / "contacts.parquet")
    with pytest.raises(ValueError, match="orders.parquet"):
        train(tmp_path, tmp_path / "models")


def test_default_as_of_is_the_last_order(tmp_path: Path) -> None:
    """Without --as-of the data's reference time is its last order."""
    base = _tiny_base(tmp_path / "base", 2000)
    (path,) = train(base, tmp_path / "models", scores=["rfm"])
    last = pc.max(pq.read_table(base / "orders.parquet")["ts"]).as_py()
    assert datetime.fromisoformat(_meta(path).data_as_of) == last.astimezone(UTC)


@pytest.mark.slow
def test_every_model_carries_a_parity_probe_the_server_replays(models: Path, tmp_path: Path) -> None:
    """Each trained file records probe rows (buyers and prospects) and its CPU outputs; the
    server's loader reproduces them, and refuses the same file with one weight altered."""
    import onnx

    from scorecast.server.errors import ModelLoadError
    from scorecast.server.runtime import OnnxModel

    for path in sorted(models.rglob("*.onnx")):
        probe = _meta(path).params["probe"]
        x = np.array(probe["features"], dtype=object).astype(np.float64)
        assert x.shape[0] == 32  # NaN features (never bought a group) are kept as JSON null
        assert (x[:, 0] != x[0, 0]).any()  # distinct contacts, not one row repeated
        OnnxModel.load(path)  # replays the probe: raises if it does not reproduce
    tampered = onnx.load(models / "affinity" / "1.onnx")
    tree = next(n for n in tampered.graph.node if n.op_type.startswith("TreeEnsemble"))
    leaf = next(a for a in tree.attribute if a.name in ("class_weights", "target_weights"))
    leaf.floats[:] = [w + 0.5 for w in leaf.floats]
    bad = tmp_path / "1.onnx"
    bad.write_bytes(tampered.SerializeToString())
    with pytest.raises(ModelLoadError, match="parity probe failed"):
        OnnxModel.load(bad)


def test_the_registry_names_each_score_once_and_its_model_says_so() -> None:
    """Every served score has one fitter, and the grouping for defaults names only known scores."""
    from scorecast.training import train as train_module
    from scorecast.training.run import PRODUCT_SCORES

    groups = (*train_module.RETAIL_SCORES, *train_module.WEB_SCORES, *train_module.EMAIL_SCORES, *PRODUCT_SCORES, "lead")
    assert sorted(groups) == sorted(train_module.SCORES)
    assert all(callable(fit) for fit in train_module.SCORES.values())
