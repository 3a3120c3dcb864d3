"""The scoring pipeline: Arrow tables of one chunk of contacts -> one Arrow batch of scores.

It knows nothing of gRPC: the servicer, ``rescore`` and the benchmarks all call it. Per chunk
the feature kernels run once (``FeatureFrame``), each requested model gets its features as one
float32 matrix, and its ONNX outputs become ``<score>.<output>`` columns after ``contact_id``.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import numba
import numpy as np
import pyarrow as pa

from scorecast.kernels import FeatureFrame
from scorecast.kernels.time_units import US_PER_DAY
from scorecast.metadata import REQUEST_PREFIX, OutputSpec
from scorecast.options import ScoreSpec, request_columns

from .errors import InvalidArgument, ResourceExhausted
from .repository import ModelRepository
from .runtime import OnnxModel

__all__ = ["ScoringPipeline"]


@dataclass
class _Plan:
    """One model of a request, the outputs it contributes, and its request-filled columns."""

    model: OnnxModel
    outputs: list[OutputSpec]
    data_features: list[str]
    request_columns: dict[int, float]

    @functools.cached_property
    def column_names(self) -> list[str]:
        """``<score>.<output>`` of each output, in order."""
        return [f"{self.model.meta.score}.{out.name}" for out in self.outputs]

    @property
    def params(self) -> dict[str, Any] | None:
        """The model's feature parameters (for feature families that take some)."""
        return self.model.meta.params.feature_params

    def matrix(self, n: int, data: np.ndarray | None) -> np.ndarray:
        """The model's input for ``n`` rows: its kernel features ``data`` (columns in
        ``data_features`` order; None when it reads none), the request's options in their columns."""
        if data is None:
            data = np.empty((n, 0), np.float32)
        if not self.request_columns:
            return data
        x = np.empty((n, len(self.model.meta.features)), dtype=np.float32)
        x[:, [i for i in range(x.shape[1]) if i not in self.request_columns]] = data
        for i, value in self.request_columns.items():
            x[:, i] = value
        return x


class ScoringPipeline:
    """Scores chunks of contacts for one request; build it once per request, call ``score`` per chunk."""

    def __init__(self, repository: ModelRepository, spec: ScoreSpec, max_rows: int | None = None) -> None:
        _check_lengths(spec)
        self.spec = spec
        self.max_rows = max_rows
        self.plans = [self._plan(repository, score) for score in _unique_scores(spec.scores, repository)]
        unknown_pins = sorted(set(spec.model_versions) - set(spec.scores))
        if unknown_pins:
            raise InvalidArgument("options.model_versions", unknown_pins, f"pin only requested scores {list(spec.scores)}")
        if spec.product_groups and not any(p.model.meta.params.groups is not None for p in self.plans):
            raise InvalidArgument("options.product_groups", list(spec.product_groups), "no requested score has product groups")
        self.seconds = _no_seconds()
        """Time spent per stage over every chunk so far (for benchmarks and metrics)."""
        self._seconds_lock = threading.Lock()
        # The kernel features of every model with the same feature parameters in one
        # FeatureFrame.matrix call: the RFM summary then runs once per chunk, covering all their
        # groups and amounts, instead of once per model.
        same_params: dict[str, list[int]] = {}
        for i, plan in enumerate(self.plans):
            same_params.setdefault(json.dumps(plan.params, sort_keys=True, default=str), []).append(i)
        self._feature_sets: list[tuple[list[str], dict[str, Any] | None, list[tuple[int, list[int]]]]] = []
        for members in same_params.values():
            names = list(dict.fromkeys(f for i in members for f in self.plans[i].data_features))
            position = {f: k for k, f in enumerate(names)}
            columns = [(i, [position[f] for f in self.plans[i].data_features]) for i in members]
            self._feature_sets.append((names, self.plans[members[0]].params, columns))
        # repr covers every field of the spec, whatever fields it gains
        self.plan_key = (repr(dataclasses.replace(spec, as_of_us=0)), tuple(id(p.model) for p in self.plans))
        """What every request planned the same way shares (``for_spec``): its spec but as_of, and
        the identities of the model versions it resolved to (a reload gives new ones)."""

    def for_spec(self, spec: ScoreSpec) -> ScoringPipeline:
        """This pipeline for another request whose spec differs at most in ``as_of_us`` (its
        plans do not depend on it): no model lookup or planning again, its own stage times."""
        other = object.__new__(ScoringPipeline)  # copy.copy's generic protocol costs more than the rest
        other.__dict__.update(self.__dict__)
        other.spec = spec
        other.seconds = _no_seconds()
        other._seconds_lock = threading.Lock()
        return other

    @property
    def models(self) -> list[OnnxModel]:
        """The model versions this request uses."""
        return [p.model for p in self.plans]

    def _plan(self, repository: ModelRepository, score: str) -> _Plan:
        model = repository.get(score, self.spec.model_versions.get(score))
        meta = model.meta
        takes_horizon = f"{REQUEST_PREFIX}horizon_days" in meta.features
        if self.spec.horizon_days and meta.horizon_days and not takes_horizon and self.spec.horizon_days != meta.horizon_days:
            raise InvalidArgument(
                "options.horizon_days",
                self.spec.horizon_days,
                f"{score} version {meta.version} is trained for {meta.horizon_days} days",
            )
        outputs = list(meta.outputs)
        groups = meta.params.groups
        if self.spec.product_groups and groups:
            unknown = [g for g in self.spec.product_groups if g not in groups]
            if unknown:
                raise InvalidArgument("options.product_groups", unknown, f"{score} knows {list(groups)}")
            wanted = set(self.spec.product_groups)
            outputs = [o for o in outputs if o.name in wanted]
        data_features = [f for f in meta.features if not f.startswith(REQUEST_PREFIX)]
        return _Plan(model, outputs, data_features, request_columns(meta, self.spec))

    def score(self, tables: Mapping[str, pa.Table], contact_ids: pa.Array | None = None) -> pa.RecordBatch:
        """Score one chunk: every table restricted to one set of contacts; ``contact_ids``: the
        rows, in order (default: as ``FeatureFrame`` finds them in the tables)."""
        t0 = time.perf_counter()
        with _kernel_threads(max((t.num_rows for t in tables.values()), default=0)):
            frame = FeatureFrame(tables, self.spec.as_of_us, contact_ids)
            n = len(frame.contact_ids)
            if self.max_rows is not None and n > self.max_rows:
                raise ResourceExhausted("contacts in one chunk", n, self.max_rows, "max_rows_per_chunk")
            data: list[np.ndarray | None] = [None] * len(self.plans)
            for names, params, members in self._feature_sets:
                if names:
                    shared = frame.matrix(names, params)
                    for i, columns in members:
                        data[i] = _select(shared, columns)
            matrices = [p.matrix(n, x) for p, x in zip(self.plans, data, strict=True)]
        t1 = time.perf_counter()
        results = [p.model.run(x) if n else {} for p, x in zip(self.plans, matrices, strict=True)]
        t2 = time.perf_counter()
        names, arrays = ["contact_id"], [frame.contact_ids]
        for plan, result in zip(self.plans, results, strict=True):
            names += plan.column_names
            arrays += _columns(plan.outputs, result, n, self.spec.as_of_us)
        batch = pa.RecordBatch.from_arrays(arrays, names=names)
        with self._seconds_lock:  # chunks of one pipeline may be scored side by side (rescore)
            self.seconds["features"] += t1 - t0
            self.seconds["onnx"] += t2 - t1
            self.seconds["assemble"] += time.perf_counter() - t2
        return batch


def _no_seconds() -> dict[str, float]:
    return {"features": 0.0, "onnx": 0.0, "assemble": 0.0}


SERIAL_KERNEL_ROWS = 32_768
"""Chunks whose largest table has fewer rows run the feature kernels on the calling thread:
waking numba's thread pool costs more than it saves there (from 0.9 to 6-40 ms per one-contact
request on a busy 2-core machine, benchmarks/load.py), and a small request's latency is what counts."""


@contextmanager
def _kernel_threads(rows: int) -> Iterator[None]:
    """numba's threads for this thread's kernels: one below ``SERIAL_KERNEL_ROWS`` rows, else all."""
    if rows >= SERIAL_KERNEL_ROWS:
        yield
        return
    before = numba.get_num_threads()  # per calling thread; other handler threads keep theirs
    numba.set_num_threads(1)
    try:
        yield
    finally:
        numba.set_num_threads(before)


def _select(shared: np.ndarray, columns: list[int]) -> np.ndarray:
    """A plan's columns of the shared feature matrix (the matrix itself when it is all of them)."""
    if columns == list(range(shared.shape[1])):
        return shared
    return np.ascontiguousarray(shared[:, columns])  # ONNX Runtime wants a C-contiguous input


MAX_NAME_CHARS = 256
"""Longest score, version or product group name; longer ones would be echoed in error messages,
and gRPC refuses status details over 8 KiB (the caller then sees RESOURCE_EXHAUSTED)."""
MAX_NAMES = 1000
"""Most scores, product groups or version pins one request may name."""


def _check_lengths(spec: ScoreSpec) -> None:
    named = {
        "header.scores": list(spec.scores),
        "options.product_groups": list(spec.product_groups),
        "options.model_versions": [*spec.model_versions, *spec.model_versions.values()],
    }
    for where, names in named.items():
        if len(names) > MAX_NAMES:
            raise InvalidArgument(where, f"{len(names)} names", f"at most {MAX_NAMES}")
        for name in names:
            if len(name) > MAX_NAME_CHARS:
                raise InvalidArgument(where, f"{name[:40]}… ({len(name)} chars)", f"names are at most {MAX_NAME_CHARS} chars")


def _unique_scores(scores: Sequence[str], repository: ModelRepository) -> list[str]:
    if not scores:
        raise InvalidArgument("header.scores", [], f"name at least one of {repository.scores}")
    seen: list[str] = []
    for score in scores:
        if score in seen:
            raise InvalidArgument("header.scores", list(scores), f"{score!r} is listed twice")
        seen.append(score)
    return seen


_NUMPY_TYPES = {"float32": np.float32, "float64": np.float64, "int32": np.int32}


def _columns(outputs: Sequence[OutputSpec], result: Mapping[str, np.ndarray], n: int, as_of_us: int) -> list[pa.Array]:
    """The output columns of one model's ONNX outputs (vectors, or matrices and a column index)."""
    undefined: dict[str, np.ndarray | None] = {}
    whole: dict[tuple[str, str], pa.Array] = {}
    columns = []
    for out in outputs:
        values = result.get(out.onnx_output)
        if values is None:  # empty chunk: no ONNX run
            columns.append(_column(out, np.zeros(n), None, as_of_us))
            continue
        if out.onnx_output not in undefined:
            # NaN means "not defined for this contact" (e.g. no orders); so does ±inf (features
            # beyond float32, e.g. a total of huge amounts): no client can use it. Checked once
            # per ONNX output, not per column (a one-contact request is dozens of such checks).
            bad = ~np.isfinite(values) if values.dtype.kind == "f" else None
            undefined[out.onnx_output] = bad if bad is not None and bad.any() else None
        bad = undefined[out.onnx_output]
        if out.column is not None and out.dtype in _NUMPY_TYPES:
            # Numbers of a matrix: the matrix converted (and its nulls found) once, column-major,
            # each column a slice of it (one Arrow array per ONNX output instead of one per column).
            key = (out.onnx_output, out.dtype, out.null_value)
            if key not in whole:
                whole[key] = _matrix_array(values, bad, out.null_value, _NUMPY_TYPES[out.dtype])
            columns.append(whole[key].slice(out.column * n, n))
            continue
        if out.column is not None:
            values = values[:, out.column]
            bad = bad[:, out.column] if bad is not None else None
        columns.append(_column(out, values.reshape(n), bad.reshape(n) if bad is not None else None, as_of_us))
    return columns


def _matrix_array(values: np.ndarray, undefined: np.ndarray | None, null_value: float | None, dtype: type) -> pa.Array:
    """A (rows, columns) output as one column-major Arrow array; ``undefined`` cells and those
    equal to ``null_value`` are nulls."""
    matrix = values.T
    mask = undefined.T if undefined is not None else None
    if null_value is not None:
        nulls = matrix == null_value
        mask = nulls if mask is None else mask | nulls
    flat = matrix.astype(dtype).reshape(-1)
    return pa.array(flat) if mask is None else pa.array(flat, mask=mask.reshape(-1))


@functools.lru_cache(maxsize=256)
def _categories(names: tuple[str, ...]) -> pa.Array:
    return pa.array(names, type=pa.string())


def _column(out: OutputSpec, values: np.ndarray, undefined: np.ndarray | None, as_of_us: int) -> pa.Array:
    """One output column from its values; ``undefined`` (None: none) and ``null_value`` are nulls."""
    mask = undefined
    if out.null_value is not None:
        nulls = values == out.null_value
        mask = nulls if mask is None else mask | nulls
    if out.dtype == "category":
        codes = np.where(mask, 0, values) if mask is not None else values  # NaN has no int code
        return pa.DictionaryArray.from_arrays(pa.array(codes.astype(np.int32), mask=mask), _categories(out.categories))
    if out.dtype == "timestamp":  # days after as_of
        days = values.astype(np.float64)
        invalid = ~np.isfinite(days) | (np.abs(days) > 1e6) | (mask if mask is not None else False)
        micros = as_of_us + np.round(np.where(invalid, 0.0, days) * US_PER_DAY).astype(np.int64)
        return pa.array(micros, type=pa.timestamp("us", tz="UTC"), mask=invalid)
    values = values.astype(_NUMPY_TYPES[out.dtype], copy=False)
    return pa.array(values) if mask is None else pa.array(values, mask=mask)
