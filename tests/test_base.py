"""``BaseChunks``: every contact exactly once, every row kept, read whole or partitioned on disk."""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from scorecast.base import BaseChunks, read_table
from scorecast.kernels import FeatureFrame
from scorecast.kernels.errors import InputError

COLUMNS = {"orders": ["ts", "amount"]}


def _write_base(root: Path, n_contacts: int = 1_000, string_ids: bool = False, with_contacts: bool = True) -> Path:
    rng = np.random.default_rng(1)
    ids = rng.permutation(np.arange(10_000, 10_000 + n_contacts))
    order_ids = rng.choice(ids[: n_contacts * 2 // 3], n_contacts * 3)  # a third never orders
    if string_ids:
        ids, order_ids = [f"C{i}" for i in ids], [f"C{i}" for i in order_ids]
    root.mkdir(parents=True, exist_ok=True)
    if with_contacts:
        pq.write_table(pa.table({"contact_id": ids, "country": ["FR"] * n_contacts}), root / "contacts.parquet")
    orders = pa.table(
        {
            "contact_id": order_ids,
            "ts": pa.array(np.arange(len(order_ids)) * 1_000_000, pa.timestamp("us", tz="UTC")),
            "amount": np.arange(len(order_ids), dtype=np.float64),
            "sku": ["x"] * len(order_ids),
        }
    )
    pq.write_table(orders, root / "orders.parquet", row_group_size=500)
    return root


def _check(chunks: BaseChunks, base: Path, chunk_contacts: int, partitioned: bool = False) -> list[dict[str, pa.Table]]:
    out = list(chunks)
    contacts = read_table(base, "contacts")
    orders = read_table(base, "orders")
    expected_ids = contacts["contact_id"].to_pylist() if contacts is not None else None
    seen_ids: list = []
    for chunk in out:
        ids = chunk["contacts"]["contact_id"].to_pylist()
        assert 0 < len(ids) <= chunk_contacts
        assert set(chunk["orders"]["contact_id"].to_pylist()) <= set(ids)
        assert chunk["orders"].column_names == ["contact_id", "ts", "amount"]  # only what was asked
        seen_ids += ids
    if expected_ids is not None and not partitioned:
        assert seen_ids == expected_ids  # contacts order, prospects included
    if expected_ids is not None and partitioned:
        assert sorted(seen_ids) == sorted(expected_ids)  # prospects included
        position = {c: i for i, c in enumerate(expected_ids)}
        for chunk in out:  # within a chunk (of one partition), contacts order
            got = [position[c] for c in chunk["contacts"]["contact_id"].to_pylist()]
            assert got == sorted(got)
    assert len(seen_ids) == len(set(seen_ids))
    got = sorted(v for chunk in out for v in chunk["orders"]["amount"].to_pylist())
    assert got == sorted(orders["amount"].to_pylist())  # every order row exactly once
    return out


@pytest.mark.parametrize("partition_contacts", [None, 256], ids=["whole", "partitioned"])
@pytest.mark.parametrize("string_ids", [False, True], ids=["int64", "string"])
def test_chunks_cover_the_base(tmp_path: Path, partition_contacts: int | None, string_ids: bool) -> None:
    """Chunks hold disjoint contacts, with every order row once, read whole or partitioned."""
    base = _write_base(tmp_path, string_ids=string_ids)
    chunks = BaseChunks(base, COLUMNS, chunk_contacts=128, partition_contacts=partition_contacts or 10_000)
    # partitions of 7/8 of a chunk; the first 256 contacts' worth (2) stay in memory, 7 go to disk
    assert chunks.n_partitions == (1 if partition_contacts is None else 9) and chunks.n_contacts == 1_000
    out = _check(chunks, base, 128, partitioned=partition_contacts is not None)
    assert len(chunks) == len(out)


@pytest.mark.parametrize("with_contacts", [True, False])
def test_partitioned_holds_the_same_rows_per_contact(
    tmp_path: Path, with_contacts: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The disk-partitioned path gives every contact the same rows, in the same order, as
    reading whole; its partition files are gone afterwards, also when only len() was asked."""
    base = _write_base(tmp_path / "base", with_contacts=with_contacts)
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(scratch))

    def rows(chunks: BaseChunks) -> dict:
        out: dict = {}
        for chunk in chunks:
            for contact, amount in zip(
                chunk["orders"]["contact_id"].to_pylist(), chunk["orders"]["amount"].to_pylist(), strict=True
            ):
                out.setdefault(contact, []).append(amount)
            for contact in chunk["contacts"]["contact_id"].to_pylist():
                out.setdefault(contact, [])
        return out

    whole = rows(BaseChunks(base, COLUMNS, chunk_contacts=100))
    parted = BaseChunks(base, COLUMNS, chunk_contacts=100, partition_contacts=150)
    assert parted.n_partitions > 1
    assert rows(parted) == whole
    assert list(scratch.iterdir()) == []  # the partitions are gone
    asked = BaseChunks(base, COLUMNS, chunk_contacts=100, partition_contacts=150)
    assert len(asked) >= 7  # 667 contacts with orders, at most 100 a chunk
    del asked
    assert list(scratch.iterdir()) == []


def test_without_contacts_table(tmp_path: Path) -> None:
    """Without contacts.parquet the contacts are the distinct ids of the orders."""
    base = _write_base(tmp_path, with_contacts=False)
    chunks = BaseChunks(base, COLUMNS, chunk_contacts=300)
    out = _check(chunks, base, 300)
    assert sum(c["contacts"].num_rows for c in out) == len(set(read_table(base, "orders")["contact_id"].to_pylist()))


def test_order_of_unknown_contact_is_refused(tmp_path: Path) -> None:
    """An order whose contact is not in contacts.parquet is an error naming the id: from
    ``BaseChunks`` when it regroups rows in memory, from the pipeline's frame when a partition
    is the chunk (the rows are not looked up twice)."""
    base = _write_base(tmp_path)
    pq.write_table(pa.table({"contact_id": [10_000, 10_001]}), base / "contacts.parquet")
    with pytest.raises(ValueError, match=r"orders.contact_id .* is not in contacts.contact_id"):
        list(BaseChunks(base, COLUMNS, chunk_contacts=1))
    chunks = list(BaseChunks(base, COLUMNS, chunk_contacts=10, partition_contacts=1))
    assert sum(c["orders"].num_rows for c in chunks) == 3_000  # every row reaches a chunk
    frame = FeatureFrame(next(c for c in chunks if c["orders"].num_rows), as_of_us=0)
    with pytest.raises(InputError, match=r"orders.contact_id: \d+ orders belong to contacts not among the rows"):
        frame.codes("orders")


def test_split_keeps_row_order_and_stops_at_a_bad_row_group(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Row groups split side by side still reach each partition in table order; a bad one (a
    null contact id in the 5th of 6) fails the split, without waiting forever, and leaves no
    partition files."""
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(scratch))
    base = _write_base(tmp_path / "base", string_ids=True)
    for chunk in BaseChunks(base, COLUMNS, chunk_contacts=100, partition_contacts=150):
        amounts = chunk["orders"]["amount"].to_numpy()  # the table's row order (amount = row number)
        assert (np.diff(amounts) > 0).all()
    orders = read_table(base, "orders")
    ids = orders["contact_id"].to_pylist()
    ids[2_100] = None
    pq.write_table(orders.set_column(0, "contact_id", pa.array(ids)), base / "orders.parquet", row_group_size=500)
    with pytest.raises(InputError, match="orders.contact_id: 1 null ids"):
        list(BaseChunks(base, COLUMNS, chunk_contacts=100, partition_contacts=150))
    assert list(scratch.iterdir()) == []


def test_strings_come_dictionary_encoded(tmp_path: Path) -> None:
    """String columns arrive dictionary-encoded with the same values, read whole or split; a
    dictionary larger than a partition's share of a row group is decoded before the split."""
    base = _write_base(tmp_path)
    orders = read_table(base, "orders")
    sku = pa.array([f"S{i % 7}" for i in range(orders.num_rows)])
    unique = pa.array([f"U{i}" for i in range(orders.num_rows)])
    pq.write_table(orders.set_column(3, "sku", sku).append_column("ref", unique), base / "orders.parquet", row_group_size=500)
    expected = dict(zip(orders["amount"].to_pylist(), zip(sku.to_pylist(), unique.to_pylist(), strict=True), strict=True))
    for partition_contacts in (10_000, 256):  # read whole, split
        got = {}
        for chunk in BaseChunks(
            base, {"orders": ["amount", "sku", "ref"]}, chunk_contacts=128, partition_contacts=partition_contacts
        ):
            table = chunk["orders"]
            assert pa.types.is_dictionary(table.schema.field("sku").type)
            assert pa.types.is_dictionary(table.schema.field("ref").type) == (partition_contacts == 10_000)
            got |= dict(
                zip(
                    table["amount"].to_pylist(), zip(table["sku"].to_pylist(), table["ref"].to_pylist(), strict=True), strict=True
                )
            )
        assert got == expected


def test_bad_arguments(tmp_path: Path) -> None:
    """Unknown tables, a missing folder and a non-positive chunk size are refused."""
    base = _write_base(tmp_path)
    with pytest.raises(ValueError, match="unknown tables"):
        BaseChunks(base, {"order": ["ts"]})
    with pytest.raises(ValueError, match="chunk_contacts must be > 0, got 0"):
        BaseChunks(base, COLUMNS, chunk_contacts=0)
    with pytest.raises(FileNotFoundError, match="nowhere"):
        BaseChunks(tmp_path / "nowhere", COLUMNS)
