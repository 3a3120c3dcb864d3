"""A customer base on disk: a folder with one ``<table>.parquet`` (file or folder) per table.

``BaseChunks`` splits a base into chunks of contacts (each chunk holds every table's rows of
one disjoint set of contacts) with memory bounded by the chunk size, whatever the base's size:
tables need not be sorted or grouped by contact.
"""

from __future__ import annotations

import math
import shutil
import tempfile
import weakref
from collections.abc import Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds
import pyarrow.parquet as pq
from numba import njit

from .tables import CONTACT_ID, TABLES

__all__ = ["BaseChunks", "open_table", "read_table", "table_names"]

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

    Each contact is in exactly one chunk, with every row of every table it has. The contacts are
    those of ``contacts.parquet`` when the base has one (prospects without orders included),
    else the distinct contact ids of the other tables. ``columns`` says which columns of which
    tables to read; tables not named (other than contacts) are not read.

    Memory follows the chunk, not the base: a base of more than ``partition_contacts`` contacts
    (default 4 chunks) is first split on disk in one streaming pass, each row going to the
    partition of a hash of its contact_id (Arrow IPC files in a temporary folder); partitions
    are then read one at a time, the next one read ahead while the current one's chunks are
    scored. Order: a small base's chunks follow ``contacts.parquet`` (or first appearance); a
    partitioned base's go partition by partition, in that order within each.
    """

    def __init__(
        self,
        base: Path,
        columns: Mapping[str, Sequence[str]],
        chunk_contacts: int = 50_000,
        partition_contacts: int | None = None,
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
        self.partition_contacts = partition_contacts or 4 * chunk_contacts
        datasets = self._datasets()
        # an upper bound on the contacts (exact with a contacts table): sizes the partitions
        bound = max(d.count_rows() for d in datasets.values()) if "contacts" not in datasets else datasets["contacts"].count_rows()
        self.n_partitions = max(1, math.ceil(bound / self.partition_contacts))
        self._counts: list[int] | None = None  # contacts per partition, known after the split
        self._tmp: Path | None = None

    @property
    def n_contacts(self) -> int:
        """The number of contacts (splits a partitioned base without a contacts table)."""
        return sum(self._partition_counts())

    def __len__(self) -> int:
        return max(1, sum(math.ceil(n / self.chunk_contacts) for n in self._partition_counts()))

    def _datasets(self) -> dict[str, ds.Dataset]:
        out = {}
        for name in self.columns:
            dataset = open_table(self.base, name)
            assert dataset is not None
            out[name] = dataset
        return out

    def _partition_counts(self) -> list[int]:
        if self._counts is None:
            if self.n_partitions == 1:
                self._counts = [len(_contact_ids(self._read_whole()))]
            elif "contacts" in self.columns:  # one pass over the ids alone, no split yet
                counts = np.zeros(self.n_partitions, np.int64)
                for batch in _batches(self._datasets()["contacts"], [CONTACT_ID]):
                    counts += np.bincount(_partition_of(batch[CONTACT_ID], self.n_partitions), minlength=self.n_partitions)
                self._counts = counts.tolist()
            else:
                self._split_on_disk()
        return self._counts

    def _read_whole(self) -> dict[str, pa.Table]:
        return {name: dataset.to_table(columns=_present(dataset, self.columns[name])) for name, dataset in self._datasets().items()}

    def __iter__(self) -> Iterator[dict[str, pa.Table]]:
        if self.n_partitions == 1:
            tables = self._read_whole()
            yield from self._chunks(tables, _contact_ids(tables))
            return
        self._split_on_disk()
        try:
            # read ahead: the next partition is read while this one's chunks are scored
            with ThreadPoolExecutor(1, thread_name_prefix="scorecast-read") as pool:
                pending = pool.submit(self._read_partition, 0)
                for part in range(self.n_partitions):
                    tables = pending.result()
                    if part + 1 < self.n_partitions:
                        pending = pool.submit(self._read_partition, part + 1)
                    yield from self._chunks(tables, _contact_ids(tables))
        finally:
            self._cleanup()

    def _chunks(self, tables: dict[str, pa.Table], ids: pa.Array) -> Iterator[dict[str, pa.Table]]:
        """Chunks of the contacts ``ids`` from tables holding only (and all of) those contacts' rows.

        Rows are bucketed by chunk (a stable sort of small chunk numbers: radix, O(n)) and each
        chunk's rows are gathered only when it is yielded. Within a chunk, rows keep their order.
        """
        if len(ids) == 0:
            return
        n_chunks = -(-len(ids) // self.chunk_contacts)
        bucketed = {}
        for name, table in tables.items():
            chunk_of = self._codes(name, table, ids) // self.chunk_contacts
            order = np.argsort(chunk_of.astype(_bucket_dtype(n_chunks)), kind="stable")
            bounds = np.searchsorted(chunk_of[order], np.arange(n_chunks + 1))
            bucketed[name] = (table, order, bounds)
        for k in range(n_chunks):
            chunk = {name: table.take(order[bounds[k] : bounds[k + 1]]) for name, (table, order, bounds) in bucketed.items()}
            if "contacts" not in chunk:
                chunk["contacts"] = pa.table({CONTACT_ID: ids[k * self.chunk_contacts : (k + 1) * self.chunk_contacts]})
            yield chunk | self.references

    def _codes(self, name: str, table: pa.Table, ids: pa.Array) -> np.ndarray:
        """Each row's position among ``ids``; ValueError naming a contact_id not among them."""
        if name == "contacts":
            return np.arange(table.num_rows, dtype=np.int64)
        column = table[CONTACT_ID]
        if pa.types.is_integer(column.type) and pa.types.is_integer(ids.type):
            column = column.cast(pa.int64())
        codes = pc.index_in(column, value_set=ids)
        if codes.null_count:
            missing = pc.filter(table[CONTACT_ID], pc.is_null(codes))[0]
            raise ValueError(f"{name}.contact_id {missing.as_py()!r} is not in contacts.contact_id (base {self.base})")
        return codes.to_numpy(zero_copy_only=False).astype(np.int64)

    def _split_on_disk(self) -> None:
        """One streaming pass over every table, appending each row to its partition's file."""
        if self._tmp is not None:
            return
        self._tmp = Path(tempfile.mkdtemp(prefix="scorecast-chunks-"))
        # removed after the last partition is read, or when this object goes (a caller that
        # only asked len(), or stopped early), or at exit
        self._finalizer = weakref.finalize(self, shutil.rmtree, self._tmp, True)
        try:
            for name, dataset in self._datasets().items():
                columns = _present(dataset, self.columns[name])
                schema = pa.schema([dataset.schema.field(c) for c in columns or dataset.schema.names])
                writers = [pa.ipc.new_file(self._tmp / f"{name}.{p}.arrow", schema) for p in range(self.n_partitions)]
                try:
                    for batch in _batches(dataset, columns):
                        parts = _partition_of(batch[CONTACT_ID], self.n_partitions)
                        order = np.argsort(parts.astype(_bucket_dtype(self.n_partitions)), kind="stable")
                        bounds = np.searchsorted(parts[order], np.arange(self.n_partitions + 1))
                        sorted_batch = batch.take(pa.array(order))
                        for p in range(self.n_partitions):
                            if bounds[p + 1] > bounds[p]:
                                writers[p].write_batch(sorted_batch.slice(bounds[p], bounds[p + 1] - bounds[p]))
                finally:
                    for writer in writers:
                        writer.close()
            if self._counts is None:
                self._counts = [len(_contact_ids(self._read_partition(p, columns_only=True))) for p in range(self.n_partitions)]
        except BaseException:
            self._cleanup()
            raise

    def _read_partition(self, part: int, columns_only: bool = False) -> dict[str, pa.Table]:
        assert self._tmp is not None
        tables = {}
        for name in self.columns:
            with pa.ipc.open_file(self._tmp / f"{name}.{part}.arrow") as reader:
                tables[name] = reader.read_all().select([CONTACT_ID]) if columns_only else reader.read_all()
        return tables

    def _cleanup(self) -> None:
        if self._tmp is not None:
            self._finalizer()
            self._tmp = None


def _batches(dataset: ds.Dataset, columns: Sequence[str] | None) -> Iterator[pa.RecordBatch]:
    """The dataset's rows, one Parquet row group at a time.

    Arrow's dataset scanner reads ahead (batches, fragments, pre-buffered column chunks), and
    ``ParquetFile.iter_batches`` keeps what it read until the end: 850 and 430 MB for the split
    pass of a 10M-contact base. Reading row group by row group keeps one row group in memory,
    whatever the table's size.
    """
    for path in sorted(dataset.files):
        parquet = pq.ParquetFile(path)
        for group in range(parquet.metadata.num_row_groups):
            yield from parquet.read_row_group(group, columns=columns).to_batches()


def _contact_ids(tables: Mapping[str, pa.Table]) -> pa.Array:
    """The contacts of ``tables``: the contacts table's ids, else the distinct ids in order of
    first appearance; integer ids as int64. ValueError on a null id."""
    if "contacts" in tables:
        ids = tables["contacts"][CONTACT_ID].combine_chunks()
    else:
        parts = [pc.unique(t[CONTACT_ID].combine_chunks()) for t in tables.values() if t.num_rows]
        ids = pc.unique(pa.chunked_array(parts).combine_chunks()) if parts else pa.array([], pa.int64())
    if ids.null_count:
        raise ValueError(f"contact_id has {ids.null_count} nulls")
    return ids.cast(pa.int64()) if pa.types.is_integer(ids.type) else ids


@njit(cache=True, nogil=True)
def _fnv1a(offsets: np.ndarray, data: np.ndarray, out: np.ndarray) -> None:
    for i in range(out.shape[0]):
        h = np.uint64(14695981039346656037)
        for j in range(offsets[i], offsets[i + 1]):
            h = (h ^ np.uint64(data[j])) * np.uint64(1099511628211)
        out[i] = h


def _partition_of(ids: pa.Array | pa.ChunkedArray, n_partitions: int) -> np.ndarray:
    """The partition (0 .. n - 1) of each contact id: a hash, the same in every table."""
    if isinstance(ids, pa.ChunkedArray):
        ids = ids.combine_chunks()
    if pa.types.is_integer(ids.type):
        # Fibonacci hashing: consecutive ids spread over every partition
        h = ids.cast(pa.int64()).to_numpy(zero_copy_only=False).astype(np.uint64) * np.uint64(11400714819323198485)
        return ((h >> np.uint64(32)) % np.uint64(n_partitions)).astype(np.int64)
    if pa.types.is_large_string(ids.type) or pa.types.is_large_binary(ids.type):
        ids = ids.cast(pa.string() if pa.types.is_large_string(ids.type) else pa.binary())
    if not (pa.types.is_string(ids.type) or pa.types.is_binary(ids.type)):
        raise ValueError(f"contact_id must be integers or strings, got {ids.type}")
    if ids.null_count:
        raise ValueError(f"contact_id has {ids.null_count} nulls")
    _, offsets_buf, data_buf = ids.buffers()
    offsets = np.frombuffer(offsets_buf, np.int32)[ids.offset : ids.offset + len(ids) + 1]
    data = np.frombuffer(data_buf, np.uint8) if data_buf is not None else np.zeros(0, np.uint8)
    out = np.empty(len(ids), np.uint64)
    _fnv1a(offsets, data, out)
    return (out % np.uint64(n_partitions)).astype(np.int64)


def _bucket_dtype(n_buckets: int) -> type[np.unsignedinteger]:
    """The smallest unsigned type for bucket numbers: NumPy's stable sort is a radix sort then."""
    return np.uint8 if n_buckets <= 1 << 8 else np.uint16 if n_buckets <= 1 << 16 else np.uint32
