"""Dynamic batching (server/batching.py) on a real server: every caller gets its own answer,
equal to a solo call's, whatever else shares its pass (issue 28)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from pathlib import Path

import grpc
import pyarrow as pa
import pytest

from scorecast.client import encode_table, header
from scorecast.kernels.time_units import US_PER_DAY
from scorecast.proto import oip_rpc, pb, rpc
from scorecast.server.app import RunningServer
from scorecast.server.repository import ModelRepository

from .conftest import AS_OF_US, HELD, Gate, server_stub, wait_until
from ..support.fakes import grouped_model, linear_model, segment_model, write_model
from .test_oip import infer_request, outputs

AS_OF = pa.scalar(AS_OF_US, pa.timestamp("us", tz="UTC")).as_py()
SCORES = ("spend", "affinity", "segments")
BLOCKED = (HELD, *SCORES)
"""Scores whose passes the gate holds: a blocking call keeps its key busy while others queue."""


@pytest.fixture
def repository(tmp_path: Path) -> ModelRepository:
    root = tmp_path / "models"
    for model in (linear_model(), grouped_model(), segment_model(), linear_model(HELD)):
        write_model(root, model)
    return ModelRepository.load(root)


def _orders(ids: list, days: list[float], amounts: list[float | None], groups: list[str], ts_null: bool = False) -> pa.Table:
    ts = pa.array([None if ts_null else AS_OF_US - int(d * US_PER_DAY) for d in days], pa.timestamp("us", tz="UTC"))
    return pa.table({"contact_id": ids, "ts": ts, "amount": pa.array(amounts, pa.float64()), "product_group": groups})


def _caller_tables(i: int) -> dict[str, pa.Table]:
    """Caller ``i``'s request: contact 7 (and 3) in every caller's, each with its own orders;
    every third caller string ids, every fourth a contacts table with a contact without orders."""
    ids: list = [7, 3, 7] + [100 + i] * (i % 3)
    if i % 3 == 0:
        ids = [str(x) for x in ids]
    n = len(ids)
    orders = _orders(ids, [1 + i % 7, 10 + i, 2] + [5] * (n - 3), [float(i), 2.0 * i + 1, 5.5] + [1.0] * (n - 3), ["shoes", "books", "shoes"] + ["books"] * (n - 3))
    tables = {"orders": orders}
    if i % 4 == 0:
        contact_ids = list(dict.fromkeys(ids)) + (["11"] if i % 3 == 0 else [11])
        tables["contacts"] = pa.table({"contact_id": contact_ids[::-1]})
    return tables


def _request(tables: dict[str, pa.Table], scores: tuple[str, ...] = SCORES) -> pb.ScoreBatchRequest:
    chunk = pb.ContactChunk(tables={name: encode_table(t) for name, t in tables.items()})
    return pb.ScoreBatchRequest(header=header(list(scores), as_of=AS_OF), chunk=chunk)


def _answer(response: pb.ScoreBatchResponse) -> pa.Table:
    return pa.ipc.open_stream(response.scores).read_all()


def _batch_sizes(running: RunningServer) -> list[float]:
    """The upper bounds of the batch-size histogram's buckets that hold a pass, from the metrics."""
    samples = [s for m in running.metrics.registry.collect() if m.name == "scorecast_batch_calls" for s in m.samples if s.name.endswith("_bucket")]
    counts = [(float(s.labels["le"]), s.value) for s in samples]
    sizes, below = [], 0.0
    for bound, count in counts:
        if count > below:
            sizes.append(bound)
        below = count
    return sizes


def _passes(running: RunningServer) -> tuple[float, float]:
    """(passes, calls in them) so far, from the batch-size histogram."""
    got = {s.name: s.value for m in running.metrics.registry.collect() if m.name == "scorecast_batch_calls" for s in m.samples}
    return got["scorecast_batch_calls_count"], got["scorecast_batch_calls_sum"]


def _solo_answers(started: Callable[..., RunningServer], requests: list[pb.ScoreBatchRequest]) -> list[pa.Table]:
    solo = started(batch_max_delay_ms=0)
    stub = server_stub(solo)
    return [_answer(stub.ScoreBatch(r, timeout=30)) for r in requests]


def _block(running: RunningServer, stub: rpc.ScorecastStub, contacts: int = 1_000) -> grpc.Future:
    """A call of BLOCKED for ``contacts`` contacts, once its pass runs (held by the gate): calls
    of BLOCKED then queue behind it until the gate opens."""
    assert contacts >= 1_000  # the gate holds passes of at least 1,000 contacts
    ids = list(range(10_000, 10_000 + contacts))
    orders = _orders(ids, [3] * contacts, [1.0] * contacts, ["shoes"] * contacts)
    future = stub.ScoreBatch.future(_request({"orders": orders}, BLOCKED), timeout=60)
    assert running.batcher is not None
    wait_until(lambda: running.batcher.running() == 1, "the blocking pass")
    return future


def test_concurrent_callers_each_get_their_solo_answer(started) -> None:  # noqa: ANN001
    """24 callers x 4 calls at once, contact ids shared between callers with different data, int
    and string ids, some with a contacts table: every answer equals that request's solo answer,
    and calls were scored together."""
    requests = [_request(_caller_tables(i)) for i in range(24)]
    expected = _solo_answers(started, requests)
    running = started(batch_max_delay_ms=20)
    stubs = [server_stub(running) for _ in range(4)]
    barrier = threading.Barrier(len(requests))
    failures: list[str] = []

    def call(i: int) -> None:
        barrier.wait()
        for _ in range(4):
            got = _answer(stubs[i % 4].ScoreBatch(requests[i], timeout=30))
            if not got.equals(expected[i]):
                failures.append(f"caller {i}: {got.to_pydict()} != {expected[i].to_pydict()}")

    threads = [threading.Thread(target=call, args=(i,)) for i in range(len(requests))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not failures, failures[:3]
    passes, calls = _passes(running)
    assert calls == 24 * 4 and passes < calls, (passes, calls)  # some passes scored several calls


def test_same_contact_in_one_pass_never_crosses(started, gate: Gate) -> None:  # noqa: ANN001
    """Eight calls queued into one pass, every one about contact 7 (int or string ids, with and
    without a contacts table) with different orders: each answer is its own solo answer."""
    requests = [_request(_caller_tables(i), BLOCKED) for i in range(8)]
    expected = _solo_answers(started, requests)
    running = started(batch_max_delay_ms=5, max_workers=16)
    stub = server_stub(running)
    blocker = _block(running, stub)
    futures = [stub.ScoreBatch.future(r, timeout=60) for r in requests]
    wait_until(lambda: running.batcher.waiting() == 8, "eight calls in one batch")
    gate.open()
    assert blocker.result().rows == 1_000
    for future, want in zip(futures, expected, strict=True):
        got = _answer(future.result())
        assert got.equals(want), (got.to_pydict(), want.to_pydict())
    assert _passes(running) == (2, 9)  # the blocker alone, then the eight together
    assert max(_batch_sizes(running)) == 8


def test_bad_input_fails_its_own_call_only(started, gate: Gate) -> None:  # noqa: ANN001
    """In one batch: a null timestamp (fails the combined pass, so every member is rescored alone),
    duplicate rows in a contacts table (fails before the pass), a missing column (a pass of its
    own): each bad call gets INVALID_ARGUMENT naming its field, the good ones their solo answers."""
    good = [_request(_caller_tables(i), BLOCKED) for i in (1, 2, 4)]
    expected = _solo_answers(started, good)
    bad = {
        "orders.ts": _request({"orders": _orders([7, 3], [1, 2], [1.0, 2.0], ["shoes", "books"], ts_null=True)}, BLOCKED),
        "contacts.contact_id": _request({"orders": _orders([7], [1], [1.0], ["shoes"]), "contacts": pa.table({"contact_id": [7, 7]})}, BLOCKED),
        "orders.amount": _request({"orders": _orders([7], [1], [1.0], ["shoes"]).drop_columns(["amount"])}, BLOCKED),
    }
    running = started(batch_max_delay_ms=5, max_workers=16)
    stub = server_stub(running)
    blocker = _block(running, stub)
    good_futures = [stub.ScoreBatch.future(r, timeout=60) for r in good]
    bad_futures = {where: stub.ScoreBatch.future(r, timeout=60) for where, r in bad.items()}
    wait_until(lambda: running.batcher.waiting() == 6, "six calls in one batch")
    gate.open()
    blocker.result()
    for future, want in zip(good_futures, expected, strict=True):
        assert _answer(future.result()).equals(want)
    for where, future in bad_futures.items():
        with pytest.raises(grpc.RpcError) as info:
            future.result()
        assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT and where in info.value.details(), (where, info.value.details())


def test_deadline_passing_in_a_batch_drops_the_call(started, gate: Gate) -> None:  # noqa: ANN001
    """A call whose deadline passes while it waits behind a running pass leaves its batch (before
    the pass), gets DEADLINE_EXCEEDED; its batch-mate is answered, in a pass of one."""
    running = started(batch_max_delay_ms=5, max_workers=16, batch_max_rows=4_000)
    stub = server_stub(running)
    blocker = _block(running, stub, contacts=4_000)  # held until well past the deadline below
    short = stub.ScoreBatch.future(_request(_caller_tables(1), BLOCKED), timeout=1)
    other = stub.ScoreBatch.future(_request(_caller_tables(2), BLOCKED), timeout=60)
    wait_until(lambda: running.batcher.waiting() == 2, "two calls in one batch")
    with pytest.raises(grpc.RpcError) as info:
        short.result()
    assert info.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
    wait_until(lambda: running.batcher.waiting() == 1, "the late call leaving its batch")
    assert running.batcher.running() == 1  # it left while the blocking pass still ran
    gate.open()
    blocker.result()
    assert other.result().rows == 3  # contacts 7, 3 and 102
    assert _passes(running) == (2, 2)


def test_cancelled_call_leaves_its_batch(started, gate: Gate) -> None:  # noqa: ANN001
    """A call cancelled while waiting in a batch leaves it; the others are answered."""
    running = started(batch_max_delay_ms=5, max_workers=16, batch_max_rows=4_000)
    stub = server_stub(running)
    blocker = _block(running, stub, contacts=4_000)
    cancelled = stub.ScoreBatch.future(_request(_caller_tables(1), BLOCKED), timeout=60)
    others = [stub.ScoreBatch.future(_request(_caller_tables(i), BLOCKED), timeout=60) for i in (2, 3)]
    wait_until(lambda: running.batcher.waiting() == 3, "three calls in one batch")
    cancelled.cancel()
    wait_until(lambda: running.batcher.waiting() == 2, "the cancelled call leaving its batch")
    gate.open()
    blocker.result()
    assert [f.result().rows for f in others] == [3, 2]  # 7, 3, 102; 7, 3
    assert _passes(running) == (2, 3)


def test_model_infer_calls_are_batched_apart(started) -> None:  # noqa: ANN001
    """Open Inference Protocol ModelInfer calls about the same contact ids, batched: each gets
    the outputs of its own solo call."""
    requests = []
    for i in range(12):
        orders = _orders([7, 3, 7], [1 + i, 2, 3], [float(i), 1.0, 2.0], ["shoes", "books", "shoes"])
        requests.append(infer_request("spend", orders))
    solo = started(batch_max_delay_ms=0)
    with grpc.insecure_channel(f"127.0.0.1:{solo.port}") as channel:
        stub = oip_rpc.GRPCInferenceServiceStub(channel)
        expected = [outputs(stub.ModelInfer(r, timeout=30)) for r in requests]
    assert len({tuple(e["spend.value"]) for e in expected}) == 12  # every caller's answer differs
    running = started(batch_max_delay_ms=20)
    barrier = threading.Barrier(len(requests))
    got: dict[int, list[dict]] = {}
    with grpc.insecure_channel(f"127.0.0.1:{running.port}") as channel:
        stub = oip_rpc.GRPCInferenceServiceStub(channel)

        def call(i: int) -> None:
            barrier.wait()
            got[i] = [outputs(stub.ModelInfer(requests[i], timeout=30)) for _ in range(3)]

        threads = [threading.Thread(target=call, args=(i,)) for i in range(len(requests))]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    for i, answers in got.items():
        assert all(a == expected[i] for a in answers), i
    passes, calls = _passes(running)
    assert calls == 36 and passes < calls


def test_unset_as_of_batches_too(started, gate: Gate) -> None:  # noqa: ANN001
    """Calls without as_of ("now") share a pass, answered as of about now; a call with as_of set
    is another key: it does not wait behind their pass."""
    running = started(batch_max_delay_ms=5, max_workers=16)
    stub = server_stub(running)
    now_us = time.time_ns() // 1_000
    day_before = pa.table({"contact_id": [7], "ts": pa.array([now_us - US_PER_DAY], pa.timestamp("us", tz="UTC")), "amount": [2.0], "product_group": ["shoes"]})

    def now_request(orders: pa.Table) -> pb.ScoreBatchRequest:
        return pb.ScoreBatchRequest(header=header(list(BLOCKED)), chunk=pb.ContactChunk(tables={"orders": encode_table(orders)}))

    many = pa.table({name: day_before[name].to_pylist() * 1_000 for name in day_before.column_names}).set_column(0, "contact_id", pa.array(range(1_000)))
    blocker = stub.ScoreBatch.future(now_request(many), timeout=60)
    wait_until(lambda: running.batcher.running() == 1, "the blocking pass")
    futures = [stub.ScoreBatch.future(now_request(day_before), timeout=60) for _ in range(3)]
    wait_until(lambda: running.batcher.waiting() == 3, "three calls in one batch")
    assert stub.ScoreBatch(_request(_caller_tables(1), BLOCKED), timeout=60).rows == 3
    assert not blocker.done()  # the call with as_of set was answered while the pass of "now" calls ran
    gate.open()
    assert blocker.result().rows == 1_000
    for future in futures:
        answer = _answer(future.result())
        assert answer["spend.value"].to_pylist() == [1.0 + 10.0 * 2.0] and answer[f"{HELD}.value"].to_pylist() == [1.0 + 10.0 * 2.0]
    assert _passes(running) == (3, 5)
