"""Whole-base rescoring in process: Parquet base in, one Parquet file of scores out.

The same pipeline as the gRPC server (``ScoringPipeline``), fed by ``BaseChunks``: memory
follows the chunk size and the models, not the base's size (a base of more than four chunks is
split on disk by a hash of contact_id and read a partition at a time), and the output is
atomic. Rows follow ``contacts.parquet`` for a base read whole, partition by partition for a
split one: sort by contact_id to compare. Two chunks are scored at once, written in order.
"""

from __future__ import annotations

import threading
from collections import defaultdict, deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

import numba
import pyarrow as pa

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
    # Two chunks scored at once: a chunk's kernels and Python run mostly on one core, so a
    # second chunk fills the other (300k-contact behaviour base, 2 cores: 1.47 -> 1.15 s).
    workers = 1  # until the first chunk has started numba's threading layer
    with AtomicParquetWriter(out) as writer:
        pending: deque[_Scoring] = deque()
        for n, tables in enumerate(iterator, start=1):  # noqa: B007 (n counts the chunks)
            pending.append(_Scoring(pipeline, tables))
            if len(pending) >= workers:  # in order, at most ``workers`` chunks in flight
                writer.write(pending.popleft().result())
                workers = _scoring_threads()
        while pending:
            writer.write(pending.popleft().result())
    return RescoreResult(rows=writer.rows, chunks=n, seconds=dict(pipeline.seconds))


SCORING_THREADS = 2


class _Scoring:
    """One chunk scored on a thread of its own; a daemon, so that Ctrl-C or SIGTERM ends the
    process at once instead of waiting for a chunk in flight (nothing is written after that)."""

    def __init__(self, pipeline: ScoringPipeline, tables: Mapping[str, pa.Table]) -> None:
        self._done = threading.Event()
        self._batch: pa.RecordBatch | None = None
        self._error: BaseException | None = None
        threading.Thread(target=self._run, args=(pipeline, tables), name="scorecast-rescore", daemon=True).start()

    def _run(self, pipeline: ScoringPipeline, tables: Mapping[str, pa.Table]) -> None:
        try:
            self._batch = pipeline.score(tables)
        except BaseException as exc:  # handed to the caller of result()
            self._error = exc
        finally:
            self._done.set()

    def result(self) -> pa.RecordBatch:
        self._done.wait()
        if self._error is not None:
            raise self._error
        assert self._batch is not None
        return self._batch


def _scoring_threads() -> int:
    """SCORING_THREADS, or 1 under numba's workqueue layer (it cannot run kernels from two
    threads at once) or before any layer started."""
    try:
        layer = numba.threading_layer()
    except ValueError:
        return 1
    return 1 if layer == "workqueue" else SCORING_THREADS
