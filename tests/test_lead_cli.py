"""The lead score end to end: simulate-b2b, train with rules, serve, score over gRPC, report."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

from scorecast.cli import main
from scorecast.client import ScorecastClient
from scorecast.process import ServerProcess

AS_OF = "2026-01-01"
RULES = {
    "rules": [
        {"name": "demo request", "points": 30, "interaction": "demo_request", "days": 21},
        {"name": "enterprise", "points": 10, "attribute": "employees", "range": [200, None]},
        {"name": "competitor", "points": -50, "attribute": "email_domain", "equals": "competitor"},
    ],
    "filters": [{"attribute": "country", "exclude": ["RU", "IR"]}],
}


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("lead")
    assert main(["simulate-b2b", "--contacts", "3000", "--seed", "4", "--out", str(root / "base")]) == 0
    (root / "rules.json").write_text(json.dumps(RULES))
    argv = [
        "train",
        "--data",
        str(root / "base"),
        "--out",
        str(root / "models"),
        "--as-of",
        AS_OF,
        "--lead-rules",
        str(root / "rules.json"),
    ]
    assert main(argv) == 0
    assert [p.name for p in (root / "models").iterdir()] == ["lead"]  # a B2B base has no orders: lead only
    return root / "base", root / "models"


@pytest.fixture(scope="module")
def server(trained: tuple[Path, Path], tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    with ServerProcess(trained[1], tmp_path_factory.mktemp("srv")) as running:
        yield running


@pytest.mark.slow
def test_lead_over_grpc(trained: tuple[Path, Path], server: ServerProcess, tmp_path: Path) -> None:
    """Score, tier, reasons and rules come back over gRPC, equal to the in-process rescore."""
    base, models = trained
    common = ["--data", str(base), "--scores", "lead", "--as-of", AS_OF, "--chunk-contacts", "700"]
    assert main(["score", "--server", server.target, "--out", str(tmp_path / "grpc.parquet"), *common]) == 0
    assert main(["rescore", "--models", str(models), "--out", str(tmp_path / "local.parquet"), *common]) == 0
    scores, local = pq.read_table(tmp_path / "grpc.parquet"), pq.read_table(tmp_path / "local.parquet")
    assert scores.equals(local) and scores.num_rows == 3000
    score = scores["lead.score"].to_numpy()
    assert score.min() >= 1 and score.max() <= 99
    tiers = scores["lead.tier"].combine_chunks().dictionary_decode().to_pylist()
    assert set(tiers) == {"low", "medium", "high"}
    with ScorecastClient(server.target, timeout=30) as client:
        info = client.get_model("lead")
    params = json.loads(info.params_json)
    # reasons: names are factors; shown contributions + rest + intercept = logit
    shown = sum(
        np.nan_to_num(scores[f"lead.{side}_{i}_value"].to_numpy(zero_copy_only=False))
        for side in ("pos", "neg")
        for i in (1, 2, 3)
    )
    logit = scores["lead.logit"].to_numpy()
    np.testing.assert_allclose(params["intercept"] + shown + scores["lead.reasons_rest"].to_numpy(), logit, atol=1e-4)
    reasons = set(scores["lead.pos_1"].combine_chunks().dictionary_decode().drop_null().to_pylist())
    assert reasons <= set(params["factors"]) and reasons
    # rules: bits and names
    assert params["rules"]["names"] == [r["name"] for r in RULES["rules"]]
    fired = scores["lead.rules_fired"].to_numpy()
    assert ((fired >> 0) & 1).any() and ((fired >> 2) & 1).any() and fired.max() < 8
    excluded = scores["lead.rule_excluded"].to_numpy().astype(bool)
    assert (scores["lead.rule_points"].to_numpy()[excluded] == 0).all() and excluded.any()
    # GetModel: the validation report
    for key in ("auc", "lift10", "ece", "tier_rate:high", "tier_rate:low", "auc:hgb", "auc:scorecard"):
        assert key in info.metrics, key
    assert info.horizon_days == 21 and len(params["validation"]["reliability"]) == 10
    assert set(info.input_columns) >= {"contacts.country", "interactions.kind", "web_events.page"}


@pytest.mark.slow
def test_score_batch_real_time(trained: tuple[Path, Path], server: ServerProcess) -> None:
    """A handful of leads in one call (the real-time path) score like the same leads in the base."""
    base, _ = trained
    contacts = pq.read_table(base / "contacts.parquet").slice(0, 5)
    ids = contacts["contact_id"]
    tables = {"contacts": contacts}
    for name in ("interactions", "web_events"):
        table = pq.read_table(base / f"{name}.parquet")
        tables[name] = table.filter(pc.is_in(table["contact_id"], value_set=ids))
    with ScorecastClient(server.target, timeout=30) as client:
        batch = client.score_batch(tables, ["lead"], as_of=datetime(2026, 1, 1, tzinfo=UTC))
    assert batch.column("contact_id").to_pylist() == ids.to_pylist()
    assert all(1 <= s <= 99 for s in batch.column("lead.score").to_pylist())


def test_report_writes_one_html_file(trained: tuple[Path, Path], tmp_path: Path) -> None:
    _, models = trained
    out = tmp_path / "report.html"
    assert main(["report", "--models", str(models), "--score", "lead", "--out", str(out)]) == 0
    page = out.read_text()
    assert page.startswith("<!DOCTYPE html>") and page.count("data:image/png;base64,") == 4
    assert "Reliability table" in page and "demo request" in page
    assert re.search(r"AUC \(holdout\)</td><td>0\.\d+", page)
    assert main(["report", "--models", str(models), "--score", "nope", "--out", str(out)]) == 2


@pytest.mark.slow
def test_rules_replaced_without_refit(trained: tuple[Path, Path], tmp_path: Path) -> None:
    """lead-rules writes a new version: same scorecard outputs, the new rules' bits and points."""
    base, models = trained
    rules = {"rules": [{"name": "software", "points": 7, "attribute": "industry", "equals": "software"}]}
    (tmp_path / "new.json").write_text(json.dumps(rules))
    assert main(["lead-rules", "--models", str(models), "--rules", str(tmp_path / "new.json")]) == 0
    versions = sorted(p.stem for p in (models / "lead").glob("*.onnx"))
    assert versions == ["1", "2"]
    common = ["--models", str(models), "--data", str(base), "--scores", "lead", "--as-of", AS_OF]
    assert main(["rescore", *common, "--out", str(tmp_path / "new.parquet")]) == 0
    (models / "lead" / "2.onnx").rename(tmp_path / "2.onnx")  # back to version 1
    try:
        assert main(["rescore", *common, "--out", str(tmp_path / "old.parquet")]) == 0
    finally:
        (tmp_path / "2.onnx").rename(models / "lead" / "2.onnx")
    new, old = pq.read_table(tmp_path / "new.parquet"), pq.read_table(tmp_path / "old.parquet")
    for name in ("lead.score", "lead.tier", "lead.logit", "lead.pos_1", "lead.neg_1_value"):
        assert new[name].equals(old[name]), name
    industry = pq.read_table(base / "contacts.parquet")["industry"].to_numpy(zero_copy_only=False)
    software = industry == "software"  # rows follow contacts.parquet
    np.testing.assert_array_equal(new["lead.rules_fired"].to_numpy(), software.astype(np.int32))
    np.testing.assert_array_equal(new["lead.rule_points"].to_numpy(), np.where(software, 7, 0))
    (tmp_path / "bad.json").write_text(json.dumps({"rules": [{"name": "x", "points": 1, "web_page": "/nope", "days": 7}]}))
    assert main(["lead-rules", "--models", str(models), "--rules", str(tmp_path / "bad.json")]) == 2
    assert sorted(p.stem for p in (models / "lead").glob("*.onnx")) == ["1", "2"]


def test_bad_rules_are_refused_with_the_path(
    trained: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    base, _ = trained
    (tmp_path / "rules.json").write_text(
        json.dumps({"rules": [{"name": "x", "points": 1, "attribute": "colour", "equals": "red"}]})
    )
    argv = [
        "train",
        "--data",
        str(base),
        "--out",
        str(tmp_path / "m"),
        "--scores",
        "lead",
        "--lead-rules",
        str(tmp_path / "rules.json"),
    ]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "rules[0].attribute: unknown attribute 'colour'" in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "m").exists() or not list((tmp_path / "m").rglob("*.onnx"))
