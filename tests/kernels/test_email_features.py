"""kernels/email.py and email_features.py: the e-mail family against the pandas reference."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest
from numpy.testing import assert_allclose

from scorecast.kernels import FEATURE_PATTERNS, FeatureFrame, InputError, required_columns
from scorecast.kernels.email_features import EMAIL_FEATURES
from scorecast.kernels.time_units import US_PER_DAY

from . import email_reference as reference

T0 = 1_700_000_000_000_000
AS_OF = T0 + 400 * US_PER_DAY
KEYWORDS = ["running", "tech", "books"]  # "books" is on no campaign
NAMES = [*EMAIL_FEATURES, *(f"keyword_weight:{k}" for k in KEYWORDS)]
UTC_US = pa.timestamp("us", "UTC")
EVENTS = ("sent", "open", "click", "bounce", "unsubscribe")


def events(rows: list[tuple[object, float, object, str | None]], id_type: pa.DataType | None = None) -> pa.Table:
    """email_events from (contact, day after T0, campaign, event) rows."""
    return pa.table(
        {
            "contact_id": pa.array([r[0] for r in rows], id_type),
            "ts": pa.array([T0 + round(r[1] * US_PER_DAY) for r in rows], pa.int64()).cast(UTC_US),
            "campaign_id": pa.array([r[2] for r in rows], pa.int64()),
            "event": pa.array([r[3] for r in rows], pa.string()),
        }
    )


def campaigns(keywords: dict[int, list[str] | None]) -> pa.Table:
    return pa.table(
        {
            "campaign_id": pa.array(list(keywords), pa.int64()),
            "ts": pa.array([T0] * len(keywords), pa.int64()).cast(UTC_US),
            "keywords": pa.array(list(keywords.values()), pa.list_(pa.string())),
        }
    )


CAMPAIGNS = campaigns({1: ["running"], 2: ["tech", "running"], 3: ["tech"], 4: None, 5: ["tech", "tech"]})


def check(tables: dict[str, pa.Table], contact_ids: list, params: dict | None = None) -> np.ndarray:
    """The frame's features equal the reference's, column by column; returns the matrix."""
    params = params or {}
    frame = FeatureFrame(tables, AS_OF, contact_ids=pa.array(contact_ids))
    got = frame.matrix(NAMES, params)
    want = reference.email_features(
        tables.get("email_events", events([])),
        tables.get("campaigns"),
        contact_ids,
        AS_OF,
        KEYWORDS,
        params.get("keyword_half_life_days", 90.0),
        params.get("keyword_click_weight", 3.0),
    )
    for j, name in enumerate(NAMES):
        assert_allclose(got[:, j], want[name].astype(np.float32), rtol=1e-5, atol=1e-6, err_msg=name)
    return got


def random_events(rng: np.random.Generator, n_contacts: int, n_rows: int) -> list[tuple]:
    """Random rows: duplicates (few campaigns), null campaigns, rows after as_of, every type."""
    rows = []
    for _ in range(n_rows):
        campaign = None if rng.random() < 0.1 else int(rng.integers(1, 7))  # 6 is not in campaigns
        day = float(rng.uniform(0, 420))  # some after as_of (day 400)
        rows.append((int(rng.integers(0, n_contacts)), day, campaign, EVENTS[int(rng.integers(0, 5))]))
    return rows


def test_random_events_match_reference(rng: np.random.Generator) -> None:
    rows = random_events(rng, 30, 600)
    rows += rows[:50]  # exact duplicates
    check({"email_events": events(rows), "campaigns": CAMPAIGNS}, list(range(32)))  # 30, 31: no events


def test_params_change_keyword_weights(rng: np.random.Generator) -> None:
    rows = random_events(rng, 10, 200)
    tables = {"email_events": events(rows), "campaigns": CAMPAIGNS}
    a = check(tables, list(range(10)), {"keyword_half_life_days": 10.0, "keyword_click_weight": 5.0})
    b = check(tables, list(range(10)))
    assert not np.allclose(a[:, -3:], b[:, -3:])


def test_hand_case() -> None:
    rows = [
        (1, 10, 1, "sent"), (1, 10.5, 1, "open"), (1, 10.6, 1, "open"), (1, 10.7, 1, "click"),
        (1, 399, 2, "sent"), (1, 399.5, 2, "open"),
        (1, 401, 3, "sent"),  # after as_of: ignored
        (2, 100, 1, "sent"), (2, 100, 1, "bounce"),  # only a bounce, hard
        (3, 300, 2, "sent"), (3, 301, 2, "open"), (3, 301, 2, "unsubscribe"),
        (4, 50, 1, "bounce"), (4, 60, 2, "bounce"),  # only bounces, no sends
    ]  # fmt: skip
    x = check({"email_events": events(rows), "campaigns": CAMPAIGNS}, [1, 2, 3, 4, 5])
    col = {name: x[:, j] for j, name in enumerate(NAMES)}
    assert list(col["email_sends"]) == [2, 1, 1, 0, 0]
    assert list(col["email_opens"]) == [2, 0, 1, 0, 0]  # the re-open of campaign 1 counts once
    assert list(col["email_unsubscribed"]) == [0, 0, 1, 0, 0]
    assert list(col["email_hard_bounced"]) == [0, 1, 0, 1, 0]
    assert col["email_days_since_open"][0] == pytest.approx(0.5)
    assert col["email_open_rate"][0] == 1.0 and np.isnan(col["email_open_rate"][3])
    assert col["email_mean_send_gap_days"][0] == pytest.approx(389.0)
    # open (day 10.5) + click (10.7, x3) of "running"; open of campaign 2 (running, tech) at 399.5
    running = 0.5 ** (389.5 / 90) + 3 * 0.5 ** (389.3 / 90) + 0.5 ** (0.5 / 90)
    assert col["keyword_weight:running"][0] == pytest.approx(running, rel=1e-5)
    assert np.isnan(col["email_days_since_send"][4]) and col["email_sends_365d"][4] == 0


def test_no_email_table_means_no_events() -> None:
    frame = FeatureFrame({"contacts": pa.table({"contact_id": [1, 2]})}, AS_OF)
    x = frame.matrix(NAMES)
    assert (x[:, NAMES.index("email_sends")] == 0).all()
    assert np.isnan(x[:, NAMES.index("email_days_since_open")]).all()
    assert (x[:, NAMES.index("keyword_weight:tech")] == 0).all()


def test_string_ids_and_rows_from_events() -> None:
    rows = [("a", 1, 1, "sent"), ("b", 2, 1, "sent"), ("a", 3, 1, "open")]
    frame = FeatureFrame({"email_events": events(rows), "campaigns": CAMPAIGNS}, AS_OF)
    assert frame.contact_ids.to_pylist() == ["a", "b"]
    assert frame.matrix(["email_opens"])[:, 0].tolist() == [1, 0]


def test_names_columns_and_patterns() -> None:
    assert "keyword_weight:<keyword>" in FEATURE_PATTERNS and "email_open_rate" in FEATURE_PATTERNS
    assert "campaigns.keywords" in required_columns(["keyword_weight:tech"])
    assert "campaigns.keywords" not in required_columns(["email_sends_30d"])
    with pytest.raises(ValueError, match="unknown feature"):
        required_columns(["keyword_weight:"])


@pytest.mark.parametrize(
    ("tables", "names", "field", "match"),
    [
        ({"email_events": events([(1, 1, 1, "sent"), (1, 2, 1, "bounced")])}, ["email_sends"], "email_events.event", "'bounced'"),
        ({"email_events": events([(1, 1, 1, None)])}, ["email_sends"], "email_events.event", "null"),
        (
            {
                "email_events": events([(1, 1, 1, "open")]),
                "campaigns": CAMPAIGNS.set_column(2, "keywords", pa.array(["running"] * 5)),
            },
            ["keyword_weight:tech"],
            "campaigns.keywords",
            "list of strings.*'running'",
        ),
        (
            {"email_events": events([(1, 1, 1, "open")]), "campaigns": CAMPAIGNS.set_column(2, "keywords", pa.array([[1]] * 5))},
            ["keyword_weight:tech"],
            "campaigns.keywords",
            "string",
        ),
        ({"email_events": events([(1, 1, 1, "open")])}, ["keyword_weight:tech"], "campaigns", "missing"),
        (
            {"email_events": events([(1, 1, 1, "open")]), "campaigns": pa.concat_tables([CAMPAIGNS, CAMPAIGNS])},
            ["keyword_weight:tech"],
            "campaigns.campaign_id",
            "more than once, e.g. 1",
        ),
        (
            {"email_events": events([(1, 1, 1, "open")]).drop_columns("campaign_id")},
            ["email_sends"],
            "email_events.campaign_id",
            "no column campaign_id",
        ),
    ],
    ids=[
        "unknown-event",
        "null-event",
        "keywords-not-list",
        "keywords-not-strings",
        "no-campaigns",
        "duplicate-campaign",
        "no-campaign-column",
    ],
)
def test_bad_input_names_column_and_value(tables: dict, names: list[str], field: str, match: str) -> None:
    with pytest.raises(InputError, match=match) as info:
        FeatureFrame(tables, AS_OF).matrix(names)
    assert info.value.field == field


def test_bad_params() -> None:
    frame = FeatureFrame({"email_events": events([(1, 1, 1, "open")]), "campaigns": CAMPAIGNS}, AS_OF)
    with pytest.raises(InputError, match="> 0"):
        frame.matrix(["keyword_weight:tech"], {"keyword_half_life_days": 0})


def test_later_calls_widen_the_keywords() -> None:
    rows = [(1, 390, 2, "sent"), (1, 391, 2, "open"), (1, 392, 5, "click")]
    frame = FeatureFrame({"email_events": events(rows), "campaigns": CAMPAIGNS}, AS_OF)
    tech = frame.matrix(["keyword_weight:tech"])[:, 0]
    both = frame.matrix(["keyword_weight:running", "keyword_weight:tech"])
    assert both[0, 1] == tech[0] and both[0, 0] > 0
    # campaign 5 lists "tech" twice: it weighs once
    assert tech[0] == pytest.approx(0.5 ** (9 / 90) + 3 * 0.5 ** (8 / 90), rel=1e-5)


def test_times_before_1970() -> None:
    day = -US_PER_DAY
    table = pa.table(
        {
            "contact_id": [1, 1, 2],
            "ts": pa.array([10 * day, 5 * day, 3 * day], pa.int64()).cast(UTC_US),
            "campaign_id": [1, 1, 2],
            "event": ["sent", "bounce", "open"],
        }
    )
    x = FeatureFrame({"email_events": table}, 0).matrix(["email_days_since_send", "email_hard_bounced", "email_days_since_open"])
    np.testing.assert_array_equal(x[0], [10, 1, np.nan])
    np.testing.assert_array_equal(x[1], [np.nan, 0, 3])
