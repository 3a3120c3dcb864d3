"""kernels/web.py and web_features.py: the web family against the pandas reference, edge cases,
page matching and bad input."""

from __future__ import annotations

from typing import Any

import numpy as np
import pyarrow as pa
import pytest
from numpy.testing import assert_allclose

from scorecast.kernels import FeatureFrame, InputError
from scorecast.kernels.time_units import US_PER_DAY
from scorecast.kernels.web import web_summary
from scorecast.kernels.web_config import parse_web_config
from scorecast.kernels.web_features import WEB_FEATURES, page_entries

from . import reference

MINUTE = 60_000_000
T0 = 1_700_000_000_000_000
AS_OF = T0 + 40 * US_PER_DAY
CONFIG = parse_web_config(
    {
        "session_gap_minutes": 30,
        "half_life_days": 10,
        "pages": [
            {"page": "/", "points": 1},
            {"prefix": "/products/", "points": 3, "category": "warm"},
            {"prefix": "/products/premium/", "points": 6, "category": "hot"},
            {"page": "/products/compare", "points": 2, "category": "cold"},
            {"page": "/pricing", "points": 10, "category": "hot"},
            {"prefix": "/careers", "points": 0, "category": "eliminating"},
        ],
    }
)
PAGES = ["/", "/products/a", "/products/premium/x", "/products/compare", "/pricing", "/careers/job-1", "/blog/x", "/unknown"]


def _table(contacts: list[int], ts: list[int], pages: list[str | None] | None, durations: list[float | None] | None) -> pa.Table:
    cols: dict[str, Any] = {"contact_id": pa.array(contacts, pa.int64()), "ts": pa.array(ts, pa.timestamp("us", "UTC"))}
    if pages is not None:
        cols["page"] = pa.array(pages, pa.string())
    if durations is not None:
        cols["duration_s"] = pa.array(durations, pa.float64())
    return pa.table(cols)


def _check(events: pa.Table, rows: list[int], config: dict = CONFIG, as_of: int = AS_OF) -> np.ndarray:
    frame = FeatureFrame({"contacts": pa.table({"contact_id": pa.array(rows, pa.int64())}), "web_events": events}, as_of)
    names = [n for n in WEB_FEATURES if all(c.split(".")[1] in events.column_names for c in _columns(n))]
    got = frame.matrix(names, {"web": config})
    want = reference.web_features(events, rows, as_of, config)
    for j, name in enumerate(names):
        # float32 matrix: compare at float32 precision
        assert_allclose(got[:, j], want[name.removeprefix("web_")].astype(np.float32), rtol=1e-6, err_msg=name)
    return got


def _columns(name: str) -> set[str]:
    from scorecast.kernels.web_features import WEB

    return WEB.columns(name)


def _random_events(rng: np.random.Generator, n_contacts: int, n: int) -> pa.Table:
    contacts = rng.integers(0, n_contacts, n)
    # times around as_of: some after it, some exactly at it, some at window edges, bursts
    days = rng.uniform(-45, 3, n)
    ts = AS_OF + np.rint(days * US_PER_DAY).astype(np.int64)
    ts[rng.random(n) < 0.05] = AS_OF
    ts[rng.random(n) < 0.03] = AS_OF - 7 * US_PER_DAY
    ts[rng.random(n) < 0.03] = AS_OF - 30 * US_PER_DAY
    burst = rng.random(n) < 0.3  # views a few minutes apart: sessions of several views
    ts[burst] = AS_OF - 2 * US_PER_DAY + rng.integers(0, 90, burst.sum()) * MINUTE
    pages = [None if rng.random() < 0.05 else PAGES[int(rng.integers(len(PAGES)))] for _ in range(n)]
    durations = [None if rng.random() < 0.1 else float(np.round(rng.exponential(60), 1)) for _ in range(n)]
    table = _table(contacts.tolist(), ts.tolist(), pages, durations)
    dupes = rng.integers(0, n, n // 10)  # duplicate events count as separate views
    return pa.concat_tables([table, table.take(pa.array(dupes))])


def test_random_events_match_the_reference(rng: np.random.Generator) -> None:
    """Every web feature equals the pandas reference on random events (nulls, duplicates,
    events after as_of, unknown pages, window edges, contacts without events)."""
    events = _random_events(rng, 40, 600)
    got = _check(events, list(range(45)))
    assert (got[40:, WEB_FEATURES.index("web_views_30d")] == 0).all()
    assert np.isnan(got[40:, WEB_FEATURES.index("web_days_since_visit")]).all()


CASES = {
    "no-events": _table([], [], [], []),
    "only-after-as-of": _table([0, 1], [AS_OF + 1, AS_OF + US_PER_DAY], ["/pricing", "/"], [5.0, 6.0]),
    "exactly-at-as-of": _table([0], [AS_OF], ["/pricing"], [5.0]),
    "window-edges": _table(
        [0, 0, 0], [AS_OF - 30 * US_PER_DAY, AS_OF - 7 * US_PER_DAY, AS_OF - 30 * US_PER_DAY + 1], ["/", "/", "/"], [1.0, 2.0, 4.0]
    ),
    "duplicates": _table([0, 0], [AS_OF - US_PER_DAY, AS_OF - US_PER_DAY], ["/pricing", "/pricing"], [3.0, 3.0]),
    "null-pages-and-durations": _table([0, 0], [AS_OF - US_PER_DAY, AS_OF - 2 * US_PER_DAY], [None, "/"], [None, 2.0]),
    "unknown-pages": _table([0, 1], [AS_OF - US_PER_DAY, AS_OF - US_PER_DAY], ["/nope", "/products"], [1.0, 1.0]),
    "session-gap-boundary": _table(
        [0, 0, 0], [AS_OF - 100 * MINUTE, AS_OF - 70 * MINUTE, AS_OF - 39 * MINUTE], ["/"] * 3, [1.0] * 3
    ),
    "out-of-time-order": _table(
        [0, 0, 0, 0], [AS_OF - US_PER_DAY, AS_OF - 3 * US_PER_DAY, AS_OF - US_PER_DAY - MINUTE, AS_OF - 3 * US_PER_DAY + MINUTE], ["/"] * 4, [1.0] * 4
    ),
    "old-visit-only": _table([0], [AS_OF - 100 * US_PER_DAY], ["/careers"], [1.0]),
    "no-page-or-duration-columns": _table([0, 1], [AS_OF - US_PER_DAY, AS_OF - 9 * US_PER_DAY], None, None),
}


@pytest.mark.parametrize("name", CASES)
def test_edge_cases_match_the_reference(name: str) -> None:
    """Edge cases equal the reference; features that need an absent column are skipped."""
    _check(CASES[name], [0, 1, 2])


def test_session_gap_and_categories_by_hand() -> None:
    """A hand-checked case: 31 minutes apart is a new session, 30 is not; exact beats prefix,
    the longest prefix wins; an eliminating page sets the flag."""
    events = _table(
        [0] * 5,
        [AS_OF - 61 * MINUTE, AS_OF - 30 * MINUTE, AS_OF, AS_OF - 8 * US_PER_DAY, AS_OF - 8 * US_PER_DAY],
        ["/products/premium/x", "/products/compare", "/products/a", "/careers", "/pricing"],
        [10.0, 20.0, None, 1.0, 2.0],
    )
    frame = FeatureFrame({"web_events": events}, AS_OF)
    row = dict(zip(WEB_FEATURES, frame.matrix(list(WEB_FEATURES), {"web": {**CONFIG, "half_life_days": 0}})[0], strict=True))
    assert row["web_views_7d"] == 3 and row["web_views_30d"] == 5
    assert row["web_sessions_7d"] == 2 and row["web_sessions_30d"] == 3  # 61 -> 30 min: new; 30 -> 0: same
    assert row["web_time_7d"] == 30 and row["web_time_30d"] == 33
    assert row["web_points_30d"] == 6 + 2 + 3 + 0 + 10
    assert row["web_hot_views_30d"] == 2 and row["web_warm_views_30d"] == 1
    assert row["web_eliminating_30d"] == 1 and row["web_days_since_visit"] == 0


def test_points_decay_with_the_half_life() -> None:
    """A hot page viewed one half-life ago is worth half its points."""
    events = _table([0], [AS_OF - 10 * US_PER_DAY], ["/pricing"], [1.0])
    x = FeatureFrame({"web_events": events}, AS_OF).matrix(["web_points_30d"], {"web": CONFIG})
    assert x[0, 0] == pytest.approx(5.0)


def test_without_a_config_pages_score_nothing() -> None:
    """No web config in the params: visits count, pages have no points or category."""
    events = _table([0, 0], [AS_OF - US_PER_DAY, AS_OF - US_PER_DAY], ["/pricing", "/careers"], [1.0, 1.0])
    x = FeatureFrame({"web_events": events}, AS_OF).matrix(["web_views_30d", "web_points_30d", "web_eliminating_30d"])
    assert x.tolist() == [[2.0, 0.0, 0.0]]


def test_page_entries_on_dictionary_and_string_view_columns() -> None:
    """Dictionary-encoded and string_view pages map like plain strings, nulls to -1."""
    plain = pa.array(["/pricing", None, "/products/premium/y", "/zzz", "/"])
    want = page_entries(plain, CONFIG)
    assert want.tolist() == [4, -1, 2, -1, 0]
    assert page_entries(plain.dictionary_encode(), CONFIG).tolist() == want.tolist()
    assert page_entries(plain.cast(pa.string_view()), CONFIG).tolist() == want.tolist()
    assert page_entries(pa.chunked_array([plain[:2], plain[2:]]), CONFIG).tolist() == want.tolist()


@pytest.mark.parametrize(
    ("events", "field", "message"),
    [
        (_table([0], [AS_OF], ["/"], [-3.0]), "web_events.duration_s", "-3.0"),
        (
            pa.table({"contact_id": [0], "ts": pa.array([AS_OF], pa.timestamp("us")), "page": ["/"], "duration_s": ["12"]}),
            "web_events.duration_s",
            "type string",
        ),
        (
            pa.table({"contact_id": [0], "ts": pa.array([AS_OF], pa.timestamp("us")), "page": [7], "duration_s": [1.0]}),
            "web_events.page",
            "type int64",
        ),
        (_table([0], [AS_OF], ["/"], [float("inf")]), "web_events.duration_s", "infinite"),
        (pa.table({"contact_id": [0], "ts": ["yesterday"], "page": ["/"], "duration_s": [1.0]}), "web_events.ts", "type string"),
        (pa.table({"contact_id": [0], "ts": pa.array([AS_OF], pa.timestamp("us"))}), "web_events.page", "no column page"),
    ],
    ids=["negative-duration", "duration-strings", "page-integers", "infinite-duration", "ts-strings", "page-missing"],
)
def test_bad_input_names_the_column_and_value(events: pa.Table, field: str, message: str) -> None:
    """Bad web_events data is an InputError naming the column and what is wrong."""
    with pytest.raises(InputError, match=message) as info:
        FeatureFrame({"web_events": events}, AS_OF).matrix(list(WEB_FEATURES), {"web": CONFIG})
    assert info.value.field == field


def test_a_bad_config_in_the_params_names_its_path() -> None:
    """A corrupt web config in a model's feature params is an InputError with the entry's path."""
    events = _table([0], [AS_OF], ["/"], [1.0])
    bad = {"pages": [{"page": "/", "points": 1}, {"page": "/x", "points": "x"}]}
    with pytest.raises(InputError, match=r'pages\[1\]\.points: expected a number, got "x"'):
        FeatureFrame({"web_events": events}, AS_OF).matrix(["web_points_30d"], {"web": bad})


def test_kernel_argument_checks() -> None:
    """The NumPy kernel refuses out-of-range codes and entries, and bad gaps, naming them."""
    codes, ts = np.array([0, 1]), np.array([1, 2], np.int64)
    points, category = np.array([1.0]), np.array([0], np.int32)
    with pytest.raises(InputError, match="codes"):
        web_summary(codes, 1, ts, None, None, points, category, 5)
    with pytest.raises(InputError, match="entry"):
        web_summary(codes, 2, ts, None, np.array([0, 1]), points, category, 5)
    with pytest.raises(InputError, match="session_gap_us"):
        web_summary(codes, 2, ts, None, None, points, category, 5, session_gap_us=0)
    with pytest.raises(InputError, match="ts_us"):
        web_summary(codes, 2, np.array([1.5, 2.0]), None, None, points, category, 5)


def test_web_features_are_known_to_the_pipeline() -> None:
    """FEATURE_PATTERNS lists every web feature; required_columns names what each reads."""
    from scorecast.kernels import FEATURE_PATTERNS, required_columns

    assert set(WEB_FEATURES) <= set(FEATURE_PATTERNS)
    assert required_columns(["web_views_7d"]) == {"web_events.contact_id", "web_events.ts"}
    assert required_columns(["web_points_30d", "web_time_30d"]) == {
        "web_events.contact_id",
        "web_events.ts",
        "web_events.page",
        "web_events.duration_s",
    }


def test_large_string_pages_and_an_extreme_as_of() -> None:
    """large_string pages map like strings; an as_of near the int64 minimum does not wrap."""
    pages = pa.array(["/pricing", "/products/a"], pa.large_string())
    assert page_entries(pages, CONFIG).tolist() == [4, 1]
    low = int(np.iinfo(np.int64).min) + 1
    events = pa.table({"contact_id": [0], "ts": pa.array([low], pa.timestamp("us", "UTC")), "page": ["/"], "duration_s": [1.0]})
    x = FeatureFrame({"web_events": events}, low).matrix(["web_views_7d", "web_views_30d"], {"web": CONFIG})
    assert x.tolist() == [[1.0, 1.0]]
