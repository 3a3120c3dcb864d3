"""Whole-base rescoring in process: Parquet base in, one Parquet file of scores out.

The same pipeline as the gRPC server (``ScoringPipeline``), fed by ``BaseChunks``: memory
follows the chunk size and the models, not the base's size (a base of more than four chunks is
split on disk by a hash of contact_id and read a partition at a time), and the output is
atomic. Rows follow ``contacts.parquet`` for a base read whole, partition by partition for a
split one: sort by contact_id to compare.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from scorecast.atomic import AtomicParquetWriter
from scorecast.base import BaseChunks
from scorecast.kernels import required_columns
from scorecast.metadata import REQUEST_PREFIX

from .pipeline import ScoreSpec, ScoringPipeline
from .repository import ModelRepository

__all__ = ["RescoreResult", "input_columns", "rescore"]


@dataclass(frozen=True)
class RescoreResult:
    """What a rescoring run did."""

    rows: int
    chunks: int
    seconds: dict[str, float]


def input_columns(features: Iterable[str]) -> dict[str, list[str]]:
    """Table -> columns needed to compute these features (the ``BaseChunks`` argument)."""
    columns: dict[str, list[str]] = defaultdict(list)
    for qualified in sorted(required_columns(f for f in features if not f.startswith(REQUEST_PREFIX))):
        table, column = qualified.split(".", 1)
        columns[table].append(column)
    return dict(columns)


def rescore(
    repository: ModelRepository,
    base: Path,
    spec: ScoreSpec,
    out: Path,
    chunk_contacts: int = 50_000,
    progress: bool = False,
) -> RescoreResult:
    """Score every contact of a base and write ``out`` atomically."""
    pipeline = ScoringPipeline(repository, spec)
    columns = input_columns(f for m in pipeline.models for f in m.meta.features)
    chunks = BaseChunks(base, columns, chunk_contacts=chunk_contacts)
    iterator: Iterable = chunks
    if progress:
        from tqdm import tqdm

        iterator = tqdm(chunks, total=len(chunks), unit="chunk", desc="rescore")
    n = 0
    with AtomicParquetWriter(out) as writer:
        for n, tables in enumerate(iterator, start=1):  # noqa: B007 (n counts the chunks)
            writer.write(pipeline.score(tables))
    return RescoreResult(rows=writer.rows, chunks=n, seconds=dict(pipeline.seconds))
