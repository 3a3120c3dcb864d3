"""A customer base on disk: a folder with one ``<table>.parquet`` (file or folder) per table.

``BaseChunks`` splits a base into chunks of contacts (each chunk holds every table's rows of
one disjoint set of contacts) with bounded memory: tables need not be sorted or grouped by
contact. A base larger than ``spill_bytes`` is first partitioned on disk in one streaming
pass (Arrow IPC files in a temporary folder), so at most one partition is in memory at a time.
"""

from __future__ import annotations

import math
import shutil
import tempfile
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds

from .tables import CONTACT_ID, TABLES

__all__ = ["BaseChunks", "open_table", "read_table", "table_names"]

_CODE = "__contact_code"
READ_BATCH_ROWS = 1_000_000


def open_table(base: Path, name: str) -> ds.Dataset | None:
    """The table as a Parquet dataset, or None when the base does not have it."""
    path = base / f"{name}.parquet"
    if not path.exists():
        return None
    return ds.dataset(path, format="parquet")


def table_names(base: Path) -> list[str]:
    """The known tables present in a base folder."""
    if not base.is_dir():
        raise FileNotFoundError(f"base {base} is not a folder")
    return [name for name in TABLES if (base / f"{name}.parquet").exists()]


def _present(dataset: ds.Dataset, columns: Sequence[str] | None) -> list[str] | None:
    if columns is None:
        return None
    names = set(dataset.schema.names)
    return [c for c in dict.fromkeys([CONTACT_ID, *columns]) if c in names]


def read_table(base: Path, name: str, columns: Sequence[str] | None = None) -> pa.Table | None:
    """Read a whole table (only ``columns`` that exist, plus contact_id), or None if absent."""
    dataset = open_table(base, name)
    return None if dataset is None else dataset.to_table(columns=_present(dataset, columns))


class BaseChunks:
    """Iterate a base as chunks of at most ``chunk_contacts`` contacts: ``{table: pa.Table}``.

    The rows of the result follow ``contacts.parquet`` when the base has one (prospects without
    orders included), else the distinct contact ids of the other tables. ``columns`` says which
    columns of which tables to read; tables not named (other than contacts) are not read.
    """

    def __init__(
        self,
        base: Path,
        columns: Mapping[str, Sequence[str]],
        chunk_contacts: int = 50_000,
        spill_bytes: int = 512 * 1024 * 1024,
    ) -> None:
        if chunk_contacts <= 0:
            raise ValueError(f"chunk_contacts must be > 0, got {chunk_contacts}")
        self.base = base
        present = table_names(base)
        unknown = sorted(set(columns) - set(TABLES))
        if unknown:
            raise ValueError(f"unknown tables {unknown}; known: {sorted(TABLES)}")
        self.columns = {name: list(columns.get(name, [CONTACT_ID])) for name in present if name in columns or name == "contacts"}
        # reference tables (no contact_id, e.g. campaigns) are read whole and sent with every chunk
        references = [name for name in self.columns if CONTACT_ID not in TABLES[name].required]
        self.references = {name: read_table(base, name, self.columns.pop(name)) for name in references}
        if not self.columns:
            raise ValueError(f"base {base} has none of the tables {sorted(columns)}")
        self.chunk_contacts = chunk_contacts
        self.ids = self._contact_index()
        self.n_contacts = len(self.ids)
        size = sum(_disk_bytes(base / f"{name}.parquet") for name in self.columns)
        self.spill = size > spill_bytes

    def __len__(self) -> int:
        return max(1, math.ceil(self.n_contacts / self.chunk_contacts))

    def _datasets(self) -> dict[str, ds.Dataset]:
        out = {}
        for name in self.columns:
            dataset = open_table(self.base, name)
            assert dataset is not None
            out[name] = dataset
        return out

    def _contact_index(self) -> pa.Array:
        datasets = self._datasets()
        if "contacts" in datasets:
            ids = datasets["contacts"].to_table(columns=[CONTACT_ID])[CONTACT_ID].combine_chunks()
        else:
            parts = [
                pc.unique(batch[CONTACT_ID])
                for dataset in datasets.values()
                for batch in dataset.to_batches(columns=[CONTACT_ID], batch_size=READ_BATCH_ROWS)
            ]
            ids = pc.unique(pa.chunked_array(parts).combine_chunks()) if parts else pa.array([], pa.int64())
        if ids.null_count:
            raise ValueError(f"contact_id has {ids.null_count} nulls in base {self.base}")
        if pa.types.is_integer(ids.type):
            ids = ids.cast(pa.int64())
        return ids

    def _codes(self, name: str, batch: pa.RecordBatch | pa.Table, offset: int) -> np.ndarray:
        """Each row's position in the contact index."""
        if name == "contacts":
            return np.arange(offset, offset + batch.num_rows, dtype=np.int64)
        ids = batch[CONTACT_ID]
        if pa.types.is_integer(ids.type) and pa.types.is_integer(self.ids.type):
            ids = ids.cast(pa.int64())
        codes = pc.index_in(ids, value_set=self.ids)
        if codes.null_count:
            missing = pc.filter(batch[CONTACT_ID], pc.is_null(codes))[0]
            raise ValueError(f"{name}.contact_id {missing.as_py()!r} is not in contacts.contact_id (base {self.base})")
        return codes.to_numpy(zero_copy_only=False).astype(np.int64)

    def __iter__(self) -> Iterator[dict[str, pa.Table]]:
        if self.n_contacts == 0:
            return
        if not self.spill:
            tables = {}
            for name, dataset in self._datasets().items():
                table = dataset.to_table(columns=_present(dataset, self.columns[name]))
                tables[name] = table.append_column(_CODE, pa.array(self._codes(name, table, 0)))
            yield from self._split(tables, 0, self.n_contacts)
            return
        yield from self._spilled()

    def _split(self, tables: dict[str, pa.Table], first: int, end: int) -> Iterator[dict[str, pa.Table]]:
        """Chunks of contacts ``first..end`` from tables holding only those contacts' rows.

        Rows are bucketed by chunk (a stable sort of small chunk numbers: radix, O(n)) and each
        chunk's rows are gathered only when it is yielded, so the first chunk leaves early and
        the gathering of the others overlaps with scoring downstream. Within a chunk, rows keep
        their order in the table.
        """
        n_chunks = -(-(end - first) // self.chunk_contacts)
        bucketed = {}
        for name, table in tables.items():
            chunk_of = (table[_CODE].to_numpy() - first) // self.chunk_contacts
            order = np.argsort(chunk_of.astype(_bucket_dtype(n_chunks)), kind="stable")
            bounds = np.searchsorted(chunk_of[order], np.arange(n_chunks + 1))
            bucketed[name] = (table.drop_columns([_CODE]), order, bounds)
        for k in range(n_chunks):
            chunk = {name: table.take(order[bounds[k] : bounds[k + 1]]) for name, (table, order, bounds) in bucketed.items()}
            if "contacts" not in chunk:
                start = first + k * self.chunk_contacts
                chunk["contacts"] = pa.table({CONTACT_ID: self.ids[start : min(start + self.chunk_contacts, end)]})
            yield chunk | self.references

    def _spilled(self) -> Iterator[dict[str, pa.Table]]:
        n_partitions = min(len(self), 64)
        per_partition = math.ceil(len(self) / n_partitions) * self.chunk_contacts
        tmp = Path(tempfile.mkdtemp(prefix="scorecast-chunks-"))
        try:
            for name, dataset in self._datasets().items():
                self._partition(name, dataset, tmp, per_partition, n_partitions)
            for part in range(n_partitions):
                first, end = part * per_partition, min((part + 1) * per_partition, self.n_contacts)
                if first >= end:
                    break
                tables = {}
                for name in self.columns:
                    path = tmp / f"{name}.{part}.arrow"
                    with pa.ipc.open_file(path) as reader:
                        tables[name] = reader.read_all()
                    path.unlink()
                yield from self._split(tables, first, end)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)

    def _partition(self, name: str, dataset: ds.Dataset, tmp: Path, per_partition: int, n_partitions: int) -> None:
        """One streaming pass over a table, appending each row to its partition's file."""
        columns = _present(dataset, self.columns[name])
        schema = pa.schema([dataset.schema.field(c) for c in columns or dataset.schema.names]).append(pa.field(_CODE, pa.int64()))
        writers = [pa.ipc.new_file(tmp / f"{name}.{p}.arrow", schema) for p in range(n_partitions)]
        try:
            offset = 0
            for batch in dataset.to_batches(columns=columns, batch_size=READ_BATCH_ROWS):
                codes = self._codes(name, batch, offset)
                offset += batch.num_rows
                batch = pa.RecordBatch.from_arrays([*batch.columns, pa.array(codes)], schema=schema)
                parts = codes // per_partition
                order = np.argsort(parts.astype(_bucket_dtype(n_partitions)), kind="stable")
                bounds = np.searchsorted(parts[order], np.arange(n_partitions + 1))
                sorted_batch = batch.take(pa.array(order))
                for p in range(n_partitions):
                    if bounds[p + 1] > bounds[p]:
                        writers[p].write_batch(sorted_batch.slice(bounds[p], bounds[p + 1] - bounds[p]))
        finally:
            for writer in writers:
                writer.close()


def _bucket_dtype(n_buckets: int) -> type[np.unsignedinteger]:
    """The smallest unsigned type for bucket numbers: NumPy's stable sort is a radix sort then."""
    return np.uint8 if n_buckets <= 1 << 8 else np.uint16 if n_buckets <= 1 << 16 else np.uint32


def _disk_bytes(path: Path) -> int:
    if path.is_file():
        return path.stat().st_size
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())
