"""server/metrics.py through a running server: /metrics counts calls, rows, errors, stages, loads."""

from __future__ import annotations

import urllib.request
from collections.abc import Iterator

import grpc
import pyarrow as pa
import pytest
from prometheus_client.parser import text_string_to_metric_families

from scorecast.client import ScorecastClient
from scorecast.server.app import RunningServer, start_server
from scorecast.server.config import ServerSettings
from scorecast.server.repository import ModelRepository

from .conftest import AS_OF_US

AS_OF = pa.scalar(AS_OF_US, pa.timestamp("us", tz="UTC")).as_py()


@pytest.fixture
def running(repository: ModelRepository) -> Iterator[RunningServer]:
    server = start_server(ServerSettings(port=0, metrics_port=0, reload_interval_s=0), repository)
    yield server
    server.stop(0)


def _scrape(port: int) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10).read().decode()
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value for family in text_string_to_metric_families(text) for s in family.samples
    }


def test_metrics_count_what_happened(running: RunningServer, orders: pa.Table) -> None:
    assert running.metrics_port
    with ScorecastClient(f"127.0.0.1:{running.port}", timeout=30) as client:
        for _ in range(3):
            client.score_batch({"orders": orders}, ["spend", "segments"], as_of=AS_OF)
        list(client.score([{"orders": orders}, {"orders": orders}], ["spend"], as_of=AS_OF))
        with pytest.raises(grpc.RpcError):
            client.score_batch({"orders": orders.drop_columns(["amount"])}, ["spend"], as_of=AS_OF)
        with pytest.raises(grpc.RpcError):
            client.get_model("nope")
    m = _scrape(running.metrics_port)
    assert m[("scorecast_requests_total", (("code", "OK"), ("method", "ScoreBatch")))] == 3
    assert m[("scorecast_requests_total", (("code", "INVALID_ARGUMENT"), ("method", "ScoreBatch")))] == 1
    assert m[("scorecast_requests_total", (("code", "NOT_FOUND"), ("method", "GetModel")))] == 1
    assert m[("scorecast_requests_total", (("code", "OK"), ("method", "Score")))] == 1
    # the fixture orders hold 3 contacts (7, 3, 9): 3 batches + a 2-chunk stream for spend
    assert m[("scorecast_rows_total", (("score", "spend"),))] == 3 * 3 + 2 * 3
    assert m[("scorecast_rows_total", (("score", "segments"),))] == 3 * 3
    assert m[("scorecast_score_errors_total", (("code", "INVALID_ARGUMENT"), ("score", "spend")))] == 1
    assert m[("scorecast_request_seconds_count", (("method", "ScoreBatch"),))] == 4
    for stage in ("features", "onnx", "assemble"):
        assert m[("scorecast_stage_seconds_total", (("stage", stage),))] > 0
    assert m[("scorecast_models_served", ())] == 3
    assert m[("scorecast_model_load_seconds", (("score", "spend"), ("version", "1")))] > 0


def test_no_endpoint_by_default(repository: ModelRepository) -> None:
    server = start_server(ServerSettings(port=0, reload_interval_s=0), repository)
    try:
        assert server.metrics_port is None
    finally:
        server.stop(0)
