"""A customer base on disk: a folder with one ``<table>.parquet`` (file or folder) per table.

``BaseChunks`` splits a base into chunks of contacts (each chunk holds every table's rows of
one disjoint set of contacts) with memory bounded by the chunk size, whatever the base's size:
tables need not be sorted or grouped by contact.
"""

from __future__ import annotations

import math
import os
import shutil
import socket
import tempfile
import threading
import weakref
from collections import deque
from collections.abc import Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds
import pyarrow.parquet as pq
from numba import njit

from .atomic import process_alive
from .kernels.grouping import group_rows
from .tables import CONTACT_ID, TABLES

__all__ = ["BaseChunks", "open_table", "read_table", "table_names"]

MAX_PARTITIONS = 256  # files open at once per table during the split; beyond, partitions hold several chunks
PARTITION_FILL = 0.875  # partitions of ~7/8 of a chunk: hashing spreads them so few overflow one
SPILL_FREE_SHARE = 0.5
"""Partitions spill to the temporary folder as they are in memory while that takes at most this
share of its free space, LZ4-compressed (about 2.5 times smaller) beyond: compressing and
decompressing took 0.6 of the 2.6 CPU s of splitting 1M contacts' behaviour tables, and
rescoring them took 1.84x DuckDB's read-and-group time against 1.32x plain and mapped
(benchmarks/README.md)."""
_PLAIN = pa.ipc.IpcWriteOptions()
_LZ4 = pa.ipc.IpcWriteOptions(compression="lz4")
SPLIT_THREADS = 2
READ_AHEAD = 2  # groups of partitions read while a chunk is scored


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
    tables to read; tables not named (other than contacts) are not read. String columns come
    dictionary-encoded (as Parquet stores them), so moving rows moves integers.

    Memory follows the chunk, not the base: a base of more than ``partition_contacts`` contacts
    (default 4 chunks) is first split on disk in one streaming pass, each row going to the
    partition of a hash of its contact_id, partitions being about a chunk each (Arrow IPC
    streams in a temporary folder, see ``SPILL_FREE_SHARE``). A chunk is then one partition (or
    a run of small ones, or part of a large one), read straight from its files, the next two
    read ahead while the current one is scored. Order: a small base's chunks follow ``contacts.parquet`` (or first
    appearance); a partitioned base's go partition by partition, in that order within each.
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
        bound = (
            max(d.count_rows() for d in datasets.values()) if "contacts" not in datasets else datasets["contacts"].count_rows()
        )
        per_partition = max(1, int(chunk_contacts * PARTITION_FILL))
        self.n_partitions = 1 if bound <= self.partition_contacts else min(MAX_PARTITIONS, math.ceil(bound / per_partition))
        self._counts: list[int] | None = None  # contacts per partition, known after the split
        self._tmp: Path | None = None
        self._held: dict[str, list[pa.Table]] = {}  # the partitions kept in memory, per table
        self._n_held = 0

    @property
    def n_contacts(self) -> int:
        """The number of contacts (splits a partitioned base without a contacts table)."""
        return sum(self._partition_counts())

    def __len__(self) -> int:
        return max(1, sum(math.ceil(n / self.chunk_contacts) for n in self._group_counts()))

    def _datasets(self) -> dict[str, ds.Dataset]:
        """The tables to read, their string columns (other than contact_id) dictionary-encoded."""
        out = {}
        for name, columns in self.columns.items():
            dataset = open_table(self.base, name)
            assert dataset is not None
            strings = [
                c for c in columns if c != CONTACT_ID and c in dataset.schema.names and _is_string(dataset.schema.field(c).type)
            ]
            if strings:
                options = ds.ParquetReadOptions(dictionary_columns=strings)
                dataset = ds.dataset(dataset.files, format=ds.ParquetFileFormat(read_options=options))
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

    def _groups(self) -> list[range]:
        """Runs of consecutive partitions read as one: a run holds at most a chunk of contacts,
        unless it is one partition larger than that (then split in memory)."""
        groups: list[range] = []
        first, total = 0, 0
        for part, n in enumerate(self._partition_counts()):
            if part > first and total + n > self.chunk_contacts:
                groups.append(range(first, part))
                first, total = part, 0
            total += n
        groups.append(range(first, self.n_partitions))
        return groups

    def _group_counts(self) -> list[int]:
        counts = self._partition_counts()
        return [sum(counts[p] for p in group) for group in self._groups()]

    def _read_whole(self) -> dict[str, pa.Table]:
        return {
            name: dataset.to_table(columns=_present(dataset, self.columns[name])) for name, dataset in self._datasets().items()
        }

    def __iter__(self) -> Iterator[dict[str, pa.Table]]:
        if self.n_partitions == 1:
            tables = self._read_whole()
            yield from self._chunks(tables, _contact_ids(tables))
            return
        self._split_on_disk()
        try:
            groups = self._groups()
            # read ahead: the next READ_AHEAD groups are read while this chunk is scored (rescore
            # scores two chunks at once: with one read ahead, every other chunk waited for its read)
            with ThreadPoolExecutor(1, thread_name_prefix="scorecast-read") as pool:
                reads = deque(pool.submit(self._read_partitions, group) for group in groups[:READ_AHEAD])
                for i in range(len(groups)):
                    tables = reads.popleft().result()
                    if i + READ_AHEAD < len(groups):
                        reads.append(pool.submit(self._read_partitions, groups[i + READ_AHEAD]))
                    yield from self._chunks(tables, _contact_ids(tables))
        finally:
            self._cleanup()

    def _chunks(self, tables: dict[str, pa.Table], ids: pa.Array) -> Iterator[dict[str, pa.Table]]:
        """Chunks of the contacts ``ids`` from tables holding only (and all of) those contacts' rows.

        Up to a chunk of contacts, the tables are the chunk. Beyond, rows are bucketed by chunk
        (a stable sort of small chunk numbers: radix, O(n)) and each chunk's rows are gathered
        only when it is yielded; within a chunk, rows keep their order.
        """
        if len(ids) == 0:
            return
        if len(ids) <= self.chunk_contacts:
            # rows of a contact missing from ``ids`` stay in: the pipeline's frame refuses them
            yield tables | self.references | ({} if "contacts" in tables else {"contacts": pa.table({CONTACT_ID: ids})})
            return
        n_chunks = -(-len(ids) // self.chunk_contacts)
        bucketed = {}
        for name, table in tables.items():
            order, bounds = group_rows(self._codes(name, table, ids) // self.chunk_contacts, n_chunks)
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
        """One streaming pass over every table, each row going to its partition: the first
        ``partition_contacts`` worth of partitions stay in memory, the others go to files."""
        if self._tmp is not None:
            return
        _sweep_stale(Path(tempfile.gettempdir()))
        self._tmp = Path(tempfile.mkdtemp(prefix=_tmp_prefix(os.getpid())))
        # removed after the last partition is read, or when this object goes (a caller that
        # only asked len(), or stopped early), or at exit
        self._finalizer = weakref.finalize(self, shutil.rmtree, self._tmp, True)
        per_partition = max(1, int(self.chunk_contacts * PARTITION_FILL))
        self._n_held = min(self.n_partitions, self.partition_contacts // per_partition)
        splits: list[_TableSplit] = []
        try:
            splits += [
                _TableSplit(name, dataset, _present(dataset, self.columns[name]), self.n_partitions, self._n_held, self._tmp)
                for name, dataset in self._datasets().items()
            ]
            spilled = sum(split.arrow_bytes for split in splits) * (self.n_partitions - self._n_held) // self.n_partitions
            options = _spill_options(spilled, self._tmp)
            for split in splits:
                split.options = options
            # row groups of every table split side by side (Parquet decoding, take and
            # compression release the GIL), the largest tables' first so that small ones even
            # out the end
            pool = ThreadPoolExecutor(SPLIT_THREADS, thread_name_prefix="scorecast-split")
            try:
                for done in [
                    pool.submit(split.run, unit)
                    for split in sorted(splits, key=lambda t: -t.weight)
                    for unit in range(len(split.units))
                ]:
                    done.result()
            finally:
                pool.shutdown(cancel_futures=True)  # after a failure, the row groups not started
                for split in splits:
                    split.close()
            for split in splits:
                self._held[split.name] = split.held_tables()
                if split.name == "contacts":  # its rows per partition are the partitions' contacts
                    self._counts = split.rows.tolist()
            if self._counts is None:  # no contacts table: the distinct ids of each partition
                self._counts = [
                    len(_contact_ids(self._read_partitions(range(p, p + 1), keep=True))) for p in range(self.n_partitions)
                ]
        except BaseException:
            self._cleanup()
            raise

    def _read_partitions(self, parts: range, keep: bool = False) -> dict[str, pa.Table]:
        """The tables of these partitions; partitions held in memory are let go unless ``keep``."""
        assert self._tmp is not None
        tables = {}
        for name in self.columns:
            read = []
            for part in parts:
                if part < self._n_held:
                    read.append(self._held[name][part])
                    if not keep:
                        self._held[name][part] = read[-1].schema.empty_table()
                    continue
                # mapped, not read: plain IPC buffers are used where they lie in the page cache
                with pa.ipc.open_stream(pa.memory_map(str(self._tmp / f"{name}.{part}.arrow"))) as reader:
                    read.append(reader.read_all())
            tables[name] = read[0] if len(read) == 1 else pa.concat_tables(read)
        return tables

    def _cleanup(self) -> None:
        self._held.clear()
        if self._tmp is not None:
            self._finalizer()
            self._tmp = None


class _TableSplit:
    """One table's split: any thread buckets a row group's rows by partition (``run``), then
    hands them to the partitions in row-group order, so a partition holds its rows in table
    order whichever thread read them. The first ``held`` partitions stay in memory, the others
    go to one Arrow IPC stream each in ``tmp``."""

    def __init__(self, name: str, dataset: ds.Dataset, columns: list[str] | None, n: int, held: int, tmp: Path) -> None:
        self.name, self.n, self.held, self.tmp = name, n, held, tmp
        self.dataset, self.columns = dataset, columns
        self.units = _row_groups(dataset)
        self.weight = sum(metadata.row_group(g).num_rows for _, metadata, g in self.units) * len(columns or dataset.schema.names)
        self.arrow_bytes = _arrow_bytes(dataset.schema, columns or dataset.schema.names, self.units)
        """About the bytes of the table's columns as Arrow arrays (the partitions' IPC streams)."""
        self.options = _LZ4  # how the spilled partitions are written (set before ``run``)
        self.rows = np.zeros(n, np.int64)
        self._kept: list[list[pa.RecordBatch]] = [[] for _ in range(held)]
        self._writers: list[pa.ipc.RecordBatchStreamWriter] = []
        self._schema: pa.Schema | None = None
        self._turn = 0  # the row group whose rows go to the partitions next
        self._failed = False
        self._turns = threading.Condition()

    def run(self, unit: int) -> None:
        """Bucket row group ``unit``, then hand its rows over once the previous one's are."""
        try:
            if self._failed:
                return
            bucketed = [self._bucket(batch) for batch in _read_row_group(self.dataset, self.units[unit], self.columns)]
            with self._turns:
                self._turns.wait_for(lambda: self._turn == unit or self._failed)
                if self._failed:
                    return
                for schema, counts, kept, rest in bucketed:
                    self._hand_over(schema, counts, kept, rest)
                self._turn += 1
                self._turns.notify_all()
        except BaseException:
            with self._turns:  # the next row groups' threads stop waiting for this one
                self._failed = True
                self._turns.notify_all()
            raise

    def _bucket(self, batch: pa.RecordBatch) -> tuple[pa.Schema, np.ndarray, list[pa.RecordBatch | None], pa.RecordBatch | None]:
        n, held = self.n, self.held
        order, bounds = group_rows(_partition_of(batch[CONTACT_ID], n), n)
        # two takes (each a pass over every column), not one per held partition: the held
        # partitions are slices of the held rows' own buffers, which they alone keep alive
        rows = batch.take(order[: bounds[held]])
        kept = [rows.slice(bounds[p], bounds[p + 1] - bounds[p]) if bounds[p + 1] > bounds[p] else None for p in range(held)]
        rest = batch.take(order[bounds[held] :]) if bounds[n] > bounds[held] else None
        return _plain_schema(batch, n), np.diff(bounds), kept, rest

    def _hand_over(
        self, schema: pa.Schema, counts: np.ndarray, kept: list[pa.RecordBatch | None], rest: pa.RecordBatch | None
    ) -> None:
        if self._schema is None:  # the table's first batch chooses dictionary or plain strings
            self._open(schema)
        assert self._schema is not None
        self.rows += counts
        for p, part in enumerate(kept):
            if part is not None:
                self._kept[p].append(_like(part, self._schema))
        if rest is not None:
            rest = _like(rest, self._schema)
            offset = 0
            for p in range(self.held, self.n):
                if counts[p]:
                    self._writers[p - self.held].write_batch(rest.slice(offset, int(counts[p])))
                offset += int(counts[p])

    def _open(self, schema: pa.Schema) -> None:
        self._schema = schema
        # streams, not files: each row group brings its own dictionaries
        self._writers = [
            pa.ipc.new_stream(self.tmp / f"{self.name}.{p}.arrow", schema, options=self.options) for p in range(self.held, self.n)
        ]

    def close(self) -> None:
        """Close the partition streams (after every row group, or after a failure)."""
        if self._schema is None and not self._failed:  # an empty table: empty partitions of its schema
            columns = self.columns or self.dataset.schema.names
            self._open(pa.schema([self.dataset.schema.field(c) for c in columns]))
        for writer in self._writers:
            writer.close()

    def held_tables(self) -> list[pa.Table]:
        """The partitions kept in memory, as tables."""
        return [pa.Table.from_batches(batches, self._schema) for batches in self._kept]


def _arrow_bytes(schema: pa.Schema, columns: Sequence[str], units: Sequence[tuple[str, pq.FileMetaData, int]]) -> int:
    """Estimated bytes of ``columns`` of these row groups once read: fixed-width columns their
    width per row, dictionary strings 4 bytes (the indices), other columns Parquet's
    uncompressed size."""
    total = 0
    for _, metadata, group in units:
        row_group = metadata.row_group(group)
        parquet_bytes = {
            row_group.column(i).path_in_schema: row_group.column(i).total_uncompressed_size for i in range(row_group.num_columns)
        }
        for name in columns:
            if name not in schema.names:
                continue
            kind = schema.field(name).type
            width = kind.bit_width // 8 if pa.types.is_primitive(kind) and not pa.types.is_boolean(kind) else 4
            total += max(row_group.num_rows * width, parquet_bytes.get(name, 0))
    return total


def _spill_options(spilled: int, tmp: Path) -> pa.ipc.IpcWriteOptions:
    """Plain IPC for partitions of about ``spilled`` bytes when they fit ``SPILL_FREE_SHARE`` of
    the free space of ``tmp``, else LZ4."""
    return _PLAIN if spilled <= SPILL_FREE_SHARE * shutil.disk_usage(tmp).free else _LZ4


def _tmp_prefix(pid: int) -> str:
    """Split folders are named for the host and process that made them (see ``_sweep_stale``)."""
    return f"scorecast-chunks-{socket.gethostname()}-{pid}-"


def _sweep_stale(root: Path) -> None:
    """Remove split folders left by processes of this host that died without cleaning up
    (SIGKILL, out of memory): a killed 10M-contact rescore leaves gigabytes otherwise."""
    mine = _tmp_prefix(0)[: -len("0-")]
    for path in root.glob(f"{mine}*"):
        pid = path.name[len(mine) :].split("-", 1)[0]
        if pid.isdigit() and not process_alive(int(pid)):
            shutil.rmtree(path, ignore_errors=True)


def _is_string(kind: pa.DataType) -> bool:
    return pa.types.is_string(kind) or pa.types.is_large_string(kind)


def _plain_schema(batch: pa.RecordBatch, n_partitions: int) -> pa.Schema:
    """The batch's schema with plain strings where the dictionary would outweigh the rows:
    each partition's stream carries its own copy of every dictionary."""
    fields = [
        pa.field(f.name, f.type.value_type, f.nullable, f.metadata)
        if pa.types.is_dictionary(f.type) and len(column.dictionary) * n_partitions > max(len(column), 1)
        else f
        for f, column in zip(batch.schema, batch.columns, strict=True)
    ]
    return pa.schema(fields)


def _like(batch: pa.RecordBatch, schema: pa.Schema) -> pa.RecordBatch:
    """The batch with the first batch's choice of dictionary or plain strings per column."""
    if batch.schema.equals(schema):
        return batch
    columns = [
        c.dictionary_decode() if pa.types.is_dictionary(c.type) and not pa.types.is_dictionary(f.type) else c
        for c, f in zip(batch.columns, schema, strict=True)
    ]
    return pa.RecordBatch.from_arrays(columns, schema=schema)


def _batches(dataset: ds.Dataset, columns: Sequence[str] | None) -> Iterator[pa.RecordBatch]:
    """The dataset's rows, one Parquet row group at a time.

    Arrow's dataset scanner reads ahead (batches, fragments, pre-buffered column chunks), and
    ``ParquetFile.iter_batches`` keeps what it read until the end: 850 and 430 MB for the split
    pass of a 10M-contact base. Reading row group by row group keeps one row group in memory,
    whatever the table's size.
    """
    for unit in _row_groups(dataset):
        yield from _read_row_group(dataset, unit, columns)


def _row_groups(dataset: ds.Dataset) -> list[tuple[str, pq.FileMetaData, int]]:
    """(file, its metadata, row group) of every row group of the dataset, in order."""
    units = []
    for path in sorted(dataset.files):
        metadata = pq.read_metadata(path)
        units += [(path, metadata, group) for group in range(metadata.num_row_groups)]
    return units


def _read_row_group(
    dataset: ds.Dataset, unit: tuple[str, pq.FileMetaData, int], columns: Sequence[str] | None
) -> list[pa.RecordBatch]:
    """One row group's rows, the dataset's dictionary columns dictionary-encoded."""
    options = dataset.format.read_options if isinstance(dataset.format, ds.ParquetFileFormat) else None
    dictionary = list(options.dictionary_columns) if options is not None else []
    path, metadata, group = unit
    parquet = pq.ParquetFile(path, metadata=metadata, read_dictionary=dictionary or None)
    return parquet.read_row_group(group, columns=columns).to_batches()


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


@njit(cache=True, nogil=True)
def _mix_partition(ids: np.ndarray, n: int, out: np.ndarray) -> None:
    # MurmurHash3's 64-bit finalizer, not a golden-ratio multiply: the kernels' hash tables
    # (factorise) slot ids by the top bits of id * golden ratio, and a partition's ids sharing
    # those bits would all collide there
    for i in range(ids.shape[0]):
        h = np.uint64(ids[i])
        h = (h ^ (h >> np.uint64(33))) * np.uint64(0xFF51AFD7ED558CCD)
        h = (h ^ (h >> np.uint64(33))) * np.uint64(0xC4CEB9FE1A85EC53)
        h = (h ^ (h >> np.uint64(33))) >> np.uint64(32)
        out[i] = np.int64((h * np.uint64(n)) >> np.uint64(32))  # h * n / 2**32: no division


def _partition_of(ids: pa.Array | pa.ChunkedArray, n_partitions: int) -> np.ndarray:
    """The partition (0 .. n - 1) of each contact id: a hash, the same in every table."""
    if isinstance(ids, pa.ChunkedArray):
        ids = ids.combine_chunks()
    out = np.empty(len(ids), np.int64)
    if pa.types.is_integer(ids.type):
        _mix_partition(ids.cast(pa.int64()).to_numpy(zero_copy_only=False), n_partitions, out)
        return out
    if pa.types.is_large_string(ids.type) or pa.types.is_large_binary(ids.type):
        ids = ids.cast(pa.string() if pa.types.is_large_string(ids.type) else pa.binary())
    if not (pa.types.is_string(ids.type) or pa.types.is_binary(ids.type)):
        raise ValueError(f"contact_id must be integers or strings, got {ids.type}")
    if ids.null_count:
        raise ValueError(f"contact_id has {ids.null_count} nulls")
    _, offsets_buf, data_buf = ids.buffers()
    offsets = np.frombuffer(offsets_buf, np.int32)[ids.offset : ids.offset + len(ids) + 1]
    data = np.frombuffer(data_buf, np.uint8) if data_buf is not None else np.zeros(0, np.uint8)
    hashes = np.empty(len(ids), np.uint64)
    _fnv1a(offsets, data, hashes)
    out[:] = hashes % np.uint64(n_partitions)
    return out
