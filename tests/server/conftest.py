"""Fixtures for server tests: a repository of fake models, an in-process server on port 0."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pyarrow as pa
import pytest

from scorecast.client import ScorecastClient
from scorecast.kernels.time_units import US_PER_DAY
from scorecast.server.app import RunningServer, start_server
from scorecast.server.config import ServerSettings
from scorecast.server.repository import ModelRepository

from ..support.fakes import grouped_model, linear_model, segment_model, write_model

AS_OF_US = 1_767_225_600_000_000  # 2026-01-01T00:00:00Z


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
