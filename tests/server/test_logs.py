"""server/logs.py: request ids (the caller's or a new one) in trailing metadata and on every
log line of the call; the JSON formatter's one object per line."""

from __future__ import annotations

import io
import json
import logging
import sys
from collections.abc import Iterator

import grpc
import pyarrow as pa
import pytest

from scorecast.client import ScorecastClient, encode_table, header
from scorecast.proto import pb
from scorecast.server.app import RunningServer
from scorecast.server.logs import REQUEST_ID_HEADER, JsonFormatter, configure, new_request_id

from .conftest import AS_OF_US


@pytest.fixture
def json_lines() -> Iterator[io.StringIO]:
    """Capture the root logger as JSON lines at INFO, restoring it afterwards."""
    root = logging.getLogger()
    saved = (list(root.handlers), root.level)
    configure("json", logging.INFO)
    buffer = io.StringIO()
    root.handlers[0].setStream(buffer)  # type: ignore[attr-defined]
    yield buffer
    root.handlers[:], root.level = saved


def _trailing_id(call: grpc.Call) -> str:
    return dict(call.trailing_metadata())[REQUEST_ID_HEADER]


def test_caller_request_id_is_echoed_and_logged(server: RunningServer, orders: pa.Table, json_lines: io.StringIO) -> None:
    with ScorecastClient(f"127.0.0.1:{server.port}") as client:
        request = pb.ScoreBatchRequest(header=header(["spend"]), chunk=pb.ContactChunk(tables={}))
        request.header.options.as_of.FromMicroseconds(AS_OF_US)
        request.chunk.tables["orders"] = encode_table(orders)
        _, call = client.stub.ScoreBatch.with_call(request, metadata=((REQUEST_ID_HEADER, "crm-42"),))
        assert _trailing_id(call) == "crm-42"
        with pytest.raises(grpc.RpcError) as err:
            client.stub.GetModel(pb.GetModelRequest(score="nope"), metadata=((REQUEST_ID_HEADER, "crm-43"),))
        assert _trailing_id(err.value) == "crm-43"  # errors carry it too
        _, call = client.stub.ListModels.with_call(pb.ListModelsRequest())
        generated = _trailing_id(call)
        assert len(generated) == 16
    lines = [json.loads(line) for line in json_lines.getvalue().splitlines()]
    calls = {line["request_id"]: line for line in lines if line.get("event") == "call"}
    assert calls["crm-42"]["method"] == "ScoreBatch" and calls["crm-42"]["code"] == "OK" and calls["crm-42"]["rows"] == 3
    assert calls["crm-43"]["code"] == "NOT_FOUND"
    assert calls[generated]["method"] == "ListModels"
    assert all({"ts", "level", "logger", "message"} <= set(line) for line in lines)


def test_odd_request_ids_are_replaced() -> None:
    assert new_request_id([(REQUEST_ID_HEADER, "ok-1")]) == "ok-1"
    for bad in ("", "x" * 200, "has space", "new\nline"):
        assert new_request_id([(REQUEST_ID_HEADER, bad)]) != bad


def test_json_formatter_keeps_extras_and_exceptions() -> None:
    record = logging.LogRecord("scorecast.x", logging.ERROR, __file__, 1, "failed %s", ("here",), None)
    record.request_id, record.rows = "r1", 5
    try:
        raise ValueError("boom")
    except ValueError:
        record.exc_info = sys.exc_info()
    entry = json.loads(JsonFormatter().format(record))
    assert entry["message"] == "failed here" and entry["request_id"] == "r1" and entry["rows"] == 5
    assert "ValueError: boom" in entry["exc"] and entry["ts"].endswith("Z")
