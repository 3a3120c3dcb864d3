"""DecodeBudget: what a chunk's IPC streams may decode to, read from their headers before Arrow
allocates anything; uncompressed batches count their body, compressed ones the lengths they state."""

from __future__ import annotations

import struct

import numpy as np
import pyarrow as pa
import pytest

from scorecast.client import encode_table
from scorecast.server.codec import decode_tables
from scorecast.server.errors import MalformedPayload, ResourceExhausted
from scorecast.server.limits import DecodeBudget

ORDERS = pa.table({"contact_id": pa.array(np.arange(1000), pa.int64()), "amount": pa.array(np.ones(1000))})


def _used(data: bytes) -> int:
    budget = DecodeBudget(1 << 40, 10**9)
    budget.check(pa.py_buffer(data), "orders", "chunk.tables['orders']")
    return budget.used_bytes


def test_uncompressed_batch_counts_its_body() -> None:
    """16,000 bytes of columns: the bytes counted are the batch's body, at least the columns and
    at most their padding more."""
    used = _used(encode_table(ORDERS, compress=False))
    assert 16_000 <= used <= 16_000 + 2 * 64


def test_compressed_batch_counts_the_stated_lengths() -> None:
    """LZ4 buffers count what they decompress to, not the few bytes sent."""
    data = encode_table(pa.table({"amount": pa.array(np.zeros(100_000))}), compress=True)
    assert len(data) < 10_000 and _used(data) == 800_000


def test_over_budget_is_refused_before_decoding() -> None:
    with pytest.raises(ResourceExhausted, match=r"decoded bytes .*at table 'orders'.*is 16000.*max_decoded_bytes_per_chunk"):
        decode_tables({"orders": encode_table(ORDERS, compress=False)}, DecodeBudget(10_000, 10**9))
    with pytest.raises(ResourceExhausted, match=r"rows of the chunk's tables .* 1000, over the limit of 999"):
        decode_tables({"orders": encode_table(ORDERS, compress=False)}, DecodeBudget(1 << 30, 999))


def test_uncompressed_buffer_outside_the_body_is_malformed() -> None:
    """The budget trusts an uncompressed batch's body to bound its buffers: Arrow refuses a
    buffer that points past it, and the caller gets INVALID_ARGUMENT naming the table."""
    data = bytearray(encode_table(ORDERS, compress=False))
    values = struct.pack("<qq", 8000, 8000)  # the amount column's buffer {offset, length}
    at = data.find(values)
    assert at > 0
    data[at : at + 16] = struct.pack("<qq", 8000 + (1 << 20), 8000)
    with pytest.raises(MalformedPayload, match=r"^chunk\.tables\['orders'\]: not a readable Arrow IPC stream"):
        decode_tables({"orders": bytes(data)}, DecodeBudget(1 << 30, 10**9))
