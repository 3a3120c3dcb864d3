"""Write score batches to one Parquet file atomically: all of it, or nothing.

Batches go to a hidden temporary file beside the target, which is renamed over the target
only when every batch is written; on any error (or interruption) it is removed, so a reader
never sees a partial result.
"""

from __future__ import annotations

import os
from pathlib import Path
from types import TracebackType

import pyarrow as pa
import pyarrow.parquet as pq

__all__ = ["AtomicParquetWriter"]


class AtomicParquetWriter:
    """``with AtomicParquetWriter(path) as w: w.write(batch)`` — the file appears at the end."""

    def __init__(self, path: Path) -> None:
        self.path = path
        if path.is_dir():
            raise IsADirectoryError(f"output {path} is a folder; give a .parquet file path")
        if not path.parent.is_dir():
            raise FileNotFoundError(f"output folder {path.parent} does not exist")
        self.tmp = path.with_name(f".{path.name}.partial-{os.getpid()}")
        self._writer: pq.ParquetWriter | None = None
        self.rows = 0

    def __enter__(self) -> AtomicParquetWriter:
        return self

    def write(self, batch: pa.RecordBatch) -> None:
        """Append one batch (its schema must match the first batch's)."""
        if self._writer is None:
            self._writer = pq.ParquetWriter(self.tmp, batch.schema, compression="zstd")
        elif batch.schema != self._writer.schema:
            batch = batch.cast(self._writer.schema)
        self._writer.write_batch(batch)
        self.rows += batch.num_rows

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        try:
            if self._writer is not None:
                self._writer.close()
            if exc_type is None:
                if self._writer is None:
                    raise ValueError(f"nothing to write to {self.path}: no batch was scored")
                os.replace(self.tmp, self.path)
        finally:
            self.tmp.unlink(missing_ok=True)
