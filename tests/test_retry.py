"""scorecast.retry through the Python client: Score streams against real server processes that
are killed (SIGKILL) mid-stream, restarted on their port, or replaced by another server."""

from __future__ import annotations

import os
import signal
import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import grpc
import pyarrow as pa
import pytest

from scorecast.base import BaseChunks
from scorecast.client import ScorecastClient
from scorecast.process import ServerProcess
from scorecast.retry import RetriesExhausted, RetryPolicy, StreamEvent, parse_targets

from .support.fakes import served_base

AS_OF = datetime(2026, 1, 1, tzinfo=UTC)
SCORES = ["spend", "segments"]
CHUNK = 500
# room for a server start on a busy machine (~20 s of retries), quick first retries
FAST = RetryPolicy(retries=8, backoff_s=0.2, max_backoff_s=4.0, in_flight=3)


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    return served_base(tmp_path_factory.mktemp("retry"))


def _chunks(base: Path) -> BaseChunks:
    return BaseChunks(base, {"orders": ["ts", "amount"]}, chunk_contacts=CHUNK)


@pytest.fixture(scope="module")
def expected(setup: tuple[Path, Path], tmp_path_factory: pytest.TempPathFactory) -> pa.Table:
    """The scores of an uninterrupted stream."""
    with ServerProcess(setup[1], tmp_path_factory.mktemp("ref")) as server, ScorecastClient(server.target, timeout=120) as client:
        table = pa.Table.from_batches(list(client.score(_chunks(setup[0]), SCORES, as_of=AS_OF)))
    assert table.num_rows > 10_000
    return table


class Watch:
    """Collects a job's events; ``hold_at``: the answer of that chunk waits for ``release``
    (so a test kills the server while the job is mid-stream, with chunks still to send)."""

    def __init__(self, hold_at: int = 2) -> None:
        self.events: list[StreamEvent] = []
        self.hold_at = hold_at
        self.held = threading.Event()
        self.release = threading.Event()
        self.failures = threading.Semaphore(0)

    def __call__(self, event: StreamEvent) -> None:
        self.events.append(event)
        if event.kind == "failed":
            self.failures.release()
        if event.kind == "answered" and event.index == self.hold_at:
            self.held.set()
            assert self.release.wait(60)

    def kinds(self, kind: str) -> list[StreamEvent]:
        return [e for e in self.events if e.kind == kind]


def _score_in_thread(client: ScorecastClient, base: Path, watch: Watch) -> tuple[threading.Thread, dict[str, object]]:
    result: dict[str, object] = {}

    def run() -> None:
        try:
            result["table"] = pa.Table.from_batches(list(client.score(_chunks(base), SCORES, on_event=watch, as_of=AS_OF)))
        except BaseException as exc:
            result["error"] = exc

    thread = threading.Thread(target=run)
    thread.start()
    return thread, result


def _kill(server: ServerProcess) -> None:
    os.kill(server.pid, signal.SIGKILL)
    server.proc.wait()


@pytest.mark.slow
@pytest.mark.parametrize("slow_restart", [False, True], ids=["restart", "restart-slower-than-a-retry"])
def test_a_stream_goes_on_after_its_server_is_killed_and_restarted(
    slow_restart: bool, setup: tuple[Path, Path], expected: pa.Table, tmp_path: Path
) -> None:
    """kill -9 mid-stream, the server started again on the same port: the job completes with
    the uninterrupted scores, each chunk once (those in flight at the kill were re-sent)."""
    base, models = setup
    watch = Watch()
    server = ServerProcess(models, tmp_path / "a")
    restarted: list[ServerProcess] = []
    try:
        with ScorecastClient(server.target, timeout=120, retry=FAST) as client:
            thread, result = _score_in_thread(client, base, watch)
            assert watch.held.wait(60)
            _kill(server)
            watch.release.set()
            if slow_restart:  # one retry finds nothing listening before the server is back
                assert watch.failures.acquire(timeout=60) and watch.failures.acquire(timeout=60)
            restarted.append(ServerProcess(models, tmp_path / "b", args=["--port", str(server.port)]))
            thread.join(120)
        assert "error" not in result, result.get("error")
        assert result["table"].equals(expected)
        failed = watch.kinds("failed")
        assert failed and all("UNAVAILABLE" in e.error for e in failed)
        assert len(failed) >= (2 if slow_restart else 1)
        assert [e.index for e in watch.kinds("answered")] == list(range(len(watch.kinds("answered"))))
    finally:
        server.stop()
        for s in restarted:
            s.stop()


@pytest.mark.slow
def test_a_stream_moves_to_the_other_server_when_one_is_killed(setup: tuple[Path, Path], expected: pa.Table, tmp_path: Path) -> None:
    """Two targets, the first killed mid-stream: the remaining chunks are scored by the second."""
    base, models = setup
    watch = Watch()
    with ServerProcess(models, tmp_path / "a") as first, ServerProcess(models, tmp_path / "b") as second:
        with ScorecastClient([first.target, second.target], timeout=120, retry=FAST) as client:
            thread, result = _score_in_thread(client, base, watch)
            assert watch.held.wait(60)
            _kill(first)
            watch.release.set()
            thread.join(120)
    assert "error" not in result, result.get("error")
    assert result["table"].equals(expected)
    answered = watch.kinds("answered")
    assert {e.target for e in answered[:3]} == {first.target}
    assert answered[-1].target == second.target
    assert watch.kinds("failed")[0].next_target == second.target


def test_retries_are_bounded_and_the_error_says_what_was_scored(setup: tuple[Path, Path], tmp_path: Path) -> None:
    """A server that never comes back: after the policy's retries, RetriesExhausted names the
    chunks and contacts answered, which the caller got."""
    base, models = setup
    watch = Watch()
    server = ServerProcess(models, tmp_path / "a")
    policy = RetryPolicy(retries=2, backoff_s=0.05, max_backoff_s=0.1)
    with ScorecastClient(server.target, timeout=60, retry=policy) as client:
        thread, result = _score_in_thread(client, base, watch)
        assert watch.held.wait(60)
        _kill(server)
        watch.release.set()
        thread.join(60)
    server.stop()
    error = result["error"]
    assert isinstance(error, RetriesExhausted)
    answered = watch.kinds("answered")
    assert error.chunks == len(answered) >= 3 and error.contacts == sum(e.rows for e in answered)
    assert f"{error.contacts:,} contacts) were scored" in str(error) and "after 2 retries" in str(error)
    assert len(watch.kinds("failed")) == 2 and len(watch.kinds("exhausted")) == 1


def test_a_final_status_is_not_retried(setup: tuple[Path, Path], tmp_path: Path) -> None:
    """NOT_FOUND (an unknown score) is the caller's error: raised at once, no retry."""
    watch = Watch()
    with ServerProcess(setup[1], tmp_path) as server, ScorecastClient(server.target, timeout=60, retry=FAST) as client:
        with pytest.raises(grpc.RpcError) as info:
            list(client.score(_chunks(setup[0]), ["nope"], on_event=watch, as_of=AS_OF))
    assert info.value.code() == grpc.StatusCode.NOT_FOUND  # type: ignore[attr-defined]
    assert not watch.kinds("failed")


def test_an_error_reading_the_chunks_is_raised_as_it_is(setup: tuple[Path, Path], tmp_path: Path) -> None:
    """The caller's chunks failing is not a connection problem: its exception, no retry."""

    def chunks() -> Iterator[dict[str, pa.Table]]:
        yield from list(_chunks(setup[0]))[:2]
        raise OSError("the disk went away")

    watch = Watch(hold_at=-1)
    with ServerProcess(setup[1], tmp_path) as server, ScorecastClient(server.target, timeout=60, retry=FAST) as client:
        with pytest.raises(OSError, match="the disk went away"):
            list(client.score(chunks(), SCORES, on_event=watch, as_of=AS_OF))
    assert not watch.kinds("failed")


def test_unary_calls_fail_over_to_a_live_target(setup: tuple[Path, Path], tmp_path: Path) -> None:
    """A dead first target: wait_ready and ListModels find the live one."""
    with ServerProcess(setup[1], tmp_path) as server:
        dead = ServerProcess(setup[1], tmp_path / "dead")
        _kill(dead)
        with ScorecastClient(f"{dead.target},{server.target}", timeout=30) as client:
            client.wait_ready(timeout=30)
            assert sorted(m.score for m in client.list_models()) == sorted(SCORES)
        with ScorecastClient([dead.target, server.target], timeout=30) as client:  # no wait_ready: the call moves on
            assert sorted(m.score for m in client.list_models()) == sorted(SCORES)


def test_score_batch_waits_for_a_restarting_server(setup: tuple[Path, Path], tmp_path: Path) -> None:
    """``wait_for_ready``: a real-time call made while nothing listens on the port (a restart)
    is answered once the server is back, where a plain call fails UNAVAILABLE at once."""
    base, models = setup
    orders = pa.table({"contact_id": [7], "ts": pa.array([AS_OF], pa.timestamp("us", tz="UTC")), "amount": [2.0], "product_group": ["shoes"]})
    dead = ServerProcess(models, tmp_path / "a")
    _kill(dead)
    with ScorecastClient(dead.target, timeout=60) as client:
        with pytest.raises(grpc.RpcError) as info:
            client.score_batch({"orders": orders}, ["spend"], as_of=AS_OF)
        assert info.value.code() == grpc.StatusCode.UNAVAILABLE
        result: dict[str, object] = {}
        thread = threading.Thread(target=lambda: result.update(got=client.score_batch({"orders": orders}, ["spend"], as_of=AS_OF, wait_for_ready=True)))
        thread.start()
        thread.join(1.0)  # a quiet window: the plain call above failed in milliseconds
        assert thread.is_alive() and not result
        with ServerProcess(models, tmp_path / "b", args=["--port", str(dead.port)]):
            thread.join(60)
        got = result["got"]
        assert isinstance(got, pa.RecordBatch) and got.column("spend.value").to_pylist() == [1.0 + 10.0 * 2.0]


def test_policy_and_targets() -> None:
    """Backoff doubles up to its cap; targets come comma-separated or as a list."""
    policy = RetryPolicy(backoff_s=0.5, multiplier=2, max_backoff_s=3)
    assert [policy.backoff(k) for k in (1, 2, 3, 4)] == [0.5, 1.0, 2.0, 3.0]
    assert parse_targets("a:1, b:2,") == ["a:1", "b:2"] == parse_targets(["a:1", "b:2"])
    with pytest.raises(ValueError, match="no server target"):
        parse_targets(" , ")
    with pytest.raises(ValueError, match="invalid retry policy"):
        RetryPolicy(in_flight=0)
