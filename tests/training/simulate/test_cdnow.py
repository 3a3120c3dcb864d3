"""The CDNOW loaders and split, our summary against the published one, and the holdout validation."""

from __future__ import annotations

from datetime import timedelta

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from scorecast.training.clv.bg_nbd import BetaGeoModel
from scorecast.training.clv.mbg_nbd import ModifiedBetaGeoModel
from scorecast.training.clv.pareto_nbd import ParetoNBDModel
from scorecast.training.clv.validation import NAIVE, holdout_table, repeat_summary
from scorecast.training.simulate.cdnow import (
    CALIBRATION_END,
    CALIBRATION_START,
    HOLDOUT_END,
    HOLDOUT_WEEKS,
    load_cdnow_summary,
    load_cdnow_transactions,
    write_cdnow_base,
)


@pytest.fixture(scope="module")
def orders() -> pa.Table:
    return load_cdnow_transactions()


def test_transactions_are_an_orders_table(orders: pa.Table) -> None:
    assert orders.schema == pa.schema(
        [
            ("contact_id", pa.int64()),
            ("ts", pa.timestamp("us", tz="UTC")),
            ("amount", pa.float64()),
        ]
    )
    assert orders.num_rows == 6919
    assert pa.compute.count_distinct(orders["contact_id"]).as_py() == 2357
    ts = orders["ts"].to_pandas()
    assert ts.min() == pd.Timestamp(CALIBRATION_START) and ts.max() == pd.Timestamp(
        HOLDOUT_END
    )
    assert (ts == ts.dt.floor("D")).all()


def test_split_constants() -> None:
    assert (CALIBRATION_END - CALIBRATION_START) / timedelta(weeks=1) == pytest.approx(
        38.86, abs=5e-3
    )
    assert (HOLDOUT_END - CALIBRATION_END) == timedelta(weeks=HOLDOUT_WEEKS)


def test_our_summary_equals_the_published_one(orders: pa.Table) -> None:
    """The feature pipeline's repeat summary in weeks is the papers' calibration summary."""
    published = load_cdnow_summary()
    ours = repeat_summary(orders, CALIBRATION_END, pa.array(published.contact_id), unit_days=7)
    np.testing.assert_array_equal(ours[:, 0], published.x)
    zbar = np.where(published.x > 0, ours[:, 3], 0.0)  # published 0.00 where we say NaN
    for i, name, want in ((1, "t_x", published.t_x), (2, "T", published.T), (3, "zbar", published.zbar)):
        got = zbar if name == "zbar" else ours[:, i]
        np.testing.assert_allclose(got, want, rtol=0, atol=0.005 + 1e-4, err_msg=name)
    assert published.x.sum() == 2457 and (published.x >= 1).sum() == 946


def test_published_summary_files_agree() -> None:
    from scorecast.training.simulate.cdnow import DATASETS

    plain = pd.read_csv(DATASETS / "cdnow_customers_summary.csv")
    s = load_cdnow_summary()
    np.testing.assert_array_equal(
        plain[["frequency", "recency", "T"]].to_numpy(),
        np.stack([s.x, s.t_x, s.T], axis=1),
    )


def test_summary_rejects_bad_unit() -> None:
    with pytest.raises(ValueError, match="unit_days must be > 0, got 0"):
        repeat_summary(load_cdnow_transactions(), CALIBRATION_END, unit_days=0)


def test_write_base(tmp_path) -> None:  # noqa: ANN001
    """The CDNOW base folder holds every order and customer, and refuses to overwrite."""
    import pyarrow.parquet as pq

    write_cdnow_base(tmp_path / "cdnow")
    assert pq.read_table(tmp_path / "cdnow" / "orders.parquet").num_rows == 6919
    assert pq.read_table(tmp_path / "cdnow" / "contacts.parquet").num_rows == 2357
    with pytest.raises(FileExistsError):
        write_cdnow_base(tmp_path / "cdnow")


def test_expected_purchases_track_cumulative_repeat_purchases(orders: pa.Table) -> None:
    """FHL 2005 Figure 1: the cohort's E[X(t)] tracks cumulative repeat purchases over 78 weeks."""
    s = load_cdnow_summary()
    model = BetaGeoModel().fit(s.x, s.t_x, s.T)
    full = repeat_summary(orders, HOLDOUT_END, unit_days=7)
    first = (HOLDOUT_END - CALIBRATION_START) / timedelta(weeks=1) - full[:, 2]  # first purchase, weeks
    daily = (
        orders.to_pandas()
        .assign(day=lambda d: d["ts"].dt.floor("D"))
        .drop_duplicates(["contact_id", "day"])
    )
    weeks = (
        (daily["day"] - pd.Timestamp(CALIBRATION_START)) / pd.Timedelta(weeks=1)
    ).to_numpy()
    is_repeat = daily.duplicated(
        "contact_id"
    ).to_numpy()  # sorted by day within contact
    for week in (39, 78):
        actual = np.sum(is_repeat & (weeks <= week))
        predicted = np.sum(model.expected_purchases(np.maximum(week - first, 0.0)))
        assert predicted == pytest.approx(actual, rel=0.05), week


def test_models_beat_the_naive_baseline_on_the_holdout(orders: pa.Table) -> None:
    s = load_cdnow_summary()
    models = {
        M.model_type: M().fit(s.x, s.t_x, s.T)
        for M in (BetaGeoModel, ModifiedBetaGeoModel, ParetoNBDModel)
    }
    table = holdout_table(models, orders)
    naive = table[NAIVE]
    assert all(row["total_actual"] == 1882 for row in table.values())
    for name in models:
        row = table[name]
        assert row["mae"] < 0.8 * naive["mae"], name
        assert row["cum_mape"] < 0.5 * naive["cum_mape"], name
        assert abs(row["total_pred"] - row["total_actual"]) < abs(
            naive["total_pred"] - naive["total_actual"]
        ), name
        assert 0.4 < row["spearman"] < 0.6, (
            name
        )  # the naive x/T ranks about as well: see the report
