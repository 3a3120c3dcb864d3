"""The Open Inference Protocol (KServe V2) servicer: ``inference.GRPCInferenceService`` beside
scorecast.v1 on the same port, so KServe, Seldon and Triton clients can call scorecast.

Each score is a model: its name is ``<account>/<score>``, or plain ``<score>`` for the default
account; its version is the model version. A ModelInfer request is one chunk: its tensors
become Arrow tables (server/tensors.py), the same ``ScoringPipeline`` the native servicer
calls scores them, and the batch's columns come back as raw output tensors. Options are
request parameters named as in ``ScoreOptions`` (``scorecast.options.spec_from_parameters``:
``as_of`` as an ISO-8601 string or INT64 µs, ``product_groups`` comma-separated).
Errors, request ids, metrics and the log line come from ``servicer.handle_errors``.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import grpc

from scorecast import __version__
from scorecast.accounts import DEFAULT_ACCOUNT
from scorecast.kernels import InputError, required_columns
from scorecast.kernels.contact_features import PREFIX as ATTRIBUTE_PREFIX
from scorecast.metadata import REQUEST_PREFIX
from scorecast.options import spec_from_parameters
from scorecast.proto import oip, oip_rpc
from scorecast.tables import TABLES

from .accounts import AccountRegistry
from .batching import Batcher, batch_key
from .config import ServerSettings
from .errors import AccountNotFound, InvalidArgument, ModelNotFound, ScorecastError
from .limits import DecodeBudget
from .pipeline import ScoringPipeline
from .runtime import OnnxModel
from .security import caller_accounts
from .servicer import account_models, current_call, handle_errors
from .tensors import INPUT_DATATYPES, encode_outputs, output_datatype, tables_from_request

__all__ = ["OipServicer", "model_name"]

def model_name(name: str) -> tuple[str, str]:
    """``(account, score)`` of an OIP model name: ``<account>/<score>``, or ``<score>`` for the
    default account (account names hold no ``/``)."""
    account, _, score = name.rpartition("/")
    return (account, score) if account else (DEFAULT_ACCOUNT, score)


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
    """inference.GRPCInferenceService over the accounts the native servicer serves."""

    def __init__(
        self, registry: AccountRegistry, max_rows_per_chunk: int, budget: DecodeBudget, metrics: Any = None, batcher: Batcher | None = None
    ) -> None:
        self.registry = registry
        self.batcher = batcher or Batcher.from_settings(ServerSettings())
        self.max_rows_per_chunk = max_rows_per_chunk
        self.budget = budget
        self.metrics = metrics  # read by handle_errors

    @handle_errors
    def ServerLive(self, request: oip.ServerLiveRequest, context: grpc.ServicerContext) -> oip.ServerLiveResponse:
        return oip.ServerLiveResponse(live=True)

    @handle_errors
    def ServerReady(self, request: oip.ServerReadyRequest, context: grpc.ServicerContext) -> oip.ServerReadyResponse:
        return oip.ServerReadyResponse(ready=bool(self.registry.known()))

    @handle_errors
    def ModelReady(self, request: oip.ModelReadyRequest, context: grpc.ServicerContext) -> oip.ModelReadyResponse:
        # open without a token, like health: it answers from what is loaded and never loads an
        # account; for an account outside the caller's scope, as for a missing one (not ready)
        account, score = model_name(request.name)
        try:
            self.registry.visible(account, caller_accounts.get())
        except AccountNotFound:
            return oip.ModelReadyResponse(ready=False)
        repository = self.registry.repository(account)
        if repository is None:
            return oip.ModelReadyResponse(ready=False)
        try:
            repository.get(score, request.version or None)
        except ModelNotFound:
            return oip.ModelReadyResponse(ready=False)
        return oip.ModelReadyResponse(ready=True)

    @handle_errors
    def ServerMetadata(self, request: oip.ServerMetadataRequest, context: grpc.ServicerContext) -> oip.ServerMetadataResponse:
        return oip.ServerMetadataResponse(name="scorecast", version=__version__, extensions=["model_stream_infer"])

    @handle_errors
    def ModelMetadata(self, request: oip.ModelMetadataRequest, context: grpc.ServicerContext) -> oip.ModelMetadataResponse:
        account, score = model_name(request.name)
        with account_models(self.registry, account, scan=True, scores=[score]) as repository:
            model = repository.get(score, request.version or None)
            versions = repository.versions(model.meta.score)
        tensor = oip.ModelMetadataResponse.TensorMetadata
        return oip.ModelMetadataResponse(
            name=request.name,
            versions=versions,
            platform="onnxruntime_onnx",
            inputs=[tensor(name=n, datatype=d, shape=[-1]) for n, d in model_inputs(model)],
            outputs=[tensor(name=n, datatype=d, shape=[-1]) for n, d in model_outputs(model)],
        )

    def _infer(self, request: oip.ModelInferRequest, context: grpc.ServicerContext | None = None) -> oip.ModelInferResponse:
        """One inference; with ``context`` (unary ModelInfer), batched with other calls (server/batching.py)."""
        call = current_call()
        account, score = model_name(request.model_name)
        call.scores = (score,)
        spec = spec_from_parameters(score, request.model_version, request.parameters, account)
        with account_models(self.registry, account, scan=False, scores=[score]) as repository, self.batcher.incoming() as incoming:
            pipeline = ScoringPipeline(repository, spec, self.max_rows_per_chunk)
            tables = tables_from_request(request, self.budget)
            if context is None:  # a ModelStreamInfer message: its stream's answers are in order, each scored alone
                batch = pipeline.score(tables)
            else:  # the key holds the account (in the spec)
                batch = incoming.score(batch_key(pipeline, "as_of" in request.parameters), pipeline, tables, context)
        for stage, seconds in pipeline.seconds.items():
            call.stages[stage] = call.stages.get(stage, 0.0) + seconds
        call.rows += batch.num_rows
        wanted = [o.name for o in request.outputs]
        unknown = [w for w in wanted if w not in batch.schema.names]
        if unknown:
            raise InvalidArgument("outputs", unknown, f"{request.model_name} gives {batch.schema.names}")
        model = pipeline.models[0]
        response = oip.ModelInferResponse(model_name=request.model_name, model_version=model.meta.version, id=request.id)
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
