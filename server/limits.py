"""What one chunk may decode to, checked from the IPC metadata before any buffer is decompressed.

An Arrow IPC message states, in its flatbuffer header, the row count of a record batch and
where each body buffer lies; a compressed buffer (lz4, zstd) starts with its decompressed
length as a little-endian int64 (-1: stored as is); an uncompressed batch decodes to at most
its body (Arrow refuses a buffer outside it). ``DecodeBudget.check`` walks a stream
message by message and adds these up across all tables of a chunk, so a 40 KB zstd payload
that would decode to gigabytes is refused with RESOURCE_EXHAUSTED before Arrow allocates it.
Arrow itself refuses a buffer whose decompressed length differs from the one stated.
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field

from pathlib import Path

import numpy as np
import pyarrow as pa

from .errors import MalformedPayload, ResourceExhausted

__all__ = ["DecodeBudget", "check_base_bytes"]

# Message.fbs: Message {version, header_type, header, bodyLength, custom_metadata};
# RecordBatch {length, nodes, buffers, compression, ...}; DictionaryBatch {id, data, isDelta}.
_HEADER_DICTIONARY_BATCH = 2
_HEADER_RECORD_BATCH = 3
_BUFFER = struct.Struct("<qq")  # Buffer {offset: long, length: long}


_U8 = struct.Struct("<B").unpack_from
_U16 = struct.Struct("<H").unpack_from
_I32 = struct.Struct("<i").unpack_from
_U32 = struct.Struct("<I").unpack_from
_I64 = struct.Struct("<q").unpack_from


class _Flat:
    """Just enough of a flatbuffer reader for Arrow's Message table (bounds-checked by struct)."""

    def __init__(self, data: bytes) -> None:
        self.data = data

    def root(self) -> int:
        return _U32(self.data, 0)[0]

    def field(self, table: int, index: int) -> int | None:
        """Absolute position of field ``index`` of the table at ``table``; None if absent."""
        data = self.data
        vtable = table - _I32(data, table)[0]
        if 4 + 2 * index >= _U16(data, vtable)[0]:
            return None
        offset = _U16(data, vtable + 4 + 2 * index)[0]
        return table + offset if offset else None

    def deref(self, position: int) -> int:
        return position + _U32(self.data, position)[0]

    def scalar(self, table: int, index: int, unpack: Callable[[bytes, int], tuple[int]], default: int = 0) -> int:
        at = self.field(table, index)
        return default if at is None else unpack(self.data, at)[0]


@dataclass
class DecodeBudget:
    """Bytes (after decompression) and rows that the tables of one chunk may hold together."""

    max_bytes: int
    max_rows: int
    bytes_setting: str = "max_decoded_bytes_per_chunk"
    rows_setting: str = "max_event_rows_per_chunk"
    used_bytes: int = field(default=0, init=False)
    used_rows: int = field(default=0, init=False)

    def fresh(self) -> DecodeBudget:
        """The same limits, nothing used yet (one per chunk)."""
        return DecodeBudget(self.max_bytes, self.max_rows, self.bytes_setting, self.rows_setting)

    def check(self, data: pa.Buffer, table: str, where: str) -> None:
        """Add what the IPC stream ``data`` of ``table`` decodes to; over budget is RESOURCE_EXHAUSTED."""
        try:
            reader = pa.ipc.MessageReader.open_stream(data)
            for message in reader:
                self._add(message, table, where)
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError, OSError) as exc:
            raise MalformedPayload(where, str(exc).splitlines()[0] if str(exc) else type(exc).__name__) from None
        except struct.error as exc:
            raise MalformedPayload(where, f"a message header that does not describe its body ({exc})") from None

    def check_read(self, tables: Mapping[str, pa.Table], field: str) -> None:
        """The same budget for tables read from disk (a base read by path), one chunk at a time."""
        rows = sum(t.num_rows for t in tables.values())
        if rows > self.max_rows:
            raise ResourceExhausted(f"{field}: rows of one chunk's tables", rows, self.max_rows, self.rows_setting)
        size = sum(t.nbytes for t in tables.values())
        if size > self.max_bytes:
            raise ResourceExhausted(f"{field}: decoded bytes of one chunk's tables", size, self.max_bytes, self.bytes_setting)

    def _add(self, message: pa.ipc.Message, table: str, where: str) -> None:
        if message.type == "schema":
            return  # bounded by the message size; nothing to read in it
        flat = _Flat(message.metadata.to_pybytes())
        root = flat.root()
        kind = flat.scalar(root, 1, _U8)
        header_at = flat.field(root, 2)
        if kind not in (_HEADER_RECORD_BATCH, _HEADER_DICTIONARY_BATCH) or header_at is None:
            return  # the schema (bounded by the message size) or a message Arrow will refuse
        batch = flat.deref(header_at)
        if kind == _HEADER_DICTIONARY_BATCH:
            data_at = flat.field(batch, 1)
            if data_at is None:
                return
            batch = flat.deref(data_at)
        else:
            self.used_rows += flat.scalar(batch, 0, _I64)
            if self.used_rows > self.max_rows:
                raise ResourceExhausted(
                    f"rows of the chunk's tables (at table {table!r})", self.used_rows, self.max_rows, self.rows_setting
                )
        self.used_bytes += _decoded_bytes(flat, batch, message.body)
        if self.used_bytes > self.max_bytes:
            raise ResourceExhausted(
                f"decoded bytes of the chunk's tables (at table {table!r})", self.used_bytes, self.max_bytes, self.bytes_setting
            )


def check_base_bytes(base: Path, tables: Iterable[str], limit: int, field: str) -> None:
    """RESOURCE_EXHAUSTED if the Parquet files of ``tables`` in ``base`` take more than ``limit`` bytes on disk."""
    size = 0
    for name in tables:
        path = base / f"{name}.parquet"
        files = [path] if path.is_file() else [f for f in path.rglob("*") if f.is_file()] if path.is_dir() else []
        size += sum(f.stat().st_size for f in files)
    if size > limit:
        raise ResourceExhausted(f"{field}: bytes of the base's tables on disk", size, limit, "max_base_bytes")


def _decoded_bytes(flat: _Flat, batch: int, body: pa.Buffer | None) -> int:
    """Bytes the buffers of one (record or dictionary) batch take once decompressed."""
    body_size = body.size if body is not None else 0
    if flat.field(batch, 3) is None:
        # Stored as is: every buffer is a slice of the body (Arrow refuses one outside it), so
        # the body's size bounds them, padding included: nothing more to read.
        return body_size
    buffers_at = flat.field(batch, 2)
    if buffers_at is None:
        return 0
    vector = flat.deref(buffers_at)
    count = _U32(flat.data, vector)[0]
    if vector + 4 + count * _BUFFER.size > len(flat.data):
        raise struct.error(f"{count} buffers overrun the {len(flat.data)}-byte header")
    # Buffer {offset, length} pairs, read at once (a request holds hundreds of them)
    pairs = np.frombuffer(flat.data, "<i8", count=2 * count, offset=vector + 4).reshape(count, 2)
    offsets, lengths = pairs[:, 0], pairs[:, 1]
    outside = (lengths < 0) | (offsets < 0) | (offsets > body_size - lengths)
    if outside.any():
        i = int(np.argmax(outside))
        raise struct.error(f"buffer {i} at {offsets[i]}+{lengths[i]} is outside the {body_size}-byte body")
    total = 0
    view = memoryview(body) if body is not None else b""
    for offset, length in pairs.tolist():
        if length >= 8:
            stated = _I64(view, offset)[0]
            total += length - 8 if stated == -1 else max(stated, 0)
        else:
            total += length
    return total
