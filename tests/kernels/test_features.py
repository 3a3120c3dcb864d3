"""kernels/features.py: FeatureFrame against the pandas reference, row definition, errors."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np
import pyarrow as pa
import pytest
from numpy.testing import assert_allclose, assert_array_equal

from scorecast.kernels import (
    FEATURE_PATTERNS,
    FeatureFrame,
    InputError,
    order_feature_names,
    order_features,
    required_columns,
)
from scorecast.kernels.time_units import US_PER_DAY

from . import reference

T0 = 1_700_000_000_000_000  # µs since the epoch
AS_OF = T0 + 100 * US_PER_DAY
GROUPS = ["shoes", "bags", "toys"]  # "toys" never appears in the orders below
NAMES = order_feature_names(GROUPS)
REPEAT_NAMES = list(reference.REPEAT_FIELDS)
ALL_NAMES = NAMES + REPEAT_NAMES
UTC_US = pa.timestamp("us", "UTC")


def orders(
    contact_ids: list,
    ts_days: list[float],
    amount: list[float | None] | None = None,
    product_group: list[str | None] | None = None,
    *,
    id_type: pa.DataType | None = None,
    ts_type: pa.DataType = UTC_US,
) -> pa.Table:
    """An orders table; times in days after T0, amounts 10 and groups "shoes" by default."""
    n = len(contact_ids)
    ts = pa.array([T0 + round(d * US_PER_DAY) for d in ts_days], pa.int64()).cast(pa.timestamp("us"))
    return pa.table(
        {
            "contact_id": pa.array(contact_ids, id_type),
            "ts": ts.cast(ts_type) if ts_type != ts.type else ts,
            "amount": pa.array([10.0] * n if amount is None else amount, pa.float64()),
            "product_group": pa.array(["shoes"] * n if product_group is None else product_group),
        }
    )


def contacts(contact_ids: list, id_type: pa.DataType | None = None) -> pa.Table:
    return pa.table(
        {"contact_id": pa.array(contact_ids, id_type), "country": ["FR"] * len(contact_ids)}
    )


_MIXED = orders(
    [7, 3, 7, 5, 3, 7, 9],
    [10, 20, 30, 40, 99.5, 150, 120],  # the last two are after as_of
    [12.5, None, 7.0, 3.0, 1.0, 100.0, 5.0],
    ["shoes", "bags", None, "garden", "shoes", "bags", "shoes"],
)


def _chunked(table: pa.Table) -> pa.Table:
    """The same table with every column split in three chunks and the columns reversed."""
    cols = {}
    for name in reversed(table.column_names):
        col = table.column(name).combine_chunks()
        cols[name] = pa.chunked_array([col.slice(0, 2), col.slice(2, 2), col.slice(4)])
    return pa.table(cols)


def _shuffled(table: pa.Table, seed: int = 0) -> pa.Table:
    return table.take(np.random.default_rng(seed).permutation(table.num_rows))


SCENARIOS: dict[str, dict[str, Any]] = {
    "orders-only-int-ids": dict(tables={"orders": _MIXED}),
    "orders-only-string-ids": dict(
        tables={
            "orders": orders(["x", "y", "x"], [1, 2, 3], product_group=["shoes", "bags", "bags"])
        }
    ),
    "int32-ids": dict(tables={"orders": orders([2, 1, 2], [1, 2, 3], id_type=pa.int32())}),
    "one-order": dict(tables={"orders": orders([42], [50], [9.5], ["bags"])}),
    "all-orders-after-as-of": dict(tables={"orders": orders([1, 2], [101, 200])}),
    "contacts-without-orders": dict(
        tables={"orders": _MIXED, "contacts": contacts([1, 9, 7, 2, 3, 5])}
    ),
    "int32-contacts-int64-orders": dict(
        tables={"orders": _MIXED, "contacts": contacts([9, 7, 3, 5], pa.int32())}
    ),
    "explicit-row-order": dict(
        tables={"orders": _MIXED, "contacts": contacts([3, 5, 7, 9, 11])},
        contact_ids=pa.array([11, 9, 7, 5, 3]),
    ),
    "prospects-no-orders-table": dict(tables={"contacts": contacts(["a", "b"])}),
    "prospects-empty-orders": dict(tables={"orders": orders([], []), "contacts": contacts([4, 5])}),
    "no-tables-explicit-rows": dict(tables={}, contact_ids=pa.array([1, 2])),
    "nothing-at-all": dict(tables={}),
    "empty-orders-only": dict(tables={"orders": orders([], [])}),
    "null-amounts-and-groups": dict(
        tables={"orders": orders([1, 1, 2], [1, 2, 3], [None, None, 4.0], [None, None, "toys"])}
    ),
    "duplicate-timestamps": dict(
        tables={
            "orders": orders(
                [1, 1, 1, 2], [5, 5, 5, 5], [1, 2, 3, 4], ["shoes", "shoes", "bags", "bags"]
            )
        }
    ),
    "unsorted-chunked-extra-columns": dict(
        tables={"orders": _chunked(_shuffled(_MIXED.append_column("sku", pa.array(["s"] * 7))))}
    ),
    "string-view-groups-and-dictionary-ids": dict(
        tables={
            "orders": _MIXED.set_column(
                3, "product_group", _MIXED.column("product_group").cast(pa.string_view())
            ).set_column(0, "contact_id", _MIXED.column("contact_id").dictionary_encode())
        }
    ),
    "nanosecond-timestamps": dict(
        tables={"orders": orders([1, 2, 1], [1, 2, 3], ts_type=pa.timestamp("ns", "UTC"))}
    ),
    "naive-millisecond-timestamps": dict(
        tables={"orders": orders([1, 2, 1], [1, 2, 3], ts_type=pa.timestamp("ms"))}
    ),
    "date32": dict(tables={"orders": orders([1, 2, 1], [1, 2, 3], ts_type=pa.date32())}),
}


def _assert_frame_matches_reference(
    tables: dict[str, pa.Table],
    names: list[str],
    contact_ids: pa.Array | None = None,
    as_of: int = AS_OF,
) -> FeatureFrame:
    frame = FeatureFrame(tables, as_of, contact_ids)
    got = frame.matrix(names)
    rows, expected = reference.feature_matrix(tables, as_of, names, contact_ids)
    assert frame.contact_ids.to_pylist() == rows
    assert got.dtype == np.float32 and got.flags.c_contiguous
    assert got.shape == (len(rows), len(names))
    assert_allclose(got, expected, rtol=1e-6, atol=0)
    return frame


@pytest.mark.parametrize("scenario", SCENARIOS.values(), ids=SCENARIOS.keys())
def test_matrix_matches_reference(scenario: dict[str, Any]) -> None:
    """Every feature for every row equals the pandas reference, NaN where it has NaN."""
    _assert_frame_matches_reference(scenario["tables"], ALL_NAMES, scenario.get("contact_ids"))


def test_rows_follow_first_appearance_without_contacts() -> None:
    """Without contacts or contact_ids, rows are the orders' contacts in first-appearance order."""
    assert FeatureFrame({"orders": _MIXED}, AS_OF).contact_ids.to_pylist() == [7, 3, 5, 9]


def test_rows_follow_the_contacts_table() -> None:
    """With a contacts table, its contact_id column is the rows, with or without orders."""
    tables = {"orders": _MIXED, "contacts": contacts([9, 1, 7, 3, 5])}
    frame = FeatureFrame(tables, AS_OF)
    assert frame.contact_ids.to_pylist() == [9, 1, 7, 3, 5]
    assert len(frame) == 5
    assert_array_equal(frame.matrix(["frequency"])[:, 0], [0, 0, 2, 2, 1])


def test_values_of_a_small_case() -> None:
    """Hand-checked values for contact 7: orders at days 10, 30 (150 is after as_of)."""
    frame = FeatureFrame({"orders": _MIXED}, AS_OF, pa.array([9, 5, 3, 7]))
    row = dict(zip(NAMES, frame.matrix(NAMES)[3].tolist(), strict=True))
    assert row["recency_days"] == 70 and row["tenure_days"] == 90
    assert row["frequency"] == 2 and row["repeat_count"] == 1
    assert row["monetary"] == pytest.approx(9.75) and row["total_amount"] == pytest.approx(19.5)
    assert row["group_count:shoes"] == 1 and row["group_recency_days:shoes"] == 90
    assert row["group_count:bags"] == 0 and np.isnan(row["group_recency_days:bags"])


def test_matrix_follows_the_requested_order() -> None:
    """Columns come in the order asked, repeats included."""
    frame = FeatureFrame({"orders": _MIXED}, AS_OF)
    full = frame.matrix(NAMES)
    picked = ["group_count:bags", "frequency", "group_count:bags", "recency_days"]
    got = frame.matrix(picked)
    assert_array_equal(got, full[:, [NAMES.index(n) for n in picked]])
    assert frame.matrix([]).shape == (4, 0)


def test_kernel_runs_once_for_covered_requests(monkeypatch: pytest.MonkeyPatch) -> None:
    """A request the last summary covers reuses it; a new group recomputes with the union."""
    calls: list[int] = []
    real = order_features.rfm_summary

    def counting(*args: Any, **kwargs: Any) -> Any:
        calls.append(args[5])  # n_groups
        return real(*args, **kwargs)

    monkeypatch.setattr(order_features, "rfm_summary", counting)
    monkeypatch.setattr(order_features, "FEW_CONTACTS", -1)  # the general path, whose summaries a frame keeps
    frame = FeatureFrame({"orders": _MIXED}, AS_OF)
    frame.matrix(["frequency", "monetary", "group_count:shoes"])
    frame.matrix(["group_recency_days:shoes", "recency_days"])
    assert calls == [1]
    frame.matrix(["group_count:bags"])
    frame.matrix(["group_count:shoes", "group_count:bags", "total_amount"])
    assert calls == [1, 2]
    _, expected = reference.feature_matrix({"orders": _MIXED}, AS_OF, NAMES)
    assert_allclose(frame.matrix(NAMES), expected, rtol=1e-6)


def test_repeat_kernel_runs_only_when_asked_and_once(monkeypatch: pytest.MonkeyPatch) -> None:
    """RFM requests never run the repeat kernel, repeat-only requests never run the RFM one;
    a request for repeat_monetary after amount-free repeat features recomputes with amounts."""
    calls: list[str] = []
    real_rfm, real_repeat = order_features.rfm_summary, order_features.repeat_summary

    def rfm(*args: Any, **kwargs: Any) -> Any:
        calls.append("rfm")
        return real_rfm(*args, **kwargs)

    def repeat(*args: Any, **kwargs: Any) -> Any:
        calls.append("repeat" if args[3] is None else "repeat+amount")
        return real_repeat(*args, **kwargs)

    monkeypatch.setattr(order_features, "rfm_summary", rfm)
    monkeypatch.setattr(order_features, "repeat_summary", repeat)
    monkeypatch.setattr(order_features, "FEW_CONTACTS", -1)  # the general path, whose summaries a frame keeps
    frame = FeatureFrame({"orders": _MIXED}, AS_OF)
    frame.matrix(NAMES)
    assert calls == ["rfm"]
    frame.matrix(["repeat_frequency", "age_days"])
    frame.matrix(["repeat_recency_days", "frequency"])
    assert calls == ["rfm", "repeat"]
    frame.matrix(["repeat_monetary"])
    frame.matrix(ALL_NAMES)
    assert calls == ["rfm", "repeat", "repeat+amount"]
    calls.clear()
    FeatureFrame({"orders": _MIXED}, AS_OF).matrix(REPEAT_NAMES)
    assert calls == ["repeat+amount"]
    _, expected = reference.feature_matrix({"orders": _MIXED}, AS_OF, ALL_NAMES)
    assert_allclose(frame.matrix(ALL_NAMES), expected, rtol=1e-6)


def test_repeat_values_of_a_small_case() -> None:
    """Contact 7 of _MIXED: days 10 and 30 count (150 is after as_of); amounts 12.5 then 7."""
    frame = FeatureFrame({"orders": _MIXED}, AS_OF, pa.array([9, 5, 3, 7]))
    row = dict(zip(REPEAT_NAMES, frame.matrix(REPEAT_NAMES)[3].tolist(), strict=True))
    assert row == {
        "repeat_frequency": 1,
        "repeat_recency_days": 20,
        "age_days": 90,
        "repeat_monetary": 7,
    }
    assert np.isnan(frame.matrix(["age_days"])[0, 0])  # contact 9 ordered after as_of only


def test_columns_no_feature_reads_are_not_checked() -> None:
    """A bad amount column does not fail a request for frequency only."""
    table = _MIXED.set_column(2, "amount", pa.array(["?"] * 7))
    frame = FeatureFrame({"orders": table.drop_columns(["product_group"])}, AS_OF)
    assert_array_equal(frame.matrix(["frequency"])[:, 0], [2, 2, 1, 0])
    with pytest.raises(InputError, match=r"^orders\.amount: "):
        frame.matrix(["monetary"])


def test_order_feature_names() -> None:
    """The RFM features, then a count and a recency per group."""
    assert order_feature_names(["a", "b"]) == [
        "recency_days",
        "frequency",
        "monetary",
        "total_amount",
        "tenure_days",
        "repeat_count",
        "group_count:a",
        "group_count:b",
        "group_recency_days:a",
        "group_recency_days:b",
    ]
    assert order_feature_names([]) == NAMES[:6]


def _random_tables(rng: np.random.Generator) -> tuple[dict[str, pa.Table], pa.Array | None]:
    n_contacts = int(rng.integers(1, 200))
    n = int(rng.integers(0, 1_500))
    string_ids = bool(rng.integers(0, 2))
    pool = rng.choice(10**9, n_contacts, replace=False)
    ids = [f"c{x}" for x in pool] if string_ids else pool.tolist()
    picks = rng.integers(0, n_contacts, n)
    choices = np.array(["shoes", "bags", "garden", None], dtype=object)
    amount = rng.gamma(2.0, 20.0, n).tolist()
    table = orders(
        [ids[i] for i in picks],
        (rng.integers(0, 150, n) + rng.integers(0, 2, n) / 2).tolist(),
        [None if rng.random() < 0.1 else a for a in amount],
        choices[rng.integers(0, 4, n)].tolist(),
    )
    tables = {"orders": table}
    mode = rng.integers(0, 3)
    if mode == 1:  # a contacts table with every ordering contact, plus others, shuffled
        extra = [f"p{i}" for i in range(5)] if string_ids else list(range(-5, 0))
        tables["contacts"] = contacts(list(rng.permutation(np.array(ids + extra, dtype=object))))
    rows = pa.array(list(rng.permutation(np.array(ids, dtype=object)))) if mode == 2 else None
    return tables, rows


def test_random_tables_match_reference(rng: np.random.Generator) -> None:
    """Random orders (string or int ids, nulls, late orders, contacts or explicit rows) match."""
    tables, rows = _random_tables(rng)
    _assert_frame_matches_reference(tables, ALL_NAMES, rows)


# --- errors --------------------------------------------------------------------------------


def _without(table: pa.Table, column: str) -> pa.Table:
    return table.drop_columns([column])


INPUT_ERRORS = {
    "duplicate-contacts": (
        dict(tables={"orders": _MIXED, "contacts": contacts([3, 5, 3, 7, 9])}),
        ["frequency"],
        "contacts.contact_id",
        "1 contact ids appear more than once, e.g. 3",
    ),
    "duplicate-contacts-no-orders": (
        dict(tables={"contacts": contacts(["a", "b", "a"])}),
        ["frequency"],
        "contacts.contact_id",
        "appear more than once, e.g. 'a'",
    ),
    "duplicate-contacts-empty-orders": (
        dict(tables={"orders": orders([], []), "contacts": contacts([4, 4])}),
        ["frequency"],
        "contacts.contact_id",
        "e.g. 4",
    ),
    "duplicate-contact-ids-argument": (
        dict(tables={"orders": _MIXED}, contact_ids=pa.array([3, 5, 7, 9, 9])),
        ["frequency"],
        "contact_ids",
        "e.g. 9",
    ),
    "order-of-unknown-contact": (
        dict(tables={"orders": _MIXED, "contacts": contacts([3, 5, 7])}),
        ["frequency"],
        "orders.contact_id",
        r"1 orders belong to contacts not among the rows \(contacts.contact_id\), e.g. 9",
    ),
    "order-of-unknown-contact-explicit-rows": (
        dict(tables={"orders": _MIXED}, contact_ids=pa.array([3, 9, 5])),
        ["frequency"],
        "orders.contact_id",
        "3 orders .* e.g. 7",
    ),
    "null-order-contact": (
        dict(tables={"orders": orders([1, None], [1, 2])}),
        ["frequency"],
        "orders.contact_id",
        "1 null contact ids",
    ),
    "null-contact": (
        dict(tables={"contacts": contacts([1, None])}),
        ["frequency"],
        "contacts.contact_id",
        "1 null contact ids",
    ),
    "string-orders-int-contacts": (
        dict(tables={"orders": orders(["1"], [1]), "contacts": contacts([1])}),
        ["frequency"],
        "orders.contact_id",
        "type string cannot match contacts.contact_id of type int64",
    ),
    "orders-without-contact-id": (
        dict(tables={"orders": _without(_MIXED, "contact_id")}),
        ["frequency"],
        "orders.contact_id",
        "table orders has no column contact_id",
    ),
    "contacts-without-contact-id": (
        dict(tables={"contacts": pa.table({"id": [1]})}),
        ["frequency"],
        "contacts.contact_id",
        "table contacts has no column contact_id",
    ),
    "missing-product-group": (
        dict(tables={"orders": _without(_MIXED, "product_group")}),
        ["frequency", "group_count:shoes"],
        "orders.product_group",
        "table orders has no column product_group, needed by feature group_count:shoes",
    ),
    "missing-amount": (
        dict(tables={"orders": _without(_MIXED, "amount")}),
        ["total_amount"],
        "orders.amount",
        "no column amount, needed by feature total_amount",
    ),
    "missing-amount-repeat": (
        dict(tables={"orders": _without(_MIXED, "amount")}),
        ["repeat_frequency", "repeat_monetary"],
        "orders.amount",
        "no column amount, needed by feature repeat_monetary",
    ),
    "missing-ts-repeat": (
        dict(tables={"orders": _without(_MIXED, "ts")}),
        ["age_days"],
        "orders.ts",
        "no column ts, needed by feature age_days",
    ),
    "null-ts-repeat": (
        dict(
            tables={"orders": _MIXED.set_column(1, "ts", pa.array([None] * 7, pa.timestamp("us")))}
        ),
        ["repeat_frequency"],
        "orders.ts",
        "7 null values of 7",
    ),
    "missing-ts": (
        dict(tables={"orders": _without(_MIXED, "ts")}),
        ["recency_days"],
        "orders.ts",
        "no column ts, needed by feature recency_days",
    ),
    "null-ts": (
        dict(
            tables={"orders": _MIXED.set_column(1, "ts", pa.array([None] * 7, pa.timestamp("us")))}
        ),
        ["frequency"],
        "orders.ts",
        "7 null values of 7",
    ),
    "string-ts": (
        dict(tables={"orders": _MIXED.set_column(1, "ts", pa.array(["2024-01-01"] * 7))}),
        ["frequency"],
        "orders.ts",
        "got type string",
    ),
    "int-product-group": (
        dict(tables={"orders": _MIXED.set_column(3, "product_group", pa.array([1] * 7))}),
        ["group_count:1"],
        "orders.product_group",
        "got type int64",
    ),
    "float-as-of": (
        dict(tables={"orders": _MIXED}, as_of_us=1.5),
        ["frequency"],
        "as_of",
        "1.5",
    ),
}


@pytest.mark.parametrize(
    ("kwargs", "names", "field", "detail"), INPUT_ERRORS.values(), ids=INPUT_ERRORS.keys()
)
def test_bad_input_raises_input_error_naming_the_field(
    kwargs: dict[str, Any], names: list[str], field: str, detail: str
) -> None:
    """Bad tables raise InputError (gRPC INVALID_ARGUMENT) naming the column and the value."""
    kwargs = {"as_of_us": AS_OF, **kwargs}
    with pytest.raises(InputError, match=rf"^{field}: .*{detail}") as info:
        FeatureFrame(**kwargs).matrix(names)
    assert info.value.field == field


@pytest.mark.parametrize(
    "name", ["recency", "group_count", "group_count:", "count:shoes", "Frequency"]
)
def test_unknown_feature_names_list_the_known_patterns(name: str) -> None:
    """An unknown feature name is a model bug, not bad input: ValueError listing the patterns."""
    frame = FeatureFrame({"orders": _MIXED}, AS_OF)
    with pytest.raises(ValueError, match="group_recency_days:<group>") as info:
        frame.matrix(["frequency", name])
    assert not isinstance(info.value, InputError)
    assert repr(name) in str(info.value)


def test_feature_patterns_cover_every_generated_name() -> None:
    """Each name order_feature_names makes, and each repeat feature, matches one of
    FEATURE_PATTERNS; the repeat features are not among order_feature_names (fixed names)."""
    prefixes = {p.partition(":")[0] for p in order_features.ORDERS.patterns}
    assert {n.partition(":")[0] for n in ALL_NAMES} == prefixes
    assert set(order_features.ORDERS.patterns) <= set(FEATURE_PATTERNS)
    assert not set(REPEAT_NAMES) & set(NAMES)


def test_frames_can_be_computed_from_several_threads_at_once(rng: np.random.Generator) -> None:
    """The server scores chunks on a thread pool: concurrent frames give the serial results."""
    cases = [_random_tables(rng) for _ in range(8)]
    serial = [FeatureFrame(t, AS_OF, rows).matrix(ALL_NAMES) for t, rows in cases]
    with ThreadPoolExecutor(4) as pool:
        threaded = list(
            pool.map(lambda c: FeatureFrame(c[0], AS_OF, c[1]).matrix(ALL_NAMES), cases)
        )
    for got, expected in zip(threaded, serial, strict=True):
        assert_array_equal(got, expected)


@pytest.mark.parametrize(
    ("names", "expected"),
    [
        ([], set()),
        (["frequency", "recency_days"], {"orders.contact_id", "orders.ts"}),
        (["monetary"], {"orders.contact_id", "orders.ts", "orders.amount"}),
        (
            ["repeat_frequency", "repeat_recency_days", "age_days"],
            {"orders.contact_id", "orders.ts"},
        ),
        (["repeat_monetary"], {"orders.contact_id", "orders.ts", "orders.amount"}),
        (
            NAMES,
            {"orders.contact_id", "orders.ts", "orders.amount", "orders.product_group"},
        ),
    ],
    ids=[
        "none",
        "rfm-without-amount",
        "monetary",
        "repeat-without-amount",
        "repeat-monetary",
        "all",
    ],
)
def test_required_columns(names: list[str], expected: set[str]) -> None:
    """The table.column inputs each set of features reads."""
    assert required_columns(names) == expected


def test_required_columns_are_enough() -> None:
    """A table holding only the required columns computes the features."""
    names = ["frequency", "group_count:shoes", "repeat_frequency", "age_days"]
    columns = [c.partition(".")[2] for c in required_columns(names)]
    slim = {"orders": _MIXED.select(columns)}
    assert_array_equal(
        FeatureFrame(slim, AS_OF).matrix(names),
        FeatureFrame({"orders": _MIXED}, AS_OF).matrix(names),
    )


def test_required_columns_reject_unknown_features() -> None:
    """An unknown feature name raises ValueError listing the known patterns."""
    with pytest.raises(ValueError, match="recency_days"):
        required_columns(["recency"])


def _small_random_tables(rng: np.random.Generator) -> tuple[dict[str, pa.Table], pa.Array | None]:
    """A real-time request's tables: up to a few dozen int64 contacts, their orders (nulls,
    late orders, unknown and missing groups, dictionary or plain groups), now and then a bad one."""
    n_contacts = int(rng.integers(0, order_features.FEW_CONTACTS + 3))
    n = int(rng.integers(0, 60))
    pool = rng.choice(10**12, n_contacts + 1, replace=False) - 10**11
    ids = pool[:n_contacts].tolist()
    owners = [ids[i] for i in rng.integers(0, n_contacts, n)] if n_contacts else [int(pool[-1])] * n
    if n and rng.random() < 0.1:  # an order of a contact not among the rows
        owners[int(rng.integers(0, n))] = int(pool[-1])
    amount = [None if rng.random() < 0.15 else float(a) for a in rng.gamma(2.0, 20.0, n)]
    if n and rng.random() < 0.05:
        amount[0] = float("inf")  # refused
    groups = [None if rng.random() < 0.1 else str(g) for g in rng.choice(["shoes", "bags", "garden"], n)]
    table = orders(owners, (rng.integers(0, 150, n) + rng.integers(0, 2, n) / 2).tolist(), amount, groups)
    if n and rng.random() < 0.5:
        at = table.schema.get_field_index("product_group")
        table = table.set_column(at, "product_group", pa.compute.dictionary_encode(table.column(at)))
    if rng.random() < 0.3:
        return {"orders": table}, None
    rows = pa.array(ids, pa.int64())
    if rng.random() < 0.5:
        return {"orders": table}, rows
    return {"orders": table, "contacts": contacts(ids, pa.int64())}, None


def test_few_contacts_match_the_general_path(rng: np.random.Generator, monkeypatch: pytest.MonkeyPatch) -> None:
    """A frame of a few contacts (one kernel call) gives the general path's matrix bit for bit,
    and the same error for bad input."""
    limit = order_features.FEW_CONTACTS
    for _ in range(40):
        tables, rows = _small_random_tables(rng)
        names = [n for n in NAMES if rng.random() < 0.7] or ["frequency"]
        names = [names[i] for i in rng.permutation(len(names))]
        as_of = AS_OF if rng.random() < 0.95 else 2**63  # past int64: rfm_summary's error
        results = []
        for few in (limit, -1):  # -1: the general path
            monkeypatch.setattr(order_features, "FEW_CONTACTS", few)
            try:
                results.append(FeatureFrame(tables, as_of, rows).matrix(names))
            except InputError as exc:
                results.append(str(exc))
        fast, general = results
        if isinstance(general, str):
            assert fast == general
        else:
            assert fast.dtype == general.dtype and fast.shape == general.shape
            assert_array_equal(fast.view(np.int32), general.view(np.int32))  # bit for bit, NaN too
