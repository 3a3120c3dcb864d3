"""A base's partitions by contact, held in memory up to a budget and spilled to disk beyond.

``Spill`` splits tables into ``n`` partitions (``kernels.partition``: the hash the Ray engine
shuffles by too) in one streaming pass, row groups side by side on ``SPLIT_THREADS`` threads,
each partition keeping its rows in table order. The first ``held`` partitions stay in memory, as
many as fit ``HELD_BYTES``; the others go to one Arrow IPC stream per table and partition in a
temporary folder, plain (memory-mapped when read back) while their estimated size fits
``SPILL_FREE_SHARE`` of the folder's free space, LZ4 beyond. The folder is named for the host and process that made it
(``tmp_prefix``); it goes once the partitions are read, when the ``Spill`` goes, or at exit,
and a later split removes the folders of processes that died (``sweep_stale``).
"""

from __future__ import annotations

import os
import shutil
import socket
import tempfile
import threading
import weakref
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa

from .atomic import process_alive
from .kernels.grouping import group_rows
from .kernels.partition import partition_of
from .tables import CONTACT_ID

__all__ = [
    "HELD_BYTES",
    "READ_AHEAD",
    "SPILL_FREE_SHARE",
    "SPLIT_THREADS",
    "Spill",
    "TableSource",
    "spill_options",
    "sweep_stale",
    "tmp_prefix",
]

SPILL_FREE_SHARE = 0.5
"""Partitions spill to the temporary folder as they are in memory while that takes at most this
share of its free space, LZ4-compressed (about 2.5 times smaller) beyond: compressing and
decompressing took 0.6 of the 2.6 CPU s of splitting 1M contacts' behaviour tables, and
rescoring them took 1.84x DuckDB's read-and-group time against 1.32x plain and mapped
(benchmarks/README.md)."""
_PLAIN = pa.ipc.IpcWriteOptions()
_LZ4 = pa.ipc.IpcWriteOptions(compression="lz4")
SPLIT_THREADS = 2
HELD_BYTES = 64 << 20
"""The partitions held in memory take at most about this many bytes (the tables' estimated Arrow
bytes over ``n``, per partition): a count alone held 4 partitions of 44k contacts, 160 MB, of a
300k-contact base with 10M event rows, and its peak RSS was 1.79x that of 1M event rows."""
READ_AHEAD = 2  # groups of partitions read while a chunk is scored


@dataclass(frozen=True)
class TableSource:
    """One table to split: ``read(unit)`` gives the rows of its ``unit``-th row group, units in table order."""

    name: str
    units: int
    read: Callable[[int], list[pa.RecordBatch]]
    schema: pa.Schema
    """Of the columns read: an empty table's partitions take it."""
    arrow_bytes: int
    """About the bytes of those columns as Arrow arrays (what the spilled streams hold)."""
    weight: int
    """Its cells: the largest tables are split first."""


class Spill:
    """Tables split into ``n`` partitions by contact, the first ``held`` in memory (fewer where
    they would take more than ``HELD_BYTES``), the others in a temporary folder made here (after
    sweeping dead processes' folders)."""

    def __init__(self, n: int, held: int) -> None:
        sweep_stale(Path(tempfile.gettempdir()))
        self.n, self.held = n, held
        self.folder = Path(tempfile.mkdtemp(prefix=tmp_prefix(os.getpid())))
        # removed after the last partition is read, or when this object goes (a caller that
        # only asked len(), or stopped early), or at exit
        self._finalizer = weakref.finalize(self, shutil.rmtree, self.folder, True)
        self._held: dict[str, list[pa.Table]] = {}
        self.rows: dict[str, list[int]] = {}
        """Each table's rows per partition, once split."""

    def split(self, sources: Sequence[TableSource]) -> None:
        """One streaming pass over every table, each row going to its partition."""
        total = sum(source.arrow_bytes for source in sources)
        self.held = _held_partitions(self.n, self.held, total)
        spilled = total * (self.n - self.held) // self.n
        options = spill_options(spilled, self.folder)
        splits = [_TableSplit(source, self.n, self.held, self.folder, options) for source in sources]
        # row groups of every table split side by side (Parquet decoding, take and
        # compression release the GIL), the largest tables' first so that small ones even
        # out the end
        pool = ThreadPoolExecutor(SPLIT_THREADS, thread_name_prefix="scorecast-split")
        try:
            for done in [
                pool.submit(split.run, unit)
                for split in sorted(splits, key=lambda t: -t.source.weight)
                for unit in range(split.source.units)
            ]:
                done.result()
        finally:
            pool.shutdown(cancel_futures=True)  # after a failure, the row groups not started
            for split in splits:
                split.close()
        for split in splits:
            self._held[split.source.name] = split.held_tables()
            self.rows[split.source.name] = split.rows.tolist()

    def read(self, parts: range, keep: bool = False) -> dict[str, pa.Table]:
        """The tables of these partitions; partitions held in memory are let go unless ``keep``."""
        tables = {}
        for name, held in self._held.items():
            read = []
            for part in parts:
                if part < self.held:
                    read.append(held[part])
                    if not keep:
                        held[part] = read[-1].schema.empty_table()
                    continue
                # mapped, not read: plain IPC buffers are used where they lie in the page cache
                with pa.ipc.open_stream(pa.memory_map(str(self.folder / f"{name}.{part}.arrow"))) as reader:
                    read.append(reader.read_all())
            tables[name] = read[0] if len(read) == 1 else pa.concat_tables(read)
        return tables

    def read_ahead(self, groups: Sequence[range]) -> Iterator[dict[str, pa.Table]]:
        """The tables of each group of partitions in turn (``read``), the next ``READ_AHEAD``
        groups read on a thread meanwhile: rescore scores two chunks at once, and with one read
        ahead every other chunk waited for its read."""
        with ThreadPoolExecutor(1, thread_name_prefix="scorecast-read") as pool:
            reads = deque(pool.submit(self.read, group) for group in groups[:READ_AHEAD])
            for i in range(len(groups)):
                tables = reads.popleft().result()
                if i + READ_AHEAD < len(groups):
                    reads.append(pool.submit(self.read, groups[i + READ_AHEAD]))
                yield tables

    def close(self) -> None:
        """Let the held partitions go and remove the folder."""
        self._held.clear()
        self._finalizer()


class _TableSplit:
    """One table's split: any thread buckets a row group's rows by partition (``run``), then
    hands them to the partitions in row-group order, so a partition holds its rows in table
    order whichever thread read them. The first ``held`` partitions stay in memory, the others
    go to one Arrow IPC stream each in ``folder``."""

    def __init__(self, source: TableSource, n: int, held: int, folder: Path, options: pa.ipc.IpcWriteOptions) -> None:
        self.source, self.n, self.held, self.folder, self.options = source, n, held, folder, options
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
            bucketed = [self._bucket(batch) for batch in self.source.read(unit)]
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
        order, bounds = group_rows(partition_of(batch[CONTACT_ID], n, field=f"{self.source.name}.{CONTACT_ID}"), n)
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
            pa.ipc.new_stream(self.folder / f"{self.source.name}.{p}.arrow", schema, options=self.options)
            for p in range(self.held, self.n)
        ]

    def close(self) -> None:
        """Close the partition streams (after every row group, or after a failure)."""
        if self._schema is None and not self._failed:  # an empty table: empty partitions of its schema
            self._open(self.source.schema)
        for writer in self._writers:
            writer.close()

    def held_tables(self) -> list[pa.Table]:
        """The partitions kept in memory, as tables."""
        return [pa.Table.from_batches(batches, self._schema) for batches in self._kept]


def _held_partitions(n: int, at_most: int, arrow_bytes: int) -> int:
    """How many of ``n`` partitions of tables of ``arrow_bytes`` to hold in memory: at most
    ``at_most``, and no more than fit ``HELD_BYTES`` at their average size."""
    return min(at_most, n, HELD_BYTES * n // max(arrow_bytes, 1))


def spill_options(spilled: int, folder: Path) -> pa.ipc.IpcWriteOptions:
    """Plain IPC for partitions of about ``spilled`` bytes when they fit ``SPILL_FREE_SHARE`` of
    the free space of ``folder``, else LZ4."""
    return _PLAIN if spilled <= SPILL_FREE_SHARE * shutil.disk_usage(folder).free else _LZ4


def tmp_prefix(pid: int) -> str:
    """Split folders are named for the host and process that made them (see ``sweep_stale``)."""
    return f"scorecast-chunks-{socket.gethostname()}-{pid}-"


def sweep_stale(root: Path) -> None:
    """Remove split folders left by processes of this host that died without cleaning up
    (SIGKILL, out of memory): a killed 10M-contact rescore leaves gigabytes otherwise."""
    mine = tmp_prefix(0)[: -len("0-")]
    for path in root.glob(f"{mine}*"):
        pid = path.name[len(mine) :].split("-", 1)[0]
        if pid.isdigit() and not process_alive(int(pid)):
            shutil.rmtree(path, ignore_errors=True)


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
