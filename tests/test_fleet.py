"""Fleet jobs (scorecast/fleet.py, training/fleet.py, server/fleet.py) on a process pool, on PostgreSQL and on a real two-node Ray cluster."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from scorecast.cli import main
from tests.support.services import PostgresServer, RayCluster, is_loopback, load_base

AS_OF = "2026-01-01"
ACCOUNTS = ("acme", "bolt", "cora")


@pytest.fixture(scope="module")
def fleet(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Three small bases and one without orders (``dud``)."""
    root = tmp_path_factory.mktemp("fleet")
    for seed, account in enumerate(ACCOUNTS):
        assert main(["simulate", "--contacts", "2500", "--seed", str(20 + seed), "--out", str(root / "bases" / account)]) == 0
    (root / "bases" / "dud").mkdir()
    pq.write_table(pq.read_table(root / "bases" / "acme" / "contacts.parquet"), root / "bases" / "dud" / "contacts.parquet")
    return root


def state(path: Path) -> dict:
    return json.loads(path.read_text())["accounts"]


@pytest.mark.slow
def test_a_failing_account_stops_nothing_and_resume_redoes_only_it(fleet: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """On the process pool every good account trains; the bad one is listed with its reason and the
    exit code is 2; --resume then runs only the failed account, leaving the others' files as they were."""
    models = tmp_path / "models"
    argv = ["fleet", "train", "--data", str(fleet / "bases"), "--models", str(models), "--scores", "rfm,affinity", "--workers", "2"]
    assert main(argv) == 2
    captured = capsys.readouterr()
    assert "FAILED     dud: ValueError: base" in captured.out and "has no orders" in captured.out
    assert "1 of 4 accounts failed: dud" in captured.err
    for account in ACCOUNTS:
        assert re.search(rf"^{account} +2,500 ", captured.out, re.M)
        assert (models / account / "affinity" / "1.onnx").is_file()
    recorded = state(models / ".fleet-train-state.json")
    assert {a: r["outcome"] for a, r in recorded.items()} == {"acme": "first version", "bolt": "first version", "cora": "first version", "dud": "failed"}
    assert len({r["node"] for r in recorded.values()}) >= 1
    stamps = {p: p.stat().st_mtime_ns for p in models.rglob("*.onnx")}

    (fleet / "bases" / "dud").rename(tmp_path / "dud")  # the platform fixes its export: the account leaves the fleet here
    try:
        assert main([*argv, "--resume", "--accounts", "acme,bolt,cora"]) == 0
    finally:
        (tmp_path / "dud").rename(fleet / "bases" / "dud")
    out = capsys.readouterr().out
    assert "resuming: 3 of 3 accounts already done" in out
    assert {p: p.stat().st_mtime_ns for p in models.rglob("*.onnx")} == stamps  # nothing redone
    assert not (models / "acme" / "affinity" / "2.onnx").exists()


@pytest.mark.slow
def test_fleet_on_postgres_schemas_trains_and_rescores_into_tables(postgres: PostgresServer, fleet: Path, tmp_path: Path) -> None:
    """A database with a schema per account: fleet train reads each schema, fleet rescore writes each
    account's scores table, one row per contact."""
    for account in ACCOUNTS[:2]:
        load_base(postgres, fleet / "bases" / account, f"fleet_{account}")
    url = postgres.url()
    models = tmp_path / "models"
    common = ["--data", url, "--models", str(models), "--accounts", "fleet_acme,fleet_bolt", "--workers", "2", "--as-of", AS_OF]
    assert main(["fleet", "train", *common, "--scores", "rfm,affinity"]) == 0
    assert main(["fleet", "rescore", *common, "--scores", "rfm,affinity", "--out", postgres.url(table="nightly")]) == 0
    for account in ("fleet_acme", "fleet_bolt"):
        assert postgres.query(f'SELECT count(*), count(DISTINCT contact_id), count("affinity.shoes") FROM {account}.nightly') == [(2500, 2500, 2500)]


@pytest.mark.slow
def test_fleet_on_the_ray_cluster_runs_on_both_nodes(ray_cluster: RayCluster, fleet: Path, tmp_path: Path) -> None:
    """fleet train --engine ray --address: every account trains, as tasks spread over both nodes of the cluster."""
    models = tmp_path / "models"
    env = {**os.environ, **ray_cluster.env}
    argv = [
        sys.executable, "-m", "scorecast.cli", "fleet", "train", "--data", str(fleet / "bases"), "--models", str(models),
        "--scores", "rfm", "--engine", "ray", "--address", ray_cluster.address, "--accounts", ",".join(ACCOUNTS),
    ]  # fmt: skip
    done = subprocess.run(argv, capture_output=True, text=True, env=env, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    recorded = state(models / ".fleet-train-state.json")
    assert {r["outcome"] for r in recorded.values()} == {"first version"}
    assert {r["node"] for r in recorded.values()} == set(ray_cluster.node_ids)  # both nodes ran tasks
    # the cluster's servers listen on loopback only, and no node talks to any other address
    sockets = ray_cluster.sockets()
    assert any(state == "LISTEN" and "gcs_server" in who for state, _, _, who in sockets)
    outside = [s for s in sockets if not is_loopback(s[1]) or (s[0] != "LISTEN" and not is_loopback(s[2]))]
    assert not outside, outside
