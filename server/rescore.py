"""Whole-base rescoring in process: a base folder in, one Parquet file (or PostgreSQL table) of scores out.

The same pipeline as the gRPC server (``ScoringPipeline``), fed by ``BaseChunks``: memory
follows the chunk size and the models, not the base's size (a base of more than four chunks is
split on disk by a hash of contact_id and read a partition at a time), and the output is
atomic. Rows follow ``contacts.parquet`` for a base read whole, partition by partition for a
split one: sort by contact_id to compare. Two chunks are scored at once (``lanes.py``), written
in order.
"""

from __future__ import annotations

import itertools
import threading
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numba

from scorecast.base import BaseChunks
from scorecast.kernels import passive_openmp, required_columns, warm_up
from scorecast.metadata import REQUEST_PREFIX
from scorecast.options import ScoreSpec
from scorecast.sources import Source, score_writer
from scorecast.tables import CONTACT_ID

from .lanes import in_lanes, scoring_threads
from .pipeline import ScoringPipeline
from .repository import ModelRepository

__all__ = ["RescoreResult", "base_columns", "input_columns", "pipeline_columns", "rescore"]


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


def pipeline_columns(pipeline: ScoringPipeline) -> dict[str, list[str]]:
    """Table -> columns the models of ``pipeline`` read (``input_columns`` of their features)."""
    return input_columns(f for m in pipeline.models for f in m.meta.features)


def base_columns(repository: ModelRepository, spec: ScoreSpec) -> dict[str, list[str]]:
    """Table -> columns a rescoring of ``spec`` reads (contacts always: they are the rows);
    what to take from a PostgreSQL schema (``sources.local_base``)."""
    columns = pipeline_columns(ScoringPipeline(repository, spec))
    return {**columns, "contacts": list(dict.fromkeys([CONTACT_ID, *columns.get("contacts", [])]))}


def rescore(
    repository: ModelRepository,
    base: Path,
    spec: ScoreSpec,
    out: Source,
    chunk_contacts: int = 50_000,
    progress: bool = False,
) -> RescoreResult:
    """Score every contact of a base folder and write ``out`` (a Parquet file or a
    ``postgresql://`` table, ``sources.score_writer``) atomically."""
    pipeline = ScoringPipeline(repository, spec)
    columns = pipeline_columns(pipeline)
    chunks = BaseChunks(base, columns, chunk_contacts=chunk_contacts)
    iterator: Iterable = chunks
    if progress:
        from tqdm import tqdm

        iterator = tqdm(chunks, total=len(chunks), unit="chunk", desc="rescore")
    chunk_iter = iter(iterator)
    n = 0
    with score_writer(out) as writer:
        # numba's threading layer must run before two chunks are scored at once (see
        # scoring_threads): the kernels warm up while the base is split (the first next())
        passive_openmp()  # no effect where training already loaded OpenMP (the demo)
        warming = _warm_kernels()
        first = next(chunk_iter, None)
        if warming is not None:
            warming.join()
        if first is not None:
            chunk_iter = itertools.chain([first], chunk_iter)
        # a chunk starts as soon as a lane is free, not when the chunks before it are written
        for batch in in_lanes(chunk_iter, pipeline.score, scoring_threads(), behind=MAX_UNWRITTEN):
            writer.write(batch)
            n += 1
    return RescoreResult(rows=writer.rows, chunks=n, seconds=dict(pipeline.seconds))


MAX_UNWRITTEN = 4
"""Chunks scored or in flight, not yet written, behind a slow one."""


def _warm_kernels() -> threading.Thread | None:
    """A thread compiling (or loading) the kernels and starting numba's threading layer, or
    None when a kernel already ran in this process."""
    try:
        numba.threading_layer()
    except ValueError:  # no parallel kernel ran yet
        thread = threading.Thread(target=warm_up, name="scorecast-warm-up", daemon=True)
        thread.start()
        return thread
    return None
