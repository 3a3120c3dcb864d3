"""The lead families (contact attributes, interactions, B2B web visits) vs pandas references."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from scorecast.kernels import FeatureFrame, InputError, required_columns
from scorecast.kernels.event_windows import window_counts
from scorecast.kernels.time_units import US_PER_DAY

from . import reference

AS_OF = 1_000 * US_PER_DAY
KINDS = ("email_open", "email_click", "form", "demo_request")
PAGES = ("/pricing", "/careers", "/blog", "https://x.io:8080/a")


def _events(rng: np.random.Generator, n_contacts: int, n: int, column: str, values: tuple[str, ...]) -> pd.DataFrame:
    ts = AS_OF - rng.integers(-5 * US_PER_DAY, 120 * US_PER_DAY, n)
    # edge cases: events exactly at as_of and exactly at a window's start
    ts[: n // 10] = AS_OF
    ts[n // 10 : n // 5] = AS_OF - 7 * US_PER_DAY
    df = pd.DataFrame(
        {
            "contact_id": rng.integers(0, n_contacts, n),
            "ts": ts,
            column: rng.choice(np.array([*values, "other"], object), n),
            "duration_s": rng.exponential(30, n),
        }
    )
    df.loc[df.index[::7], column] = None
    df.loc[df.index[::11], "duration_s"] = np.nan
    return df


def _table(df: pd.DataFrame) -> pa.Table:
    table = pa.Table.from_pandas(df, preserve_index=False)
    return table.set_column(1, "ts", pa.array(df["ts"].to_numpy(), pa.int64()).cast(pa.timestamp("us", "UTC")))


def test_interactions_and_web_match_reference(rng: np.random.Generator) -> None:
    n_contacts = 40
    inter = _events(rng, n_contacts, 600, "kind", KINDS)
    web = _events(rng, n_contacts, 500, "page", PAGES)
    contacts = pa.table({"contact_id": pa.array(np.arange(n_contacts + 3))})  # 3 without events
    tables = {"contacts": contacts, "interactions": _table(inter), "web_events": _table(web)}
    names, refs = [], []
    for kind in (*KINDS, "*", "never_seen"):
        for days in (7, 21, 90):
            names.append(f"lead_int_count:{kind}:{days}")
            refs.append(("int", f"count:{kind}:{days}"))
        names.append(f"lead_int_recency_days:{kind}")
        refs.append(("int", f"recency:{kind}"))
    for page in (*PAGES, "*"):
        for days in (7, 90):
            names += [f"lead_web_visits:{page}:{days}", f"lead_web_duration_s:{page}:{days}"]
            refs += [("web", f"count:{page}:{days}"), ("web", f"sum:{page}:{days}")]
        names.append(f"lead_web_recency_days:{page}")
        refs.append(("web", f"recency:{page}"))
    X = FeatureFrame(tables, AS_OF).matrix(names)
    rows = list(range(n_contacts + 3))
    for j, (source, ref_name) in enumerate(refs):
        df, column = (inter, "kind") if source == "int" else (web, "page")
        expected = reference.window_features(df, rows, AS_OF, column, "duration_s", ref_name)
        np.testing.assert_allclose(X[:, j], expected.astype(np.float32), rtol=1e-6, err_msg=names[j])


def test_small_case_values() -> None:
    inter = pa.table(
        {
            "contact_id": pa.array(["a", "a", "b", "a"]),
            "ts": pa.array([AS_OF - 2 * US_PER_DAY, AS_OF - 30 * US_PER_DAY, AS_OF, AS_OF + 1], pa.int64()).cast(pa.timestamp("us", "UTC")),
            "kind": pa.array(["form", "form", "demo_request", "form"]),
        }
    )
    frame = FeatureFrame({"interactions": inter}, AS_OF)
    X = frame.matrix(["lead_int_count:form:21", "lead_int_count:form:90", "lead_int_recency_days:form", "lead_int_count:*:1"])
    assert frame.contact_ids.to_pylist() == ["a", "b"]
    np.testing.assert_array_equal(X[0], [1, 2, 2, 0])  # the event after as_of does not count
    np.testing.assert_array_equal(X[1, :2], [0, 0])
    assert np.isnan(X[1, 2]) and X[1, 3] == 1


def test_kernel_runs_once_for_covered_requests(monkeypatch: pytest.MonkeyPatch) -> None:
    from scorecast.kernels import interaction_features

    calls = []
    real = interaction_features.window_counts
    monkeypatch.setattr(interaction_features, "window_counts", lambda *a, **k: calls.append(1) or real(*a, **k))
    inter = pa.table({"contact_id": [1, 2], "ts": pa.array([0, 1], pa.timestamp("us", "UTC")), "kind": ["form", "x"]})
    frame = FeatureFrame({"interactions": inter}, 5)
    frame.matrix(["lead_int_count:form:21", "lead_int_count:x:7"])
    frame.matrix(["lead_int_count:x:21", "lead_int_recency_days:form"])
    assert len(calls) == 1
    frame.matrix(["lead_int_count:y:30"])  # widens: one more run
    assert len(calls) == 2


def test_window_kernel_direct_edges() -> None:
    # no events, no categories: zeros and NaN recency, every slot shaped
    out = window_counts(np.empty(0, np.int64), 3, np.empty(0, np.int64), np.empty(0, np.int32), 0, 10, np.array([1, 2]))
    assert out.counts.shape == (3, 1, 2) and not out.counts.any() and np.isnan(out.recency_days).all()


def test_contact_attributes() -> None:
    contacts = pa.table(
        {
            "contact_id": pa.array([3, 1, 2]),
            "country": pa.array(["FR", None, "DE"]),
            "employees": pa.array([10, None, 250], pa.int64()),
            "partner": pa.array([True, False, None]),
            "industry": pa.array(["saas", "bank", "saas"]).dictionary_encode(),
        }
    )
    names = ["attr:country=FR", "attr:country=DE", "attr:employees", "attr:partner", "attr:industry=saas", "attr:country=US"]
    X = FeatureFrame({"contacts": contacts}, 0, contact_ids=pa.array([1, 2, 3])).matrix(names)
    expected = np.array([[0, 0, np.nan, 0, 0, 0], [0, 1, 250, np.nan, 1, 0], [1, 0, 10, 1, 1, 0]], np.float32)
    np.testing.assert_array_equal(X, expected)
    assert required_columns(names) == {"contacts.country", "contacts.employees", "contacts.partner", "contacts.industry"}
    # without a contacts table: unknown
    inter = pa.table({"contact_id": [1], "ts": pa.array([0], pa.timestamp("us", "UTC")), "kind": ["form"]})
    X = FeatureFrame({"interactions": inter}, 0).matrix(["attr:employees", "attr:country=FR"])
    assert np.isnan(X[0, 0]) and X[0, 1] == 0


@pytest.mark.parametrize(
    ("name", "field"),
    [("attr:country", "contacts.country"), ("attr:employees=10", "contacts.employees"), ("attr:missing", "contacts.missing")],
)
def test_bad_attribute_types_name_the_column(name: str, field: str) -> None:
    contacts = pa.table({"contact_id": [1], "country": ["FR"], "employees": [10]})
    with pytest.raises(InputError) as info:
        FeatureFrame({"contacts": contacts}, 0).matrix([name])
    assert info.value.field == field


def test_negative_durations_are_refused() -> None:
    web = pa.table({"contact_id": [1], "ts": pa.array([0], pa.timestamp("us", "UTC")), "page": ["/a"], "duration_s": [-1.0]})
    with pytest.raises(InputError, match="negative"):
        FeatureFrame({"web_events": web}, 0).matrix(["lead_web_duration_s:*:7"])


@pytest.mark.parametrize(
    "name", ["attr:", "attr:x=", "lead_int_count:form", "lead_int_count:form:0", "lead_web_visits::7", "lead_int_bogus:a:7"]
)
def test_malformed_names_are_unknown(name: str) -> None:
    with pytest.raises(ValueError, match="unknown feature"):
        required_columns([name])


def test_lead_patterns_are_listed() -> None:
    from scorecast.kernels import FEATURE_PATTERNS

    for pattern in ("attr:<column>", "attr:<column>=<value>", "lead_int_count:<kind>:<days>", "lead_int_recency_days:<kind>"):
        assert pattern in FEATURE_PATTERNS
    for pattern in ("lead_web_visits:<page>:<days>", "lead_web_duration_s:<page>:<days>", "lead_web_recency_days:<page>"):
        assert pattern in FEATURE_PATTERNS
