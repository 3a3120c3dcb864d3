"""recommendations, cross_sell and promo_appetence: trained on a simulated base, served over gRPC."""

from __future__ import annotations

import json
from collections.abc import Iterator

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pytest
from threadpoolctl import threadpool_limits

from scorecast.client import ScorecastClient
from scorecast.server.app import start_server
from scorecast.server.config import ServerSettings
from scorecast.training.simulate.products import SEGMENTS
from scorecast.training.simulate.retail import write_base
from scorecast.training.run import PRODUCT_SCORES
from scorecast.training.train import train

from ..training.scores.product_base import product_base

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ScorecastClient]:
    root = tmp_path_factory.mktemp("products")
    base = product_base()
    write_base(base, root / "base")
    with threadpool_limits(1):
        train(root / "base", root / "models", scores=list(PRODUCT_SCORES))
    running = start_server(ServerSettings(models=root / "models", port=0))
    with ScorecastClient(f"127.0.0.1:{running.port}", timeout=60) as c:
        yield c
    running.stop(0)


def _chunk() -> dict[str, pa.Table]:
    base = product_base()
    ids = base.contacts.column("contact_id").slice(0, 800)
    orders = base.orders.filter(pc.is_in(base.orders.column("contact_id"), value_set=ids))
    contacts = base.contacts.slice(0, 800)  # with their attributes: promo_appetence reads them
    return {"contacts": contacts, "orders": orders}


def test_three_scores_over_grpc(client: ScorecastClient) -> None:
    base = product_base()
    chunk = _chunk()
    batch = client.score_batch(chunk, list(PRODUCT_SCORES), as_of=base.config.end, exclude_bought=True)
    table = pa.Table.from_batches([batch])
    assert table.num_rows == 800
    names = table.column_names
    assert {"recommendations.cold", "recommendations.rec_1", "recommendations.rec_10_score"} <= set(names)
    assert {
        "promo_appetence.uplift",
        "promo_appetence.p_buy_promo",
        "promo_appetence.p_buy_none",
        "promo_appetence.segment",
    } <= set(names)
    # recommendations: SKU names, none already bought (exclude_bought), cold contacts flagged
    orders = chunk["orders"].to_pandas()
    bought = orders.groupby("contact_id").sku.agg(set).to_dict()
    recs = table.select([f"recommendations.rec_{i}" for i in range(1, 11)]).to_pandas()
    ids = table.column("contact_id").to_pylist()
    for row, contact in enumerate(ids):
        assert not set(recs.iloc[row]) & bought.get(contact, set())
    cold = table.column("recommendations.cold").to_numpy()
    assert np.array_equal(cold == 1, [c not in bought for c in ids])
    scores = table.column("recommendations.rec_1_score").to_numpy(zero_copy_only=False)
    assert np.all(scores >= table.column("recommendations.rec_10_score").to_numpy(zero_copy_only=False))
    # cross_sell: null exactly for the contacts who bought in the group
    for column in (c for c in names if c.startswith("cross_sell.")):
        group = column.split(".", 1)[1]
        buyers = set(orders[orders.product_group == group].contact_id)
        null = table.column(column).is_null().to_numpy(zero_copy_only=False)
        assert np.array_equal(null, [c in buyers for c in ids]), group
    # promo_appetence: uplift is the difference, segments named, null without orders
    uplift = table.column("promo_appetence.uplift").to_numpy(zero_copy_only=False)
    p1 = table.column("promo_appetence.p_buy_promo").to_numpy(zero_copy_only=False)
    p0 = table.column("promo_appetence.p_buy_none").to_numpy(zero_copy_only=False)
    known = ~np.isnan(uplift)
    assert np.array_equal(known, [c in bought for c in ids])
    np.testing.assert_allclose(uplift[known], (p1 - p0)[known], atol=1e-6)
    segments = table.column("promo_appetence.segment").combine_chunks().dictionary_decode().drop_null().to_pylist()
    assert set(segments) <= set(SEGMENTS) and len(set(segments)) >= 2
    # segment thresholds from the request: a huge uplift threshold leaves no persuadable
    strict = client.score_batch(chunk, ["promo_appetence"], as_of=base.config.end, uplift_threshold=0.9, buy_threshold=0.01)
    relaxed = strict.column(strict.schema.get_field_index("promo_appetence.segment")).dictionary_decode().drop_null().to_pylist()
    assert "persuadable" in segments and "persuadable" not in relaxed
    assert set(relaxed) <= {"sure_thing", "lost_cause"} and relaxed.count("sure_thing") > len(relaxed) / 2


def test_bought_items_come_back_without_the_option(client: ScorecastClient) -> None:
    """People re-buy: without exclude_bought a warm contact's list holds SKUs it bought."""
    base = product_base()
    chunk = _chunk()
    table = pa.Table.from_batches([client.score_batch(chunk, ["recommendations"], as_of=base.config.end)])
    orders = chunk["orders"].to_pandas()
    bought = orders.groupby("contact_id").sku.agg(set).to_dict()
    recs = table.select([f"recommendations.rec_{i}" for i in range(1, 11)]).to_pandas()
    overlap = [bool(set(recs.iloc[r]) & bought[c]) for r, c in enumerate(table.column("contact_id").to_pylist()) if c in bought]
    assert np.mean(overlap) > 0.5


def test_include_bought_overrides_the_learned_default_over_grpc(client: ScorecastClient) -> None:
    """exclude_bought=False reaches the model as 0 (proto presence), not as 'use the default':
    then some contacts are recommended SKUs they bought; with True, none is."""
    base = product_base()
    chunk = _chunk()
    bought = chunk["orders"].to_pandas().groupby("contact_id").sku.agg(set).to_dict()

    def repeats(exclude: bool) -> int:
        table = pa.Table.from_batches([client.score_batch(chunk, ["recommendations"], as_of=base.config.end, exclude_bought=exclude)])
        recs = table.select([f"recommendations.rec_{i}" for i in range(1, 11)]).to_pandas()
        return sum(len(set(recs.iloc[r]) & bought.get(c, set())) for r, c in enumerate(table.column("contact_id").to_pylist()))

    assert repeats(True) == 0
    assert repeats(False) > 0


def test_recommendations_read_product_page_views_when_sent(client: ScorecastClient) -> None:
    """The trained model reads web_events (the base has product-page views): a chunk with them
    changes the lists of contacts who viewed product pages, and only theirs; a chunk without
    web_events (the other tests) is scored as a base without views."""
    info = client.get_model("recommendations")
    assert "web_events.page" in info.input_columns
    assert json.loads(info.params_json)["view_boost"] > 0
    base = product_base()
    chunk = _chunk()
    ids = chunk["contacts"].column("contact_id")
    web = base.web_events.filter(pc.is_in(base.web_events.column("contact_id"), value_set=ids))

    def recs(tables: dict[str, pa.Table]) -> tuple[list, np.ndarray]:
        table = pa.Table.from_batches([client.score_batch(tables, ["recommendations"], as_of=base.config.end)])
        names = [f"recommendations.rec_{i}" for i in range(1, 11)]
        return table.column("contact_id").to_pylist(), table.select(names).to_pandas().to_numpy()

    rows, plain = recs(chunk)
    rows_web, viewed = recs({**chunk, "web_events": web})
    assert rows == rows_web
    viewers = set(web.filter(pc.starts_with(web.column("page"), "/products/SKU")).column("contact_id").to_pylist())
    changed = (plain != viewed).any(axis=1)
    assert changed.sum() > 20
    assert all(contact in viewers for contact, c in zip(rows, changed, strict=True) if c)
