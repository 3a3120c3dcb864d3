"""The simulator's catalogue (no repeats) and grocery (repeat-heavy) modes, and what the
recommendations fit learns from each: exclusion, the blend, every baseline beaten."""

from __future__ import annotations

import pyarrow.compute as pc
import pytest
from threadpoolctl import threadpool_limits

from scorecast.training.scores.recommendations import fit_recommendations
from scorecast.training.simulate.retail import SimulationConfig, simulate_base
from scorecast.training.simulate.products import GROCERY, NO_REPEAT, ProductConfig

BASELINES = ("popularity", "popularity_unseen", "personal_frequency", "item_item")


def _fit(products: ProductConfig, n_contacts: int = 12_000) -> tuple[float, object, dict[str, float]]:
    base = simulate_base(SimulationConfig(n_contacts=n_contacts, seed=7, products=products, email=False, web=False))
    orders = base.orders
    pairs = pc.binary_join_element_wise(pc.cast(orders.column("contact_id"), "string"), orders.column("sku"), "|")
    repeat_share = 1 - pc.count_distinct(pairs).as_py() / orders.num_rows
    with threadpool_limits(1):
        model, metrics = fit_recommendations({"orders": orders}, base.config.end)
    return repeat_share, model, metrics


@pytest.mark.slow
def test_no_repeat_catalogue_learns_exclusion_and_beats_popularity_among_unseen() -> None:
    repeat_share, model, m = _fit(NO_REPEAT)
    assert repeat_share < 0.01  # only contacts who bought a whole group repeat
    assert m["holdout_repeat_share"] < 0.02
    assert model.exclude_bought and model.served_ == "model"
    for baseline in BASELINES:
        assert m["ndcg_at_10"] > m[f"{baseline}_ndcg_at_10"], baseline
        assert m["recall_at_10"] > m[f"{baseline}_recall_at_10"], baseline


@pytest.mark.slow
def test_grocery_learns_repeats_and_beats_personal_frequency() -> None:
    """30k contacts: the blend's edge over personal frequency here is ~0.006 NDCG, within the
    noise of the ~480-contact halves of a 12k base (seed 7 there serves personal frequency,
    chosen on its selection half by 0.0015, and the blend wins the report half by 0.003)."""
    repeat_share, model, m = _fit(GROCERY, 30_000)
    assert repeat_share > 0.6
    assert m["holdout_repeat_share"] > 0.7
    assert not model.exclude_bought and model.repeat_boost > 0 and model.served_ == "model"
    for baseline in BASELINES:
        assert m["ndcg_at_10"] > m[f"{baseline}_ndcg_at_10"], baseline
