"""The promotion gate (training/champion.py): a worse retrain is kept back, and nothing serves it."""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from pathlib import Path

import numpy as np
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

from scorecast.cli import main
from scorecast.model_store import candidate_path, promote_candidate
from scorecast.server.repository import ModelRepository
from scorecast.training.champion import METRICS, SCORE_TOLERANCES, UNGATED, PromotionPolicy
from scorecast.training.evaluation import uplift_metrics
from scorecast.training.fleet import TrainAccount
from scorecast.training.run import Holdout

from .planted import (
    scrambled_recommendations,
    shuffled_affinity,
    shuffled_cross_sell,
    shuffled_engagement,
    shuffled_lead,
    shuffled_promo_appetence,
)

AS_OF = "2026-01-01"


@pytest.fixture(scope="module")
def fleet(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("champion")
    assert main(["simulate", "--contacts", "2500", "--seed", "11", "--out", str(root / "bases" / "acme")]) == 0
    assert main(["simulate-b2b", "--contacts", "4000", "--seed", "1", "--out", str(root / "b2b" / "leads")]) == 0
    return root


def _day_before_last(base: Path, table: str) -> datetime:
    """The base's last ``table`` time less a day: a champion trained the night before."""
    return pc.max(pq.read_table(base / f"{table}.parquet", columns=["ts"])["ts"]).as_py() - timedelta(days=1)


def _values(metric: str, score: str) -> tuple[float, float]:
    """(challenger, champion) of ``score`` in a fleet result's metric column."""
    (part,) = [p for p in metric.split("; ") if p.startswith(f"{score} v")]
    challenger, champion = part.split(" ", 3)[3].split(" vs v")
    return float(challenger), float(champion.split(" ")[1])


@pytest.mark.slow
def test_a_planted_regression_is_kept_as_a_candidate(fleet: Path, one_thread: None) -> None:
    """A retrain on shuffled labels scores far below the serving version on the same holdout: it is
    kept as a candidate with the reason, the repository does not serve it, and pinning it serves it."""
    models = fleet / "models"
    job = TrainAccount(fleet / "bases", models, ("rfm", "affinity"))
    first = job("acme")
    assert first.outcome == "first version"
    same = job("acme")  # a retrain on the same base: as good, promoted
    assert same.outcome == "promoted" and "affinity v2 auc" in same.metric

    planted = TrainAccount(fleet / "bases", models, ("rfm", "affinity"), fitters={"affinity": shuffled_affinity})("acme")
    assert planted.outcome == "candidate"
    assert "affinity v3 kept as a candidate: worse than serving v2" in planted.reason
    challenger, champion = (float(x) for x in planted.metric.split(" auc ")[1].split(" vs v2 "))
    assert challenger < 0.6 < champion - 0.1  # chance against a real ranking, on the same contacts
    note = json.loads(candidate_path(models / "acme", "affinity", "3").with_suffix(".json").read_text())
    assert note["promoted"] is False and note["champion"] == "2"
    assert (models / "acme" / "rfm" / "3.onnx").is_file()  # the other score of the run was promoted

    served = ModelRepository.load(models / "acme")
    assert served.versions("affinity") == ["1", "2"] and served.get("affinity").meta.version == "2"

    # the next retrain takes the next number: a candidate's is never given twice
    assert job("acme").details["versions"]["affinity"]["version"] == "4"
    promote_candidate(models / "acme", "affinity", "3")
    served.reload()
    assert "3" in served.versions("affinity")


GATED = ("cross_sell", "engagement", "clv", "churn", "segments")


@pytest.mark.slow
def test_every_score_with_a_holdout_is_gated(fleet: Path, one_thread: None) -> None:
    """cross_sell and engagement (AUC), clv (MAE of expected orders), churn (AUC) and segments
    (silhouette) compare a retrain with the serving version on the same holdout; rfm has nothing
    to gate and says so; planted regressions of cross_sell and engagement are kept back."""
    models = fleet / "models-gated"
    scores = (*GATED, "rfm")
    job = TrainAccount(fleet / "bases", models, scores)
    assert job("acme").outcome == "first version"
    same = job("acme")
    assert same.outcome == "promoted", same.reason
    for score, metric in zip(GATED, ("auc", "auc", "mae", "auc", "silhouette"), strict=True):
        assert f"{score} v2 {metric} " in same.metric
    # a refit on the same base is the same model: equal values on the same rows
    for part in same.metric.split("; "):
        challenger, champion = (float(x) for x in part.split(" ", 3)[3].split(" vs v1 "))
        assert challenger == pytest.approx(champion, abs=1e-9), part
    assert "rfm" not in same.metric and "quintile" in UNGATED["rfm"]

    planted = TrainAccount(
        fleet / "bases", models, scores, fitters={"cross_sell": shuffled_cross_sell, "engagement": shuffled_engagement}
    )("acme")
    assert planted.outcome == "candidate"
    assert "cross_sell v3 kept as a candidate: worse than serving v2" in planted.reason
    assert "engagement v3 kept as a candidate: worse than serving v2" in planted.reason
    served = ModelRepository.load(models / "acme")
    assert served.get("cross_sell").meta.version == "2" and served.get("engagement").meta.version == "2"
    assert served.get("clv").meta.version == "3"  # the unplanted scores of the run were promoted


@pytest.mark.slow
def test_recommendations_and_promo_appetence_are_gated(fleet: Path, one_thread: None) -> None:
    """recommendations (NDCG@K) and promo_appetence (Qini) compare a retrain with the serving
    version on the same holdout: last night's version is matched by tonight's and replaced;
    item parameters scrambled across SKUs, and outcomes shuffled, are kept back."""
    models = fleet / "models-products"
    scores = ("recommendations", "promo_appetence")
    night_before = _day_before_last(fleet / "bases" / "acme", "orders")
    assert TrainAccount(fleet / "bases", models, scores, as_of=night_before)("acme").outcome == "first version"
    tonight = TrainAccount(fleet / "bases", models, scores)("acme")
    assert tonight.outcome == "promoted", tonight.reason
    assert "recommendations v2 ndcg " in tonight.metric and "promo_appetence v2 qini " in tonight.metric
    for score in scores:  # a day's more orders moves each by less than its tolerance
        challenger, champion = _values(tonight.metric, score)
        assert abs(challenger - champion) < SCORE_TOLERANCES[score], tonight.metric

    planted = TrainAccount(
        fleet / "bases", models, scores, fitters={"recommendations": scrambled_recommendations, "promo_appetence": shuffled_promo_appetence}
    )("acme")
    assert planted.outcome == "candidate"
    for score in scores:
        assert f"{score} v3 kept as a candidate: worse than serving v2" in planted.reason
        challenger, champion = _values(planted.metric, score)
        assert champion - challenger > SCORE_TOLERANCES[score], planted.metric
    assert _values(planted.metric, "promo_appetence")[0] < 0.003  # chance: a Qini of about 0
    served = ModelRepository.load(models / "acme")
    assert served.get("recommendations").meta.version == "2" and served.get("promo_appetence").meta.version == "2"


@pytest.mark.slow
def test_lead_is_gated(fleet: Path, one_thread: None) -> None:
    """lead compares a retrain's probability with the serving version's by AUC on the
    scorecard's held-out leads: tonight's retrain replaces last night's, one fitted on shuffled
    conversions (chance against the serving version's ~0.8) is kept back."""
    models = fleet / "models-lead"
    night_before = _day_before_last(fleet / "b2b" / "leads", "interactions")
    assert TrainAccount(fleet / "b2b", models, ("lead",), as_of=night_before)("leads").outcome == "first version"
    tonight = TrainAccount(fleet / "b2b", models, ("lead",))("leads")
    assert tonight.outcome == "promoted" and "lead v2 auc " in tonight.metric, tonight.reason
    planted = TrainAccount(fleet / "b2b", models, ("lead",), fitters={"lead": shuffled_lead})("leads")
    assert planted.outcome == "candidate" and "lead v3 kept as a candidate: worse than serving v2" in planted.reason
    challenger, champion = _values(planted.metric, "lead")
    assert challenger < 0.6 < champion - 0.1
    assert ModelRepository.load(models / "leads").get("lead").meta.version == "2"


def test_ndcg_reads_recommended_skus_by_name() -> None:
    """The gate's NDCG@K compares SKU names (versions number their SKUs differently), over the
    contacts every compared rank has a SKU for; Qini is the evaluation module's."""
    holdout = Holdout({}, 0, None, {"rec": [np.array(["b", "x"], object), np.array(["a"], object), np.array(["c"], object)]}, metric="ndcg")
    columns = {"rec_1": np.array(["a", "a", None], object), "rec_2": np.array(["b", "c", "c"], object)}
    keep = {name: np.not_equal(values, None) for name, values in columns.items()}
    discount = 1 / np.log2(3)
    # row 1: "b" at rank 2 of its two; row 2: "a" at rank 1; row 3 (no rec_1) left out
    assert METRICS["ndcg"].compute(holdout, columns, keep) == pytest.approx((discount / (1 + discount) + 1) / 2)

    rng = np.random.default_rng(0)
    uplift, treated, bought = rng.random(400), rng.random(400) < 0.5, rng.random(400) < 0.2
    holdout = Holdout({}, 0, None, {"uplift": bought}, metric="qini", treated=treated)
    keep = {"uplift": np.ones(400, bool)}
    assert METRICS["qini"].compute(holdout, {"uplift": uplift}, keep) == uplift_metrics(uplift, treated, bought)["qini"]


def test_the_policy_is_read_from_json_with_per_score_tolerances(tmp_path: Path) -> None:
    """A policy file sets a default and per-score tolerances (the scores it does not name keep
    their built-in ones); a bad key or value is named."""
    path = tmp_path / "policy.json"
    path.write_text('{"default": 0.02, "scores": {"affinity": 0.005, "lead": 0.05}}')
    policy = PromotionPolicy.from_file(path)
    assert policy.tolerance("affinity") == 0.005 and policy.tolerance("churn") == 0.02
    assert policy.tolerance("lead") == 0.05 and policy.tolerance("promo_appetence") == SCORE_TOLERANCES["promo_appetence"]
    path.write_text('{"defaults": 0.02}')
    with pytest.raises(ValueError, match="unknown keys \\['defaults'\\]"):
        PromotionPolicy.from_file(path)
    path.write_text('{"scores": {"affinity": 2}}')
    with pytest.raises(ValueError, match="tolerance of affinity must be in \\[0, 1\\), got 2.0"):
        PromotionPolicy.from_file(path)
