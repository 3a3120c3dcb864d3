"""Where a base comes from and where scores go: a folder / Parquet file, or a PostgreSQL URL.

``local_base(data)`` gives a base folder for the code that reads one (``BaseChunks``,
training): the folder itself, or, for ``postgresql://…?schema=S``, a temporary folder the
schema's tables are streamed into, batch by batch, as Parquet (memory bounded by a batch:
``postgres.BATCH_BYTES``), removed when the block ends. ``score_writer(out)`` gives the
writer of a scores output: ``AtomicParquetWriter`` for a path, ``ScoreTableWriter`` for a URL.
Both are atomic: the output appears whole or not at all.
"""

from __future__ import annotations

import contextlib
import shutil
import tempfile
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pyarrow.parquet as pq

from . import postgres
from .atomic import AtomicParquetWriter

__all__ = ["Source", "describe", "local_base", "score_writer", "source"]

Source = Path | str
"""A base folder or output path, or a ``postgresql://`` URL."""

STAGE_ROW_GROUP = 1_000_000  # rows per Parquet row group of a staged table: the split reads one at a time
STAGE_THREADS = 2  # tables read side by side: each is one COPY, the server decodes one while we write another


def source(text: str) -> Source:
    """A command-line value as a source: a URL stays a (checked) string, anything else is a path."""
    if postgres.is_postgres_url(text):
        postgres.parse_url(text)  # ValueError naming what is wrong, before any work
        return text
    if "://" in text:
        raise ValueError(f"unsupported URL scheme {text.split('://', 1)[0]!r}: give a folder, a file or a postgresql:// URL")
    return Path(text)


def describe(data: Source) -> str:
    """How messages name a source (a URL without its password)."""
    return postgres.parse_url(data).redacted() if postgres.is_postgres_url(data) else str(data)


@contextlib.contextmanager
def local_base(data: Source, tables: dict[str, list[str] | None] | None = None) -> Iterator[Path]:
    """A base folder holding ``data``'s tables for the block.

    ``tables``: for a URL, which tables (and columns: None for all) to stage; default every
    known table of the schema, every column. A path is given back as it is."""
    if not postgres.is_postgres_url(data):
        yield Path(data)
        return
    location = postgres.parse_url(str(data))
    folder = Path(tempfile.mkdtemp(prefix="scorecast-pg-base-"))
    try:
        stage(location, folder, tables)
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def stage(location: postgres.PostgresLocation, folder: Path, tables: dict[str, list[str] | None] | None = None) -> list[str]:
    """Stream the schema's tables into ``folder/<table>.parquet``; returns the tables written."""
    present = postgres.table_columns(location)
    wanted = {name: None for name in present} if tables is None else {n: c for n, c in tables.items() if n in present}

    def one(name: str) -> None:
        batches = postgres.read_table(location, name, wanted[name], present[name])
        writer = None
        try:
            for batch in batches:
                if writer is None:
                    # zstd level 1 as the score outputs: fast, and strings are dictionary-encoded
                    writer = pq.ParquetWriter(folder / f"{name}.parquet", batch.schema, compression="zstd", compression_level=1)
                writer.write_batch(batch, row_group_size=STAGE_ROW_GROUP)
        finally:
            if writer is not None:
                writer.close()
            batches.close()

    with ThreadPoolExecutor(STAGE_THREADS, thread_name_prefix="scorecast-stage") as pool:
        for done in [pool.submit(one, name) for name in wanted]:
            done.result()
    # an empty table writes no file: the base then lacks it, as a folder without it would
    return [name for name in wanted if (folder / f"{name}.parquet").exists()]


def score_writer(out: Source) -> AtomicParquetWriter | postgres.ScoreTableWriter:
    """The atomic writer of a scores output: a Parquet file, or a PostgreSQL table."""
    if postgres.is_postgres_url(out):
        return postgres.ScoreTableWriter(postgres.parse_url(str(out)))
    return AtomicParquetWriter(Path(out))
