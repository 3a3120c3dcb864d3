"""Real gRPC round trips against an in-process server on port 0."""

from __future__ import annotations

import threading

import grpc
import numpy as np
import pyarrow as pa
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from scorecast.client import ScorecastClient, encode_table, header
from scorecast.proto import SERVICE_NAME, pb
from scorecast.server.app import RunningServer

from .conftest import AS_OF_US, make_orders

AS_OF = pa.scalar(AS_OF_US, pa.timestamp("us", tz="UTC")).as_py()


def test_list_and_get_model(client: ScorecastClient) -> None:
    """ListModels names every score; GetModel gives features, outputs, metrics and input columns."""
    assert sorted(m.score for m in client.list_models()) == ["affinity", "segments", "spend"]
    info = client.get_model("spend")
    assert list(info.features) == ["frequency", "total_amount"]
    assert [o.name for o in info.outputs] == ["value"]
    assert info.metrics["auc"] == 0.5
    assert info.ready and list(info.providers) == ["CPUExecutionProvider"]
    assert set(info.input_columns) >= {"orders.ts", "orders.amount"}
    assert info.trained_at.ToJsonString().startswith("2026-01-02")


def test_score_batch(client: ScorecastClient, orders: pa.Table, contacts: pa.Table) -> None:
    """ScoreBatch returns one row per contact with the model's values."""
    batch = client.score_batch({"contacts": contacts, "orders": orders}, ["spend"], as_of=AS_OF)
    assert batch.column("contact_id").to_pylist() == [3, 9, 7, 11]
    np.testing.assert_allclose(batch.column("spend.value").to_numpy(), [41, 0, 402, 0])


def test_score_stream_keeps_chunk_order(client: ScorecastClient) -> None:
    """A stream of chunks is answered chunk by chunk, in order, with every contact once."""
    rng = np.random.default_rng(0)
    chunks = []
    for c in range(5):
        ids = list(range(c * 1000, (c + 1) * 1000))
        ids_orders = rng.choice(ids, 3000).tolist()
        chunks.append({"orders": make_orders(ids_orders, rng.uniform(0, 400, 3000).tolist(), [1.0] * 3000, ["shoes"] * 3000)})
    batches = list(client.score(chunks, ["spend", "affinity"], as_of=AS_OF))
    assert len(batches) == 5
    for chunk, batch in zip(chunks, batches, strict=True):
        ids = chunk["orders"]["contact_id"].to_numpy()
        assert sorted(batch.column("contact_id").to_pylist()) == sorted(set(ids.tolist()))
        counts = {i: int((ids == i).sum()) for i in set(ids.tolist())}
        assert batch.column("affinity.shoes").to_pylist() == [counts[i] for i in batch.column("contact_id").to_pylist()]


def test_score_stream_answers_before_the_next_chunk_comes(client: ScorecastClient, orders: pa.Table) -> None:
    """A caller that sends each chunk only after the previous chunk's scores (ping-pong) gets
    them: the server scores chunks side by side but never holds a finished one back."""
    import queue

    answered: queue.Queue[int] = queue.Queue()

    def requests():  # noqa: ANN202
        yield pb.ScoreRequest(header=header(["spend"], as_of=AS_OF))
        for i in range(3):
            yield pb.ScoreRequest(chunk=pb.ContactChunk(tables={"orders": encode_table(orders)}))
            assert answered.get(timeout=10) == i  # a held-back answer ends the call at its deadline

    got = []
    for response in client.stub.Score(requests(), timeout=20):
        got.append((response.chunk_index, response.rows))
        answered.put(response.chunk_index)
    assert got == [(0, 3), (1, 3), (2, 3)]


def test_payload_over_grpc_default_limit(client: ScorecastClient) -> None:
    """A chunk above grpc's 4 MiB default goes through: both ends set their limits."""
    n = 400_000  # ~13 MB of orders, random amounts: still over 4 MiB LZ4-compressed, as the client sends them
    rng = np.random.default_rng(0)
    orders = make_orders(np.arange(n).tolist(), rng.random(n).tolist(), [2.0] * n, ["books"] * n)
    assert 4 * 1024 * 1024 < len(encode_table(orders)) < 0.8 * len(encode_table(orders, compress=False))
    batch = client.score_batch({"orders": orders}, ["spend"], as_of=AS_OF)
    assert batch.num_rows == n


def _code(call) -> tuple[grpc.StatusCode, str]:  # noqa: ANN001
    with pytest.raises(grpc.RpcError) as info:
        call()
    return info.value.code(), info.value.details()


@pytest.mark.parametrize(
    ("tables", "scores", "status", "match"),
    [
        ("missing_ts", ["spend"], grpc.StatusCode.INVALID_ARGUMENT, "orders.ts"),
        ("garbage", ["spend"], grpc.StatusCode.INVALID_ARGUMENT, "chunk.tables['orders']"),
        ("unknown_table", ["spend"], grpc.StatusCode.INVALID_ARGUMENT, "chunk.tables['order']"),
        ("wrong_type", ["spend"], grpc.StatusCode.INVALID_ARGUMENT, "orders.ts"),
        ("ok", ["nope"], grpc.StatusCode.NOT_FOUND, "'nope'"),
        ("ok", [], grpc.StatusCode.INVALID_ARGUMENT, "header.scores"),
    ],
    ids=["missing-column", "malformed-ipc", "unknown-table", "wrong-type", "unknown-score", "no-score"],
)
def test_bad_input_status_and_field(
    client: ScorecastClient,
    server: RunningServer,
    orders: pa.Table,
    tables: str,
    scores: list[str],
    status: grpc.StatusCode,
    match: str,
) -> None:
    """Bad input gets the right status and a message naming the field; the server keeps serving."""
    payloads = {
        "missing_ts": {"orders": encode_table(orders.drop_columns(["ts"]))},
        "garbage": {"orders": b"\x00\x01not arrow at all"},
        "unknown_table": {"order": encode_table(orders)},
        "wrong_type": {"orders": encode_table(orders.set_column(1, "ts", pa.array(["x"] * orders.num_rows)))},
        "ok": {"orders": encode_table(orders)},
    }[tables]
    request = pb.ScoreBatchRequest(header=header(scores, as_of=AS_OF), chunk=pb.ContactChunk(tables=payloads))
    code, details = _code(lambda: client.stub.ScoreBatch(request, timeout=10))
    assert code == status
    assert match in details
    assert client.score_batch({"orders": orders}, ["spend"], as_of=AS_OF).num_rows == 3  # still serving


def _stream(client: ScorecastClient, messages: list[pb.ScoreRequest]) -> list[pb.ScoreResponse]:
    return list(client.stub.Score(iter(messages), timeout=10))


def test_stream_protocol_errors(client: ScorecastClient, orders: pa.Table) -> None:
    """No header, a second header, and a bad chunk mid-stream are refused with the position."""
    chunk = pb.ScoreRequest(chunk=pb.ContactChunk(tables={"orders": encode_table(orders)}))
    head = pb.ScoreRequest(header=header(["spend"], as_of=AS_OF))
    code, details = _code(lambda: _stream(client, [chunk]))
    assert code == grpc.StatusCode.INVALID_ARGUMENT and "first message must be a header" in details
    code, details = _code(lambda: _stream(client, [head, chunk, head]))
    assert code == grpc.StatusCode.INVALID_ARGUMENT and "message 2" in details
    bad = pb.ScoreRequest(chunk=pb.ContactChunk(tables={"orders": encode_table(orders.drop_columns(["ts"]))}))
    code, details = _code(lambda: _stream(client, [head, chunk, bad]))
    assert code == grpc.StatusCode.INVALID_ARGUMENT and "orders.ts" in details and "chunk 1" in details


def test_health_and_reflection(server: RunningServer) -> None:
    """Standard health answers per model; reflection lists the service."""
    with grpc.insecure_channel(f"127.0.0.1:{server.port}") as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        for name in ("", SERVICE_NAME, f"{SERVICE_NAME}/spend"):
            assert stub.Check(health_pb2.HealthCheckRequest(service=name)).status == health_pb2.HealthCheckResponse.SERVING
        refl = reflection_pb2_grpc.ServerReflectionStub(channel)
        answer = next(refl.ServerReflectionInfo(iter([reflection_pb2.ServerReflectionRequest(list_services="")])))
        assert SERVICE_NAME in [s.name for s in answer.list_services_response.service]


def test_graceful_stop_lets_stream_finish(server: RunningServer, client: ScorecastClient, orders: pa.Table) -> None:
    """Stopping with a grace period lets an in-flight stream finish; new calls are then refused."""
    import threading

    started, release = threading.Event(), threading.Event()

    def chunks():  # noqa: ANN202
        yield {"orders": orders}
        started.set()
        release.wait(10)
        yield {"orders": orders}

    results = []
    worker = threading.Thread(target=lambda: results.extend(client.score(chunks(), ["spend"], as_of=AS_OF)))
    worker.start()
    assert started.wait(10)
    stopper = threading.Thread(target=server.stop, args=(10,))
    stopper.start()
    release.set()
    worker.join(20)
    stopper.join(20)
    assert [b.num_rows for b in results] == [3, 3]
    code, _ = _code(lambda: client.score_batch({"orders": orders}, ["spend"], as_of=AS_OF))
    assert code == grpc.StatusCode.UNAVAILABLE


def test_stream_total_row_limit(repository, orders: pa.Table) -> None:  # noqa: ANN001
    """A stream whose chunks add up past max_rows_per_request is RESOURCE_EXHAUSTED, naming it."""
    from scorecast.server.app import start_server
    from scorecast.server.config import ServerSettings

    running = start_server(ServerSettings(port=0, max_rows_per_request=5), repository)
    try:
        with ScorecastClient(f"127.0.0.1:{running.port}", timeout=30) as c:
            code, details = _code(lambda: list(c.score([{"orders": orders}] * 3, ["spend"], as_of=AS_OF)))
            assert code == grpc.StatusCode.RESOURCE_EXHAUSTED and "max_rows_per_request" in details
            assert c.score_batch({"orders": orders}, ["spend"], as_of=AS_OF).num_rows == 3  # still serving
    finally:
        running.stop(0)


def test_deadline_ends_a_stream(client: ScorecastClient, orders: pa.Table) -> None:
    """A stream past its deadline is DEADLINE_EXCEEDED for the caller, and the server serves on."""
    ended = threading.Event()

    def stalled_chunks():  # noqa: ANN202
        yield pb.ScoreRequest(chunk=pb.ContactChunk(tables={"orders": encode_table(orders)}))
        ended.wait(30)  # the next chunk never comes before the deadline

    def call() -> None:
        first = [pb.ScoreRequest(header=header(["spend"], as_of=AS_OF))]
        try:
            list(client.stub.Score(_chain(first, stalled_chunks()), timeout=0.5))
        finally:
            ended.set()

    code, _ = _code(call)
    assert code == grpc.StatusCode.DEADLINE_EXCEEDED
    assert client.score_batch({"orders": orders}, ["spend"], as_of=AS_OF).num_rows == 3


def _chain(*iterators):  # noqa: ANN001, ANN202
    for it in iterators:
        yield from it


def test_request_plan_is_reused_but_not_its_as_of(
    client: ScorecastClient, server: RunningServer, orders: pa.Table, tmp_path
) -> None:  # noqa: ANN001
    """Requests differing only in as_of share one cached plan, each scored as of its own time;
    a reload that swaps the models drops the plans built on the old ones."""
    from datetime import timedelta

    from ..support.fakes import linear_model, write_model

    repository = server.repository
    first = client.score_batch({"orders": orders}, ["spend"], as_of=AS_OF).to_pydict()
    later = client.score_batch({"orders": orders}, ["spend"], as_of=AS_OF + timedelta(days=2)).to_pydict()
    plans = [k for k in repository.derived if k[0] == "pipeline"]
    assert len(plans) == 1
    nine = first["contact_id"].index(9)
    # contact 9's only order is a day after AS_OF: unseen as of AS_OF, counted two days later
    assert first["spend.value"][nine] == 0.0 and later["spend.value"][later["contact_id"].index(9)] == 1.0 + 10.0 * 99.0
    write_model(repository.root, linear_model(version="2", weights=(2.0, 0.0)))
    client.stub.ReloadModels(pb.ReloadModelsRequest(), timeout=30)
    assert not [k for k in repository.derived if k[0] == "pipeline"]
    again = client.score_batch({"orders": orders}, ["spend"], as_of=AS_OF).to_pydict()
    assert again["spend.value"][again["contact_id"].index(7)] == 2.0 * 2  # version 2: 2 x frequency


def test_every_call_names_its_account(client: ScorecastClient, orders: pa.Table) -> None:
    """The default account ("") is served; any other account is NOT_FOUND naming it, on every RPC."""
    assert client.score_batch({"orders": orders}, ["spend"], as_of=AS_OF, account="").num_rows == 3
    assert [m.score for m in client.list_models(account="")]
    calls = {
        "ListModels": lambda: client.list_models(account="acme"),
        "GetModel": lambda: client.get_model("spend", account="acme"),
        "ScoreBatch": lambda: client.score_batch({"orders": orders}, ["spend"], as_of=AS_OF, account="acme"),
        "Score": lambda: list(client.score([{"orders": orders}], ["spend"], as_of=AS_OF, account="acme")),
        "TopN": lambda: client.top("spend.value", 2, chunks=[{"orders": orders}], as_of=AS_OF, account="acme"),
        "ReloadModels": lambda: client.reload_models(account="acme"),
    }
    for method, call in calls.items():
        with pytest.raises(grpc.RpcError) as caught:
            call()
        assert caught.value.code() == grpc.StatusCode.NOT_FOUND, method
        assert caught.value.details() == "account 'acme' not found", method


def test_the_clients_account_is_every_calls_default(server: RunningServer, orders: pa.Table) -> None:
    """ScorecastClient(account=...) names it on each call that names none."""
    with ScorecastClient(f"127.0.0.1:{server.port}", timeout=30, account="acme") as acme:
        with pytest.raises(grpc.RpcError) as caught:
            acme.get_model("spend")
        assert caught.value.code() == grpc.StatusCode.NOT_FOUND and "'acme'" in caught.value.details()
        assert acme.get_model("spend", account="").score == "spend"
