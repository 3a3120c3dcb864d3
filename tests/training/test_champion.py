"""The promotion gate (training/champion.py): a worse retrain is kept back, and nothing serves it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from scorecast.cli import main
from scorecast.model_store import candidate_path, promote_candidate
from scorecast.server.repository import ModelRepository
from scorecast.training.champion import UNGATED, PromotionPolicy
from scorecast.training.fleet import TrainAccount

from .planted import shuffled_affinity, shuffled_cross_sell, shuffled_engagement

AS_OF = "2026-01-01"


@pytest.fixture(scope="module")
def fleet(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("champion")
    assert main(["simulate", "--contacts", "2500", "--seed", "11", "--out", str(root / "bases" / "acme")]) == 0
    return root


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


def test_the_policy_is_read_from_json_with_per_score_tolerances(tmp_path: Path) -> None:
    """A policy file sets a default and per-score tolerances; a bad key or value is named."""
    path = tmp_path / "policy.json"
    path.write_text('{"default": 0.02, "scores": {"affinity": 0.005}}')
    policy = PromotionPolicy.from_file(path)
    assert policy.tolerance("affinity") == 0.005 and policy.tolerance("churn") == 0.02
    path.write_text('{"defaults": 0.02}')
    with pytest.raises(ValueError, match="unknown keys \\['defaults'\\]"):
        PromotionPolicy.from_file(path)
    path.write_text('{"scores": {"affinity": 2}}')
    with pytest.raises(ValueError, match="tolerance of affinity must be in \\[0, 1\\), got 2.0"):
        PromotionPolicy.from_file(path)
