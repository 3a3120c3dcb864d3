"""The Open Inference Protocol servicer against a running server: same values as ScoreBatch,
raw and typed contents, metadata, streaming, and errors that name the tensor."""

from __future__ import annotations

import struct
from collections.abc import Iterator
from datetime import UTC, datetime

import grpc
import numpy as np
import pyarrow as pa
import pytest

from scorecast.client import ScorecastClient
from scorecast.proto import oip, oip_rpc
from scorecast.server.app import RunningServer

from .conftest import AS_OF_US

AS_OF = datetime(2026, 1, 1, tzinfo=UTC)


@pytest.fixture
def stub(server: RunningServer) -> Iterator[oip_rpc.GRPCInferenceServiceStub]:
    with grpc.insecure_channel(f"127.0.0.1:{server.port}") as channel:
        yield oip_rpc.GRPCInferenceServiceStub(channel)


def _raw_bytes(values: list[str]) -> bytes:
    return b"".join(struct.pack("<I", len(v.encode())) + v.encode() for v in values)


def infer_request(score: str, orders: pa.Table, typed: bool = False) -> oip.ModelInferRequest:
    """A ModelInfer request carrying every column of ``orders`` as one tensor each."""
    request = oip.ModelInferRequest(model_name=score)
    request.parameters["as_of"].int64_param = AS_OF_US
    columns = {
        "orders.contact_id": ("INT64", np.asarray(orders["contact_id"].to_numpy(), "<i8")),
        "orders.ts": ("INT64", orders["ts"].cast(pa.int64()).to_numpy()),
        "orders.amount": ("FP64", orders["amount"].to_numpy(zero_copy_only=False)),
        "orders.product_group": ("BYTES", orders["product_group"].to_pylist()),
    }
    for name, (datatype, values) in columns.items():
        tensor = request.inputs.add(name=name, datatype=datatype, shape=[len(values)])
        if typed:
            field = {"INT64": "int64_contents", "FP64": "fp64_contents", "BYTES": "bytes_contents"}[datatype]
            getattr(tensor.contents, field).extend([v.encode() for v in values] if datatype == "BYTES" else values.tolist())
        else:
            request.raw_input_contents.append(_raw_bytes(values) if datatype == "BYTES" else values.tobytes())
    return request


def outputs(response: oip.ModelInferResponse) -> dict[str, list]:
    """The response's raw outputs as Python lists (BYTES decoded)."""
    result: dict[str, list] = {}
    for tensor, raw in zip(response.outputs, response.raw_output_contents, strict=True):
        if tensor.datatype == "BYTES":
            values, at = [], 0
            while at < len(raw):
                (n,) = struct.unpack_from("<I", raw, at)
                values.append(raw[at + 4 : at + 4 + n].decode())
                at += 4 + n
        else:
            values = np.frombuffer(raw, {"FP32": "<f4", "FP64": "<f8", "INT64": "<i8", "INT32": "<i4"}[tensor.datatype]).tolist()
        assert len(values) == tensor.shape[0]
        result[tensor.name] = values
    return result


def _null_encoded(column: pa.Array) -> list:
    """A native column as the OIP output carries it: nulls as empty bytes, NaN or the int minimum."""
    if pa.types.is_dictionary(column.type):
        return column.cast(pa.string()).fill_null("").to_pylist()
    if pa.types.is_floating(column.type):
        return [float("nan") if v is None else v for v in column.to_pylist()]
    if pa.types.is_timestamp(column.type):
        column = column.cast(pa.int64())
    return column.fill_null(np.iinfo("int64" if column.type == pa.int64() else "int32").min).to_pylist()


@pytest.mark.parametrize("score", ["spend", "affinity", "segments"])
@pytest.mark.parametrize("typed", [False, True])
def test_model_infer_matches_score_batch(stub, client: ScorecastClient, orders: pa.Table, score: str, typed: bool) -> None:
    got = outputs(stub.ModelInfer(infer_request(score, orders, typed)))
    native = client.score_batch({"orders": orders}, [score], as_of=AS_OF)
    assert list(got) == native.schema.names
    for name in native.schema.names:
        column = native.column(name)
        assert got[name] == pytest.approx(_null_encoded(column), nan_ok=True), (name, got[name], column)


def test_response_names_model_version_and_id(stub, orders: pa.Table) -> None:
    request = infer_request("spend", orders)
    request.id = "req-1"
    request.outputs.add(name="spend.value")
    response = stub.ModelInfer(request)
    assert (response.model_name, response.model_version, response.id) == ("spend", "1", "req-1")
    assert [o.name for o in response.outputs] == ["spend.value"]


def test_metadata_lists_the_inputs_and_outputs(stub, server: RunningServer) -> None:
    meta = stub.ModelMetadata(oip.ModelMetadataRequest(name="segments"))
    assert meta.versions == ["1"]
    assert [(t.name, t.datatype, list(t.shape)) for t in meta.inputs] == [("orders.contact_id", "INT64", [-1]), ("orders.ts", "INT64", [-1])]
    assert [(t.name, t.datatype) for t in meta.outputs][0] == ("contact_id", "INT64")
    assert ("segments.segment", "BYTES") in [(t.name, t.datatype) for t in meta.outputs]
    assert stub.ServerLive(oip.ServerLiveRequest()).live
    assert stub.ServerReady(oip.ServerReadyRequest()).ready
    assert stub.ModelReady(oip.ModelReadyRequest(name="spend")).ready
    assert not stub.ModelReady(oip.ModelReadyRequest(name="nope")).ready
    assert "model_stream_infer" in stub.ServerMetadata(oip.ServerMetadataRequest()).extensions


def test_stream_infer_answers_each_request_and_reports_errors_inline(stub, orders: pa.Table) -> None:
    bad = infer_request("spend", orders)
    bad.inputs[2].datatype = "BYTES"
    responses = list(stub.ModelStreamInfer(iter([infer_request("spend", orders), bad, infer_request("segments", orders)])))
    assert [r.infer_response.model_name for r in responses] == ["spend", "", "segments"]
    assert responses[1].error_message.startswith("INVALID_ARGUMENT: inputs['orders.amount'].datatype")


@pytest.mark.parametrize(
    ("spoil", "named"),
    [
        (lambda r: setattr(r.inputs[2], "datatype", "BYTES"), "inputs['orders.amount'].datatype"),
        (lambda r: r.inputs[1].shape.__setitem__(0, 9), "inputs['orders.ts'].shape"),
        (lambda r: setattr(r.inputs[3], "name", "orders.colour"), "inputs['orders.colour']"),
        (lambda r: r.raw_input_contents.__setitem__(2, b"\x00" * 5), "inputs['orders.amount']"),
        (lambda r: r.parameters["horizon_days"].CopyFrom(oip.InferParameter(string_param="x")), "parameters['horizon_days']"),
        (lambda r: r.parameters["as_of"].CopyFrom(oip.InferParameter(string_param="yesterday")), "parameters['as_of']"),
    ],
)
def test_bad_input_is_invalid_argument_naming_the_tensor(stub, orders: pa.Table, spoil, named: str) -> None:
    request = infer_request("spend", orders)
    spoil(request)
    with pytest.raises(grpc.RpcError) as caught:
        stub.ModelInfer(request)
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert named in caught.value.details()


def test_unknown_model_is_not_found_and_counted(stub, orders: pa.Table, server: RunningServer) -> None:
    with pytest.raises(grpc.RpcError) as caught:
        stub.ModelInfer(infer_request("nope", orders))
    assert caught.value.code() == grpc.StatusCode.NOT_FOUND
    stub.ModelInfer(infer_request("spend", orders))
    assert server.metrics.requests.labels("ModelInfer", "NOT_FOUND")._value.get() == 1
    assert server.metrics.requests.labels("ModelInfer", "OK")._value.get() == 1


def test_roles_and_admission_of_oip_methods() -> None:
    """Probes are open and free like health; metadata and inference need ``score``; inference takes slots."""
    from scorecast.server.admission import ADMITTED_OIP_METHODS
    from scorecast.server.security import TokenAuthInterceptor

    auth = TokenAuthInterceptor(())
    service = "/inference.GRPCInferenceService"
    roles = {m: auth.role_for(f"{service}/{m}") for m in ("ServerLive", "ServerReady", "ModelReady", "ModelMetadata", "ModelInfer", "ModelStreamInfer")}
    assert roles == {"ServerLive": None, "ServerReady": None, "ModelReady": None, "ModelMetadata": "score", "ModelInfer": "score",
                     "ModelStreamInfer": "score"}
    assert ADMITTED_OIP_METHODS == {f"{service}/ModelInfer", f"{service}/ModelStreamInfer"}


def test_contacts_tensor_gives_contacts_without_orders_a_row(stub, client: ScorecastClient, orders: pa.Table, contacts: pa.Table) -> None:
    request = infer_request("spend", orders)
    request.inputs.add(name="contacts.contact_id", datatype="INT64", shape=[contacts.num_rows])
    request.raw_input_contents.append(np.asarray(contacts["contact_id"].to_numpy(), "<i8").tobytes())
    got = outputs(stub.ModelInfer(request))
    native = client.score_batch({"orders": orders, "contacts": contacts}, ["spend"], as_of=AS_OF)
    assert got["contact_id"] == native.column("contact_id").to_pylist() == [3, 9, 7, 11]
    assert got["spend.value"] == pytest.approx(_null_encoded(native.column("spend.value")), nan_ok=True)


def test_metadata_of_a_model_reading_contact_attributes() -> None:
    """Attributes compared with a value are BYTES, numeric ones FP64, and contacts.contact_id comes with them."""
    from types import SimpleNamespace

    from scorecast.server.oip import model_inputs

    model = SimpleNamespace(meta=SimpleNamespace(features=("attr:industry=retail", "attr:employees", "frequency", "request:horizon_days")))
    assert model_inputs(model) == [  # type: ignore[arg-type]
        ("contacts.contact_id", "INT64"),
        ("contacts.employees", "FP64"),
        ("contacts.industry", "BYTES"),
        ("orders.contact_id", "INT64"),
        ("orders.ts", "INT64"),
    ]


def test_fp32_numbers_are_accepted(stub, orders: pa.Table) -> None:
    as_fp64 = outputs(stub.ModelInfer(infer_request("spend", orders)))
    request = infer_request("spend", orders)
    request.inputs[2].datatype = "FP32"
    request.raw_input_contents[2] = orders["amount"].to_numpy().astype("<f4").tobytes()
    as_fp32 = outputs(stub.ModelInfer(request))
    assert as_fp32.keys() == as_fp64.keys()
    for name, values in as_fp64.items():
        assert as_fp32[name] == pytest.approx(values, nan_ok=True), name


def test_model_names_carry_the_account(stub, orders: pa.Table) -> None:
    """``<account>/<score>`` names an account's model; an unknown account is NOT_FOUND, and not ready."""
    assert outputs(stub.ModelInfer(infer_request("spend", orders))).keys() == {"contact_id", "spend.value"}
    request = infer_request("spend", orders)
    request.model_name = "acme/spend"
    with pytest.raises(grpc.RpcError) as caught:
        stub.ModelInfer(request)
    assert caught.value.code() == grpc.StatusCode.NOT_FOUND
    assert caught.value.details() == "account 'acme' not found"
    assert not stub.ModelReady(oip.ModelReadyRequest(name="acme/spend")).ready
    with pytest.raises(grpc.RpcError) as caught:
        stub.ModelMetadata(oip.ModelMetadataRequest(name="acme/spend"))
    assert caught.value.code() == grpc.StatusCode.NOT_FOUND


def test_model_name_parts() -> None:
    from scorecast.server.oip import model_name

    assert model_name("spend") == ("", "spend")
    assert model_name("acme/spend") == ("acme", "spend")
