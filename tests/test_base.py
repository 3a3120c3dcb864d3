"""``BaseChunks``: every contact exactly once, every row kept, in memory or spilled to disk."""

from __future__ import annotations

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


def _check(chunks: BaseChunks, base: Path, chunk_contacts: int) -> list[dict[str, pa.Table]]:
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
    if expected_ids is not None:
        assert seen_ids == expected_ids  # contacts order, prospects included
    assert len(seen_ids) == len(set(seen_ids))
    got = sorted(v for chunk in out for v in chunk["orders"]["amount"].to_pylist())
    assert got == sorted(orders["amount"].to_pylist())  # every order row exactly once
    return out


@pytest.mark.parametrize("spill", [False, True], ids=["in-memory", "spilled"])
@pytest.mark.parametrize("string_ids", [False, True], ids=["int64", "string"])
def test_chunks_cover_the_base(tmp_path: Path, spill: bool, string_ids: bool) -> None:
    """Chunks hold disjoint contacts in contacts order, with every order row once, both ways."""
    base = _write_base(tmp_path, string_ids=string_ids)
    chunks = BaseChunks(base, COLUMNS, chunk_contacts=128, spill_bytes=0 if spill else 1 << 30)
    assert chunks.spill is spill and len(chunks) == 8
    _check(chunks, base, 128)


def test_spilled_equals_in_memory(tmp_path: Path) -> None:
    """The disk-partitioned path yields exactly the in-memory chunks."""
    base = _write_base(tmp_path)
    a = list(BaseChunks(base, COLUMNS, chunk_contacts=100, spill_bytes=0))
    b = list(BaseChunks(base, COLUMNS, chunk_contacts=100, spill_bytes=1 << 30))
    assert len(a) == len(b) == 10
    for x, y in zip(a, b, strict=True):
        assert x["contacts"].equals(y["contacts"]) and x["orders"].equals(y["orders"])


def test_without_contacts_table(tmp_path: Path) -> None:
    """Without contacts.parquet the contacts are the distinct ids of the orders."""
    base = _write_base(tmp_path, with_contacts=False)
    chunks = BaseChunks(base, COLUMNS, chunk_contacts=300)
    out = _check(chunks, base, 300)
    assert sum(c["contacts"].num_rows for c in out) == len(set(read_table(base, "orders")["contact_id"].to_pylist()))


def test_order_of_unknown_contact_is_refused(tmp_path: Path) -> None:
    """An order whose contact is not in contacts.parquet is an error naming the id."""
    base = _write_base(tmp_path)
    pq.write_table(pa.table({"contact_id": [10_000, 10_001]}), base / "contacts.parquet")
    with pytest.raises(ValueError, match=r"orders.contact_id .* is not in contacts.contact_id"):
        list(BaseChunks(base, COLUMNS, chunk_contacts=10))


def test_bad_arguments(tmp_path: Path) -> None:
    """Unknown tables, a missing folder and a non-positive chunk size are refused."""
    base = _write_base(tmp_path)
    with pytest.raises(ValueError, match="unknown tables"):
        BaseChunks(base, {"order": ["ts"]})
    with pytest.raises(ValueError, match="chunk_contacts must be > 0, got 0"):
        BaseChunks(base, COLUMNS, chunk_contacts=0)
    with pytest.raises(FileNotFoundError, match="nowhere"):
        BaseChunks(tmp_path / "nowhere", COLUMNS)
