"""training/cross_sell.py: holdout quality vs group popularity, exact nulls, ONNX parity, refusals."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import onnxruntime as ort
import pytest
from numpy.testing import assert_allclose, assert_array_equal
from threadpoolctl import threadpool_limits

from scorecast.kernels import FeatureFrame
from scorecast.training.scores.cross_sell import fit_cross_sell
from scorecast.training.scores.cross_sell import CrossSellModel

from .product_base import product_base


@pytest.fixture(scope="module")
def model() -> Iterator[CrossSellModel]:
    base = product_base()
    with threadpool_limits(1):
        yield fit_cross_sell(
            {"orders": base.orders.select(["contact_id", "ts", "product_group"]), "contacts": base.contacts}, base.config.end
        )


def test_beats_group_popularity(model: CrossSellModel) -> None:
    """Pooled over (contact, group) pairs of the holdout: AUC and lift in the top 5 % (50k of
    a 1M base) above the group-popularity baseline; every group above random."""
    m = model.metrics_
    assert m["pooled_auc"] > m["group_popularity_auc"] + 0.03
    assert m["pooled_lift_top5"] > m["group_popularity_lift_top5"]
    assert m["pooled_auc"] > m["own_frequency_auc"]
    assert m["pooled_lift_top5"] > m["own_frequency_lift_top5"]
    assert min(v for k, v in m.items() if k.startswith("auc:")) > 0.55


def test_nulls_exactly_for_existing_buyers_and_onnx_parity(model: CrossSellModel) -> None:
    base = product_base()
    as_of = int(base.config.end.timestamp() * 1_000_000)
    X = FeatureFrame({"orders": base.orders, "contacts": base.contacts}, as_of).matrix(list(model.features_))
    onnx_model = model.to_onnx(version="1", trained_at="t", data_as_of="t")
    got = ort.InferenceSession(onnx_model.SerializeToString(), providers=["CPUExecutionProvider"]).run(None, {"features": X})[0]
    bought = np.stack([X[:, model.features_.index(f"group_count:{g}")] > 0 for g in model.groups_], axis=1)
    assert bought.any() and (~bought).any()
    assert_array_equal(np.isnan(got), bought)
    assert_allclose(got, model.predict_proba(X), rtol=1e-5, atol=1e-6)


def test_needs_product_groups() -> None:
    base = product_base()
    with pytest.raises(ValueError, match="orders.product_group"):
        fit_cross_sell({"orders": base.orders.select(["contact_id", "ts", "sku"])}, base.config.end)


def test_without_contacts_table_rows_are_earlier_buyers() -> None:
    """No contacts table: contacts first seen in the label window are not rows (they would
    all be easy positives), so the holdout AUC stays that of the base with contacts."""
    base = product_base()
    orders = base.orders.select(["contact_id", "ts", "product_group"])
    with threadpool_limits(1):
        model = fit_cross_sell({"orders": orders}, base.config.end)
    n_rows = model.metrics_["n_rows"]
    assert n_rows < base.contacts.num_rows
    assert 0.55 < model.metrics_["pooled_auc"] < 0.85
