"""training/simulate/hillstrom.py: the Hillstrom CSV as a base, and `scorecast import hillstrom`."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import numpy as np
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import pytest

from scorecast.cli import main
from scorecast.training.simulate.hillstrom import AS_OF, CAMPAIGN_ID, DATASET, SEND, hillstrom_tables


def test_tables_hold_the_campaign() -> None:
    """contact_id is the 1-based row, treated is an e-mail of either kind, outcomes are the file's."""
    raw = pacsv.read_csv(DATASET)
    t = hillstrom_tables()
    n = raw.num_rows
    assert n == 31_847
    assert t["contacts"]["contact_id"].to_pylist() == list(range(1, n + 1))
    assert t["contacts"]["channel"].to_pylist() == raw["channel"].to_pylist()
    promo = t["promotions"]
    assert promo["campaign_id"].unique().to_pylist() == [CAMPAIGN_ID]
    assert promo["ts"][0].as_py() == SEND
    treated = np.array(promo["treated"].to_pylist())
    assert (treated == (np.array(raw["segment"].to_pylist()) != "No E-Mail")).all()
    assert 0.6 < treated.mean() < 0.7
    conversion, visit = raw["conversion"].to_numpy(), raw["visit"].to_numpy()
    orders, web = t["orders"], t["web_events"]
    assert orders["contact_id"].to_pylist() == (np.flatnonzero(conversion) + 1).tolist()
    assert orders["amount"].to_numpy().sum() == pytest.approx(raw["spend"].to_numpy().sum())
    assert web["contact_id"].to_pylist() == (np.flatnonzero(visit) + 1).tolist()
    for table in (orders, web):  # inside the two weeks after the send
        assert all(SEND < ts <= AS_OF for ts in table["ts"].to_pylist())


def test_import_command_writes_a_base(tmp_path: Path) -> None:
    out = tmp_path / "base"
    assert main(["import", "hillstrom", str(DATASET), "--out", str(out)]) == 0
    assert json.loads((out / "base.json").read_text())["as_of"] == AS_OF.isoformat()
    assert pq.read_table(out / "contacts.parquet").num_rows == 31_847
    assert main(["import", "hillstrom", str(DATASET), "--out", str(out)]) == 2  # not empty: refused


def test_import_refuses_another_csv(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    other = tmp_path / "other.csv.gz"
    with gzip.open(other, "wt") as f:
        f.write("a,b\n1,2\n")
    assert main(["import", "hillstrom", str(other), "--out", str(tmp_path / "base")]) == 2
    assert "not the Hillstrom CSV" in capsys.readouterr().err
