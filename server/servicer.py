"""The gRPC servicer: a few lines per call — decode, call the pipeline, encode.

``handle_errors`` maps our exceptions to status codes: ScorecastError carries its own,
kernels' InputError is INVALID_ARGUMENT, anything else is INTERNAL with the traceback logged,
and the server keeps serving.
"""

from __future__ import annotations

import functools
import inspect
import json
import logging
import time
from collections.abc import Callable, Iterator
from typing import Any

import grpc
from google.protobuf.timestamp_pb2 import Timestamp

from scorecast.kernels import InputError, required_columns
from scorecast.metadata import REQUEST_PREFIX
from scorecast.proto import pb, rpc

from .codec import decode_tables, encode_batch
from .errors import InvalidArgument, ResourceExhausted, ScorecastError
from .pipeline import ScoreSpec, ScoringPipeline
from .repository import ModelRepository
from .runtime import OnnxModel

__all__ = ["ScorecastServicer", "handle_errors", "model_info", "spec_from_header"]

log = logging.getLogger(__name__)


def _abort_for(exc: BaseException, context: grpc.ServicerContext, method: str) -> None:
    if isinstance(exc, ScorecastError):
        context.abort(exc.status, str(exc))
    if isinstance(exc, InputError):
        context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(exc))
    log.exception("%s failed unexpectedly", method)
    context.abort(grpc.StatusCode.INTERNAL, f"internal error in {method}: {type(exc).__name__}: {exc}")


def handle_errors(method: Callable[..., Any]) -> Callable[..., Any]:
    """Turn exceptions of a servicer method (unary or streaming) into gRPC statuses."""
    if inspect.isgeneratorfunction(method):

        @functools.wraps(method)
        def stream(self: Any, request: Any, context: grpc.ServicerContext) -> Iterator[Any]:
            try:
                yield from method(self, request, context)
            except Exception as exc:
                _abort_for(exc, context, method.__name__)

        return stream

    @functools.wraps(method)
    def unary(self: Any, request: Any, context: grpc.ServicerContext) -> Any:
        try:
            return method(self, request, context)
        except Exception as exc:
            _abort_for(exc, context, method.__name__)

    return unary


def spec_from_header(header: pb.ScoreHeader) -> ScoreSpec:
    """The pipeline's view of a request header; ``as_of`` unset means now."""
    options = header.options
    if options.HasField("as_of"):
        as_of_us = options.as_of.seconds * 1_000_000 + options.as_of.nanos // 1_000
    else:
        as_of_us = time.time_ns() // 1_000
    return ScoreSpec(
        scores=tuple(header.scores),
        as_of_us=as_of_us,
        horizon_days=options.horizon_days,
        product_groups=tuple(options.product_groups),
        model_versions=dict(options.model_versions),
        churn_threshold=options.churn_threshold,
        exclude_bought=options.exclude_bought,
        uplift_threshold=options.uplift_threshold,
        buy_threshold=options.buy_threshold,
    )


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
        params_json=json.dumps(meta.params, sort_keys=True),
        description=meta.description,
        ready=True,
        providers=model.providers,
        available_versions=repository.versions(meta.score),
        input_columns=sorted(required_columns(f for f in meta.features if not f.startswith(REQUEST_PREFIX))),
    )


def _models(pipeline: ScoringPipeline) -> list[pb.ModelRef]:
    return [pb.ModelRef(score=m.meta.score, version=m.meta.version) for m in pipeline.models]


class ScorecastServicer(rpc.ScorecastServicer):
    """scorecast.v1.Scorecast over a loaded model repository."""

    def __init__(self, repository: ModelRepository, max_rows_per_chunk: int, max_rows_per_request: int | None = None) -> None:
        self.repository = repository
        self.max_rows_per_chunk = max_rows_per_chunk
        self.max_rows_per_request = max_rows_per_request

    @handle_errors
    def ListModels(self, request: pb.ListModelsRequest, context: grpc.ServicerContext) -> pb.ListModelsResponse:
        return pb.ListModelsResponse(models=[model_info(m, self.repository) for m in self.repository.defaults()])

    @handle_errors
    def GetModel(self, request: pb.GetModelRequest, context: grpc.ServicerContext) -> pb.GetModelResponse:
        model = self.repository.get(request.score, request.version or None)
        return pb.GetModelResponse(model=model_info(model, self.repository))

    @handle_errors
    def ScoreBatch(self, request: pb.ScoreBatchRequest, context: grpc.ServicerContext) -> pb.ScoreBatchResponse:
        pipeline = ScoringPipeline(self.repository, spec_from_header(request.header), self.max_rows_per_chunk)
        batch = pipeline.score(decode_tables(request.chunk.tables))
        return pb.ScoreBatchResponse(rows=batch.num_rows, scores=encode_batch(batch), models=_models(pipeline))

    @handle_errors
    def Score(self, request_iterator: Iterator[pb.ScoreRequest], context: grpc.ServicerContext) -> Iterator[pb.ScoreResponse]:
        first = next(request_iterator, None)
        if first is None or first.WhichOneof("kind") != "header":
            got = "end of stream" if first is None else "a chunk"
            raise InvalidArgument("Score stream", got, "the first message must be a header")
        pipeline = ScoringPipeline(self.repository, spec_from_header(first.header), self.max_rows_per_chunk)
        total = 0
        for index, message in enumerate(request_iterator):
            if not context.is_active():  # cancelled or past its deadline: no more work for it
                log.info("Score stream stopped at chunk %d: the caller is gone", index)
                return
            if message.WhichOneof("kind") != "chunk":
                raise InvalidArgument(f"Score stream message {index + 1}", "a header", "only the first message is a header")
            try:
                batch = pipeline.score(decode_tables(message.chunk.tables, field=f"chunk[{index}].tables"))
            except InputError as exc:
                raise InputError(exc.field, f"{exc.message} (in chunk {index})") from None
            total += batch.num_rows
            if self.max_rows_per_request is not None and total > self.max_rows_per_request:
                raise ResourceExhausted("contacts in one Score stream", total, self.max_rows_per_request, "max_rows_per_request")
            yield pb.ScoreResponse(
                chunk_index=index, rows=batch.num_rows, scores=encode_batch(batch), models=_models(pipeline) if index == 0 else []
            )
