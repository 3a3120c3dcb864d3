"""The promotion gate (training/champion.py): a worse retrain is kept back, and nothing serves it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from scorecast.cli import main
from scorecast.model_store import candidate_path, promote_candidate
from scorecast.server.repository import ModelRepository
from scorecast.training.champion import PromotionPolicy
from scorecast.training.fleet import TrainAccount

from .planted import shuffled_affinity

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
