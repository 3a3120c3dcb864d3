"""scorecast/spill.py: partitions spilled plain or compressed as the temp folder's free space
allows, and split folders of dead processes swept; through ``BaseChunks``, its one user."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import scorecast.spill
from scorecast.base import BaseChunks, read_table
from scorecast.spill import tmp_prefix

from .test_base import COLUMNS, _write_base


def test_spill_is_compressed_only_when_the_temp_folder_is_short_of_space(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Partitions spill as plain Arrow IPC (mapped when read back) while their estimated size
    fits half the temp folder's free space, LZ4-compressed beyond; the chunks are the same."""
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(scratch))
    base = _write_base(tmp_path / "base", n_contacts=4_000)
    orders = read_table(base, "orders")
    orders = orders.set_column(2, "amount", pa.array(np.arange(orders.num_rows) % 7, pa.float64()))  # compressible
    pq.write_table(orders, base / "orders.parquet", row_group_size=4_000)  # LZ4 needs more than a few rows
    # the estimate: the 3 columns read (int64 ids, timestamps, doubles), 8 bytes a row each
    estimate = orders.num_rows * 3 * 8

    def split(free: int) -> tuple[int, list[dict[str, pa.Table]]]:
        usage = shutil.disk_usage(scratch)
        monkeypatch.setattr(scorecast.spill.shutil, "disk_usage", lambda path: usage._replace(free=free))
        chunks = iter(BaseChunks(base, COLUMNS, chunk_contacts=200, partition_contacts=400))
        first = next(chunks)  # the split is done: every spilled partition is on disk
        spilled = sum(f.stat().st_size for f in scratch.rglob("orders.*.arrow"))
        return spilled, [first, *chunks]

    plain, plain_chunks = split(free=10 * estimate)
    packed, packed_chunks = split(free=estimate)  # the spill (~90% of the rows) over half of it
    assert 0.8 * estimate < plain < 1.2 * estimate  # as large as the estimate said
    assert packed < 0.8 * plain
    assert [c["orders"] for c in plain_chunks] == [c["orders"] for c in packed_chunks]
    assert sum(c["orders"].num_rows for c in plain_chunks) == orders.num_rows
    assert list(scratch.iterdir()) == []


def test_split_folders_of_dead_processes_are_swept(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A split folder left by a killed process of this host goes at the next split; a live
    process's folder and other files stay."""
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(scratch))
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    stale = scratch / f"{tmp_prefix(dead.pid)}abc"
    live = scratch / f"{tmp_prefix(os.getppid())}abc"
    other = scratch / "scorecast-chunks-elsewhere-1-abc"
    for folder in (stale, live, other):
        folder.mkdir()
        (folder / "orders.5.arrow").write_bytes(b"x")
    base = _write_base(tmp_path / "base")
    assert sum(c["contacts"].num_rows for c in BaseChunks(base, COLUMNS, chunk_contacts=100, partition_contacts=150)) == 1_000
    assert sorted(p.name for p in scratch.iterdir()) == sorted([live.name, other.name])


def test_held_partitions_are_capped_by_bytes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Partitions stay in memory while their estimated Arrow bytes fit ``HELD_BYTES``, the rest
    spill; what is held changes no chunk, no row and no row's place."""
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(scratch))
    base = _write_base(tmp_path / "base", n_contacts=4_000)
    # the 3 columns read, 8 bytes a row each (or Parquet's uncompressed size), over 23 partitions of 175 contacts
    per_partition = read_table(base, "orders").num_rows * 3 * 8 // 23

    def split(held_bytes: int) -> tuple[int, list[dict[str, pa.Table]]]:
        monkeypatch.setattr(scorecast.spill, "HELD_BYTES", held_bytes)
        chunks = BaseChunks(base, COLUMNS, chunk_contacts=200, partition_contacts=1_600)  # 9 held by count
        it = iter(chunks)
        first = next(it)  # the split is done
        assert chunks.n_partitions == 23
        spilled = len(list(scratch.rglob("orders.*.arrow")))
        return spilled, [first, *it]

    by_count, expected = split(10**12)
    assert by_count == 23 - 9
    for held_bytes in (3 * per_partition, 0):
        spilled, chunks = split(held_bytes)
        assert (0 < 23 - spilled <= 3) if held_bytes else spilled == 23
        assert [c["contacts"] for c in chunks] == [c["contacts"] for c in expected]
        assert [c["orders"] for c in chunks] == [c["orders"] for c in expected]
    assert list(scratch.iterdir()) == []
