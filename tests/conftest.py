"""Session fixtures of real services (``tests/support/services.py``), started on first use."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support.services import PostgresServer, RayCluster, start_postgres, start_ray_cluster, unavailable


@pytest.fixture(scope="session")
def postgres() -> Iterator[PostgresServer]:
    """A PostgreSQL server on 127.0.0.1 for the session (skips, or fails under SCORECAST_REQUIRE_POSTGRES=1, without one)."""
    pytest.importorskip("adbc_driver_postgresql", reason="adbc-driver-postgresql is not installed")
    try:
        server = start_postgres()
        running = server.__enter__()
    except RuntimeError as exc:
        unavailable("PostgreSQL", "SCORECAST_REQUIRE_POSTGRES", str(exc))
    try:
        yield running
    finally:
        server.__exit__(None, None, None)


@pytest.fixture(scope="session")
def ray_cluster() -> Iterator[RayCluster]:
    """A two-node Ray cluster on loopback for the session (skips, or fails under SCORECAST_REQUIRE_RAY_CLUSTER=1, without one)."""
    try:
        cluster = start_ray_cluster()
        running = cluster.__enter__()
    except RuntimeError as exc:
        unavailable("a Ray cluster", "SCORECAST_REQUIRE_RAY_CLUSTER", str(exc))
    try:
        yield running
    finally:
        cluster.__exit__(None, None, None)
