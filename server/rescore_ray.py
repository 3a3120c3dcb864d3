"""Whole-base rescoring on Ray Data: the same pipeline as ``rescore``, spread over a Ray cluster.

The pipeline needs every table's rows of a set of contacts together, but ``read_parquet``
gives blocks of one table in file order. So the plan is a hash partition by contact, done by
Ray's own shuffle (no shared scratch folder, no contact list broadcast to workers):

1. ``read_parquet`` of each table the models read (only their columns);
2. ``map_batches(tag_buckets)``: each row's bucket is its contact's partition among
   ``ceil(contacts / chunk_contacts)`` (``kernels.partition``, the local engine's hash); a
   block becomes one row per (bucket, table) holding that slice as Arrow IPC bytes, so tables
   of different schemas share one dataset. Reference tables (no contact_id: ``campaigns``,
   ``kernels.features.REFERENCE_TABLES``) are small: read whole here and given to every actor
   once, as the local engine gives them to every chunk;
3. ``union`` of the tables, then ``groupby("bucket").map_groups(BucketScorer)``: an actor class
   (``concurrency`` actors, each loading the ONNX sessions and compiling the kernels once)
   gets every slice of one bucket, i.e. all tables of about ``chunk_contacts`` contacts, and
   returns ``ScoringPipeline.score`` of them (``batch_format="pyarrow"``);
4. ``write_parquet`` into a hidden folder beside ``out``, renamed to ``out`` at the end: the
   result is a Parquet dataset folder that appears whole or not at all.

Rows come out grouped by bucket, not in the base's order (sort by contact_id to compare).
Ray is an optional dependency (``scorecast[ray]``), imported only here, only when used.
"""

from __future__ import annotations

import math
import shutil
import warnings
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds

from scorecast.atomic import replace_dir, sibling_dir
from scorecast.base import open_table, read_table, table_names
from scorecast.kernels.features import REFERENCE_TABLES
from scorecast.kernels.partition import partition_of
from scorecast.options import ScoreSpec
from scorecast.tables import CONTACT_ID

from .pipeline import ScoringPipeline
from .repository import ModelRepository
from .rescore import RescoreResult, pipeline_columns
from .runtime import DEFAULT_SESSION_OPTIONS, SessionOptions

__all__ = ["BucketScorer", "rescore_ray", "swap_into_place", "tag_buckets"]

_BUCKET, _TABLE, _PAYLOAD = "bucket", "table", "payload"


def tag_buckets(batch: pa.Table, table: str, n_buckets: int) -> pa.Table:
    """One row per bucket present in ``batch``: (bucket, table name, the bucket's rows as Arrow IPC)."""
    if batch.num_rows == 0:
        return pa.table(
            {_BUCKET: pa.array([], pa.int64()), _TABLE: pa.array([], pa.string()), _PAYLOAD: pa.array([], pa.large_binary())}
        )
    buckets = partition_of(batch[CONTACT_ID], n_buckets, field=f"{table}.{CONTACT_ID}")
    order = np.argsort(buckets, kind="stable")
    present, starts = np.unique(buckets[order], return_index=True)
    ends = np.append(starts[1:], len(order))
    grouped = batch.take(pa.array(order))
    payloads = []
    for start, end in zip(starts, ends, strict=True):
        sink = pa.BufferOutputStream()
        part = grouped.slice(start, end - start)
        with pa.ipc.new_stream(sink, part.schema) as writer:
            writer.write_table(part)
        payloads.append(sink.getvalue().to_pybytes())
    return pa.table(
        {
            _BUCKET: pa.array(present, pa.int64()),
            _TABLE: pa.array([table] * len(present), pa.string()),
            _PAYLOAD: pa.array(payloads, pa.large_binary()),
        }
    )


class BucketScorer:
    """A Ray actor: loads the models once, then scores one bucket (all tables of its contacts,
    plus the reference tables, the same for every bucket) per call."""

    def __init__(
        self,
        models: str,
        options: SessionOptions,
        spec: ScoreSpec,
        has_contacts: bool,
        references: Mapping[str, pa.Table],
    ) -> None:
        self.pipeline = ScoringPipeline(ModelRepository.load(Path(models), options), spec)
        self.has_contacts = has_contacts
        self.references = dict(references)

    def __call__(self, group: pa.Table) -> pa.Table:
        tables: dict[str, pa.Table] = {}
        names = group[_TABLE].to_pylist()
        for name in dict.fromkeys(names):
            parts = [
                _read_ipc(payload)
                for payload, of in zip(group[_PAYLOAD].to_pylist(), names, strict=True)  # one row per (block, bucket)
                if of == name
            ]
            tables[name] = pa.concat_tables(parts)
        if self.has_contacts and "contacts" not in tables:
            # Orders of contacts missing from contacts.parquet: the pipeline refuses them, as rescore does.
            some = next(iter(tables.values()))
            tables["contacts"] = pa.table({CONTACT_ID: pa.array([], some.schema.field(CONTACT_ID).type)})
        return pa.Table.from_batches([self.pipeline.score(tables | self.references)])


def _read_ipc(payload: bytes) -> pa.Table:
    with pa.ipc.open_stream(pa.py_buffer(payload)) as reader:
        return reader.read_all()


def _count_contacts(base: Path, columns: Mapping[str, list[str]]) -> int:
    contacts = open_table(base, "contacts")
    if contacts is not None:
        return contacts.count_rows()
    counts = []
    for name in columns:
        dataset = open_table(base, name)
        if dataset is not None:
            ids = dataset.to_table(columns=[CONTACT_ID])[CONTACT_ID]
            counts.append(len(pc.unique(ids.combine_chunks())))
    return max(counts, default=0)


def rescore_ray(
    models: Path,
    base: Path,
    spec: ScoreSpec,
    out: Path,
    chunk_contacts: int = 50_000,
    options: SessionOptions = DEFAULT_SESSION_OPTIONS,
    concurrency: int | None = None,
    progress: bool = False,
    address: str | None = None,
) -> RescoreResult:
    """Score every contact of a base on Ray Data; ``out`` (a Parquet dataset folder) appears atomically.

    Uses the Ray cluster this process is connected to, else the one at ``address`` (HOST:PORT;
    default ``RAY_ADDRESS``), else starts a local one as ``ray.init()`` does. ``concurrency``: scoring actors (default: the
    cluster's CPUs, each actor's ONNX Runtime sessions built with ``options``).
    """
    try:
        import ray
        import ray.data
        from ray.data.context import ShuffleStrategy
    except ImportError:
        raise RuntimeError("the ray engine needs Ray Data: pip install 'scorecast[ray]'") from None
    if chunk_contacts <= 0:
        raise ValueError(f"chunk_contacts must be > 0, got {chunk_contacts}")
    if out.exists() and not out.is_dir():
        raise FileExistsError(f"output {out} is a file; the ray engine writes a Parquet dataset folder")
    if not out.parent.is_dir():
        raise FileNotFoundError(f"output folder {out.parent} does not exist")
    # Checked here, before any Ray work: unknown scores or bad options fail at once.
    repository = ModelRepository.load(models, options)
    pipeline = ScoringPipeline(repository, spec)
    columns = pipeline_columns(pipeline)
    present = table_names(base)
    read = {name: columns.get(name, [CONTACT_ID]) for name in present if name in columns or name == "contacts"}
    # Reference tables have no contact to hash by: read whole, shipped to each actor once.
    references = {name: read_table(base, name, read.pop(name)) for name in REFERENCE_TABLES if name in read}
    if not read:
        raise ValueError(f"base {base} has none of the tables {sorted(columns)}")
    n_contacts = _count_contacts(base, read)
    n_buckets = max(1, math.ceil(n_contacts / chunk_contacts))

    if not ray.is_initialized():
        ray.init(address=address, log_to_driver=False, include_dashboard=False)
    with warnings.catch_warnings():  # Ray 2.60's DataContext sets its own deprecated use_push_based_shuffle
        warnings.simplefilter("ignore", DeprecationWarning)
        context = ray.data.DataContext.get_current()
        context.enable_progress_bars = progress
        # The sort-based shuffle runs as plain tasks; the default hash shuffle's aggregator
        # actors compete with the scoring actors for CPUs and stalled for a minute on 2 cores.
        context.shuffle_strategy = ShuffleStrategy.SORT_SHUFFLE_PULL_BASED
    parts = []
    for name, wanted in read.items():
        schema = ds.dataset(base / f"{name}.parquet", format="parquet").schema
        cols = [c for c in dict.fromkeys([CONTACT_ID, *wanted]) if c in schema.names]
        dataset = ray.data.read_parquet(str(base / f"{name}.parquet")).select_columns(cols)
        parts.append(dataset.map_batches(tag_buckets, batch_format="pyarrow", fn_kwargs={"table": name, "n_buckets": n_buckets}))
    tagged = parts[0].union(*parts[1:]) if len(parts) > 1 else parts[0]
    # One CPU stays free of actors for the reads and the shuffle, which would otherwise wait
    # forever for a CPU the (long-lived) actors hold.
    actors = concurrency or max(1, int(ray.cluster_resources().get("CPU", 1)) - 1)
    scored = tagged.groupby(_BUCKET, num_partitions=min(n_buckets, 200)).map_groups(
        BucketScorer,
        batch_format="pyarrow",
        compute=ray.data.ActorPoolStrategy(size=actors),
        num_cpus=1,
        fn_constructor_kwargs={
            "models": str(models.resolve()),
            "options": options,
            "spec": spec,
            "has_contacts": "contacts" in read,
            "references": references,
        },
    )
    tmp = sibling_dir(out, "partial")
    try:
        scored.write_parquet(str(tmp), compression="zstd")
        rows = swap_into_place(tmp, out, n_contacts)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return RescoreResult(rows=rows, chunks=n_buckets, seconds={})


def swap_into_place(tmp: Path, out: Path, expected_rows: int) -> int:
    """Check that the Parquet dataset ``tmp`` holds ``expected_rows`` rows, then move it to
    ``out`` (``atomic.replace_dir``: flushed first; a previous ``out`` stays if the swap fails).
    Returns the rows."""
    rows = ds.dataset(tmp, format="parquet").count_rows() if tmp.exists() else 0
    if rows == 0:
        raise ValueError(f"nothing to write to {out}: no contact was scored")
    if rows != expected_rows:
        raise ValueError(f"the result has {rows} rows but the base {expected_rows} contacts; {out} is left as it was")
    replace_dir(tmp, out)
    return rows
