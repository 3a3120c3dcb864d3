"""Whole-base rescoring in process: Parquet base in, one Parquet file of scores out.

The same pipeline as the gRPC server (``ScoringPipeline``), fed by ``BaseChunks``: memory
follows the chunk size and the models, not the base's size (a base of more than four chunks is
split on disk by a hash of contact_id and read a partition at a time), and the output is
atomic. Rows follow ``contacts.parquet`` for a base read whole, partition by partition for a
split one: sort by contact_id to compare. Two chunks are scored at once, written in order.
"""

from __future__ import annotations

import itertools
import threading
from collections import defaultdict, deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

import numba
import pyarrow as pa

from scorecast.atomic import AtomicParquetWriter
from scorecast.base import BaseChunks
from scorecast.kernels import passive_openmp, required_columns, warm_up
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
    chunk_iter = iter(iterator)
    pending: deque[_Scoring] = deque()  # in chunk order, written in that order
    n = 0
    with AtomicParquetWriter(out) as writer:
        # numba's threading layer must run before two chunks are scored at once (see
        # _scoring_threads): the kernels warm up while the base is split (the first next())
        passive_openmp()  # no effect where training already loaded OpenMP (the demo)
        warming = _warm_kernels()
        first = next(chunk_iter, None)
        if warming is not None:
            warming.join()
        if first is not None:
            chunk_iter = itertools.chain([first], chunk_iter)
        # Two chunks scored at once: a chunk's kernels and Python run mostly on one core, so a
        # second chunk fills the other (300k-contact behaviour base, 2 cores: 1.47 -> 1.15 s).
        # A chunk starts as soon as a lane is free, not when the chunks before it are written.
        workers = _scoring_threads()
        lanes = threading.Semaphore(workers)
        while True:
            lanes.acquire()  # then the next chunk: no chunk waits in memory for a lane
            for scoring in pending:  # a failed chunk ends the run now, not when its turn comes
                if scoring.failed:
                    scoring.result()
            tables = next(chunk_iter, None)
            if tables is None:
                break
            pending.append(_Scoring(pipeline, tables, lanes.release))
            n += 1
            while pending and (pending[0].finished or len(pending) > MAX_UNWRITTEN):
                writer.write(pending.popleft().result())
        while pending:
            writer.write(pending.popleft().result())
    return RescoreResult(rows=writer.rows, chunks=n, seconds=dict(pipeline.seconds))


SCORING_THREADS = 2
MAX_UNWRITTEN = 2 * SCORING_THREADS  # chunks scored or in flight, not yet written, behind a slow one


class _Scoring:
    """One chunk scored on a thread of its own, calling ``done`` at the end; a daemon, so that
    Ctrl-C or SIGTERM ends the process at once instead of waiting for a chunk in flight
    (nothing is written after that)."""

    def __init__(self, pipeline: ScoringPipeline, tables: Mapping[str, pa.Table], done: Callable[[], object]) -> None:
        self._done = threading.Event()
        self._batch: pa.RecordBatch | None = None
        self._error: BaseException | None = None
        threading.Thread(target=self._run, args=(pipeline, tables, done), name="scorecast-rescore", daemon=True).start()

    def _run(self, pipeline: ScoringPipeline, tables: Mapping[str, pa.Table], done: Callable[[], object]) -> None:
        try:
            self._batch = pipeline.score(tables)
        except BaseException as exc:  # handed to the caller of result()
            self._error = exc
        finally:
            self._done.set()
            done()

    @property
    def finished(self) -> bool:
        """Scored, or failed."""
        return self._done.is_set()

    @property
    def failed(self) -> bool:
        """Finished with an error (``result`` raises it)."""
        return self._done.is_set() and self._error is not None

    def result(self) -> pa.RecordBatch:
        self._done.wait()
        if self._error is not None:
            raise self._error
        assert self._batch is not None
        return self._batch


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


def _scoring_threads() -> int:
    """SCORING_THREADS, or 1 under numba's workqueue layer (it cannot run kernels from two
    threads at once) or before any layer started."""
    try:
        layer = numba.threading_layer()
    except ValueError:
        return 1
    return 1 if layer == "workqueue" else SCORING_THREADS
