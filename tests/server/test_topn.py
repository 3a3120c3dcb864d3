"""Top-N: the running selection vs a full sort, and the TopN call over real gRPC."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import grpc
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

from scorecast.client import ScorecastClient
from scorecast.options import ScoreSpec
from scorecast.server.app import RunningServer, start_server
from scorecast.server.config import ServerSettings
from scorecast.server.pipeline import ScoringPipeline
from scorecast.server.repository import ModelRepository
from scorecast.server.topn import RunningTopN, TopNQuery, TopNScan, top_n

from ..support.fakes import grouped_model, linear_model, segment_model, write_model
from .conftest import AS_OF_US, make_orders

AS_OF = pa.scalar(AS_OF_US, pa.timestamp("us", tz="UTC")).as_py()
N_CONTACTS = 3000


def full_sort(rows: list[tuple[object, float | None]], n: int) -> list[tuple[object, float]]:
    """The reference: every (id, value) with a value, sorted by value desc then id asc, first n."""
    valid = [(i, v) for i, v in rows if v is not None and v == v]
    return sorted(valid, key=lambda r: (-r[1], r[0]))[:n]


@pytest.mark.parametrize("n", [1, 7, 250, 999, 5000])
@pytest.mark.parametrize("id_type", ["int", "string"])
def test_running_top_n_equals_full_sort(n: int, id_type: str) -> None:
    """Chunk by chunk, with many ties, NaN and nulls, the result is the full sort's first n."""
    rng = np.random.default_rng(n)
    ids = rng.permutation(4000)
    values = rng.integers(0, 30, 4000).astype(np.float32)  # ~130 rows per value: ties everywhere
    values[rng.choice(4000, 50, replace=False)] = np.nan
    null = np.zeros(4000, dtype=bool)
    null[rng.choice(4000, 50, replace=False)] = True
    contact_ids = [f"c{i:05d}" for i in ids] if id_type == "string" else ids.tolist()
    table = pa.table({"contact_id": contact_ids, "s.v": pa.array(values, mask=null), "extra": np.arange(4000)})
    bounds = [0, 1, 333, 1000, 1001, 2500, 4000]  # uneven chunks, one of a single row
    chunks = [table.slice(a, b - a) for a, b in zip(bounds, bounds[1:], strict=False)]
    result = top_n(chunks, "s.v", n)
    expected = full_sort(list(zip(contact_ids, table["s.v"].to_pylist(), strict=True)), n)
    assert list(zip(result["contact_id"].to_pylist(), result["s.v"].to_pylist(), strict=True)) == expected
    # The other columns travel with their rows.
    extra = dict(zip(contact_ids, range(4000), strict=True))
    assert result["extra"].to_pylist() == [extra[i] for i, _ in expected]


def test_running_top_n_empty_and_bad_n() -> None:
    """No batch (or only null values) gives an empty result; n must be positive."""
    assert top_n([], "s.v", 5).num_rows == 0
    only_null = pa.table({"contact_id": [1, 2], "s.v": pa.array([None, None], pa.float32())})
    assert top_n([only_null], "s.v", 5).column_names == ["contact_id", "s.v"]
    with pytest.raises(ValueError, match="n must be > 0"):
        RunningTopN(0, "s.v")


# --- over gRPC -------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def base_tables() -> dict[str, pa.Table]:
    """Contacts with attributes and orders whose amounts repeat (so spend.value has ties)."""
    rng = np.random.default_rng(1)
    ids = rng.permutation(N_CONTACTS) + 100
    contacts = pa.table(
        {
            "contact_id": pa.array(ids, pa.int64()),
            "country": pa.array(rng.choice(["FR", "BE", "DE"], N_CONTACTS)),
            "age": pa.array(rng.integers(18, 80, N_CONTACTS), pa.int64()),
        }
    )
    n_orders = 6000
    buyers = rng.choice(ids[: N_CONTACTS - 300], n_orders)  # the last 300 contacts never order
    orders = make_orders(
        buyers.tolist(),
        rng.integers(1, 300, n_orders).astype(float).tolist(),
        rng.choice([5.0, 10.0, 20.0], n_orders).tolist(),
        rng.choice(["shoes", "books"], n_orders).tolist(),
    )
    return {"contacts": contacts, "orders": orders}


@pytest.fixture(scope="module")
def bases(tmp_path_factory: pytest.TempPathFactory, base_tables: dict[str, pa.Table]) -> Path:
    """A folder of allowed bases: ``<root>/shop`` holds the base as Parquet."""
    root = tmp_path_factory.mktemp("bases")
    (root / "shop").mkdir()
    for name, table in base_tables.items():
        pq.write_table(table, root / "shop" / f"{name}.parquet")
    return root


@pytest.fixture(scope="module")
def topn_server(tmp_path_factory: pytest.TempPathFactory, bases: Path) -> Iterator[RunningServer]:
    models = tmp_path_factory.mktemp("models")
    for model in (linear_model(), grouped_model(), segment_model()):
        write_model(models, model)
    settings = ServerSettings(port=0, base_roots=(bases,), max_rows_per_request=1_000_000)
    running = start_server(settings, ModelRepository.load(models))
    yield running
    running.stop(0)


@pytest.fixture
def topn_client(topn_server: RunningServer) -> Iterator[ScorecastClient]:
    with ScorecastClient(f"127.0.0.1:{topn_server.port}", timeout=60) as c:
        yield c


@pytest.fixture(scope="module")
def reference(topn_server: RunningServer, base_tables: dict[str, pa.Table]) -> pa.Table:
    """Every contact's scores and attributes, scored in one piece in process."""
    spec = ScoreSpec(scores=("spend", "affinity", "segments"), as_of_us=AS_OF_US)
    scores = ScoringPipeline(topn_server.repository, spec).score(base_tables)
    contacts = base_tables["contacts"]
    assert scores["contact_id"].to_pylist() == contacts["contact_id"].to_pylist()
    assert len(set(scores["spend.value"].to_pylist())) < N_CONTACTS / 5  # ties everywhere: the tie rule is exercised
    return pa.table({**{n: scores[n] for n in scores.schema.names}, "country": contacts["country"], "age": contacts["age"]})


def split(tables: dict[str, pa.Table], size: int) -> list[dict[str, pa.Table]]:
    """Chunks of ``size`` contacts, each with its contacts' orders."""
    contacts, orders = tables["contacts"], tables["orders"]
    out = []
    for start in range(0, contacts.num_rows, size):
        part = contacts.slice(start, size)
        mask = pc.is_in(orders["contact_id"], value_set=part["contact_id"])
        out.append({"contacts": part, "orders": orders.filter(mask)})
    return out


# (where clauses, the same as a Python predicate over a reference row)
FILTERS = {
    "none": ((), lambda r: True),
    "country": (('contacts.country == "FR"',), lambda r: r["country"] == "FR"),
    "never-bought-shoes": (("affinity.shoes == 0", "contacts.age >= 40"), lambda r: r["affinity.shoes"] == 0 and r["age"] >= 40),
    "bought-books-not-be": (
        ("affinity.books > 0", 'contacts.country in ["FR", "DE"]'),
        lambda r: r["affinity.books"] > 0 and r["country"] != "BE",
    ),
    "segment": (('segments.segment == "many"',), lambda r: r["segments.segment"] == "many"),
    "nothing": (("spend.value < -1",), lambda r: False),
}


def expected_top(reference: pa.Table, predicate, n: int) -> list[tuple[int, float]]:  # noqa: ANN001
    rows = [r for r in reference.to_pylist() if predicate(r)]
    return full_sort([(r["contact_id"], r["spend.value"]) for r in rows], n)


@pytest.mark.parametrize("n", [1, 10, 1000, 10_000])
@pytest.mark.parametrize("name", list(FILTERS))
def test_topn_streamed_equals_full_sort(
    topn_client: ScorecastClient, base_tables: dict[str, pa.Table], reference: pa.Table, name: str, n: int
) -> None:
    """Streamed chunks: the N rows equal a full sort of the filtered base (ties by contact_id)."""
    where, predicate = FILTERS[name]
    result = topn_client.top("spend.value", n, where, chunks=split(base_tables, 700), as_of=AS_OF)
    expected = expected_top(reference, predicate, n)
    table = result.table
    assert list(zip(table["contact_id"].to_pylist(), table["spend.value"].to_pylist(), strict=True)) == expected
    assert result.scanned == N_CONTACTS
    assert result.matched == sum(1 for r in reference.to_pylist() if predicate(r))
    assert table.column_names[:2] == ["contact_id", "spend.value"]
    assert set(table.column_names[2:]) == {c.split(" ")[0] for c in where} - {"spend.value"}


def test_topn_by_path_equals_streamed(
    topn_client: ScorecastClient, topn_server: RunningServer, bases: Path, base_tables: dict[str, pa.Table]
) -> None:
    """A base read by the server from an allowed root gives the streamed result, column for column."""
    where = ["affinity.shoes == 0", "features.frequency >= 1"]
    by_path = topn_client.top("spend.value", 500, where, base_path=str(bases / "shop"), chunk_contacts=800, as_of=AS_OF)
    streamed = topn_client.top("spend.value", 500, where, chunks=split(base_tables, 1000), as_of=AS_OF)
    assert by_path.table.equals(streamed.table)
    assert by_path.table.num_rows == 500 and by_path.scanned == N_CONTACTS
    assert by_path.models == [("spend", "1"), ("affinity", "1")]
    assert min(by_path.table["features.frequency"].to_pylist()) >= 1
    # The same selection in process, no gRPC: what benchmarks and batch jobs call.
    query = TopNQuery.parse("spend.value", 500, where)
    scan = TopNScan(topn_server.repository, query, ScoreSpec(scores=query.scores, as_of_us=AS_OF_US))
    scan.scan_base(bases / "shop", chunk_contacts=450)
    assert scan.result().equals(by_path.table) and scan.scanned == N_CONTACTS


def test_topn_large_result_comes_in_parts(
    topn_client: ScorecastClient, base_tables: dict[str, pa.Table], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A result larger than one response's rows is split and reassembled in order."""
    import scorecast.server.servicer as servicer

    monkeypatch.setattr(servicer, "TOPN_RESPONSE_ROWS", 128)
    result = topn_client.top("spend.value", 1000, chunks=split(base_tables, 1000), as_of=AS_OF)
    whole = top_n(
        [pa.table({"contact_id": result.table["contact_id"], "spend.value": result.table["spend.value"]})], "spend.value", 1000
    )
    assert result.table.num_rows == 1000 and result.table.select([0, 1]).equals(whole)


@pytest.mark.parametrize(
    ("by", "where", "field", "text"),
    [
        ("spend.value", ["spend.value > 0", "contacts.country ~ 3"], "where[1]", "contacts.country ~ 3"),
        ("spend.value", ["spend.nope > 1"], "where[0]", "spend.nope"),
        ("spend.value", ["contacts.income > 1"], "where[0]", "contacts.income"),
        ("spend.value", ["contacts.country > 3"], "where[0]", "contacts.country > 3"),
        ("spend.value", ["features.bogus == 0"], "where[0]", "features.bogus == 0"),
        ("spend.value", ["nope.x > 1"], "header.scores", "nope"),
        ("contacts.age", [], "by", "contacts.age"),
        ("spend", [], "by", "spend"),
    ],
)
def test_topn_errors_name_the_clause(
    topn_client: ScorecastClient, base_tables: dict[str, pa.Table], by: str, where: list[str], field: str, text: str
) -> None:
    """A bad clause or column is INVALID_ARGUMENT (NOT_FOUND for an unknown score), naming it."""
    with pytest.raises(grpc.RpcError) as info:
        topn_client.top(by, 10, where, chunks=split(base_tables, 1000), as_of=AS_OF)
    expected = grpc.StatusCode.NOT_FOUND if field == "header.scores" else grpc.StatusCode.INVALID_ARGUMENT
    assert info.value.code() == expected
    assert text in info.value.details()
    if field != "header.scores":
        assert info.value.details().startswith(field)


def test_topn_bad_n(topn_client: ScorecastClient, base_tables: dict[str, pa.Table]) -> None:
    """n must be positive and within max_topn_n."""
    for n, message in ((0, "must be > 0"), (2_000_000, "max_topn_n")):
        with pytest.raises(grpc.RpcError) as info:
            topn_client.top("spend.value", n, chunks=split(base_tables, 1000), as_of=AS_OF)
        assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT and message in info.value.details()


def test_topn_paths_outside_roots_are_refused(topn_client: ScorecastClient, bases: Path, tmp_path: Path) -> None:
    """Outside the roots (directly, by .., or through a symlink) is PERMISSION_DENIED; a missing
    folder inside is NOT_FOUND; a relative path is INVALID_ARGUMENT. Nothing outside is read."""
    outside = tmp_path / "secret"
    outside.mkdir()
    pq.write_table(pa.table({"contact_id": [1]}), outside / "contacts.parquet")
    link_base = bases / "linked"
    link_base.mkdir(exist_ok=True)
    if not (link_base / "contacts.parquet").exists():
        os.symlink(outside / "contacts.parquet", link_base / "contacts.parquet")
    if not (bases / "escape").exists():
        os.symlink(outside, bases / "escape")
    (bases / "empty").mkdir(exist_ok=True)
    cases = [
        (str(outside), grpc.StatusCode.PERMISSION_DENIED, "outside the folders"),
        (str(bases / "shop" / ".." / ".." / outside.parent.name), grpc.StatusCode.PERMISSION_DENIED, "outside the folders"),
        (str(bases / "escape"), grpc.StatusCode.PERMISSION_DENIED, "outside the folders"),
        (str(link_base), grpc.StatusCode.PERMISSION_DENIED, "contacts.parquet leading outside"),
        (str(bases / "missing"), grpc.StatusCode.NOT_FOUND, "is not a folder"),
        (str(bases / "empty"), grpc.StatusCode.NOT_FOUND, "holds none of"),
        ("shop", grpc.StatusCode.INVALID_ARGUMENT, "absolute path"),
        (str(bases / "shop") + "\x00/x", grpc.StatusCode.INVALID_ARGUMENT, "no NUL or control characters"),
        (str(bases / "shop\nx"), grpc.StatusCode.INVALID_ARGUMENT, "no NUL or control characters"),
        ("/" + "a" * 5000, grpc.StatusCode.INVALID_ARGUMENT, "at most 4096 bytes"),
    ]
    for path, code, message in cases:
        with pytest.raises(grpc.RpcError) as info:
            topn_client.top("spend.value", 10, base_path=path, as_of=AS_OF)
        assert (info.value.code(), path) == (code, path) and message in info.value.details()


def test_topn_by_path_read_budget(repository, bases: Path) -> None:  # noqa: ANN001
    """A base whose tables take more than max_base_bytes on disk is RESOURCE_EXHAUSTED before reading;
    a chunk read from it is held to the per-chunk row budget."""
    for overrides, setting in (({"max_base_bytes": 1000}, "max_base_bytes"), ({"max_event_rows_per_chunk": 10}, "max_event_rows_per_chunk")):
        running = start_server(ServerSettings(port=0, base_roots=(bases,), **overrides), repository)
        try:
            with ScorecastClient(f"127.0.0.1:{running.port}", timeout=30) as client, pytest.raises(grpc.RpcError) as info:
                client.top("spend.value", 10, base_path=str(bases / "shop"), as_of=AS_OF)
            assert info.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED and setting in info.value.details()
            assert "header.base_path" in info.value.details()
        finally:
            running.stop(0)


def test_topn_by_path_needs_configured_roots(server: RunningServer) -> None:
    """A server with no base_roots reads no path at all."""
    with ScorecastClient(f"127.0.0.1:{server.port}", timeout=30) as client, pytest.raises(grpc.RpcError) as info:
        client.top("spend.value", 10, base_path="/tmp", as_of=AS_OF)
    assert info.value.code() == grpc.StatusCode.PERMISSION_DENIED and "base_roots is empty" in info.value.details()
