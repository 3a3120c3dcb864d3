"""The web scores end to end: simulate, `train --web-config`, serve, score over gRPC."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

import numpy as np
import onnx
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

from scorecast.cli import main
from scorecast.process import ServerProcess
from scorecast.training.onnx_export import read_metadata

AS_OF = "2026-01-01"


def test_train_refuses_a_bad_web_config_in_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A bad page config stops `train` before any data is read: exit 2, the entry's path."""
    bad = tmp_path / "web.json"
    bad.write_text(json.dumps({"pages": [{"prefix": "/careers", "points": 0, "category": "job"}]}))
    assert main(["train", "--data", "/nowhere", "--out", str(tmp_path / "m"), "--web-config", str(bad)]) == 2
    err = capsys.readouterr().err.strip()
    assert 'pages[0].category: expected one of cold, warm, hot, eliminating, got "job"' in err and len(err.splitlines()) == 1


@pytest.mark.slow
def test_web_heat_and_segments_served_over_grpc(tmp_path: Path) -> None:
    """Both scores train with a custom page config, which the served model carries and
    applies; gRPC scores equal in-process rescoring; an eliminated contact has heat 0."""
    base, models = tmp_path / "base", tmp_path / "models"
    assert main(["simulate", "--contacts", "4000", "--seed", "7", "--out", str(base)]) == 0
    config = json.loads((Path(__file__).parents[1] / "training" / "web_config.json").read_text())
    config["pages"].append({"page": "/products/p-001", "points": 50, "category": "hot"})
    (tmp_path / "web.json").write_text(json.dumps(config))
    argv = [
        "train",
        "--data",
        str(base),
        "--out",
        str(models),
        "--scores",
        "web_heat,segments",
        "--web-config",
        str(tmp_path / "web.json"),
    ]
    assert main(argv) == 0
    for score in ("web_heat", "segments"):
        meta = read_metadata(onnx.load(models / score / "1.onnx"))
        assert meta.params["feature_params"]["web"]["pages"][-1]["page"] == "/products/p-001"

    common = ["--data", str(base), "--scores", "web_heat,segments", "--as-of", AS_OF, "--chunk-contacts", "1500"]
    with ServerProcess(models, tmp_path / "srv") as server:
        assert main(["score", "--server", server.target, "--out", str(tmp_path / "grpc.parquet"), *common]) == 0
    assert main(["rescore", "--models", str(models), "--out", str(tmp_path / "local.parquet"), *common]) == 0
    served, local = pq.read_table(tmp_path / "grpc.parquet"), pq.read_table(tmp_path / "local.parquet")
    assert served.equals(local) and served.num_rows == 4000
    for column in (
        "web_heat.heat",
        "web_heat.density",
        "web_heat.value",
        "web_heat.category",
        "web_heat.quartile",
        "segments.segment",
    ):
        assert column in served.column_names
    category = served["web_heat.category"].combine_chunks().dictionary_decode()
    heat = served["web_heat.heat"].to_numpy(zero_copy_only=False)
    eliminated = pc.equal(category, "eliminated").to_numpy(zero_copy_only=False)
    assert eliminated.any() and (heat[eliminated] == 0).all()
    assert (heat[~eliminated] > 0).sum() > 500
    # the custom entry made /products/p-001 hot: its recent visitors are hot (or eliminated)
    web = pq.read_table(base / "web_events.parquet")
    recent = pc.greater(web["ts"], pc.subtract(pc.max(web["ts"]), pa.scalar(timedelta(days=29))))
    visited = pc.filter(web["contact_id"], pc.and_(pc.equal(web["page"], "/products/p-001"), recent))
    rows = pc.is_in(served["contact_id"], value_set=visited.combine_chunks().unique()).to_numpy(zero_copy_only=False)
    assert rows.any() and set(category.filter(pa.array(rows)).to_pylist()) <= {"hot", "eliminated"}
    inactive = pc.equal(category, "inactive").to_numpy(zero_copy_only=False)
    assert served["web_heat.quartile"].filter(inactive).null_count == int(inactive.sum())
    assert len(np.unique(served["segments.segment"].combine_chunks().dictionary_decode().to_numpy(zero_copy_only=False))) >= 4
