"""The gRPC servicer: a few lines per call — decode, call the pipeline, encode.

``handle_errors`` wraps every call: it maps our exceptions to status codes (ScorecastError
carries its own, kernels' InputError is INVALID_ARGUMENT, anything else is INTERNAL with the
traceback logged and only the request id told to the caller, and the server keeps serving), gives the call a request id (the caller's
``x-request-id`` or a new one, returned in trailing metadata and put on every log line), and
records it in the server's metrics with one summary log line.
"""

from __future__ import annotations

import contextvars
import dataclasses
import functools
import inspect
import json
import logging
import time
from collections.abc import Callable, Collection, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import grpc
import pyarrow as pa
from google.protobuf.timestamp_pb2 import Timestamp

from scorecast.kernels import InputError, required_columns
from scorecast.metadata import REQUEST_PREFIX
from scorecast.options import as_of_from_header, spec_from_header
from scorecast.proto import pb, rpc

from .accounts import AccountRegistry
from .batching import Batcher, batch_key
from .codec import decode_tables, encode_batch
from .config import ServerSettings
from .errors import InvalidArgument, ResourceExhausted, ScorecastError
from .lanes import in_lanes, scoring_threads
from .limits import DecodeBudget
from .logs import REQUEST_ID_HEADER, new_request_id, request_id
from .metrics import ServerMetrics
from .pipeline import ScoringPipeline
from .repository import ModelRepository, ReloadReport
from .runtime import OnnxModel
from .security import caller_accounts
from .topn import BASE_CHUNK_CONTACTS, TopNQuery, TopNScan, resolve_base

__all__ = ["ScorecastServicer", "account_models", "current_call", "handle_errors", "model_info"]

TOPN_RESPONSE_ROWS = 200_000
"""Rows per TopNResponse: a few MB each, well under the message limit."""

log = logging.getLogger(__name__)

_R = TypeVar("_R")


@dataclass
class _Call:
    """What a call did, for its metrics and summary line (filled by the method as it goes)."""

    scores: tuple[str, ...] = ()
    rows: int = 0
    stages: dict[str, float] = field(default_factory=dict)
    account: str | None = None
    """The account the call used, once the caller may see it (its usage is counted; "" is the
    default account)."""


_call: contextvars.ContextVar[_Call] = contextvars.ContextVar("scorecast_call")


def current_call() -> _Call:
    """What the running call has done so far (its scores, rows and stage seconds), for its metrics."""
    return _call.get()


def _status_for(exc: BaseException, method: str) -> tuple[grpc.StatusCode, str]:
    if isinstance(exc, ScorecastError):
        return exc.status, str(exc)
    if isinstance(exc, InputError):
        return grpc.StatusCode.INVALID_ARGUMENT, str(exc)
    log.exception("%s failed unexpectedly", method)
    # The exception's text may hold server paths or data: it stays in the log, found by the request id.
    return grpc.StatusCode.INTERNAL, f"internal error in {method} (request id {request_id.get()}); the server log has the details"


def _begin(context: grpc.ServicerContext) -> tuple[str, _Call, float]:
    rid = new_request_id(context.invocation_metadata())
    request_id.set(rid)
    context.set_trailing_metadata(((REQUEST_ID_HEADER, rid),))
    call = _Call()
    _call.set(call)
    return rid, call, time.perf_counter()


def _finish(servicer: Any, method: str, call: _Call, start: float, code: grpc.StatusCode, context: grpc.ServicerContext) -> None:
    if code == grpc.StatusCode.OK and not context.is_active():
        code = grpc.StatusCode.CANCELLED  # the caller left (cancelled, deadline) before the end
    seconds = time.perf_counter() - start
    registry: AccountRegistry | None = getattr(servicer, "registry", None)
    if registry is not None and call.account is not None:
        registry.record(call.account, call.rows, code == grpc.StatusCode.OK)
    metrics: ServerMetrics | None = getattr(servicer, "metrics", None)
    if metrics is not None:
        metrics.call(method, code.name, seconds, call.scores)
        if call.rows:
            metrics.scored(call.scores, call.rows)
        metrics.stages(call.stages)
    if not log.isEnabledFor(logging.INFO):  # the summary's fields cost more than the call itself for one contact
        request_id.set("")
        return
    log.info(
        "%s %s in %.1f ms (%d rows)",
        method,
        code.name,
        seconds * 1e3,
        call.rows,
        extra={
            "event": "call",
            "method": method,
            "code": code.name,
            "ms": round(seconds * 1e3, 3),
            "rows": call.rows,
            "scores": list(call.scores),
            "peer": context.peer(),
        },
    )
    request_id.set("")


def handle_errors(method: Callable[..., Any]) -> Callable[..., Any]:
    """Wrap a servicer method (unary or streaming): status codes, request id, metrics, log line."""
    name = method.__name__
    if inspect.isgeneratorfunction(method):

        @functools.wraps(method)
        def stream(self: Any, request: Any, context: grpc.ServicerContext) -> Iterator[Any]:
            _, call, start = _begin(context)
            code = grpc.StatusCode.OK
            try:
                yield from method(self, request, context)
            except Exception as exc:
                code, message = _status_for(exc, name)
                _finish(self, name, call, start, code, context)
                context.abort(code, message)
            except GeneratorExit:  # the caller went away mid-stream
                code = grpc.StatusCode.CANCELLED
                raise
            finally:
                if code in (grpc.StatusCode.OK, grpc.StatusCode.CANCELLED):
                    _finish(self, name, call, start, code, context)

        return stream

    @functools.wraps(method)
    def unary(self: Any, request: Any, context: grpc.ServicerContext) -> Any:
        _, call, start = _begin(context)
        try:
            response = method(self, request, context)
        except Exception as exc:
            code, message = _status_for(exc, name)
            _finish(self, name, call, start, code, context)
            context.abort(code, message)
        _finish(self, name, call, start, grpc.StatusCode.OK, context)
        return response

    return unary


def _timestamp(iso: str) -> Timestamp:
    ts = Timestamp()
    ts.FromJsonString(iso if iso.endswith("Z") or "+" in iso[10:] else iso + "Z")
    return ts


def model_info(model: OnnxModel, repository: ModelRepository) -> pb.ModelInfo:
    """A model's description for ListModels/GetModel."""
    meta = model.meta
    return pb.ModelInfo(
        score=meta.score,
        version=meta.version,
        model_type=meta.model_type,
        features=list(meta.features),
        outputs=[
            pb.OutputInfo(name=o.name, dtype=o.dtype, description=o.description, categories=list(o.categories or ()))
            for o in meta.outputs
        ],
        trained_at=_timestamp(meta.trained_at),
        data_as_of=_timestamp(meta.data_as_of),
        horizon_days=meta.horizon_days or 0,
        metrics=meta.metrics,
        params_json=json.dumps(dict(meta.params), sort_keys=True),
        description=meta.description,
        ready=True,
        providers=model.providers,
        available_versions=repository.versions(meta.score),
        input_columns=sorted(required_columns(f for f in meta.features if not f.startswith(REQUEST_PREFIX))),
        failed_versions=repository.failed_versions(meta.score),
    )


@contextmanager
def account_models(registry: AccountRegistry, account: str, scan: bool, scores: Collection[str] | None = None) -> Iterator[ModelRepository]:
    """The models of the call's ``account`` ("" is the default account), held until the ``with``
    ends; NOT_FOUND alike for a missing account and one the caller's token does not cover.
    ``scan``: bulk work, which never promotes an account in the eviction order; ``scores``: the
    scores the call uses (None: all), the only ones loaded for it."""
    _use_account(registry, account)
    with registry.hold(account, scan, scores) as repository:
        yield repository


def _use_account(registry: AccountRegistry, account: str) -> None:
    """NOT_FOUND unless the caller's token covers ``account``; then the call counts as its usage."""
    registry.visible(account, caller_accounts.get())
    _call.get().account = account


MAX_CACHED_PLANS = 1024
"""Request plans kept per set of served models (one per distinct header but its as_of)."""


def _without_as_of(header: pb.ScoreHeader) -> bytes:
    if not header.options.HasField("as_of"):
        return header.SerializeToString(deterministic=True)
    copy = pb.ScoreHeader()
    copy.CopyFrom(header)
    copy.options.ClearField("as_of")
    return copy.SerializeToString(deterministic=True)


def _models(pipeline: ScoringPipeline) -> list[pb.ModelRef]:
    return [pb.ModelRef(score=m.meta.score, version=m.meta.version) for m in pipeline.models]


class ScorecastServicer(rpc.ScorecastServicer):
    """scorecast.v1.Scorecast over the accounts' model repositories."""

    def __init__(
        self,
        registry: AccountRegistry,
        max_rows_per_chunk: int,
        max_rows_per_request: int | None = None,
        metrics: ServerMetrics | None = None,
        reload: Callable[[str | None], dict[str, ReloadReport]] | None = None,
        base_roots: tuple[Path, ...] = (),
        *,
        budget: DecodeBudget | None = None,
        max_topn_n: int | None = None,
        max_base_bytes: int | None = None,
        batcher: Batcher | None = None,
    ) -> None:
        self.registry = registry
        self.max_rows_per_chunk = max_rows_per_chunk
        self.max_rows_per_request = max_rows_per_request
        self.metrics = metrics
        self._reload = reload or registry.reload
        self.base_roots = base_roots
        defaults = ServerSettings()
        self.budget = budget or DecodeBudget(defaults.max_decoded_bytes_per_chunk, defaults.max_event_rows_per_chunk)
        self.max_topn_n = max_topn_n or defaults.max_topn_n
        self.max_base_bytes = max_base_bytes or defaults.max_base_bytes
        self.batcher = batcher or Batcher.from_settings(defaults)

    def _pipeline(self, repository: ModelRepository, header: pb.ScoreHeader) -> ScoringPipeline:
        call = _call.get()
        # The plan (model lookups, request columns, shared feature sets) and the spec (options
        # read and checked) are the same for every request with this header but its as_of:
        # built once per set of served models.
        key = ("pipeline", _without_as_of(header), self.max_rows_per_chunk)
        cache = repository.derived
        planned = cache.get(key)
        if planned is None:
            call.scores = tuple(header.scores)  # for the metrics, should planning fail
            spec = spec_from_header(header)
            planned = ScoringPipeline(repository, spec, self.max_rows_per_chunk)
            if len(cache) >= MAX_CACHED_PLANS:
                cache.clear()  # a client cycling through headers gets no unbounded cache
            cache[key] = planned
        else:
            spec = dataclasses.replace(planned.spec, as_of_us=as_of_from_header(header))
        pipeline = planned.for_spec(spec)
        call.scores = spec.scores
        call.stages = pipeline.seconds  # the same dict: it accumulates as chunks are scored
        return pipeline

    @handle_errors
    def ListModels(self, request: pb.ListModelsRequest, context: grpc.ServicerContext) -> pb.ListModelsResponse:
        with account_models(self.registry, request.account, scan=True) as repository:
            return pb.ListModelsResponse(models=[model_info(m, repository) for m in repository.defaults()])

    @handle_errors
    def GetModel(self, request: pb.GetModelRequest, context: grpc.ServicerContext) -> pb.GetModelResponse:
        with account_models(self.registry, request.account, scan=True, scores=[request.score]) as repository:
            model = repository.get(request.score, request.version or None)
            return pb.GetModelResponse(model=model_info(model, repository))

    @handle_errors
    def ScoreBatch(self, request: pb.ScoreBatchRequest, context: grpc.ServicerContext) -> pb.ScoreBatchResponse:
        # the account's cap and models per call; the batch key holds the account (in the spec)
        with (
            account_models(self.registry, request.header.account, scan=False, scores=request.header.scores) as repository,
            self.batcher.incoming() as incoming,
        ):
            pipeline = self._pipeline(repository, request.header)
            tables = decode_tables(request.chunk.tables, self.budget)
            key = batch_key(pipeline, request.header.options.HasField("as_of"))
            batch = incoming.score(key, pipeline, tables, context)
        _call.get().rows = batch.num_rows
        return pb.ScoreBatchResponse(rows=batch.num_rows, scores=encode_batch(batch), models=_models(pipeline))

    @handle_errors
    def Score(self, request_iterator: Iterator[pb.ScoreRequest], context: grpc.ServicerContext) -> Iterator[pb.ScoreResponse]:
        header = _header(request_iterator, "Score")
        with account_models(self.registry, header.account, scan=True, scores=header.scores) as repository:
            pipeline = self._pipeline(repository, header)
            call = _call.get()

            def score(tables: Mapping[str, pa.Table]) -> tuple[int, bytes]:
                # encoded in the lane too: beside the other lane's chunk, and Arrow's buffers freed
                # by the thread that allocated them (mimalloc keeps per-thread heaps)
                batch = pipeline.score(tables)
                return batch.num_rows, encode_batch(batch)

            # two chunks scored at once (see lanes.py), answered in order
            for index, (rows, scores) in self._chunks(request_iterator, context, "Score", score, _first, scoring_threads()):
                call.rows += rows
                yield pb.ScoreResponse(chunk_index=index, rows=rows, scores=scores, models=_models(pipeline) if index == 0 else [])

    @handle_errors
    def ReloadModels(self, request: pb.ReloadModelsRequest, context: grpc.ServicerContext) -> pb.ReloadModelsResponse:
        account, scope = request.account, caller_accounts.get()
        _use_account(self.registry, account)
        # no account named by a token for every account: the whole repository, as before accounts
        reports = self._reload(None if not account and scope is None else account)
        report = reports.get(account, ReloadReport())
        repository = self.registry.repository(account)
        root = repository.root if repository is not None else self.registry.root
        failures = repository.failures if repository is not None else {}
        return pb.ReloadModelsResponse(
            loaded=[pb.ModelRef(score=s, version=v) for s, v in report.loaded],
            unloaded=[pb.ModelRef(score=s, version=v) for s, v in report.unloaded],
            failures=[pb.LoadFailure(path=p.relative_to(root).as_posix(), reason=r) for p, r in sorted(failures.items())],
            scores=repository.scores if repository is not None else [],
        )

    @handle_errors
    def TopN(self, request_iterator: Iterator[pb.TopNRequest], context: grpc.ServicerContext) -> Iterator[pb.TopNResponse]:
        head = _header(request_iterator, "TopN")
        query = TopNQuery.parse(head.by, head.n, list(head.where), self.max_topn_n)
        spec = spec_from_header(pb.ScoreHeader(scores=query.scores, options=head.options, account=head.account))
        with account_models(self.registry, head.account, scan=True, scores=query.scores) as repository:
            scan = TopNScan(repository, query, spec, self.max_rows_per_chunk)
            if head.base_path:
                base = resolve_base(head.base_path, self.base_roots, "header.base_path")
                if next(request_iterator, None) is not None:
                    raise InvalidArgument("TopN stream", "a chunk", "a header with base_path takes no chunks")
                chunk_contacts = head.chunk_contacts or BASE_CHUNK_CONTACTS
                if not scan.scan_base(
                    base,
                    chunk_contacts,
                    named=head.base_path,
                    where="header.",
                    active=context.is_active,
                    budget=self.budget,
                    max_base_bytes=self.max_base_bytes,
                ):
                    log.info("TopN stopped: the caller is gone")
                    return
            else:
                for _ in self._chunks(request_iterator, context, "TopN", scan.add, int):  # one at a time: add merges
                    pass
                if not context.is_active():
                    return
        yield from _topn_responses(scan)

    def _chunks(
        self,
        requests: Iterator[Any],
        context: grpc.ServicerContext,
        method: str,
        work: Callable[[Mapping[str, pa.Table]], _R],
        rows: Callable[[_R], int],
        lanes: int = 1,
    ) -> Iterator[tuple[int, _R]]:
        """The chunks after the header, each decoded and given to ``work``, up to ``lanes`` at
        once: (index, its result), in order.

        Stops when the caller is gone; InputError names the chunk; past ``max_rows_per_request``
        contacts (``rows`` of each result, added up) the call is RESOURCE_EXHAUSTED.
        """

        def messages() -> Iterator[tuple[int, Any]]:
            for index, message in enumerate(requests):
                if not context.is_active():  # cancelled or past its deadline: no more work for it
                    log.info("%s stream stopped at chunk %d: the caller is gone", method, index)
                    return
                if message.WhichOneof("kind") != "chunk":
                    raise InvalidArgument(
                        f"{method} stream message {index + 1}", "a header", "only the first message is a header"
                    )
                yield index, message

        def run(item: tuple[int, Any]) -> tuple[int, _R]:
            index, message = item
            try:
                return index, work(decode_tables(message.chunk.tables, self.budget, field=f"chunk[{index}].tables"))
            except InputError as exc:
                raise InputError(exc.field, f"{exc.message} (in chunk {index})") from None

        # at most one chunk waits behind a slow one: a stream holds at most two decoded chunks
        total = 0
        for index, result in in_lanes(messages(), run, lanes, behind=lanes - 1):
            total += rows(result)
            if self.max_rows_per_request is not None and total > self.max_rows_per_request:
                raise ResourceExhausted(
                    f"contacts in one {method} stream", total, self.max_rows_per_request, "max_rows_per_request"
                )
            yield index, result


def _first(pair: tuple[int, Any]) -> int:
    return pair[0]


def _header(requests: Iterator[Any], method: str) -> Any:
    """The stream's first message's header; INVALID_ARGUMENT if it starts otherwise."""
    first = next(requests, None)
    if first is None or first.WhichOneof("kind") != "header":
        got = "end of stream" if first is None else "a chunk"
        raise InvalidArgument(f"{method} stream", got, "the first message must be a header")
    return first.header


def _topn_responses(scan: TopNScan) -> Iterator[pb.TopNResponse]:
    """The selected rows in messages of at most TOPN_RESPONSE_ROWS; counts and models in the first."""
    result = scan.result()
    models = _models(scan.pipeline)
    for start in range(0, max(result.num_rows, 1), TOPN_RESPONSE_ROWS):
        part = result.slice(start, TOPN_RESPONSE_ROWS)
        batch = part.combine_chunks().to_batches()[0] if part.num_rows else pa.RecordBatch.from_pylist([], schema=part.schema)
        first_part = start == 0
        yield pb.TopNResponse(
            rows=part.num_rows,
            contacts=encode_batch(batch),
            scanned=scan.scanned if first_part else 0,
            matched=scan.matched if first_part else 0,
            models=models if first_part else [],
        )
