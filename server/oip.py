"""The Open Inference Protocol (KServe V2) servicer: ``inference.GRPCInferenceService`` beside
scorecast.v1 on the same port, so KServe, Seldon and Triton clients can call scorecast.

Each score is a model (name = score, version = model version). A ModelInfer request is one
chunk: its tensors become Arrow tables (server/tensors.py), the same ``ScoringPipeline`` the
native servicer calls scores them, and the batch's columns come back as raw output tensors.
Options are request parameters named as in ``ScoreOptions``: ``as_of`` (ISO-8601 string or
INT64 µs since the epoch; unset: now), ``horizon_days``, ``churn_threshold``,
``exclude_bought``, ``uplift_threshold``, ``buy_threshold``, ``product_groups`` (comma-separated).
Errors, request ids, metrics and the log line come from ``servicer.handle_errors``.
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Iterator
from typing import Any

import grpc

from scorecast import __version__
from scorecast.kernels import InputError, required_columns
from scorecast.kernels.contact_features import PREFIX as ATTRIBUTE_PREFIX
from scorecast.metadata import REQUEST_PREFIX
from scorecast.proto import oip, oip_rpc
from scorecast.tables import TABLES

from .batching import Batcher, batch_key
from .config import ServerSettings
from .errors import InvalidArgument, ModelNotFound, ScorecastError
from .limits import DecodeBudget
from .pipeline import ScoreSpec, ScoringPipeline
from .repository import ModelRepository
from .runtime import OnnxModel
from .servicer import current_call, handle_errors
from .tensors import INPUT_DATATYPES, encode_outputs, output_datatype, tables_from_request

__all__ = ["OipServicer", "spec_from_parameters"]

_FLOAT_OPTIONS = ("churn_threshold", "uplift_threshold", "buy_threshold")


def _param(value: oip.InferParameter) -> Any:
    kind = value.WhichOneof("parameter_choice")
    return None if kind is None else getattr(value, kind)


def spec_from_parameters(score: str, version: str, parameters: Any) -> ScoreSpec:
    """The pipeline's view of one ModelInfer request (its model and parameters)."""
    given = {name: _param(value) for name, value in parameters.items()}
    known = {"as_of", "horizon_days", "exclude_bought", "product_groups", *_FLOAT_OPTIONS}
    unknown = sorted(set(given) - known)
    if unknown:
        raise InvalidArgument("parameters", unknown, f"known parameters are {sorted(known)}")
    as_of = given.get("as_of")
    if as_of is None:
        as_of_us = time.time_ns() // 1_000
    elif isinstance(as_of, str):
        try:
            stamp = dt.datetime.fromisoformat(as_of.replace("Z", "+00:00"))
        except ValueError:
            raise InvalidArgument("parameters['as_of']", as_of, "an ISO-8601 time, e.g. 2026-01-01T00:00:00Z, or INT64 µs") from None
        as_of_us = int((stamp if stamp.tzinfo else stamp.replace(tzinfo=dt.UTC)).timestamp() * 1_000_000)
    elif isinstance(as_of, int) and not isinstance(as_of, bool):
        as_of_us = as_of
    else:
        raise InvalidArgument("parameters['as_of']", as_of, "an ISO-8601 string or INT64 µs since the epoch")
    horizon = given.get("horizon_days", 0)
    if not isinstance(horizon, int) or isinstance(horizon, bool):
        raise InvalidArgument("parameters['horizon_days']", horizon, "an int64 parameter")
    floats = {}
    for name in _FLOAT_OPTIONS:
        value = given.get(name, 0.0)
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise InvalidArgument(f"parameters[{name!r}]", value, "a double parameter")
        floats[name] = float(value)
    exclude = given.get("exclude_bought")
    if exclude is not None and not isinstance(exclude, bool):
        raise InvalidArgument("parameters['exclude_bought']", exclude, "a bool parameter")
    groups = given.get("product_groups", "")
    if not isinstance(groups, str):
        raise InvalidArgument("parameters['product_groups']", groups, "a comma-separated string")
    return ScoreSpec(
        scores=(score,),
        as_of_us=as_of_us,
        horizon_days=horizon,
        product_groups=tuple(g for g in groups.split(",") if g),
        model_versions={score: version} if version else {},
        exclude_bought=exclude,
        **floats,
    )


def model_inputs(model: OnnxModel) -> list[tuple[str, str]]:
    """The (tensor name, datatype) inputs a model needs: one per table column its features read
    (a contact attribute: BYTES when compared with a value, ``attr:<column>=<value>``, else FP64)."""
    features = [f for f in model.meta.features if not f.startswith(REQUEST_PREFIX)]
    columns = required_columns(features)
    if any(c.startswith("contacts.") for c in columns):
        columns.add("contacts.contact_id")  # attributes reach their contacts through it
    compared = {f"contacts.{f.removeprefix(ATTRIBUTE_PREFIX).partition('=')[0]}" for f in features if f.startswith(ATTRIBUTE_PREFIX) and "=" in f}
    inputs = []
    for name in sorted(columns):
        table, column = name.split(".", 1)
        kind = TABLES[table].columns.get(column)
        inputs.append((name, INPUT_DATATYPES[kind] if kind else "BYTES" if name in compared else "FP64"))
    return inputs


def model_outputs(model: OnnxModel) -> list[tuple[str, str]]:
    """The (tensor name, datatype) outputs of a model: ``contact_id``, then ``<score>.<output>``."""
    meta = model.meta
    return [("contact_id", "INT64"), *((f"{meta.score}.{o.name}", output_datatype(o.dtype)) for o in meta.outputs)]


class OipServicer(oip_rpc.GRPCInferenceServiceServicer):
    """inference.GRPCInferenceService over the model repository the native servicer serves."""

    def __init__(
        self, repository: ModelRepository, max_rows_per_chunk: int, budget: DecodeBudget, metrics: Any = None, batcher: Batcher | None = None
    ) -> None:
        self.repository = repository
        defaults = ServerSettings()
        self.batcher = batcher or Batcher(defaults.batch_max_delay_ms / 1e3, defaults.batch_max_rows)
        self.max_rows_per_chunk = max_rows_per_chunk
        self.budget = budget
        self.metrics = metrics  # read by handle_errors

    @handle_errors
    def ServerLive(self, request: oip.ServerLiveRequest, context: grpc.ServicerContext) -> oip.ServerLiveResponse:
        return oip.ServerLiveResponse(live=True)

    @handle_errors
    def ServerReady(self, request: oip.ServerReadyRequest, context: grpc.ServicerContext) -> oip.ServerReadyResponse:
        return oip.ServerReadyResponse(ready=bool(self.repository.scores))

    @handle_errors
    def ModelReady(self, request: oip.ModelReadyRequest, context: grpc.ServicerContext) -> oip.ModelReadyResponse:
        try:
            self.repository.get(request.name, request.version or None)
        except ModelNotFound:
            return oip.ModelReadyResponse(ready=False)
        return oip.ModelReadyResponse(ready=True)

    @handle_errors
    def ServerMetadata(self, request: oip.ServerMetadataRequest, context: grpc.ServicerContext) -> oip.ServerMetadataResponse:
        return oip.ServerMetadataResponse(name="scorecast", version=__version__, extensions=["model_stream_infer"])

    @handle_errors
    def ModelMetadata(self, request: oip.ModelMetadataRequest, context: grpc.ServicerContext) -> oip.ModelMetadataResponse:
        model = self.repository.get(request.name, request.version or None)
        tensor = oip.ModelMetadataResponse.TensorMetadata
        return oip.ModelMetadataResponse(
            name=model.meta.score,
            versions=self.repository.versions(model.meta.score),
            platform="onnxruntime_onnx",
            inputs=[tensor(name=n, datatype=d, shape=[-1]) for n, d in model_inputs(model)],
            outputs=[tensor(name=n, datatype=d, shape=[-1]) for n, d in model_outputs(model)],
        )

    def _infer(self, request: oip.ModelInferRequest, context: grpc.ServicerContext | None = None) -> oip.ModelInferResponse:
        """One inference; with ``context`` (unary ModelInfer), batched with other calls (server/batching.py)."""
        call = current_call()
        call.scores = (request.model_name,)
        with self.batcher.incoming() as incoming:
            spec = spec_from_parameters(request.model_name, request.model_version, request.parameters)
            pipeline = ScoringPipeline(self.repository, spec, self.max_rows_per_chunk)
            tables = tables_from_request(request, self.budget)
            if context is None:  # a ModelStreamInfer message: its stream's answers are in order, each scored alone
                batch = pipeline.score(tables)
            else:
                batch = incoming.score(batch_key(pipeline, "as_of" in request.parameters), pipeline, tables, context)
        for stage, seconds in pipeline.seconds.items():
            call.stages[stage] = call.stages.get(stage, 0.0) + seconds
        call.rows += batch.num_rows
        wanted = [o.name for o in request.outputs]
        unknown = [w for w in wanted if w not in batch.schema.names]
        if unknown:
            raise InvalidArgument("outputs", unknown, f"{request.model_name} gives {batch.schema.names}")
        model = pipeline.models[0]
        response = oip.ModelInferResponse(model_name=model.meta.score, model_version=model.meta.version, id=request.id)
        encode_outputs(batch, wanted, response)
        return response

    @handle_errors
    def ModelInfer(self, request: oip.ModelInferRequest, context: grpc.ServicerContext) -> oip.ModelInferResponse:
        return self._infer(request, context)

    @handle_errors
    def ModelStreamInfer(
        self, request_iterator: Iterator[oip.ModelInferRequest], context: grpc.ServicerContext
    ) -> Iterator[oip.ModelStreamInferResponse]:
        # As Triton does: a request that fails gets an error_message and the stream goes on;
        # the message starts with the status code a unary ModelInfer would have returned.
        for request in request_iterator:
            if not context.is_active():
                return
            try:
                yield oip.ModelStreamInferResponse(infer_response=self._infer(request))
            except ScorecastError as exc:
                yield oip.ModelStreamInferResponse(error_message=f"{exc.status.name}: {exc}")
            except InputError as exc:
                yield oip.ModelStreamInferResponse(error_message=f"{grpc.StatusCode.INVALID_ARGUMENT.name}: {exc}")
