"""A customer base on disk: a folder with one ``<table>.parquet`` (file or folder) per table.

``BaseChunks`` splits a base into chunks of contacts (each chunk holds every table's rows of
one disjoint set of contacts) with memory bounded by the chunk size, whatever the base's size:
tables need not be sorted or grouped by contact.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping, Sequence
from contextlib import closing
from functools import partial
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds
import pyarrow.parquet as pq

from .kernels.grouping import group_rows
from .kernels.partition import partition_of
from .spill import Spill, TableSource
from .tables import CONTACT_ID, TABLES

__all__ = ["BaseChunks", "open_table", "read_table", "table_names"]

MAX_PARTITIONS = 256  # files open at once per table during the split; beyond, partitions hold several chunks
PARTITION_FILL = 0.875  # partitions of ~7/8 of a chunk: hashing spreads them so few overflow one


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
    partition of a hash of its contact_id (``kernels.partition``), partitions being about a
    chunk each, held in memory (up to ``spill.HELD_BYTES``) or spilled to a temporary folder
    (``spill.Spill``). A chunk is then one partition (or a run of small ones, or part of a large
    one), read straight from its files, the next two read ahead while the current one is scored.
    Order: a small base's chunks follow ``contacts.parquet`` (or first appearance); a
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
        bound = (
            max(d.count_rows() for d in datasets.values()) if "contacts" not in datasets else datasets["contacts"].count_rows()
        )
        per_partition = max(1, int(chunk_contacts * PARTITION_FILL))
        self.n_partitions = 1 if bound <= self.partition_contacts else min(MAX_PARTITIONS, math.ceil(bound / per_partition))
        self._counts: list[int] | None = None  # contacts per partition, known after the split
        self._spill: Spill | None = None

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
                    parts = partition_of(batch[CONTACT_ID], self.n_partitions, field="contacts.contact_id")
                    counts += np.bincount(parts, minlength=self.n_partitions)
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
        assert self._spill is not None
        try:
            with closing(self._spill.read_ahead(self._groups())) as groups:
                for tables in groups:
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
        ``partition_contacts`` worth of partitions stay in memory (no more than
        ``spill.HELD_BYTES``), the others go to files."""
        if self._spill is not None:
            return
        per_partition = max(1, int(self.chunk_contacts * PARTITION_FILL))
        held = min(self.n_partitions, self.partition_contacts // per_partition)
        sources = [_source(name, dataset, _present(dataset, self.columns[name])) for name, dataset in self._datasets().items()]
        self._spill = Spill(self.n_partitions, held)
        try:
            self._spill.split(sources)
            if "contacts" in self._spill.rows:  # its rows per partition are the partitions' contacts
                self._counts = self._spill.rows["contacts"]
            else:  # no contacts table: the distinct ids of each partition
                self._counts = [len(_contact_ids(self._spill.read(range(p, p + 1), keep=True))) for p in range(self.n_partitions)]
        except BaseException:
            self._cleanup()
            raise

    def _cleanup(self) -> None:
        if self._spill is not None:
            self._spill.close()
            self._spill = None


def _source(name: str, dataset: ds.Dataset, columns: list[str] | None) -> TableSource:
    """A table to split, read one Parquet row group at a time (``_read_row_group``)."""
    units = _row_groups(dataset)
    names = columns or dataset.schema.names
    return TableSource(
        name=name,
        units=len(units),
        read=partial(_read_units, dataset, units, columns),
        schema=pa.schema([dataset.schema.field(c) for c in names]),
        arrow_bytes=_arrow_bytes(dataset.schema, names, units),
        weight=sum(metadata.row_group(g).num_rows for _, metadata, g in units) * len(names),
    )


def _read_units(
    dataset: ds.Dataset, units: Sequence[tuple[str, pq.FileMetaData, int]], columns: Sequence[str] | None, unit: int
) -> list[pa.RecordBatch]:
    """The rows of row group ``units[unit]``."""
    return _read_row_group(dataset, units[unit], columns)


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


def _is_string(kind: pa.DataType) -> bool:
    return pa.types.is_string(kind) or pa.types.is_large_string(kind)


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
