"""Arrow IPC bytes <-> Arrow tables, with errors that name the field that was wrong."""

from __future__ import annotations

from collections.abc import Mapping

import pyarrow as pa

from scorecast.tables import TABLES

from .errors import InvalidArgument, MalformedPayload
from .limits import DecodeBudget

__all__ = ["decode_tables", "encode_batch"]

_MAX_NAME = 100
# Explicit options: without them every writer reads two ARROW_* environment variables.
_WRITE_OPTIONS = pa.ipc.IpcWriteOptions()


def decode_tables(payload: Mapping[str, bytes], budget: DecodeBudget, field: str = "chunk.tables") -> dict[str, pa.Table]:
    """Decode a chunk's ``tables`` map within ``budget`` (for the whole chunk); unknown table names,
    unreadable bytes and tables over the budget are refused before anything is decompressed."""
    tables: dict[str, pa.Table] = {}
    budget = budget.fresh()
    for name, data in payload.items():
        shown = name if len(name) <= _MAX_NAME else f"{name[:_MAX_NAME]}…"  # status details are metadata (8 KiB)
        where = f"{field}[{shown!r}]"
        if name not in TABLES:
            raise InvalidArgument(where, shown, f"known tables are {sorted(TABLES)}")
        buffer = pa.py_buffer(data)
        budget.check(buffer, name, where)
        try:
            with pa.ipc.open_stream(buffer) as reader:
                table = reader.read_all()
            # Full validation (offsets, UTF-8) costs a pass over the bytes; without it a corrupt
            # stream reaches the kernels (UnicodeDecodeError, or reads past a buffer).
            table.validate(full=True)
            tables[name] = table
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError, OSError, UnicodeDecodeError) as exc:
            raise MalformedPayload(where, str(exc).splitlines()[0] if str(exc) else type(exc).__name__) from None
    return tables


def encode_batch(batch: pa.RecordBatch) -> bytes:
    """One record batch as an Arrow IPC stream (schema + batch)."""
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, batch.schema, options=_WRITE_OPTIONS) as writer:
        writer.write_batch(batch)
    return sink.getvalue().to_pybytes()
