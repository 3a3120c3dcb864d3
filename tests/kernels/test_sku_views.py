"""kernels/sku_view_features.py and sku_history.top_decayed: viewed SKUs against a plain pandas reference."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest
from numpy.testing import assert_allclose, assert_array_equal

from scorecast.kernels import FeatureFrame, InputError, required_columns
from scorecast.kernels.sku_history import top_decayed
from scorecast.kernels.sku_view_features import product_page_skus, sku_view_weight_names, sku_viewed_names
from scorecast.kernels.time_units import US_PER_DAY
from scorecast.kernels.web_config import parse_web_config

T0 = 1_700_000_000_000_000
UTC_US = pa.timestamp("us", "UTC")
PATTERN = "/products/{sku}"


def _random_views(rng: np.random.Generator, n_views: int, n_contacts: int, n_skus: int) -> pa.Table:
    pages = []
    for k, r in zip(rng.integers(0, n_skus, n_views), rng.random(n_views), strict=True):
        if r < 0.1:
            pages.append(None)
        elif r < 0.25:
            pages.append(f"/blog/S{k}")  # not a product page
        elif r < 0.35:
            pages.append(f"/products/S{k}?ref=mail")
        else:
            pages.append(f"/products/S{k}")
    return pa.table(
        {
            "contact_id": pa.array(rng.integers(0, n_contacts, n_views) * 7 + 3),
            "ts": pa.array(T0 + rng.integers(0, 60 * 24, n_views) * (US_PER_DAY // 24), UTC_US),
            "page": pa.array(pages, pa.string()),
        }
    )


def _reference(views: pa.Table, rows: list, skus: list[str], as_of: int, half_life_days: float, slots: int) -> tuple:
    """Plain pandas: decayed view counts per (contact, SKU), by descending count then code."""
    df = views.set_column(1, "ts", views.column("ts").cast(pa.int64())).to_pandas()
    path = df.page.str.replace(r"[?#].*", "", regex=True)
    sku = path.str.removeprefix("/products/").where(path.str.startswith("/products/"))
    code = {s: i for i, s in enumerate(skus)}
    df["code"] = sku.map(code)
    df = df[(df.ts <= as_of) & df.code.notna()].copy()
    df["w"] = 0.5 ** ((as_of - df.ts) / (half_life_days * US_PER_DAY))
    sums = df.groupby(["contact_id", "code"], as_index=False).w.sum()
    codes = np.full((len(rows), slots), -1.0, np.float32)
    counts = np.zeros((len(rows), slots), np.float32)
    for i, contact in enumerate(rows):
        mine = sums[sums.contact_id == contact].sort_values(["w", "code"], ascending=[False, True]).head(slots)
        codes[i, : len(mine)] = mine.code.to_numpy()
        counts[i, : len(mine)] = mine.w.to_numpy()
    return codes, counts


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_viewed_skus_match_reference(seed: int) -> None:
    rng = np.random.default_rng(seed)
    views = _random_views(rng, 4000, 200, 40)
    skus = [f"S{k}" for k in rng.permutation(30)]  # S30..S39 are not in the vocabulary
    as_of = T0 + 40 * US_PER_DAY
    frame = FeatureFrame({"web_events": views}, as_of)
    got = frame.matrix(
        [*sku_viewed_names(5), *sku_view_weight_names(5)], {"skus": skus, "product_page": PATTERN, "view_half_life_days": 7.0}
    )
    codes, counts = _reference(views, frame.contact_ids.to_pylist(), skus, as_of, 7.0, 5)
    assert_array_equal(got[:, :5], codes)
    assert_allclose(got[:, 5:], counts, rtol=1e-5)
    assert (got[:, 0] >= 0).mean() > 0.5


def test_ties_go_to_the_lower_code_and_later_views_are_ignored() -> None:
    contact = np.array([0, 0, 0, 0, 1])
    ts = np.array([10, 10, 10, 99, 5])
    code = np.array([3, 1, 2, 0, -1])
    codes, counts = top_decayed(contact, ts, code, 3, 20, 1e12, 4)
    assert_array_equal(codes, [[1, 2, 3, -1], [-1] * 4, [-1] * 4])  # equal counts: by code; ts 99 > as_of
    assert_allclose(counts[0, :3], 1.0, rtol=1e-6)
    with pytest.raises(InputError, match="half_life"):
        top_decayed(contact, ts, code, 3, 20, 0.0, 4)


def test_product_pages_with_a_suffix_dictionary_and_bad_types() -> None:
    pages = pa.array(["/p/a.html", "/p/b.html?x", "/p/.html", "/p/a", None, "/p/zz.html", "/q/a.html"]).dictionary_encode()
    assert_array_equal(product_page_skus(pages, "/p/{sku}.html", ["a", "b"]), [0, 1, -1, -1, -1, -1, -1])
    with pytest.raises(InputError, match="web_events.page"):
        product_page_skus(pa.array([1, 2]), PATTERN, ["a"])


def test_no_web_events_means_no_views_and_the_columns_read() -> None:
    orders = pa.table({"contact_id": [1, 2], "ts": pa.array([T0, T0], UTC_US)})
    frame = FeatureFrame({"orders": orders}, T0)
    params = {"skus": ["a"], "product_page": PATTERN, "view_half_life_days": 7.0}
    got = frame.matrix([*sku_viewed_names(2), *sku_view_weight_names(2)], params)
    assert_array_equal(got, [[-1, -1, 0, 0], [-1, -1, 0, 0]])
    assert required_columns(["sku_viewed:0"]) == {"web_events.contact_id", "web_events.ts", "web_events.page"}
    with pytest.raises(ValueError, match="product_page"):
        frame.matrix(["sku_viewed:0"], {"skus": ["a"], "view_half_life_days": 7.0})


@pytest.mark.parametrize(
    ("pattern", "message"),
    [("/products/", "exactly one"), ("{sku}", "page path before"), ("/p/{sku}?x", "query string"), (3, "exactly one")],
)
def test_product_page_config_is_checked(pattern: object, message: str) -> None:
    assert parse_web_config({"product_page": PATTERN})["product_page"] == PATTERN
    assert parse_web_config({})["product_page"] is None
    with pytest.raises(ValueError, match=message):
        parse_web_config({"product_page": pattern})

