"""Hot reload (server/repository.py reload, server/app.py poller, ReloadModels): new versions
swap in atomically, in-flight requests finish on the old models, bad files leave the old
ones serving and GetModel says why; plus the model-file checks of server/runtime.py."""

from __future__ import annotations

import json
import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import grpc
import numpy as np
import onnx
import pyarrow as pa
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from scorecast.client import ScorecastClient
from scorecast.metadata import METADATA_KEY, ModelMetadata
from scorecast.proto import SERVICE_NAME
from scorecast.server.app import RunningServer, start_server
from scorecast.server.config import ServerSettings
from scorecast.server.repository import ModelRepository
from scorecast.server.runtime import DEFAULT_SESSION_OPTIONS, SessionOptions

from ..support.fakes import linear_model, segment_model, write_model
from .conftest import AS_OF_US

AS_OF = pa.scalar(AS_OF_US, pa.timestamp("us", tz="UTC")).as_py()


def _with_params(model: onnx.ModelProto, **params: object) -> onnx.ModelProto:
    meta = ModelMetadata.from_json(next(p.value for p in model.metadata_props if p.key == METADATA_KEY))
    meta = ModelMetadata(**{**meta.__dict__, "params": {**meta.params, **params}})
    onnx.helper.set_model_props(model, {METADATA_KEY: meta.to_json()})
    return model


def _drop(root: Path, model: onnx.ModelProto) -> Path:
    """Write a model file the way an operator should: aside, then renamed into place."""
    path = write_model(root.parent / "staging", model)
    target = root / path.parent.name / path.name
    target.parent.mkdir(parents=True, exist_ok=True)
    os.replace(path, target)
    return target


@pytest.fixture
def root(tmp_path: Path) -> Path:
    root = tmp_path / "models"
    write_model(root, linear_model(version="1", weights=(1.0, 10.0)))
    return root


@pytest.fixture
def running(root: Path) -> Iterator[RunningServer]:
    server = start_server(ServerSettings(port=0, models=root, reload_interval_s=0))
    yield server
    server.stop(0)


@pytest.fixture
def client(running: RunningServer) -> Iterator[ScorecastClient]:
    with ScorecastClient(f"127.0.0.1:{running.port}", timeout=30) as c:
        yield c


def _value(client: ScorecastClient, orders: pa.Table, **options: object) -> list[float]:
    return client.score_batch({"orders": orders}, ["spend"], as_of=AS_OF, **options).column("spend.value").to_pylist()


def test_new_version_swaps_in_and_old_stays_pinnable(root: Path, client: ScorecastClient, orders: pa.Table) -> None:
    before = _value(client, orders)
    _drop(root, linear_model(version="2", weights=(2.0, 20.0)))
    report = client.reload_models()
    assert [(m.score, m.version) for m in report.loaded] == [("spend", "2")] and not report.failures
    assert _value(client, orders) == [2 * v for v in before]
    assert _value(client, orders, model_versions={"spend": "1"}) == before
    assert list(client.get_model("spend").available_versions) == ["1", "2"]
    assert client.reload_models().loaded == []  # nothing changed: nothing loaded again


def test_removed_file_is_unloaded_and_health_follows(root: Path, running: RunningServer, client: ScorecastClient) -> None:
    _drop(root, segment_model())
    client.reload_models()
    health = health_pb2_grpc.HealthStub(client.channel)
    status = health.Check(health_pb2.HealthCheckRequest(service=f"{SERVICE_NAME}/segments")).status
    assert status == health_pb2.HealthCheckResponse.SERVING
    (root / "segments" / "1.onnx").unlink()
    report = client.reload_models()
    assert [(m.score, m.version) for m in report.unloaded] == [("segments", "1")]
    status = health.Check(health_pb2.HealthCheckRequest(service=f"{SERVICE_NAME}/segments")).status
    assert status == health_pb2.HealthCheckResponse.NOT_SERVING
    assert list(report.scores) == ["spend"]


@pytest.mark.parametrize("breakage", ["garbage-new-version", "garbage-over-served-version", "failed-probe"])
def test_bad_file_leaves_the_old_model_serving(root: Path, client: ScorecastClient, orders: pa.Table, breakage: str) -> None:
    before = _value(client, orders)
    if breakage == "garbage-new-version":
        (root / "spend" / "2.onnx").write_bytes(b"\x08\x01garbage")
        bad, why = "2", "not an ONNX model"
    elif breakage == "garbage-over-served-version":
        (root / "spend" / "1.onnx").write_bytes(b"\x08\x01garbage")
        bad, why = "1", "not an ONNX model"
    else:  # a graph whose outputs are not what training recorded for its probe rows
        model = _with_params(linear_model(version="2", weights=(2.0, 20.0)), probe={"features": [[1.0, 1.0]], "outputs": {"value": [[11.0]]}})
        _drop(root, model)
        bad, why = "2", "parity probe failed on output 'value'"
    report = client.reload_models()
    assert [f.path for f in report.failures] == [f"spend/{bad}.onnx"] and why in report.failures[0].reason
    assert _value(client, orders) == before  # still the old version 1
    info = client.get_model("spend")
    assert info.version == "1" and why in info.failed_versions[bad]
    if bad != "1":
        with pytest.raises(grpc.RpcError) as err:
            client.get_model("spend", bad)
        assert err.value.code() == grpc.StatusCode.NOT_FOUND and why in err.value.details()
    # fixing the file loads it on the next reload and clears the failure
    _drop(root, linear_model(version=bad, weights=(3.0, 30.0)))
    report = client.reload_models()
    assert [(m.score, m.version) for m in report.loaded] == [("spend", bad)] and not report.failures
    assert not client.get_model("spend").failed_versions


def test_passing_probe_loads(root: Path, client: ScorecastClient) -> None:
    model = _with_params(linear_model(version="2", weights=(2.0, 20.0)), probe={"features": [[1.0, 1.0], [0, 3]], "outputs": {"value": [[22.0], [60.0]]}})
    _drop(root, model)
    assert [(m.score, m.version) for m in client.reload_models().loaded] == [("spend", "2")]


def test_in_flight_stream_finishes_on_the_model_it_started_with(root: Path, client: ScorecastClient, orders: pa.Table) -> None:
    gate = threading.Event()
    first_scored = threading.Event()

    def chunks() -> Iterator[dict[str, pa.Table]]:
        yield {"orders": orders}
        gate.wait(30)  # the second chunk goes only after the reload
        yield {"orders": orders}

    results: list[pa.RecordBatch] = []

    def consume() -> None:
        for batch in client.score(chunks(), ["spend"], as_of=AS_OF):
            results.append(batch)
            first_scored.set()  # the stream's pipeline (and its models) exists by now

    thread = threading.Thread(target=consume)
    thread.start()
    assert first_scored.wait(30)
    _drop(root, linear_model(version="2", weights=(2.0, 20.0)))
    assert client.reload_models().loaded  # version 2 is now the default...
    gate.set()
    thread.join(30)
    first, second = (b.column("spend.value").to_pylist() for b in results)
    assert first == second  # ...but the stream kept version 1 for its second chunk
    assert _value(client, orders) == [2 * v for v in first]


def test_reload_under_load_fails_no_request(root: Path, running: RunningServer, orders: pa.Table) -> None:
    """Six reloads (old versions deleted as they go) while four callers score: no call fails, and
    each version is answered by a call that began after its reload before the next one."""
    stop = threading.Event()
    answered = threading.Condition()
    errors: list[BaseException] = []
    seen: set[float] = set()
    reloads = 0  # reloads done
    caught_up = 0  # the most reloads done before a call that has since answered began

    def caller() -> None:
        nonlocal caught_up
        with ScorecastClient(f"127.0.0.1:{running.port}", timeout=30) as c:
            while not stop.is_set():
                before = reloads
                try:
                    value = _value(c, orders)[0]
                except BaseException as exc:  # noqa: BLE001 - any failure is the finding
                    errors.append(exc)
                    value = None
                with answered:
                    if value is not None:
                        seen.add(value)
                    caught_up = max(caught_up, before)
                    answered.notify_all()

    threads = [threading.Thread(target=caller) for _ in range(4)]
    for t in threads:
        t.start()
    try:
        for version in range(2, 8):
            _drop(root, linear_model(version=str(version), weights=(float(version), 10.0 * version)))
            running.reload()
            if version > 3:
                (root / "spend" / f"{version - 2}.onnx").unlink()  # old versions go away too
            with answered:
                reloads += 1
                assert answered.wait_for(lambda: caught_up >= reloads or errors, timeout=30), "no call answered after a reload"
    finally:
        stop.set()
        for t in threads:
            t.join(30)
    assert not errors
    assert len(seen) >= 3  # the callers really saw several versions


def test_poller_picks_up_a_dropped_file(root: Path, orders: pa.Table) -> None:
    server = start_server(ServerSettings(port=0, models=root, reload_interval_s=0.1))
    try:
        _drop(root, linear_model(version="2", weights=(2.0, 20.0)))
        deadline = time.monotonic() + 20
        while server.repository.versions("spend") != ["1", "2"] and time.monotonic() < deadline:
            time.sleep(0.05)
        assert server.repository.versions("spend") == ["1", "2"]
    finally:
        server.stop(0)


def test_reload_needs_admin_role(root: Path, tmp_path: Path) -> None:
    from scorecast.server.security import hash_token

    tokens = tmp_path / "tokens.json"
    entries = [
        {"token_sha256": hash_token("app-token"), "name": "app", "roles": ["score"]},
        {"token_sha256": hash_token("ops-token"), "name": "ops", "roles": ["admin"]},
    ]
    tokens.write_text(json.dumps({"tokens": entries}))
    server = start_server(ServerSettings(port=0, models=root, tokens_file=tokens, reload_interval_s=0))
    try:
        with ScorecastClient(f"127.0.0.1:{server.port}", token="app-token") as app:
            with pytest.raises(grpc.RpcError) as err:
                app.reload_models()
            assert err.value.code() == grpc.StatusCode.PERMISSION_DENIED
        with ScorecastClient(f"127.0.0.1:{server.port}", token="ops-token") as ops:
            assert list(ops.reload_models().scores) == ["spend"]
    finally:
        server.stop(0)


# --- model-file checks ------------------------------------------------------------------


def _reason(root: Path, model_or_bytes: onnx.ModelProto | bytes, options: SessionOptions = DEFAULT_SESSION_OPTIONS) -> str:
    path = root / "spend" / "9.onnx"
    path.write_bytes(model_or_bytes if isinstance(model_or_bytes, bytes) else model_or_bytes.SerializeToString())
    repo = ModelRepository.load(root, options)
    assert repo.versions("spend") == ["1"]
    return repo.failures[path]


def test_oversized_file_is_refused_unparsed(root: Path) -> None:
    limit = (root / "spend" / "1.onnx").stat().st_size + 100
    big = _with_params(linear_model(version="9"), notes="x" * 10_000)
    assert f"over the limit of {limit} (setting max_model_bytes)" in _reason(root, big, SessionOptions(max_model_bytes=limit))


def test_foreign_operator_set_is_refused(root: Path) -> None:
    model = linear_model(version="9")
    model.opset_import.append(onnx.helper.make_opsetid("com.example.custom", 1))
    assert "imports operator set 'com.example.custom'" in _reason(root, model)


def test_too_old_opset_is_refused(root: Path) -> None:
    model = linear_model(version="9")
    model.opset_import[0].version = 3
    assert "operator set ai.onnx version 3 is outside" in _reason(root, model)


def test_wrong_input_type_is_refused(root: Path) -> None:
    model = linear_model(version="9")
    model.graph.input[0].type.tensor_type.elem_type = onnx.TensorProto.DOUBLE
    model.graph.output[0].type.tensor_type.elem_type = onnx.TensorProto.DOUBLE
    model.graph.initializer[0].CopyFrom(onnx.numpy_helper.from_array(np.array([[1.0], [10.0]]), "w"))
    assert "has type tensor(double), expected tensor(float)" in _reason(root, model)
