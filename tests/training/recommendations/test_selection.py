"""training/recommendations/selection.py: the grids, the holdout halves, and a selection that
scores copies and returns its choice (the fitted model it is given stays as it was)."""

from __future__ import annotations

import copy

import numpy as np
import pyarrow as pa
import pytest

from scorecast.training.recommendations.model import Orders, RecommendationModel
from scorecast.training.recommendations.selection import GRID, HALF_LIVES, VIEW_GRID, Holdout, blend_grid, select, view_grid

DAY_US = 86_400_000_000
AS_OF_US = 400 * DAY_US
CUTOFF = AS_OF_US - 30 * DAY_US


def test_blend_grid_is_the_product_less_moot_repeat_weights() -> None:
    """Every combination of ``HALF_LIVES`` x ``GRID`` in nested order, except a repeat weight
    other than the first with exclusion (the history is masked there); a fixed setting alone."""
    grid = blend_grid({})
    per_exclusion = {False: len(GRID["repeat_boost"]), True: 1}
    n = len(HALF_LIVES) * len(GRID["prior_half_life_days"]) * len(GRID["explore"]) * len(GRID["beta"])
    assert len(grid) == n * sum(per_exclusion.values())
    assert grid[0] == {
        "half_life_days": HALF_LIVES[0],
        "prior_half_life_days": None,
        "explore": 0.0,
        "beta": 0.1,
        "exclude_bought": False,
        "repeat_boost": 0.0,
        "view_boost": 0.0,
    }
    assert grid[1]["repeat_boost"] == GRID["repeat_boost"][1]  # the innermost axis moves first
    assert grid[len(GRID["repeat_boost"])]["exclude_bought"]
    assert not any(g["exclude_bought"] and g["repeat_boost"] != GRID["repeat_boost"][0] for g in grid)
    assert len({tuple(g.items()) for g in grid}) == len(grid)
    fixed = blend_grid({"repeat_boost": 0.5, "half_life_days": 10.0})
    assert len(fixed) == n // len(HALF_LIVES) * 2  # both exclusions, one repeat weight each
    assert {(g["repeat_boost"], g["half_life_days"]) for g in fixed} == {(0.5, 10.0)}


def test_view_grid_keeps_the_blend() -> None:
    blend = blend_grid({})[5]
    views = view_grid(blend, {})
    assert len(views) == len(VIEW_GRID["view_half_life_days"]) * len(VIEW_GRID["view_boost"])
    assert all(
        {k: v for k, v in g.items() if not k.startswith("view_")} == {k: v for k, v in blend.items() if k != "view_boost"}
        for g in views
    )
    assert [g["view_boost"] for g in view_grid(blend, {"view_boost": 0.2})] == [0.2] * len(VIEW_GRID["view_half_life_days"])


def _orders(n_contacts: int = 400, n_skus: int = 30, n_orders: int = 6_000) -> tuple[dict[str, pa.Table], Orders, pa.Array]:
    """Contacts buying from a few favourite SKUs (repeats) over 400 days."""
    rng = np.random.default_rng(3)
    contact = rng.integers(0, n_contacts, n_orders)
    favourite = rng.integers(0, n_skus, (n_contacts, 3))
    sku = np.where(
        rng.random(n_orders) < 0.7, favourite[contact, rng.integers(0, 3, n_orders)], rng.integers(0, n_skus, n_orders)
    )
    ts = rng.integers(0, AS_OF_US, n_orders)
    ids = pa.array(np.arange(n_contacts, dtype=np.int64) + 1_000)
    table = pa.table(
        {
            "contact_id": ids.take(pa.array(contact)),
            "ts": pa.array(ts, pa.timestamp("us", tz="UTC")),
            "sku": pa.array([f"S{s}" for s in sku]),
        }
    )
    return {"orders": table}, Orders(contact, sku, ts, n_contacts), ids


def test_select_returns_its_choice_and_leaves_the_model_as_it_was() -> None:
    tables, orders, ids = _orders()
    skus = [f"S{i}" for i in range(30)]  # the codes are the SKU numbers (any order will do here)
    model = RecommendationModel(k=5, factors=4, history_slots=5).fit(skus, orders, CUTOFF)
    before = copy.deepcopy(vars(model))
    holdout = Holdout.split(tables, orders, ids, len(skus), CUTOFF, AS_OF_US, max_eval=1_000, max_select=100, seed=0)
    assert holdout is not None
    assert holdout.select.sum() == 100 and not (holdout.select & holdout.report).any()
    selection = select(model, holdout, {})
    after = vars(model)
    assert after.keys() == before.keys()
    for name, value in before.items():
        if isinstance(value, np.ndarray):
            np.testing.assert_array_equal(after[name], value, err_msg=name)
        else:
            assert after[name] == value, name
    assert selection.served in ("model", "popularity", "popularity_unseen", "personal_frequency")
    assert selection.settings in blend_grid({}) or selection.served != "model"
    assert selection.metrics["n_eval_contacts"] == holdout.report.sum()
    assert 0 <= selection.metrics["recall_at_5"] <= 1 and selection.metrics["holdout_repeat_share"] > 0.3
    assert select(model, holdout, {}) == selection  # the same choice again: nothing carried over


def test_no_holdout_without_contacts_buying_on_both_sides() -> None:
    tables, orders, ids = _orders()
    late = Orders(orders.contact, orders.sku, orders.ts + AS_OF_US, orders.n_contacts)  # nothing before the cutoff
    assert Holdout.split(tables, late, ids, 30, CUTOFF, AS_OF_US, max_eval=10, max_select=5, seed=0) is None


def test_unknown_setting_is_refused() -> None:
    from scorecast.training.recommendations.selection import _variant

    with pytest.raises(ValueError, match="not settings of the model"):
        _variant(RecommendationModel(), prior=None)
