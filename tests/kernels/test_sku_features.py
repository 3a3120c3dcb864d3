"""kernels/sku_features.py: sku_history and promo_share against a plain pandas reference."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest
from numpy.testing import assert_allclose, assert_array_equal

from scorecast.kernels import FeatureFrame, InputError, required_columns
from scorecast.kernels.sku_features import sku_history_names, sku_weight_names
from scorecast.kernels.time_units import US_PER_DAY

T0 = 1_700_000_000_000_000
UTC_US = pa.timestamp("us", "UTC")


def _random_orders(rng: np.random.Generator, n_orders: int, n_contacts: int, n_skus: int) -> pa.Table:
    return pa.table(
        {
            "contact_id": pa.array(rng.integers(0, n_contacts, n_orders) * 7 + 3),
            # whole days: many ties in ts, which must go to the later row
            "ts": pa.array(T0 + rng.integers(0, 60, n_orders) * US_PER_DAY, UTC_US),
            "sku": pa.array([f"S{k}" if k >= 0 else None for k in rng.integers(-1, n_skus, n_orders)]),
            "promo": pa.array([None if r < 0.1 else bool(r > 0.6) for r in rng.random(n_orders)]),
        }
    )


def _reference_history(orders: pa.Table, rows: list[int], skus: list[str], as_of: int, slots: int) -> np.ndarray:
    df = orders.set_column(1, "ts", orders.column("ts").cast(pa.int64())).to_pandas()
    df["row"] = np.arange(len(df))
    code = {s: i for i, s in enumerate(skus)}
    out = np.full((len(rows), slots), -1.0, np.float32)
    for i, contact in enumerate(rows):
        mine = df[(df.contact_id == contact) & (df.ts <= as_of) & df.sku.isin(code)]
        mine = mine.sort_values(["ts", "row"], ascending=False)
        distinct = list(dict.fromkeys(mine.sku))[:slots]
        out[i, : len(distinct)] = [code[s] for s in distinct]
    return out


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_sku_history_matches_reference(seed: int) -> None:
    rng = np.random.default_rng(seed)
    orders = _random_orders(rng, 3000, 200, 40)
    skus = [f"S{k}" for k in rng.permutation(30)]  # S30..S39 are not in the vocabulary
    as_of = T0 + 40 * US_PER_DAY
    frame = FeatureFrame({"orders": orders}, as_of)
    got = frame.matrix(sku_history_names(6), {"skus": skus})
    rows = frame.contact_ids.to_pylist()
    assert_array_equal(got, _reference_history(orders, rows, skus, as_of, 6))


def test_promo_share_matches_reference() -> None:
    rng = np.random.default_rng(4)
    orders = _random_orders(rng, 600, 150, 10)
    as_of = T0 + 10 * US_PER_DAY
    frame = FeatureFrame({"orders": orders}, as_of)
    got = frame.matrix(["promo_share"])[:, 0]
    df = orders.set_column(1, "ts", orders.column("ts").cast(pa.int64())).to_pandas()
    df = df[(df.ts <= as_of) & df.promo.notna()]
    expected = df.groupby("contact_id").promo.mean().reindex(frame.contact_ids.to_pylist())
    assert_allclose(got, expected.to_numpy(np.float32), rtol=1e-6)
    assert np.isnan(got).any()  # contacts whose orders all come after as_of


def test_integer_skus_match_their_text_and_no_orders_is_cold() -> None:
    orders = pa.table(
        {
            "contact_id": pa.array([1, 1, 2]),
            "ts": pa.array([T0, T0 + US_PER_DAY, T0], UTC_US),
            "sku": pa.array([10, 20, 10], pa.int64()),
        }
    )
    contacts = pa.table({"contact_id": pa.array([1, 2, 3])})
    frame = FeatureFrame({"orders": orders, "contacts": contacts}, T0 + 2 * US_PER_DAY)
    got = frame.matrix(sku_history_names(3), {"skus": ["20", "10"]})
    assert_array_equal(got, [[0, 1, -1], [1, -1, -1], [-1, -1, -1]])


def test_errors_and_columns() -> None:
    orders = pa.table({"contact_id": pa.array([1]), "ts": pa.array([T0], UTC_US), "sku": pa.array([1.5])})
    frame = FeatureFrame({"orders": orders}, T0)
    with pytest.raises(InputError, match="orders.sku"):
        frame.matrix(["sku_history:0"], {"skus": ["a"]})
    with pytest.raises(ValueError, match="vocabulary"):
        frame.matrix(["sku_history:0"], {})
    with pytest.raises(InputError, match="orders.promo"):
        frame.matrix(["promo_share"])
    with pytest.raises(ValueError, match="unknown feature"):
        required_columns(["sku_history:01"])
    assert required_columns(["sku_history:3"]) == {"orders.contact_id", "orders.ts", "orders.sku"}
    assert required_columns(["promo_share"]) == {"orders.contact_id", "orders.ts", "orders.promo"}


def test_sku_weight_is_the_time_decayed_count_of_each_history_slot() -> None:
    """Random orders: each slot's weight equals sum 0.5^(age/half-life) over that SKU's orders
    up to as_of (pandas reference); 0 for empty slots; the half-life is required."""
    rng = np.random.default_rng(3)
    orders = _random_orders(rng, 3_000, 40, 25)
    skus = [f"S{k}" for k in range(20)]
    as_of, slots, half_life = T0 + 45 * US_PER_DAY, 6, 10.0
    frame = FeatureFrame({"orders": orders}, as_of)
    x = frame.matrix([*sku_history_names(slots), *sku_weight_names(slots)], {"skus": skus, "half_life_days": half_life})
    history, weights = x[:, :slots], x[:, slots:]
    df = orders.set_column(1, "ts", orders.column("ts").cast(pa.int64())).to_pandas()
    df = df[(df.ts <= as_of) & df.sku.isin(skus)]
    ids = frame.contact_ids.to_pylist()
    for row, contact in enumerate(ids):
        mine = df[df.contact_id == contact]
        for slot in range(slots):
            code = int(history[row, slot])
            if code < 0:
                assert weights[row, slot] == 0.0
                continue
            ages = (as_of - mine.ts[mine.sku == skus[code]].to_numpy()) / US_PER_DAY
            assert_allclose(weights[row, slot], (0.5 ** (ages / half_life)).sum(), rtol=1e-5)
    with pytest.raises(ValueError, match="half_life_days"):
        FeatureFrame({"orders": orders}, as_of).matrix(sku_weight_names(2), {"skus": skus})
