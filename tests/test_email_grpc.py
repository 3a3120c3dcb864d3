"""The e-mail scores end to end: simulate, train, serve, score over gRPC (client and CLI)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

from scorecast.cli import main
from scorecast.client import ScorecastClient
from scorecast.kernels import FeatureFrame
from scorecast.metadata import METADATA_KEY, ModelMetadata
from scorecast.process import ServerProcess

pytestmark = pytest.mark.slow
AS_OF = datetime(2026, 1, 1, tzinfo=UTC)
SCORES = ["engagement", "pressure", "interests"]


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("email")
    assert main(["simulate", "--contacts", "6000", "--seed", "4", "--out", str(root / "base")]) == 0
    train = ["train", "--data", str(root / "base"), "--out", str(root / "models"), "--interest-k", "2"]
    assert main([*train, "--scores", ",".join(SCORES)]) == 0
    return root / "base", root / "models"


@pytest.fixture(scope="module")
def server(trained: tuple[Path, Path], tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    with ServerProcess(trained[1], tmp_path_factory.mktemp("srv")) as running:
        yield running


def test_scores_over_grpc_equal_the_models_run_in_process(trained: tuple[Path, Path], server: ServerProcess) -> None:
    base, models = trained
    tables = {name: pq.read_table(base / f"{name}.parquet") for name in ("contacts", "email_events", "campaigns")}
    with ScorecastClient(server.target) as client:
        batch = client.score_batch(tables, SCORES, as_of=AS_OF)
        listed = {m.score for m in client.list_models()}
    assert listed == set(SCORES)
    assert batch.num_rows == tables["contacts"].num_rows
    assert batch["contact_id"].equals(tables["contacts"]["contact_id"].combine_chunks())
    expected = {
        "engagement": ["rfo", "rfo_r", "rfo_f", "rfc", "rfc_r", "rfc_f", "p_open", "p_click"],
        "pressure": ["sends_7d", "sends_30d", "fatigue", "wait_days"],
        "interests": [f"interest_{k}{s}" for k in (1, 2) for s in ("", "_weight")],
    }
    assert batch.schema.names == ["contact_id", *(f"{s}.{o}" for s in SCORES for o in expected[s])]
    frame = FeatureFrame(tables, int(AS_OF.timestamp() * 1_000_000))
    for score in SCORES:
        session = ort.InferenceSession(str(next((models / score).glob("*.onnx"))))
        meta = ModelMetadata.from_json(session.get_modelmeta().custom_metadata_map[METADATA_KEY])
        outputs = dict(
            zip(
                [o.name for o in session.get_outputs()],
                session.run(None, {"features": frame.matrix(list(meta.features), meta.params.get("feature_params"))}),
                strict=True,
            )
        )
        for spec in meta.outputs:
            want = outputs[spec.onnx_output][:, spec.column]
            got = batch[f"{score}.{spec.name}"]
            if spec.dtype == "category":
                codes = np.array([-1 if v is None else spec.categories.index(v) for v in got.to_pylist()])
                np.testing.assert_array_equal(codes, want, err_msg=spec.name)
            else:
                values = np.array([np.nan if v is None else v for v in got.to_pylist()], dtype=np.float64)
                null = ~np.isfinite(want) | (want == spec.null_value if spec.null_value is not None else False)
                np.testing.assert_array_equal(np.isnan(values), null, err_msg=spec.name)
                np.testing.assert_allclose(values[~null], want[~null], rtol=1e-6, err_msg=spec.name)
    p_open = batch["engagement.p_open"].to_numpy(zero_copy_only=False)
    assert 0 < np.nanmin(p_open) and np.nanmax(p_open) < 1
    assert pc.count(batch["interests.interest_1"]).as_py() > 0.3 * batch.num_rows


def test_cli_score_sends_campaigns_with_every_chunk(trained: tuple[Path, Path], server: ServerProcess, tmp_path: Path) -> None:
    """`score` reads the base in chunks (campaigns, which has no contact_id, goes with each) and
    gives what `rescore` gives in process."""
    base, models = trained
    common = ["--data", str(base), "--scores", ",".join(SCORES), "--as-of", "2026-01-01", "--chunk-contacts", "1000"]
    assert main(["score", "--server", server.target, "--out", str(tmp_path / "grpc.parquet"), *common]) == 0
    assert main(["rescore", "--models", str(models), "--out", str(tmp_path / "local.parquet"), *common]) == 0
    grpc_table, local = pq.read_table(tmp_path / "grpc.parquet"), pq.read_table(tmp_path / "local.parquet")
    assert grpc_table.num_rows == 6000 and grpc_table.equals(local)
