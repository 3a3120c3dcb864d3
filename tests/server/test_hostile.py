"""Hostile callers against a running server: decompression bombs, idle streams, label floods,
open defaults (issue 15)."""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import grpc
import numpy as np
import pyarrow as pa
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from scorecast.client import ScorecastClient, encode_table, header
from scorecast.kernels.time_units import US_PER_DAY
from scorecast.proto import pb, rpc
from scorecast.server.app import RunningServer, channel_options, start_server
from scorecast.server.config import ServerSettings, is_loopback
from scorecast.server.repository import ModelRepository

from .conftest import AS_OF_US, make_orders

AS_OF = pa.scalar(AS_OF_US, pa.timestamp("us", tz="UTC")).as_py()


def _ipc(table: pa.Table, compression: str | None = None, batch_rows: int | None = None) -> bytes:
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema, options=pa.ipc.IpcWriteOptions(compression=compression)) as writer:
        writer.write_table(table, max_chunksize=batch_rows)
    return sink.getvalue().to_pybytes()


def _batch_request(tables: dict[str, bytes], scores: tuple[str, ...] = ("spend",)) -> pb.ScoreBatchRequest:
    return pb.ScoreBatchRequest(header=header(list(scores), as_of=AS_OF), chunk=pb.ContactChunk(tables=tables))


def _bomb(rows: int) -> pa.Table:
    """``rows`` identical orders: a few KB once zstd-compressed, ``rows`` x 24 bytes decoded."""
    return pa.table(
        {
            "contact_id": pa.array(np.ones(rows, np.int64)),
            "ts": pa.array(np.full(rows, AS_OF_US - US_PER_DAY, np.int64), pa.timestamp("us", tz="UTC")),
            "amount": pa.array(np.ones(rows)),
        }
    )


def _stub(running: RunningServer) -> rpc.ScorecastStub:
    channel = grpc.insecure_channel(f"127.0.0.1:{running.port}", options=[("grpc.max_receive_message_length", -1), ("grpc.max_send_message_length", -1)])
    return rpc.ScorecastStub(channel)


def test_decompression_bomb_is_refused_before_decoding(started) -> None:  # noqa: ANN001
    """A zstd orders table of a few KB that decodes to ~24 MB is RESOURCE_EXHAUSTED naming the table
    and the setting; the same rows within the budget (zstd, lz4, plain) score the same."""
    running = started(max_decoded_bytes_per_chunk=8 * 1024 * 1024)
    stub = _stub(running)
    bomb = _ipc(_bomb(1_000_000), "zstd")
    assert len(bomb) * 50 < 24_000_000
    with pytest.raises(grpc.RpcError) as info:
        stub.ScoreBatch(_batch_request({"orders": bomb}), timeout=10)
    assert info.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert "'orders'" in info.value.details() and "max_decoded_bytes_per_chunk" in info.value.details()
    # Spread over tables, the budget is for the chunk: two halves are refused as well.
    half = _ipc(_bomb(200_000), "zstd")  # 4.8 MB decoded
    contacts = _ipc(pa.table({"contact_id": pa.array(np.arange(500_000, dtype=np.int64))}), "lz4")  # 4 MB decoded
    with pytest.raises(grpc.RpcError) as info:
        stub.ScoreBatch(_batch_request({"orders": half, "contacts": contacts}), timeout=10)
    assert info.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED and "max_decoded_bytes_per_chunk" in info.value.details()
    orders = make_orders([7, 3, 7], [10, 5, 2], [10.0, 4.0, 30.0], ["shoes", "shoes", "books"])
    answers = []
    for compression in (None, "lz4", "zstd"):
        response = stub.ScoreBatch(_batch_request({"orders": _ipc(orders, compression, batch_rows=2)}), timeout=10)
        answers.append(pa.ipc.open_stream(response.scores).read_all().column("spend.value").to_pylist())
    assert answers[0] == answers[1] == answers[2] and len(answers[0]) == 2


def test_event_rows_per_chunk(started) -> None:  # noqa: ANN001
    """Rows are counted across a chunk's tables from the batch headers: over is RESOURCE_EXHAUSTED."""
    running = started(max_event_rows_per_chunk=1_000)
    stub = _stub(running)
    with pytest.raises(grpc.RpcError) as info:
        stub.ScoreBatch(_batch_request({"orders": _ipc(_bomb(1_001), "zstd", batch_rows=100)}), timeout=10)
    assert info.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert "'orders'" in info.value.details() and "max_event_rows_per_chunk" in info.value.details()
    assert stub.ScoreBatch(_batch_request({"orders": _ipc(_bomb(1_000), "zstd")}), timeout=10).rows == 1


def test_compressed_dictionary_batches_within_budget(started) -> None:  # noqa: ANN001
    """Dictionary-encoded, compressed columns are counted (dictionaries too) and accepted within budget."""
    running = started()
    orders = make_orders([7, 3, 7], [10, 5, 2], [10.0, 4.0, 30.0], ["shoes", "shoes", "books"])
    encoded = orders.set_column(3, "product_group", orders["product_group"].dictionary_encode())
    response = _stub(running).ScoreBatch(_batch_request({"orders": _ipc(encoded, "zstd")}, ("affinity",)), timeout=10)
    assert response.rows == 2


def _idle_stream(stub: rpc.ScorecastStub, hold: threading.Event, timeout: float = 30) -> grpc.Future:
    def requests() -> Iterator[pb.ScoreRequest]:
        yield pb.ScoreRequest(header=header(["spend"], as_of=AS_OF))
        hold.wait(timeout)

    return stub.Score(requests(), timeout=timeout)


def test_idle_streams_leave_room_for_calls_and_health(started, orders: pa.Table) -> None:  # noqa: ANN001
    """32 streams that send a header and then nothing: a 1-contact ScoreBatch and a health check
    still answer within a second; streams past max_streams are RESOURCE_EXHAUSTED at once."""
    running = started(idle_timeout_s=30)
    stubs = [_stub(running) for _ in range(4)]
    hold = threading.Event()
    streams = [_idle_stream(stubs[i % 4], hold) for i in range(32)]
    ended = threading.Semaphore(0)
    for stream in streams:
        stream.add_done_callback(lambda _: ended.release())
    try:
        # 28 streams refused means the other 4 hold every slot: all 32 have reached the server
        for _ in range(32 - 4):
            assert ended.acquire(timeout=30), "fewer streams refused than max_streams leaves out"
        one = make_orders([7], [3], [10.0], ["shoes"])
        start = time.perf_counter()
        response = stubs[0].ScoreBatch(_batch_request({"orders": encode_table(one)}), timeout=1)
        assert response.rows == 1 and time.perf_counter() - start < 1
        with grpc.insecure_channel(f"127.0.0.1:{running.port}") as channel:
            check = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(service=""), timeout=1)
            assert check.status == health_pb2.HealthCheckResponse.SERVING
        refused = []
        for stream in streams:
            if stream.done():
                try:
                    list(stream)
                except grpc.RpcError as exc:
                    refused.append((exc.code(), exc.details()))
        assert len(refused) == 32 - 4
        assert all(code == grpc.StatusCode.RESOURCE_EXHAUSTED and "max_streams" in details for code, details in refused)
    finally:
        hold.set()
        for stream in streams:
            stream.cancel()


def test_idle_stream_is_ended_and_its_slot_returned(started, orders: pa.Table) -> None:  # noqa: ANN001
    """No message for idle_timeout_s ends a stream with DEADLINE_EXCEEDED naming the setting; the slots
    come back, so as many idle streams again are admitted after."""
    running = started(idle_timeout_s=0.5, max_workers=3, max_streams=2)
    stub = _stub(running)
    threads_before = threading.active_count()
    for _ in range(3):
        hold = threading.Event()
        streams = [_idle_stream(stub, hold, timeout=10) for _ in range(2)]
        for stream in streams:
            with pytest.raises(grpc.RpcError) as info:
                list(stream)
            assert info.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED and "idle_timeout_s" in info.value.details()
        hold.set()
    chunk = pb.ScoreRequest(chunk=pb.ContactChunk(tables={"orders": encode_table(orders)}))
    answers = list(stub.Score(iter([pb.ScoreRequest(header=header(["spend"], as_of=AS_OF)), chunk, chunk]), timeout=10))
    assert [a.rows for a in answers] == [3, 3]
    # the helper threads that read ahead end with their calls (soon after; later on a loaded machine)
    deadline = time.monotonic() + 10
    while threading.active_count() > threads_before + 2 and time.monotonic() < deadline:
        time.sleep(0.1)
    assert threading.active_count() <= threads_before + 2


def test_connection_age_ends_long_calls(started) -> None:  # noqa: ANN001
    """Keepalive and connection-age settings reach gRPC; past age + grace a held stream is ended."""
    options = dict(channel_options(ServerSettings(max_connection_age_s=2, max_connection_age_grace_s=1, keepalive_s=30)))
    assert options["grpc.keepalive_time_ms"] == 30_000 and options["grpc.max_connection_age_ms"] == 2_000
    assert "grpc.max_connection_age_ms" not in dict(channel_options(ServerSettings()))
    running = started(max_connection_age_s=1, max_connection_age_grace_s=0.5, idle_timeout_s=30)
    hold = threading.Event()
    start = time.perf_counter()
    with pytest.raises(grpc.RpcError) as info:
        list(_idle_stream(_stub(running), hold, timeout=20))
    hold.set()
    assert info.value.code() == grpc.StatusCode.UNAVAILABLE and time.perf_counter() - start < 10


def test_metric_labels_only_from_served_scores(started, orders: pa.Table) -> None:  # noqa: ANN001
    """Random score names all count under one label, 'unknown'; served scores keep theirs."""
    running = started()
    stub = _stub(running)
    for i in range(50):
        with pytest.raises(grpc.RpcError):
            stub.ScoreBatch(_batch_request({"orders": encode_table(orders)}, (f"random-{i}",)), timeout=10)
    with pytest.raises(grpc.RpcError):
        stub.ScoreBatch(_batch_request({"orders": encode_table(orders.drop_columns(["ts"]))}, ("spend", "nope")), timeout=10)
    labels = {s.labels["score"] for m in running.metrics.registry.collect() if m.name == "scorecast_score_errors" for s in m.samples}
    assert labels == {"unknown", "spend"}
    errors = running.metrics.score_errors
    assert errors.labels("unknown", "NOT_FOUND")._value.get() == 51  # 50 random names, then "nope"


def test_internal_errors_give_the_request_id_only(started, orders: pa.Table, monkeypatch: pytest.MonkeyPatch) -> None:  # noqa: ANN001
    """An unexpected exception is INTERNAL with the request id; its text (a server path) stays in the log."""
    from scorecast.server import pipeline

    def broken(self, tables):  # noqa: ANN001, ANN202
        raise RuntimeError("cannot open /srv/secret/models/spend/3.onnx")

    running = started()  # warmed up first: the warm-up scores too
    monkeypatch.setattr(pipeline.ScoringPipeline, "score", broken)
    call = _stub(running).ScoreBatch.with_call
    with pytest.raises(grpc.RpcError) as info:
        call(_batch_request({"orders": encode_table(orders)}), metadata=(("x-request-id", "req-4242"),), timeout=10)
    assert info.value.code() == grpc.StatusCode.INTERNAL
    assert "req-4242" in info.value.details() and "/srv/secret" not in info.value.details() and "RuntimeError" not in info.value.details()


def test_loopback_or_explicitly_insecure() -> None:
    """Off loopback, neither TLS nor tokens refuses the settings unless insecure says so."""
    assert is_loopback("127.0.0.1") and is_loopback("::1") and is_loopback("[::1]") and is_loopback("localhost")
    assert not is_loopback("0.0.0.0") and not is_loopback("") and not is_loopback("10.1.2.3") and not is_loopback("example.com")
    for host in ("0.0.0.0", "::", "10.1.2.3"):
        with pytest.raises(ValueError, match="--insecure"):
            ServerSettings(host=host)
        assert ServerSettings(host=host, insecure=True).insecure
    assert ServerSettings.load({"SCORECAST_HOST": "0.0.0.0", "SCORECAST_INSECURE": "1"}).insecure


def _serve(tmp_path: Path, repo_dir: Path, *flags: str) -> subprocess.Popen:
    env = {**os.environ, "SCORECAST_RELOAD_INTERVAL_S": "0"}
    env.pop("SCORECAST_INSECURE", None)
    return subprocess.Popen(
        [sys.executable, "-m", "scorecast.cli", "--verbose", "serve", "--models", str(repo_dir), "--port", "0", "--port-file", str(tmp_path / "port"), *flags],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
    )


@pytest.mark.slow
def test_serve_off_loopback_needs_insecure(tmp_path: Path, repo_dir: Path) -> None:
    """`scorecast serve --host 0.0.0.0` exits with the reason; with --insecure it serves and warns."""
    proc = _serve(tmp_path, repo_dir, "--host", "0.0.0.0")
    _, err = proc.communicate(timeout=120)
    assert proc.returncode != 0 and "--insecure" in err and not (tmp_path / "port").exists()
    proc = _serve(tmp_path, repo_dir, "--host", "0.0.0.0", "--insecure")
    try:
        deadline = time.time() + 120
        while not (tmp_path / "port").exists() and time.time() < deadline and proc.poll() is None:
            time.sleep(0.2)
        port = int((tmp_path / "port").read_text())
        with ScorecastClient(f"127.0.0.1:{port}", timeout=30) as client:
            assert client.list_models()
    finally:
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=60)
    assert "in the clear" in err


def test_token_over_plaintext_is_warned_once(repository: ModelRepository, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """A token arriving without TLS is logged as a warning, once per server."""
    import json

    from scorecast.server.security import hash_token

    tokens = tmp_path / "tokens.json"
    tokens.write_text(json.dumps({"tokens": [{"token_sha256": hash_token("s3cret"), "name": "batch", "roles": ["score"]}]}))
    running = start_server(ServerSettings(port=0, tokens_file=tokens, reload_interval_s=0), repository)
    try:
        with caplog.at_level(logging.WARNING, logger="scorecast.server.security"), ScorecastClient(
            f"127.0.0.1:{running.port}", timeout=30, token="s3cret"
        ) as client:
            for _ in range(3):
                client.list_models()
        assert sum("over plaintext" in r.getMessage() for r in caplog.records) == 1
        assert "s3cret" not in caplog.text
    finally:
        running.stop(0)
