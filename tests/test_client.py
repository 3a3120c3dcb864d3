"""scorecast.client.encode_table: what the client puts on the wire for one table."""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from scorecast.client import COMPRESS_MIN_BYTES, encode_table


def _batches(data: bytes) -> list[pa.RecordBatch]:
    with pa.ipc.open_stream(pa.py_buffer(data)) as reader:
        return list(reader)


def test_a_small_table_goes_as_one_batch() -> None:
    """A few contacts filtered out of a table of many chunks went as that many batches, which
    the server reads and joins one by one: a small table is one batch, the same rows."""
    table = pa.concat_tables([pa.table({"contact_id": pa.array([i, i + 1], pa.int64())}) for i in range(7)])
    assert table.column("contact_id").num_chunks == 7
    batches = _batches(encode_table(table))
    assert len(batches) == 1 and pa.Table.from_batches(batches).equals(table)


def test_a_large_table_keeps_its_batches_and_is_compressed() -> None:
    """From COMPRESS_MIN_BYTES up, batches go as they are (no copy to join them), LZ4-compressed."""
    rows = COMPRESS_MIN_BYTES // 8
    part = pa.table({"contact_id": pa.array(np.arange(rows) % 7, pa.int64())})
    table = pa.concat_tables([part, part])
    data = encode_table(table)
    assert len(_batches(data)) == 2 and len(data) < table.nbytes / 2
    assert pa.Table.from_batches(_batches(data)).equals(table)
