"""Admission (server/admission.py): calls beyond the slots wait in a bounded queue, first come
first served, and are refused only past it (issue 28). Idle streams: tests/server/test_hostile.py."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import grpc
import pyarrow as pa
import pytest

from scorecast.client import encode_table, header
from scorecast.proto import pb
from scorecast.server.admission import Slots
from scorecast.server.repository import ModelRepository

from .conftest import AS_OF_US, HELD, Gate, make_orders, server_stub, wait_until
from ..support.fakes import linear_model, write_model

AS_OF = pa.scalar(AS_OF_US, pa.timestamp("us", tz="UTC")).as_py()


@pytest.fixture
def repository(tmp_path: Path) -> ModelRepository:
    root = tmp_path / "models"
    for model in (linear_model(), linear_model(HELD)):
        write_model(root, model)
    return ModelRepository.load(root)


def _request(contacts: int, score: str) -> pb.ScoreBatchRequest:
    orders = make_orders(list(range(contacts)), [3] * contacts, [1.0] * contacts, ["shoes"] * contacts)
    return pb.ScoreBatchRequest(header=header([score], as_of=AS_OF), chunk=pb.ContactChunk(tables={"orders": encode_table(orders)}))


def test_slots_go_to_waiters_in_arrival_order() -> None:
    """A freed slot goes to the longest-waiting call; a newcomer does not overtake the queue."""
    slots = Slots(1)
    assert slots.try_acquire() and not slots.try_acquire()
    first, second = slots.enqueue(), slots.enqueue()
    assert slots.queued() == 2 and not slots.try_acquire()
    slots.release()
    assert first.is_set() and not second.is_set()
    assert not slots.leave(second) and slots.queued() == 0  # gave up its place: nothing held
    assert slots.leave(first)  # handed a slot while waiting: it holds it
    slots.release()
    assert slots.try_acquire()


def test_calls_beyond_the_slots_wait_then_are_answered(started, gate: Gate) -> None:  # noqa: ANN001
    """Two held calls hold both slots: three more wait in the queue and are answered after them;
    one past max_queued_calls is RESOURCE_EXHAUSTED at once, naming the setting."""
    running = started(max_workers=2, max_streams=1, max_queued_calls=3, batch_max_delay_ms=0)
    stub = server_stub(running)
    assert running.admission is not None
    held = [stub.ScoreBatch.future(_request(1_000, HELD), timeout=60) for _ in range(2)]
    wait_until(lambda: running.admission.serving() == 2, "the held calls holding both slots")
    queued = []
    for n in range(3):
        queued.append(stub.ScoreBatch.future(_request(1, "spend"), timeout=60))
        wait_until(lambda n=n: running.admission.queued() == n + 1, f"{n + 1} calls queued")
    start = time.perf_counter()
    with pytest.raises(grpc.RpcError) as info:
        stub.ScoreBatch(_request(1, "spend"), timeout=60)
    assert info.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED and "max_queued_calls" in info.value.details()
    # refused while both slots were still held: it never waited for one
    assert time.perf_counter() - start < 5 and not any(f.done() for f in held + queued)
    gate.open()
    assert [f.result().rows for f in held + queued] == [1_000, 1_000, 1, 1, 1]


def test_queue_wait_is_bounded(started, gate: Gate) -> None:  # noqa: ANN001
    """A call that waits longer than max_queue_wait_ms for a slot is RESOURCE_EXHAUSTED, naming it;
    one whose deadline comes first gets DEADLINE_EXCEEDED."""
    running = started(max_workers=2, max_streams=1, max_queue_wait_ms=100, batch_max_delay_ms=0)
    stub = server_stub(running)
    held = [stub.ScoreBatch.future(_request(1_000, HELD), timeout=60) for _ in range(2)]
    wait_until(lambda: running.admission.serving() == 2, "the held calls holding both slots")
    start = time.perf_counter()
    with pytest.raises(grpc.RpcError) as info:
        stub.ScoreBatch(_request(1, "spend"), timeout=60)
    waited = time.perf_counter() - start
    assert info.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED and "max_queue_wait_ms" in info.value.details()
    assert 0.1 <= waited < 5 and not any(f.done() for f in held)
    with pytest.raises(grpc.RpcError) as info:
        stub.ScoreBatch(_request(1, "spend"), timeout=0.05)
    assert info.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
    gate.open()
    for future in held:
        assert future.result().rows == 1_000
    waits = [s for m in running.metrics.registry.collect() if m.name == "scorecast_queue_wait_seconds" for s in m.samples if s.name.endswith("_count")]
    assert waits[0].value >= 1


def test_64_concurrent_callers_get_no_error_with_default_settings(started) -> None:  # noqa: ANN001
    """64 callers of 1-contact ScoreBatch calls at once, default settings: every call answered."""
    running = started()
    stubs = [server_stub(running) for _ in range(8)]
    request = _request(1, "spend")
    barrier = threading.Barrier(64)
    errors: list[str] = []
    answered = []

    def call(i: int) -> None:
        barrier.wait()
        for _ in range(5):
            try:
                answered.append(stubs[i % 8].ScoreBatch(request, timeout=30).rows)
            except grpc.RpcError as exc:
                errors.append(f"{exc.code()}: {exc.details()}")

    threads = [threading.Thread(target=call, args=(i,)) for i in range(64)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors[:3]
    assert answered == [1] * 320


def test_queued_requests_are_bounded_in_bytes(started, gate: Gate) -> None:  # noqa: ANN001
    """A call whose request would take the waiting calls past max_queued_bytes is refused at
    once, naming the setting; a small one still queues and is answered."""
    running = started(max_workers=2, max_streams=1, max_queued_bytes=20_000, batch_max_delay_ms=0)
    stub = server_stub(running)
    held = [stub.ScoreBatch.future(_request(1_000, HELD), timeout=60) for _ in range(2)]
    wait_until(lambda: running.admission.serving() == 2, "the held calls holding both slots")
    big = _request(1_000, "spend")
    assert big.ByteSize() > 20_000
    start = time.perf_counter()
    with pytest.raises(grpc.RpcError) as info:
        stub.ScoreBatch(big, timeout=60)
    assert info.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED and "max_queued_bytes" in info.value.details()
    assert time.perf_counter() - start < 5 and not any(f.done() for f in held)
    small = stub.ScoreBatch.future(_request(1, "spend"), timeout=60)
    wait_until(lambda: running.admission.queued() == 1, "the small call queued")
    gate.open()
    assert small.result().rows == 1
    assert [f.result().rows for f in held] == [1_000, 1_000]
