"""Fixtures for server tests: a repository of fake models, an in-process server on port 0."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path

import grpc
import pyarrow as pa
import pytest

from scorecast.client import ScorecastClient
from scorecast.kernels.time_units import US_PER_DAY
from scorecast.proto import rpc
from scorecast.server.app import RunningServer, start_server
from scorecast.server.config import ServerSettings
from scorecast.server.pipeline import ScoringPipeline
from scorecast.server.repository import ModelRepository

from ..support.fakes import grouped_model, linear_model, segment_model, write_model

AS_OF_US = 1_767_225_600_000_000  # 2026-01-01T00:00:00Z
HELD = "held"
"""The score whose passes a ``Gate`` holds (serve ``linear_model(HELD)`` to use it)."""


class Gate:
    """Holds every scoring pass of the ``HELD`` score over at least ``rows`` contacts until opened:
    such a call keeps its slot or its batch key busy for exactly as long as a test needs, on a
    fast machine as on a loaded one (a slow model's pass ended before a 0.3 s deadline on CI's
    machine). Smaller passes (solo answers, the batches queued behind) run freely."""

    def __init__(self, rows: int = 1_000) -> None:
        self.rows = rows
        self.opened = threading.Event()

    def open(self) -> None:
        """Let every held pass, and every later one, run."""
        self.opened.set()


@pytest.fixture
def gate(monkeypatch: pytest.MonkeyPatch) -> Iterator[Gate]:
    """A closed ``Gate`` over ``ScoringPipeline.score``; opened at teardown at the latest."""
    gate = Gate()
    score = ScoringPipeline.score

    def held(self: ScoringPipeline, tables: Mapping[str, pa.Table], contact_ids: pa.Array | None = None) -> pa.RecordBatch:
        big = max((t.num_rows for t in tables.values()), default=0) >= gate.rows
        if HELD in self.spec.scores and big and not gate.opened.wait(60):
            raise TimeoutError("the test never opened its gate")
        return score(self, tables, contact_ids)

    monkeypatch.setattr(ScoringPipeline, "score", held)
    yield gate
    gate.open()


@pytest.fixture
def repo_dir(tmp_path: Path) -> Path:
    root = tmp_path / "models"
    for model in (linear_model(), grouped_model(), segment_model()):
        write_model(root, model)
    return root


@pytest.fixture
def repository(repo_dir: Path) -> ModelRepository:
    return ModelRepository.load(repo_dir)


def make_orders(ids: list, days_before: list[float], amounts: list[float | None], groups: list[str | None]) -> pa.Table:
    """An orders table with timestamps ``days_before`` AS_OF."""
    ts = [AS_OF_US - int(d * US_PER_DAY) for d in days_before]
    return pa.table(
        {
            "contact_id": ids,
            "ts": pa.array(ts, pa.timestamp("us", tz="UTC")),
            "amount": pa.array(amounts, pa.float64()),
            "product_group": pa.array(groups, pa.string()),
        }
    )


@pytest.fixture
def orders() -> pa.Table:
    # contact 7: 2 orders (shoes, books); contact 3: 1 order (shoes); contact 9: one future order only
    return make_orders([7, 3, 7, 9], [10, 5, 2, -1], [10.0, 4.0, 30.0, 99.0], ["shoes", "shoes", "books", "books"])


@pytest.fixture
def contacts() -> pa.Table:
    return pa.table({"contact_id": pa.array([3, 9, 7, 11], pa.int64())})


@pytest.fixture
def server(repository: ModelRepository) -> Iterator[RunningServer]:
    running = start_server(ServerSettings(port=0, max_rows_per_chunk=1_000_000), repository)
    yield running
    running.stop(0)


@pytest.fixture
def client(server: RunningServer) -> Iterator[ScorecastClient]:
    with ScorecastClient(f"127.0.0.1:{server.port}", timeout=30) as c:
        yield c


@pytest.fixture
def started(repository: ModelRepository, gate: Gate) -> Iterator[Callable[..., RunningServer]]:
    """Start servers over ``repository`` with the given settings (port 0, no reload polling);
    the gate opens, then every one stops, at teardown."""
    servers: list[RunningServer] = []

    def start(**settings: object) -> RunningServer:
        running = start_server(ServerSettings(port=0, reload_interval_s=0, **settings), repository)  # type: ignore[arg-type]
        servers.append(running)
        return running

    yield start
    gate.open()  # before the servers stop: no pass is left waiting on it
    for running in servers:
        running.stop(0)


def server_stub(running: RunningServer) -> rpc.ScorecastStub:
    """A scorecast.v1 stub on its own channel to ``running``."""
    return rpc.ScorecastStub(grpc.insecure_channel(f"127.0.0.1:{running.port}"))


def wait_until(condition: Callable[[], bool], what: str, timeout: float = 30) -> None:
    """Poll ``condition`` (a server's own counters) until it holds; fail naming ``what`` after ``timeout``."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.002)
