"""Malformed and hostile requests to fuzz a running server with (issue "Run it in production", 1).

``generate_cases(seed, n)`` is the one case generator: ``benchmarks/fuzz.py`` runs 10,000+
cases against a ``scorecast serve`` subprocess; ``tests/server/test_fuzz.py`` runs a few hundred
in process. Each case says which status codes are acceptable and which substrings the error
message must hold (the field that was wrong). OK is acceptable only where the input is valid
data, and then the result is checked (non-null finite values or nulls, one row per contact,
and an oracle where the case has one). INTERNAL and UNKNOWN are never acceptable.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field

import grpc
import numpy as np
import pyarrow as pa

from scorecast.kernels.time_units import US_PER_DAY
from scorecast.proto import pb

AS_OF_US = 1_767_225_600_000_000  # 2026-01-01T00:00:00Z
OK = grpc.StatusCode.OK
INVALID = grpc.StatusCode.INVALID_ARGUMENT
NOT_FOUND = grpc.StatusCode.NOT_FOUND
EXHAUSTED = grpc.StatusCode.RESOURCE_EXHAUSTED

# The fake models of fakes.py: what each reads from orders besides contact_id and ts.
SCORES = {"spend": {"amount"}, "affinity": {"product_group"}, "segments": set()}
GROUPS = ("shoes", "books")

# Limits of the fuzzed server: small, so RESOURCE_EXHAUSTED is cheap to reach.
MAX_ROWS_PER_CHUNK = 500
MAX_ROWS_PER_REQUEST = 2_000
MAX_DECODED_BYTES_PER_CHUNK = 32 * 2**20  # above the 15 MB of the huge-string cases
MAX_EVENT_ROWS_PER_CHUNK = 20_000


@dataclass
class Case:
    """One request and what may come back."""

    category: str
    description: str
    method: str  # "ScoreBatch" or "Score"
    messages: list  # one ScoreBatchRequest, or the ScoreRequests of a stream
    allowed: frozenset[grpc.StatusCode]
    match: tuple[str, ...] = ()  # substrings every non-OK message must hold
    check: Callable[[list[pa.RecordBatch]], None] | None = None  # extra checks of an OK result
    rows: int | None = None  # expected result rows in total, when OK


@dataclass
class Outcome:
    case: Case
    code: grpc.StatusCode
    details: str
    problem: str | None = None  # why the outcome is unexpected; None: as expected
    batches: list[pa.RecordBatch] = field(default_factory=list)


# ----------------------------------------------------------------------------------------------
# building blocks


def encode(table: pa.Table | pa.RecordBatch, compression: str | None = None, batch_rows: int | None = None) -> bytes:
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema, options=pa.ipc.IpcWriteOptions(compression=compression)) as writer:
        if isinstance(table, pa.Table):
            writer.write_table(table, max_chunksize=batch_rows)
        else:
            writer.write(table)
    return sink.getvalue().to_pybytes()


def make_header(scores: Sequence[str], as_of_us: int | None = AS_OF_US, **options: object) -> pb.ScoreHeader:
    opts = pb.ScoreOptions(**options)
    if as_of_us is not None:
        opts.as_of.seconds, rem = divmod(as_of_us, 1_000_000)
        opts.as_of.nanos = rem * 1000
    return pb.ScoreHeader(scores=list(scores), options=opts)


def orders_table(rng: random.Random, n_contacts: int, n_orders: int, string_ids: bool = False, first_id: int = 0) -> pa.Table:
    ids = [first_id + rng.randrange(max(n_contacts, 1)) for _ in range(n_orders)]
    return pa.table(
        {
            "contact_id": pa.array([f"c{i}" for i in ids] if string_ids else ids, pa.string() if string_ids else pa.int64()),
            "ts": pa.array([AS_OF_US - rng.randrange(0, 800 * US_PER_DAY) for _ in ids], pa.timestamp("us", tz="UTC")),
            "amount": pa.array([round(rng.uniform(-20, 200), 2) for _ in ids], pa.float64()),
            "product_group": pa.array([rng.choice(GROUPS + ("toys", None)) for _ in ids], pa.string()),
        }
    )


def contacts_of(orders: pa.Table, extra: int = 0, rng: random.Random | None = None) -> pa.Table:
    ids = list(dict.fromkeys(orders.column("contact_id").to_pylist()))
    kind = orders.schema.field("contact_id").type
    if extra:
        more = [f"x{i}" if pa.types.is_string(kind) else 10**9 + i for i in range(extra)]
        ids = ids + more
        if rng is not None:
            rng.shuffle(ids)
    return pa.table({"contact_id": pa.array(ids, kind)})


def distinct(table: pa.Table) -> int:
    return len(set(table.column("contact_id").to_pylist()))


def batch_request(header: pb.ScoreHeader | None, tables: dict[str, bytes]) -> pb.ScoreBatchRequest:
    request = pb.ScoreBatchRequest(chunk=pb.ContactChunk(tables=tables))
    if header is not None:
        request.header.CopyFrom(header)
    return request


def set_column(table: pa.Table, name: str, array: pa.Array) -> pa.Table:
    if name in table.column_names:
        return table.set_column(table.column_names.index(name), name, array)
    return table.append_column(name, array)


def pick_scores(rng: random.Random) -> list[str]:
    return rng.sample(sorted(SCORES), rng.randint(1, 3))


def needs(scores: Sequence[str]) -> set[str]:
    return {"contact_id", "ts"}.union(*(SCORES[s] for s in scores))


# ----------------------------------------------------------------------------------------------
# result checks


def _finite_or_null(batches: list[pa.RecordBatch]) -> None:
    for batch in batches:
        assert batch.column("contact_id").null_count == 0, "null contact_id in a result"
        for name, col in zip(batch.schema.names, batch.columns, strict=True):
            if pa.types.is_floating(col.type):
                values = col.drop_null().to_numpy(zero_copy_only=False)
                assert np.isfinite(values).all(), f"{name}: non-finite values {values[~np.isfinite(values)][:3]}"


def _no_orders_count(batches: list[pa.RecordBatch]) -> None:
    """Every order is after as_of (or there is none): nothing counts."""
    for batch in batches:
        for name in batch.schema.names:
            if name in ("spend.value", "affinity.shoes", "affinity.books"):
                assert batch.column(name).to_pylist() == [0.0] * batch.num_rows, f"{name}: {batch.column(name).to_pylist()[:5]}"
            if name == "segments.count":
                assert batch.column(name).null_count == batch.num_rows, f"{name}: {batch.column(name).to_pylist()[:5]}"


def _expected_spend(orders: pa.Table, as_of_us: int) -> Callable[[list[pa.RecordBatch]], None]:
    """spend.value = frequency + 10 * total_amount over orders at or before as_of (NaN amounts skipped)."""
    ts = orders.column("ts").cast(pa.int64()).to_pylist()
    freq: dict = {}
    total: dict = {}
    for cid, t, a in zip(orders.column("contact_id").to_pylist(), ts, orders.column("amount").to_pylist(), strict=True):
        freq.setdefault(cid, 0)
        total.setdefault(cid, 0.0)
        if t <= as_of_us:
            freq[cid] += 1
            if a is not None and not math.isnan(a):
                total[cid] += a

    def check(batches: list[pa.RecordBatch]) -> None:
        for batch in batches:
            if "spend.value" not in batch.schema.names:
                return
            for cid, value in zip(batch.column("contact_id").to_pylist(), batch.column("spend.value").to_pylist(), strict=True):
                want = freq.get(cid, 0) + 10 * total.get(cid, 0.0)
                assert value is not None and abs(value - want) <= 1e-3 * max(1.0, abs(want)), f"contact {cid!r}: {value} != {want}"

    return check


# ----------------------------------------------------------------------------------------------
# the generator: one function per category, each returning a Case


def valid_case(rng: random.Random) -> Case:
    """A well-formed request with an oracle where one applies: the one case that must come back OK."""
    scores = pick_scores(rng)
    orders = orders_table(rng, rng.randint(1, 40), rng.randint(1, 120), string_ids=rng.random() < 0.3)
    tables = {"orders": encode(orders)}
    rows = distinct(orders)
    if rng.random() < 0.5:
        contacts = contacts_of(orders, rng.randint(0, 5), rng)
        tables["contacts"] = encode(contacts)
        rows = contacts.num_rows
    return Case("valid", f"{scores} over {orders.num_rows} orders", "ScoreBatch", [batch_request(make_header(scores), tables)],
                frozenset({OK}), rows=rows, check=_expected_spend(orders, AS_OF_US))


def _garbage_ipc(rng: random.Random) -> Case:
    name = rng.choice(["orders", "contacts"])
    kind = rng.choice(["random", "empty", "truncated", "bitflip", "prefix", "schema-only-truncated"])
    good = encode(orders_table(rng, 10, 30) if name == "orders" else pa.table({"contact_id": pa.array(range(10), pa.int64())}))
    if kind == "random":
        data = bytes(rng.randrange(256) for _ in range(rng.randint(1, 300)))
    elif kind == "empty":
        data = b""
    elif kind == "truncated":
        data = good[: rng.randrange(1, len(good))]
    elif kind == "bitflip":
        buf = bytearray(good)
        for _ in range(rng.randint(1, 8)):
            buf[rng.randrange(len(buf))] ^= 1 << rng.randrange(8)
        data = bytes(buf)
    elif kind == "prefix":
        data = bytes(rng.randrange(256) for _ in range(rng.randint(1, 16))) + good
    else:
        data = good[: rng.randrange(1, 64)]
    tables = {name: data}
    if name == "contacts":
        tables["orders"] = encode(orders_table(rng, 10, 30))
    # A flipped bit may land in data (a value, a padding byte) and leave a valid stream; a cut at a
    # message boundary too: OK is then acceptable, with results that still pass the checks.
    allowed = {INVALID} | ({OK} if kind in ("bitflip", "truncated", "schema-only-truncated") else set())
    if kind == "bitflip":  # a flipped bit in a batch header can state more rows than a chunk may hold
        allowed.add(EXHAUSTED)
    return Case("garbage-ipc", f"{kind} bytes in {name}", "ScoreBatch", [batch_request(make_header(["segments"]), tables)],
                frozenset(allowed), match=(f"chunk.tables['{name}']",) if kind != "bitflip" else ())


def _wrong_type(rng: random.Random) -> Case:
    scores = pick_scores(rng)
    orders = orders_table(rng, 10, 30)
    n = orders.num_rows
    column = rng.choice(sorted(needs(scores)))
    bad = {
        "contact_id": [pa.array([float(i) for i in range(n)]), pa.array([True] * n), pa.array([[1]] * n),
                       pa.array([b"x"] * n, pa.binary()), pa.array([{"a": 1}] * n)],
        "ts": [pa.array(["2025-01-01"] * n), pa.array(range(n), pa.int64()), pa.array([1.5] * n),
               pa.array([3600] * n, pa.time32("s")), pa.array([1] * n, pa.duration("us"))],
        "amount": [pa.array(["12.5"] * n), pa.array([True] * n), pa.array([[1.0]] * n),
                   pa.array([AS_OF_US] * n, pa.timestamp("us"))],
        "product_group": [pa.array(range(n), pa.int64()), pa.array([1.0] * n), pa.array([["shoes"]] * n)],
    }[column]
    array = rng.choice(bad)
    table = set_column(orders, column, array)
    return Case("wrong-type", f"orders.{column} as {array.type} for {scores}", "ScoreBatch",
                [batch_request(make_header(scores), {"orders": encode(table)})], frozenset({INVALID}), match=(f"orders.{column}",))


def _mixed_type(rng: random.Random) -> Case:
    """A union column (values of several types), or contacts and orders with different id types."""
    orders = orders_table(rng, 10, 30)
    n = orders.num_rows
    if rng.random() < 0.5:
        column = rng.choice(["contact_id", "ts", "amount"])
        types = pa.array([i % 2 for i in range(n)], pa.int8())
        children = [pa.array(range(n), pa.int64()), pa.array([str(i) for i in range(n)])]
        union = pa.UnionArray.from_dense(types, pa.array([i for i in range(n)], pa.int32()), children) \
            if rng.random() < 0.5 else pa.UnionArray.from_sparse(types, children)
        table = set_column(orders, column, union)
        scores = ["spend"]
        return Case("mixed-type", f"orders.{column} as {union.type}", "ScoreBatch",
                    [batch_request(make_header(scores), {"orders": encode(table)})], frozenset({INVALID}), match=(f"orders.{column}",))
    contacts = pa.table({"contact_id": pa.array([str(i) for i in range(10)])})
    return Case("mixed-type", "string contacts, int64 orders", "ScoreBatch",
                [batch_request(make_header(["segments"]), {"orders": encode(orders), "contacts": encode(contacts)})],
                frozenset({INVALID}), match=("orders.contact_id",))


def _missing_column(rng: random.Random) -> Case:
    scores = pick_scores(rng)
    orders = orders_table(rng, 10, 30)
    column = rng.choice(["contact_id", "ts", "amount", "product_group"])
    table = orders.drop_columns([column])
    tables = {"orders": encode(table)}
    if rng.random() < 0.3:  # contacts without contact_id
        tables = {"orders": encode(orders), "contacts": encode(pa.table({"id": pa.array(range(5))}))}
        return Case("missing-column", "contacts without contact_id", "ScoreBatch",
                    [batch_request(make_header(scores), tables)], frozenset({INVALID}), match=("contacts.contact_id",))
    if column in needs(scores):
        return Case("missing-column", f"orders without {column} for {scores}", "ScoreBatch",
                    [batch_request(make_header(scores), tables)], frozenset({INVALID}), match=(f"orders.{column}",))
    return Case("missing-column", f"orders without {column}, unused by {scores}", "ScoreBatch",
                [batch_request(make_header(scores), tables)], frozenset({OK}), rows=distinct(orders))


def _extra_column(rng: random.Random) -> Case:
    scores = pick_scores(rng)
    orders = orders_table(rng, 10, 30)
    n = orders.num_rows
    extras = {"sku": pa.array(["a"] * n), "promo": pa.array([True] * n), "weird": pa.array([[1, 2]] * n),
              "nested": pa.array([{"x": 1}] * n), "nulls": pa.nulls(n), "ts2": pa.array(["x"] * n)}
    for name in rng.sample(sorted(extras), rng.randint(1, 3)):
        orders = orders.append_column(name, extras[name])
    tables = {"orders": encode(orders)}
    if rng.random() < 0.5:
        tables["contacts"] = encode(contacts_of(orders).append_column("age", pa.array([1.0] * distinct(orders))))
    return Case("extra-column", f"extra columns {orders.column_names[4:]}", "ScoreBatch",
                [batch_request(make_header(scores), tables)], frozenset({OK}), rows=distinct(orders), check=_expected_spend(orders, AS_OF_US))


def _nulls(rng: random.Random) -> Case:
    scores = pick_scores(rng)
    orders = orders_table(rng, 10, 30)
    n = orders.num_rows
    column = rng.choice(["contact_id", "ts", "amount", "product_group", "contacts"])
    mask = [rng.random() < 0.3 for _ in range(n)]
    mask[rng.randrange(n)] = True
    if column == "contacts":
        contacts = pa.table({"contact_id": pa.array(list(range(10)) + [None], pa.int64())})
        return Case("nulls", "null contacts.contact_id", "ScoreBatch",
                    [batch_request(make_header(scores), {"contacts": encode(contacts), "orders": encode(orders)})],
                    frozenset({INVALID}), match=("contacts.contact_id",))
    col = orders.column(column).combine_chunks()
    array = pa.array([None if m else v for m, v in zip(mask, col.to_pylist(), strict=True)], col.type)
    if rng.random() < 0.2:
        array = pa.nulls(n, col.type)
    table = set_column(orders, column, array)
    request = [batch_request(make_header(scores), {"orders": encode(table)})]
    if column in ("contact_id", "ts") and (column in needs(scores)):
        return Case("nulls", f"nulls in orders.{column}", "ScoreBatch", request, frozenset({INVALID}), match=(f"orders.{column}",))
    # Null amounts and groups are data: an order without an amount or a group.
    return Case("nulls", f"nulls in orders.{column} for {scores}", "ScoreBatch", request, frozenset({OK}),
                rows=distinct(orders), check=_expected_spend(table, AS_OF_US))


def _nan_inf(rng: random.Random) -> Case:
    scores = pick_scores(rng)
    orders = orders_table(rng, 10, 30)
    n = orders.num_rows
    special = rng.choice([float("nan"), float("inf"), float("-inf")])
    dtype = rng.choice([pa.float64(), pa.float32()])
    values = [special if rng.random() < 0.3 else v for v in orders.column("amount").to_pylist()]
    values[rng.randrange(n)] = special
    table = set_column(orders, "amount", pa.array(values, dtype))
    request = [batch_request(make_header(scores), {"orders": encode(table)})]
    if math.isnan(special):  # NaN: a missing amount, like a null
        return Case("nan-inf", f"NaN amounts ({dtype}) for {scores}", "ScoreBatch", request, frozenset({OK}),
                    rows=distinct(orders), check=_expected_spend(table.set_column(2, "amount", pa.array(values, pa.float64())), AS_OF_US))
    allowed = {INVALID} | ({OK} if "spend" not in scores else set())
    return Case("nan-inf", f"{special} amounts for {scores}", "ScoreBatch", request, frozenset(allowed), match=("orders.amount",),
                rows=distinct(orders))


def _amounts(rng: random.Random) -> Case:
    scores = pick_scores(rng)
    orders = orders_table(rng, 10, 30)
    n = orders.num_rows
    kind = rng.choice(["negative", "huge", "tiny", "int64", "decimal", "max-float"])
    if kind == "negative":
        array = pa.array([-rng.uniform(0, 1e6) for _ in range(n)])
    elif kind == "huge":
        array = pa.array([rng.uniform(1e30, 1e300) for _ in range(n)])
    elif kind == "tiny":
        array = pa.array([rng.uniform(-1e-300, 1e-300) for _ in range(n)])
    elif kind == "int64":
        array = pa.array([rng.randrange(-(2**62), 2**62) for _ in range(n)], pa.int64())
    elif kind == "decimal":
        array = pa.array([rng.randrange(-10**9, 10**9) for _ in range(n)], pa.int64()).cast(pa.decimal128(21, 2))
    else:
        array = pa.array([1.7e308] * n)
    table = set_column(orders, "amount", array)
    request = [batch_request(make_header(scores), {"orders": encode(table)})]
    if kind in ("negative", "tiny", "decimal"):
        return Case("amounts", f"{kind} amounts for {scores}", "ScoreBatch", request, frozenset({OK}), rows=distinct(orders))
    # Totals beyond float32 (what models take): refused naming the column, or scored finite-or-null.
    return Case("amounts", f"{kind} amounts for {scores}", "ScoreBatch", request, frozenset({OK, INVALID}),
                match=("orders.amount",), rows=distinct(orders))


def _dates(rng: random.Random) -> Case:
    scores = pick_scores(rng)
    orders = orders_table(rng, 10, 30)
    n = orders.num_rows
    kind = rng.choice(["future", "pre-1970", "far-future-date32", "far-past-date32", "date64-extreme", "seconds-extreme",
                       "ns", "naive", "other-tz", "ms", "date32"])
    us = orders.column("ts").cast(pa.int64()).to_pylist()
    check = None
    allowed = frozenset({OK})
    if kind == "future":
        array = pa.array([AS_OF_US + rng.randrange(1, 10**6) * US_PER_DAY for _ in range(n)], pa.timestamp("us", tz="UTC"))
        check = _no_orders_count
    elif kind == "pre-1970":
        array = pa.array([-rng.randrange(0, 10**5) * US_PER_DAY - rng.randrange(US_PER_DAY) for _ in range(n)], pa.timestamp("us", tz="UTC"))
    elif kind == "far-future-date32":  # beyond the µs range: refused, or counted as after as_of
        array = pa.array([rng.randrange(2**28, 2**31 - 1) for _ in range(n)], pa.int32()).cast(pa.date32())
        allowed, check = frozenset({OK, INVALID}), _no_orders_count
    elif kind == "far-past-date32":
        array = pa.array([-rng.randrange(2**28, 2**31) for _ in range(n)], pa.int32()).cast(pa.date32())
        allowed = frozenset({OK, INVALID})
    elif kind == "date64-extreme":
        array = pa.array([rng.choice([1, -1]) * rng.randrange(2**60, 2**63 - 1) // 86_400_000 * 86_400_000 for _ in range(n)], pa.int64()).cast(pa.date64())
        allowed = frozenset({OK, INVALID})
    elif kind == "seconds-extreme":
        array = pa.array([rng.randrange(2**50, 2**62) for _ in range(n)], pa.int64()).cast(pa.timestamp("s", tz="UTC"))
        allowed, check = frozenset({OK, INVALID}), _no_orders_count
    elif kind == "ns":
        array = pa.array([u * 1000 + rng.randrange(1000) for u in us], pa.int64()).cast(pa.timestamp("ns", tz="UTC"))
    elif kind == "naive":
        array = pa.array(us, pa.timestamp("us"))
    elif kind == "other-tz":
        array = pa.array(us, pa.timestamp("us", tz="Asia/Kolkata"))
    elif kind == "ms":
        array = pa.array([u // 1000 for u in us], pa.int64()).cast(pa.timestamp("ms", tz="UTC"))
    else:
        array = pa.array([u // US_PER_DAY for u in us], pa.int32()).cast(pa.date32())
    table = set_column(orders, "ts", array)
    if check is None and kind in ("future", "pre-1970", "ns", "naive", "other-tz"):
        check = _expected_spend(table.set_column(1, "ts", pa.array(us if kind != "pre-1970" else array.cast(pa.int64()).to_pylist(),
                                                                      pa.timestamp("us", tz="UTC"))), AS_OF_US)
    return Case("dates", f"{kind} ts for {scores}", "ScoreBatch", [batch_request(make_header(scores), {"orders": encode(table)})],
                allowed, match=("orders.ts",), check=check, rows=distinct(orders))


def _duplicates(rng: random.Random) -> Case:
    scores = pick_scores(rng)
    orders = orders_table(rng, 10, 30, string_ids=rng.random() < 0.5)
    contacts = contacts_of(orders)
    kind = rng.choice(["contacts", "across-chunks", "orders-repeat"])
    if kind == "contacts":
        dup = pa.concat_tables([contacts, contacts.slice(0, 1)])
        return Case("duplicates", "a contact id twice in contacts", "ScoreBatch",
                    [batch_request(make_header(scores), {"orders": encode(orders), "contacts": encode(dup)})],
                    frozenset({INVALID}), match=("contacts.contact_id",))
    if kind == "orders-repeat":  # many orders per contact is the normal case
        return Case("duplicates", "one contact, many orders", "ScoreBatch",
                    [batch_request(make_header(scores), {"orders": encode(pa.concat_tables([orders] * 3))})],
                    frozenset({OK}), rows=distinct(orders))
    # Chunks must hold disjoint contacts (proto ContactChunk); the server does not keep every id of a
    # stream to check it (that would be memory in the total rows), so a repeat is scored again.
    head = pb.ScoreRequest(header=make_header(scores))
    chunk = pb.ScoreRequest(chunk=pb.ContactChunk(tables={"orders": encode(orders), "contacts": encode(contacts)}))
    return Case("duplicates", "the same contacts in two chunks", "Score", [head, chunk, chunk],
                frozenset({OK, INVALID}), match=("contact_id",), rows=2 * contacts.num_rows)


def _empty(rng: random.Random) -> Case:
    scores = pick_scores(rng)
    orders = orders_table(rng, 10, 30)
    kind = rng.choice(["no-tables", "zero-orders", "zero-contacts", "null-typed", "contacts-only", "empty-stream-chunks"])
    if kind == "empty-stream-chunks":
        head = pb.ScoreRequest(header=make_header(scores))
        empty = pb.ScoreRequest(chunk=pb.ContactChunk())
        full = pb.ScoreRequest(chunk=pb.ContactChunk(tables={"orders": encode(orders)}))
        return Case("empty", "empty chunks around a full one", "Score", [head, empty, full, empty], frozenset({OK}), rows=distinct(orders))
    tables = {
        "no-tables": {},
        "zero-orders": {"orders": encode(orders.slice(0, 0))},
        "zero-contacts": {"contacts": encode(pa.table({"contact_id": pa.array([], pa.int64())})), "orders": encode(orders.slice(0, 0))},
        "null-typed": {"orders": encode(pa.table({c: pa.nulls(0) for c in orders.column_names}))},
        "contacts-only": {"contacts": encode(contacts_of(orders))},
    }[kind]
    rows = distinct(orders) if kind == "contacts-only" else 0
    return Case("empty", kind, "ScoreBatch", [batch_request(make_header(scores), tables)], frozenset({OK}), rows=rows,
                check=_no_orders_count)


def _huge_strings(rng: random.Random) -> Case:
    scores = pick_scores(rng)
    size = rng.choice([10_000, 1_000_000, 3_000_000])
    n = 5
    big = ["x" * size + str(i) for i in range(n)]
    column = rng.choice(["contact_id", "product_group", "sku"])
    orders = pa.table({
        "contact_id": pa.array(big if column == "contact_id" else list(range(n))),
        "ts": pa.array([AS_OF_US - US_PER_DAY] * n, pa.timestamp("us", tz="UTC")),
        "amount": pa.array([1.0] * n),
        "product_group": pa.array(big if column == "product_group" else ["shoes"] * n),
    })
    if column == "sku":
        orders = orders.append_column("sku", pa.array(big))
    return Case("huge-strings", f"{size}-char strings in orders.{column}", "ScoreBatch",
                [batch_request(make_header(scores), {"orders": encode(orders)})], frozenset({OK}), rows=n)


def _too_big(rng: random.Random) -> Case:
    kind = rng.choice(["chunk-rows", "stream-rows", "contacts-rows"])
    scores = pick_scores(rng)
    if kind == "stream-rows":
        head = pb.ScoreRequest(header=make_header(scores))
        chunks = []
        per = MAX_ROWS_PER_CHUNK
        for c in range(MAX_ROWS_PER_REQUEST // per + 1):
            ids = pa.array(range(c * per, (c + 1) * per), pa.int64())
            chunks.append(pb.ScoreRequest(chunk=pb.ContactChunk(tables={"contacts": encode(pa.table({"contact_id": ids}))})))
        return Case("too-big", "a stream over max_rows_per_request", "Score", [head, *chunks], frozenset({EXHAUSTED}),
                    match=("max_rows_per_request",))
    n = MAX_ROWS_PER_CHUNK + rng.randint(1, 100)
    table = pa.table({"contact_id": pa.array(range(n), pa.int64())}) if kind == "contacts-rows" else \
        orders_table(rng, 10**9, n).set_column(0, "contact_id", pa.array(range(n), pa.int64()))
    return Case("too-big", f"{n} contacts in one chunk ({kind})", "ScoreBatch",
                [batch_request(make_header(scores), {"contacts" if kind == "contacts-rows" else "orders": encode(table)})],
                frozenset({EXHAUSTED}), match=("max_rows_per_chunk",))


def _compressed(rng: random.Random) -> Case:
    """lz4/zstd IPC: valid data within the budgets scores as plain IPC would; a bomb over the decoded
    bytes or event rows of a chunk is RESOURCE_EXHAUSTED naming the table and the setting."""
    compression = rng.choice(["lz4", "zstd"])
    kind = rng.choice(["valid", "valid", "bytes-bomb", "rows-bomb", "string-bomb"])
    scores = pick_scores(rng)
    if kind == "valid":
        orders = orders_table(rng, rng.randint(1, 40), rng.randint(1, 200))
        tables = {"orders": encode(orders, compression, batch_rows=rng.choice([None, 7, 50]))}
        return Case("compressed", f"{compression} orders of {orders.num_rows} rows", "ScoreBatch",
                    [batch_request(make_header(scores), tables)], frozenset({OK}), rows=distinct(orders),
                    check=_expected_spend(orders, AS_OF_US))
    if kind == "rows-bomb":
        n = MAX_EVENT_ROWS_PER_CHUNK + rng.randint(1, 5_000)
        setting = "max_event_rows_per_chunk"
        orders = pa.table({"contact_id": pa.array(np.ones(n, np.int64)), "ts": pa.array(np.full(n, AS_OF_US - US_PER_DAY), pa.timestamp("us", tz="UTC")),
                           "amount": pa.array(np.ones(n))})
    elif kind == "bytes-bomb":
        n = MAX_EVENT_ROWS_PER_CHUNK - 1  # under the row limit; 2 KB strings make it ~40 MB
        setting = "max_decoded_bytes_per_chunk"
        orders = pa.table({"contact_id": pa.array(np.ones(n, np.int64)), "ts": pa.array(np.full(n, AS_OF_US - US_PER_DAY), pa.timestamp("us", tz="UTC")),
                           "amount": pa.array(np.ones(n)), "sku": pa.array(["x" * 2000] * n)})
    else:
        setting = "max_decoded_bytes_per_chunk"
        orders = pa.table({"contact_id": [1, 2], "ts": pa.array([AS_OF_US - US_PER_DAY] * 2, pa.timestamp("us", tz="UTC")), "amount": [1.0, 2.0],
                           "sku": ["y" * (MAX_DECODED_BYTES_PER_CHUNK // 2 + 1), "y" * (MAX_DECODED_BYTES_PER_CHUNK // 2 + 1)]})
    return Case("compressed", f"{compression} {kind}", "ScoreBatch", [batch_request(make_header(scores), {"orders": encode(orders, compression)})],
                frozenset({EXHAUSTED}), match=("'orders'", setting))


def _dictionary(rng: random.Random) -> Case:
    """Dictionary-encoded columns (several batches, compressed or not): accepted or refused naming
    the column, never INTERNAL."""
    orders = orders_table(rng, rng.randint(1, 30), rng.randint(1, 150), string_ids=rng.random() < 0.3)
    column = rng.choice(["product_group", "contact_id", "sku"])
    if column == "sku":
        orders = orders.append_column("sku", pa.array([rng.choice("abc") for _ in range(orders.num_rows)]).dictionary_encode())
    else:
        orders = set_column(orders, column, orders.column(column).dictionary_encode())
    compression = rng.choice([None, "lz4", "zstd"])
    scores = pick_scores(rng)
    allowed = {OK} if column == "sku" else {OK, INVALID}
    return Case("dictionary", f"dictionary orders.{column} ({compression})", "ScoreBatch",
                [batch_request(make_header(scores), {"orders": encode(orders, compression, batch_rows=rng.choice([None, 10]))})],
                frozenset(allowed), match=(f"orders.{column}",), rows=distinct(orders) if column != "contact_id" else None)


class _Tagged(pa.ExtensionType):
    """An extension type the server does not know (it reads it as its storage type)."""

    def __init__(self) -> None:
        super().__init__(pa.int64(), "fuzz.tagged")

    def __arrow_ext_serialize__(self) -> bytes:
        return b""

    @classmethod
    def __arrow_ext_deserialize__(cls, storage_type: pa.DataType, serialized: bytes) -> _Tagged:
        return cls()


def _nested(rng: random.Random) -> Case:
    """Nested and extension types: as extra columns they are ignored (OK); in place of a column a
    model reads they are INVALID_ARGUMENT naming it."""
    orders = orders_table(rng, 10, rng.randint(1, 60))
    n = orders.num_rows
    arrays = [
        pa.array([[{"a": i, "b": [1.0, None]}] for i in range(n)]),
        pa.array([[(str(i), i)] for i in range(n)], pa.map_(pa.string(), pa.int64())),
        pa.array([[1, 2]] * n, pa.large_list(pa.int64())),
        pa.array([[1, 2]] * n, pa.list_(pa.int64(), 2)),
        pa.UnionArray.from_dense(pa.array([0, 1] * (n // 2) + [0] * (n % 2), pa.int8()),
                                 pa.array([i // 2 for i in range(n)], pa.int32()),
                                 [pa.array(range(n)), pa.array(["s"] * n)]),
        pa.ExtensionArray.from_storage(_Tagged(), pa.array(range(n), pa.int64())),
        pa.array([{"x": {"y": [[1]]}}] * n),
    ]
    array = rng.choice(arrays)
    scores = pick_scores(rng)
    if rng.random() < 0.5:
        table = orders.append_column("extra", array)
        return Case("nested", f"extra column of {array.type}", "ScoreBatch", [batch_request(make_header(scores), {"orders": encode(table)})],
                    frozenset({OK}), rows=distinct(orders), check=_expected_spend(orders, AS_OF_US))
    column = rng.choice(sorted(needs(scores)))
    table = set_column(orders, column, array)
    # An unknown extension type reaches the server as its storage (int64): a valid id or amount.
    allowed = {INVALID, OK} if isinstance(array.type, pa.ExtensionType) else {INVALID}
    return Case("nested", f"orders.{column} as {array.type}", "ScoreBatch", [batch_request(make_header(scores), {"orders": encode(table)})],
                frozenset(allowed), match=(f"orders.{column}",))


def _many(rng: random.Random) -> Case:
    """Many columns in one table (ignored when not read), or many table names (unknown ones refused)."""
    orders = orders_table(rng, 10, rng.randint(1, 40))
    scores = pick_scores(rng)
    if rng.random() < 0.5:
        k = rng.choice([100, 1000, 3000])
        for i in range(k):
            orders = orders.append_column(f"c{i}", pa.array([float(i)] * orders.num_rows))
        return Case("many", f"{k} extra columns", "ScoreBatch", [batch_request(make_header(scores), {"orders": encode(orders)})],
                    frozenset({OK}), rows=distinct(orders.select(["contact_id"])))
    k = rng.choice([10, 500, 5000])
    tables = {"orders": encode(orders), **{f"t{i}": b"" for i in range(k)}}
    return Case("many", f"{k} unknown table names", "ScoreBatch", [batch_request(make_header(scores), tables)],
                frozenset({INVALID}), match=("known tables are",))


def _header(rng: random.Random) -> Case:
    orders = orders_table(rng, 10, 30)
    kind = rng.choice(["unknown-score", "unknown-version", "no-scores", "twice-listed", "bad-horizon", "affinity-horizon",
                       "bad-threshold", "unknown-group", "groups-without-affinity", "pin-unrequested", "empty-score-name",
                       "as-of-extreme", "as-of-pre-1970", "no-as-of", "unknown-table"])
    tables = {"orders": encode(orders)}
    allowed, match, scores = frozenset({INVALID}), (), ["spend"]
    check = None
    header = None
    if kind == "unknown-score":
        name = rng.choice(["nope", "SPEND", "spend ", "ü" * 50, "x" * 10_000])
        scores = ["spend", name] if rng.random() < 0.5 else [name]
        # Names too long to echo (status details are limited to 8 KiB) are refused as such.
        allowed, match = (frozenset({NOT_FOUND}), (repr(name),)) if len(name) <= 256 else (frozenset({INVALID}), ("header.scores",))
    elif kind == "unknown-version":
        header = make_header(["spend"], model_versions={"spend": rng.choice(["2", "", "../1", "1.0", "v" * 20_000])})
        version = header.options.model_versions["spend"]
        if version == "":
            allowed = frozenset({OK, NOT_FOUND, INVALID})
        else:
            allowed, match = (frozenset({NOT_FOUND}), (repr(version),)) if len(version) <= 256 else \
                (frozenset({INVALID}), ("options.model_versions",))
    elif kind == "no-scores":
        scores, match = [], ("header.scores",)
    elif kind == "twice-listed":
        scores, match = ["spend", "segments", "spend"], ("header.scores",)
    elif kind == "bad-horizon":
        header = make_header(["spend"], horizon_days=rng.choice([-1, -(2**31), 3651, 2**31 - 1]))
        match = ("options.horizon_days",)
    elif kind == "affinity-horizon":
        header = make_header(["affinity"], horizon_days=rng.choice([1, 30, 365]))
        match = ("options.horizon_days",)
    elif kind == "bad-threshold":
        header = make_header(["segments"], churn_threshold=rng.choice([-0.5, 1.0, 2.0, float("nan"), float("inf"), -float("inf"), 1e308]))
        match = ("options.churn_threshold",)
    elif kind == "unknown-group":
        header = make_header(["affinity"], product_groups=["shoes", rng.choice(["toys", "", "SHOES", "x" * 1000, "z" * 20_000])])
        match = ("options.product_groups",)
    elif kind == "groups-without-affinity":
        header = make_header(["spend", "segments"], product_groups=["shoes"])
        match = ("options.product_groups",)
    elif kind == "pin-unrequested":
        header = make_header(["spend"], model_versions={"affinity": "1"})
        match = ("options.model_versions",)
    elif kind == "empty-score-name":
        scores, allowed, match = [""], frozenset({NOT_FOUND, INVALID}), ("''",)
    elif kind == "as-of-extreme":
        seconds = rng.choice([253402300799, 2**62, -(2**62), -62135596800, 10**15])
        header = make_header(["spend", "segments"], None)
        header.options.as_of.seconds = seconds
        header.options.as_of.nanos = rng.choice([0, 999_999_999])
        allowed, match = frozenset({OK, INVALID}), ("as_of",)
    elif kind == "as-of-pre-1970":
        as_of = -rng.randrange(1, 10**5) * US_PER_DAY
        header = make_header(["spend", "segments"], as_of)
        allowed, check = frozenset({OK}), _expected_spend(orders, as_of)
    elif kind == "no-as-of":
        header = make_header(["spend"], None)
        allowed, check = frozenset({OK}), _expected_spend(orders, 2**62)  # now: every order is past
    else:
        name = rng.choice(["order", "", "customers", "orders ", "x" * 1000, "y" * 100_000])
        tables[name] = encode(orders)
        match = (f"chunk.tables[{name[:100]!r}"[:-1],)
    if header is None:
        header = make_header(scores)
    return Case("header", kind, "ScoreBatch", [batch_request(header, tables)], allowed, match=match, check=check,
                rows=distinct(orders))


def _stream_protocol(rng: random.Random) -> Case:
    orders = orders_table(rng, 10, 30)
    head = pb.ScoreRequest(header=make_header(["spend"]))
    chunk = pb.ScoreRequest(chunk=pb.ContactChunk(tables={"orders": encode(orders)}))
    kind = rng.choice(["no-header", "header-twice", "header-late", "nothing", "unset-kind", "bad-chunk-later", "batch-no-header",
                       "header-only"])
    if kind == "no-header":
        return Case("stream", kind, "Score", [chunk, chunk], frozenset({INVALID}), match=("first message must be a header",))
    if kind == "header-twice":
        return Case("stream", kind, "Score", [head, head, chunk], frozenset({INVALID}), match=("message 1", "header"))
    if kind == "header-late":
        return Case("stream", kind, "Score", [head, chunk, chunk, head], frozenset({INVALID}), match=("message 3", "header"))
    if kind == "nothing":
        return Case("stream", kind, "Score", [], frozenset({INVALID}), match=("end of stream",))
    if kind == "unset-kind":
        return Case("stream", kind, "Score", [head, pb.ScoreRequest()], frozenset({INVALID}), match=("message 1",))
    if kind == "header-only":
        return Case("stream", kind, "Score", [head], frozenset({OK}), rows=0)
    if kind == "batch-no-header":
        return Case("stream", kind, "ScoreBatch", [batch_request(None, {"orders": encode(orders)})], frozenset({INVALID}),
                    match=("header.scores",))
    bad = pb.ScoreRequest(chunk=pb.ContactChunk(tables={"orders": encode(orders.drop_columns(["ts"]))}))
    return Case("stream", kind, "Score", [head, chunk, bad], frozenset({INVALID}), match=("orders.ts", "chunk 1"))


CATEGORIES: dict[str, Callable[[random.Random], Case]] = {
    "valid": valid_case,
    "garbage-ipc": _garbage_ipc,
    "wrong-type": _wrong_type,
    "mixed-type": _mixed_type,
    "missing-column": _missing_column,
    "extra-column": _extra_column,
    "nulls": _nulls,
    "nan-inf": _nan_inf,
    "amounts": _amounts,
    "dates": _dates,
    "duplicates": _duplicates,
    "empty": _empty,
    "huge-strings": _huge_strings,
    "too-big": _too_big,
    "header": _header,
    "stream": _stream_protocol,
    "compressed": _compressed,
    "dictionary": _dictionary,
    "nested": _nested,
    "many": _many,
}


def generate_cases(seed: int, n: int) -> Iterator[Case]:
    """``n`` cases, the categories taking turns; the same seed gives the same cases."""
    names = sorted(CATEGORIES)
    for i in range(n):
        category = names[i % len(names)]
        rng = random.Random(f"{seed}:{i}")
        yield CATEGORIES[category](rng)


# ----------------------------------------------------------------------------------------------
# running a case


def _decode(data: bytes) -> pa.RecordBatch:
    with pa.ipc.open_stream(pa.py_buffer(data)) as reader:
        table = reader.read_all()
    return table.combine_chunks().to_batches()[0] if table.num_rows else pa.RecordBatch.from_pylist([], schema=table.schema)


def run_case(stub, case: Case, timeout: float = 30.0) -> Outcome:
    """Send the case's request(s); the outcome says whether what came back was acceptable."""
    batches: list[pa.RecordBatch] = []
    try:
        if case.method == "ScoreBatch":
            response = stub.ScoreBatch(case.messages[0], timeout=timeout)
            batches.append(_decode(response.scores))
        else:
            for response in stub.Score(iter(case.messages), timeout=timeout):
                batches.append(_decode(response.scores))
        code, details = OK, ""
    except grpc.RpcError as exc:
        code, details = exc.code(), exc.details() or ""
    outcome = Outcome(case, code, details, batches=batches)
    if code not in case.allowed:
        outcome.problem = f"status {code.name} not in {sorted(c.name for c in case.allowed)}: {details[:300]}"
    elif code != OK:
        missing = [m for m in case.match if m not in details]
        if missing:
            outcome.problem = f"message lacks {missing}: {details[:300]}"
    else:
        try:
            _finite_or_null(batches)
            if case.rows is not None:
                rows = sum(b.num_rows for b in batches)
                assert rows == case.rows, f"{rows} result rows, expected {case.rows}"
            if case.check is not None:
                case.check(batches)
        except AssertionError as exc:
            outcome.problem = f"OK but wrong result: {exc}"
    return outcome


def vm_rss_bytes(status_file: str = "/proc/self/status") -> int:
    with open(status_file) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError(f"no VmRSS in {status_file}")
