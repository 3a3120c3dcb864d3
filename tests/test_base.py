"""``BaseChunks``: every contact exactly once, every row kept, read whole or partitioned on disk."""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from scorecast.base import BaseChunks, read_table

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
    assert chunks.n_partitions == (1 if partition_contacts is None else 4) and chunks.n_contacts == 1_000
    out = _check(chunks, base, 128, partitioned=partition_contacts is not None)
    assert len(chunks) == len(out)


@pytest.mark.parametrize("with_contacts", [True, False])
def test_partitioned_holds_the_same_rows_per_contact(tmp_path: Path, with_contacts: bool, monkeypatch: pytest.MonkeyPatch) -> None:
    """The disk-partitioned path gives every contact the same rows, in the same order, as
    reading whole; its partition files are gone afterwards, also when only len() was asked."""
    base = _write_base(tmp_path / "base", with_contacts=with_contacts)
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(scratch))

    def rows(chunks: BaseChunks) -> dict:
        out: dict = {}
        for chunk in chunks:
            for contact, amount in zip(chunk["orders"]["contact_id"].to_pylist(), chunk["orders"]["amount"].to_pylist(), strict=True):
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
    assert len(asked) >= 10
    del asked
    assert list(scratch.iterdir()) == []


def test_without_contacts_table(tmp_path: Path) -> None:
    """Without contacts.parquet the contacts are the distinct ids of the orders."""
    base = _write_base(tmp_path, with_contacts=False)
    chunks = BaseChunks(base, COLUMNS, chunk_contacts=300)
    out = _check(chunks, base, 300)
    assert sum(c["contacts"].num_rows for c in out) == len(set(read_table(base, "orders")["contact_id"].to_pylist()))


@pytest.mark.parametrize("partition_contacts", [None, 1])
def test_order_of_unknown_contact_is_refused(tmp_path: Path, partition_contacts: int | None) -> None:
    """An order whose contact is not in contacts.parquet is an error naming the id."""
    base = _write_base(tmp_path)
    pq.write_table(pa.table({"contact_id": [10_000, 10_001]}), base / "contacts.parquet")
    with pytest.raises(ValueError, match=r"orders.contact_id .* is not in contacts.contact_id"):
        list(BaseChunks(base, COLUMNS, chunk_contacts=10, partition_contacts=partition_contacts))


def test_bad_arguments(tmp_path: Path) -> None:
    """Unknown tables, a missing folder and a non-positive chunk size are refused."""
    base = _write_base(tmp_path)
    with pytest.raises(ValueError, match="unknown tables"):
        BaseChunks(base, {"order": ["ts"]})
    with pytest.raises(ValueError, match="chunk_contacts must be > 0, got 0"):
        BaseChunks(base, COLUMNS, chunk_contacts=0)
    with pytest.raises(FileNotFoundError, match="nowhere"):
        BaseChunks(tmp_path / "nowhere", COLUMNS)
