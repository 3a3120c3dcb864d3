"""Whole-base rescoring: interrupted runs leave nothing behind; the Ray engine equals the local one."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from scorecast.options import ScoreSpec
from scorecast.server.pipeline import ScoringPipeline
from scorecast.server.repository import ModelRepository
from scorecast.server.rescore import rescore

from ..support.fakes import grouped_model, keyword_model, linear_model, segment_model, write_model
from ..support.services import RayCluster
from .conftest import AS_OF_US, US_PER_DAY, make_orders

SPEC = ScoreSpec(scores=("spend", "affinity", "segments"), as_of_us=AS_OF_US)
N_CONTACTS = 4000
WAIT_S = 60  # a bound for what should come at once; reaching it is a failure


def write_base(folder: Path, id_type: str = "int") -> Path:
    """A base of N_CONTACTS contacts (the last 500 without orders), orders in several row groups."""
    rng = np.random.default_rng(5)
    ids = rng.permutation(N_CONTACTS) + 10
    folder.mkdir(parents=True)
    contact_ids = pa.array(ids, pa.int64()) if id_type == "int" else pa.array([f"c-{i}" for i in ids])
    pq.write_table(pa.table({"contact_id": contact_ids}), folder / "contacts.parquet")
    n = 15_000
    buyers = rng.choice(N_CONTACTS - 500, n)
    orders = make_orders(
        contact_ids.take(pa.array(buyers)).to_pylist(),
        rng.uniform(-5, 400, n).tolist(),
        rng.choice([5.0, 12.5, None], n).tolist(),
        rng.choice(["shoes", "books", None], n).tolist(),
    )
    pq.write_table(orders, folder / "orders.parquet", row_group_size=2000)
    return folder


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("rescore-models")
    for model in (linear_model(), grouped_model(), segment_model()):
        write_model(root, model)
    return root


@pytest.fixture(scope="module")
def base(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_base(tmp_path_factory.mktemp("rescore") / "base")


@pytest.mark.parametrize("error", [RuntimeError("boom"), KeyboardInterrupt()], ids=["exception", "ctrl-c"])
def test_interrupted_rescore_leaves_nothing(
    models: Path, base: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, error: BaseException
) -> None:
    """An error or Ctrl-C at the third chunk: no output, no temporary file; a previous result stays."""
    out = tmp_path / "scores.parquet"
    pq.write_table(pa.table({"old": [1]}), out)
    calls = []
    score = ScoringPipeline.score

    def failing(self: ScoringPipeline, tables: dict) -> pa.RecordBatch:
        calls.append(1)
        if len(calls) == 3:
            raise error
        return score(self, tables)

    monkeypatch.setattr(ScoringPipeline, "score", failing)
    with pytest.raises(type(error)):
        rescore(ModelRepository.load(models), base, SPEC, out, chunk_contacts=500)
    assert 3 <= len(calls) <= 4  # two chunks are scored at once: one more may have started
    assert sorted(p.name for p in tmp_path.iterdir()) == ["scores.parquet"]
    assert pq.read_table(out).column_names == ["old"]


KILLABLE = """
import sys, time
from pathlib import Path
from scorecast.cli import main
from scorecast.server.pipeline import ScoringPipeline

score, calls = ScoringPipeline.score, []
def slow(self, tables):
    calls.append(1)
    if len(calls) == 3:  # two chunks written: tell the test, then wait to be killed
        Path(sys.argv[1]).write_text("ready")
        time.sleep(120)
    return score(self, tables)
ScoringPipeline.score = slow
sys.exit(main(sys.argv[2:]))
"""


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGTERM], ids=["kill", "term"])
def test_killed_rescore_leaves_nothing(
    models: Path, base: Path, tmp_path: Path, sig: signal.Signals, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`scorecast rescore` killed mid-way (SIGKILL included) leaves neither output nor temp file:
    its split folder goes with it (SIGTERM) or at the next split on this host (SIGKILL)."""
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    scratch = tmp_path / "scratch"  # the child's temporary folder
    scratch.mkdir()
    marker = tmp_path / "ready"
    argv = ["rescore", "--models", str(models), "--data", str(base), "--scores", "spend,affinity"]
    argv += ["--out", str(out_dir / "scores.parquet"), "--chunk-contacts", "500", "--as-of", "2026-01-01"]
    log = tmp_path / "stderr.log"
    with log.open("wb") as sink:
        proc = subprocess.Popen(
            [sys.executable, "-c", KILLABLE, str(marker), *argv], stderr=sink, env=os.environ | {"TMPDIR": str(scratch)}
        )
    deadline = time.monotonic() + 120
    while not marker.exists():
        assert proc.poll() is None, log.read_text()
        assert time.monotonic() < deadline, "the child never reached its third chunk"
        time.sleep(0.05)
    os.kill(proc.pid, sig)
    code = proc.wait(timeout=60)
    assert code == (-signal.SIGKILL if sig == signal.SIGKILL else 130)
    assert list(out_dir.iterdir()) == []
    assert len(list(scratch.glob("scorecast-chunks-*"))) == (1 if sig == signal.SIGKILL else 0)
    monkeypatch.setattr(tempfile, "tempdir", str(scratch))
    rescore(ModelRepository.load(models), base, SPEC, out_dir / "again.parquet", chunk_contacts=500)
    assert list(scratch.glob("scorecast-chunks-*")) == []


def test_rescore_writes_every_contact(models: Path, base: Path, tmp_path: Path) -> None:
    """The local engine scores each contact once: in the contacts table's order when the base
    is read whole, partition by partition (a hash of contact_id) when it is split on disk."""
    contacts = pq.read_table(base / "contacts.parquet")["contact_id"].to_pylist()
    out = tmp_path / "scores.parquet"
    result = rescore(ModelRepository.load(models), base, SPEC, out, chunk_contacts=700)
    table = pq.read_table(out)
    assert result.rows == table.num_rows == N_CONTACTS and result.chunks >= 6
    assert sorted(table["contact_id"].to_pylist()) == sorted(contacts)
    whole = rescore(ModelRepository.load(models), base, SPEC, out, chunk_contacts=N_CONTACTS)
    assert whole.chunks == 1 and pq.read_table(out)["contact_id"].to_pylist() == contacts


def test_a_slow_chunk_does_not_hold_the_other_lane(
    models: Path, base: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """While the first chunk waits, the other lane scores the next ones (MAX_UNWRITTEN waiting
    behind it, and no chunk past them is taken before the first is scored); the output is still
    written in chunk order. (tests/server/test_lanes.py checks the bound itself.)"""
    from scorecast.server import rescore as module
    from scorecast.server.lanes import scoring_threads

    out = tmp_path / "scores.parquet"
    rescore(ModelRepository.load(models), base, SPEC, out, chunk_contacts=500)
    expected = pq.read_table(out)
    assert scoring_threads() == 2  # numba's layer runs kernels from two threads here
    bound = module.MAX_UNWRITTEN + 1  # the slow first chunk and the ones waiting behind it
    lock = threading.Lock()
    started = 0
    others_scored = threading.Event()  # the chunks after the first, up to the bound, are scored
    first_scored = threading.Event()
    early: list[int] = []  # chunks past the bound taken before the first was scored
    score, in_lanes = ScoringPipeline.score, module.in_lanes

    def slow_first(self: ScoringPipeline, tables: dict) -> pa.RecordBatch:
        nonlocal started
        with lock:
            started += 1
            n = started
        if n == 1:
            assert others_scored.wait(WAIT_S), "the other lane did not score up to the bound while the first chunk waited"
        batch = score(self, tables)
        if n == 1:
            first_scored.set()
        elif n == bound:
            others_scored.set()
        return batch

    def watched(items: Iterator, *args: object, **kwargs: object) -> Iterator:
        def taken() -> Iterator:
            for i, item in enumerate(items, start=1):
                yield item
                # the lanes ask for the next chunk: past the bound, only once the first is scored
                if i >= bound and not first_scored.is_set():
                    early.append(i + 1)

        return in_lanes(taken(), *args, **kwargs)

    monkeypatch.setattr(ScoringPipeline, "score", slow_first)
    monkeypatch.setattr(module, "in_lanes", watched)
    result = rescore(ModelRepository.load(models), base, SPEC, out, chunk_contacts=500)
    assert not early and bound < result.chunks  # the other lane went on, up to the bound and no further
    assert pq.read_table(out).equals(expected)


# --- Ray ---------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def ray_driver() -> Iterator[None]:
    """A Ray of this process's own on 127.0.0.1 alone: Ray swaps 127.0.0.1 for the machine's
    outward address (and its servers then listen on every interface) unless its private
    ``resolve_ip_for_localhost`` is turned off, as the test cluster's launcher does
    (tests/support/services.py)."""
    ray = pytest.importorskip("ray", reason="the ray extra is not installed")
    from ray._private import services

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(services, "resolve_ip_for_localhost", lambda host: host)
        patch.setenv("RAY_USAGE_STATS_ENABLED", "0")
        ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, _node_ip_address="127.0.0.1")
        try:
            yield
        finally:
            ray.shutdown()


def _by_contact(path: Path) -> pa.Table:
    """A Parquet output in contact order (the engines write rows in different orders)."""
    return pq.read_table(path).sort_by("contact_id")


@pytest.mark.slow
def test_ray_engine_equals_local(ray_driver: None, models: Path, tmp_path: Path) -> None:
    """Ray Data (hash partition by contact, actors scoring whole buckets) gives the local engine's
    rows and values exactly; the result folder appears whole and nothing else is left. (String
    ids take the other hash path: tests/kernels/test_partition.py.)"""
    from scorecast.server.rescore_ray import rescore_ray

    data = write_base(tmp_path / "base")
    out = tmp_path / "out"
    out.mkdir()
    rescore(ModelRepository.load(models), data, SPEC, out / "local.parquet", chunk_contacts=700)
    result = rescore_ray(models, data, SPEC, out / "ray.parquet", chunk_contacts=700)
    local, remote = _by_contact(out / "local.parquet"), _by_contact(out / "ray.parquet")
    assert result.rows == remote.num_rows == N_CONTACTS
    assert remote.schema.equals(local.schema)
    assert remote.combine_chunks().equals(local.combine_chunks())
    assert sorted(p.name for p in out.iterdir()) == ["local.parquet", "ray.parquet"]


@pytest.mark.slow
def test_rescore_cli_runs_on_the_cluster_at_address(ray_cluster: RayCluster, models: Path, tmp_path: Path) -> None:
    """``scorecast rescore --engine ray --address``: the job runs on the two-node cluster named,
    not a Ray of its own, and gives the local engine's rows exactly."""
    data = write_base(tmp_path / "base")
    out = tmp_path / "out"
    out.mkdir()
    rescore(ModelRepository.load(models), data, SPEC, out / "local.parquet", chunk_contacts=700)
    argv = [
        sys.executable, "-m", "scorecast.cli", "rescore", "--models", str(models), "--data", str(data),
        "--scores", ",".join(SPEC.scores), "--as-of", "2026-01-01T00:00:00Z", "--chunk-contacts", "700",
        "--engine", "ray", "--address", ray_cluster.address, "--out", str(out / "ray.parquet"),
    ]  # fmt: skip
    done = subprocess.run(argv, capture_output=True, text=True, env={**os.environ, **ray_cluster.env}, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    local, remote = _by_contact(out / "local.parquet"), _by_contact(out / "ray.parquet")
    assert remote.combine_chunks().equals(local.combine_chunks())
    assert "Started a local Ray instance" not in done.stderr  # it joined the cluster named


def write_email_base(folder: Path) -> Path:
    """A base of N_CONTACTS contacts (the last 500 without e-mails), e-mail events in several
    row groups and the ``campaigns`` reference table (no contact_id) their keywords come from."""
    rng = np.random.default_rng(7)
    ids = rng.permutation(N_CONTACTS) + 10
    folder.mkdir(parents=True)
    pq.write_table(pa.table({"contact_id": pa.array(ids, pa.int64())}), folder / "contacts.parquet")
    n, n_campaigns = 12_000, 30
    keywords = [["running", "tech", "books"][: i % 4] for i in range(n_campaigns)]  # some campaigns have none
    campaigns = pa.table(
        {
            "campaign_id": pa.array(np.arange(n_campaigns) + 100, pa.int64()),
            "ts": pa.array(AS_OF_US - 400 * US_PER_DAY + np.arange(n_campaigns) * US_PER_DAY, pa.timestamp("us", "UTC")),
            "keywords": pa.array(keywords, pa.list_(pa.string())),
        }
    )
    pq.write_table(campaigns, folder / "campaigns.parquet")
    events = pa.table(
        {
            "contact_id": pa.array(ids[rng.choice(N_CONTACTS - 500, n)], pa.int64()),
            "ts": pa.array(AS_OF_US - (rng.uniform(0, 300, n) * US_PER_DAY).astype(np.int64), pa.timestamp("us", "UTC")),
            "campaign_id": pa.array(rng.integers(100, 100 + n_campaigns, n), pa.int64()),
            "event": pa.array(rng.choice(["sent", "open", "click"], n)),
        }
    )
    pq.write_table(events, folder / "email_events.parquet", row_group_size=2000)
    return folder


@pytest.mark.slow
def test_ray_engine_reads_reference_tables_whole(ray_driver: None, tmp_path: Path) -> None:
    """A score reading ``campaigns`` (keyword weights; no contact_id to hash by): each bucket
    gets the whole table, as each local chunk does, so Ray gives the local engine's rows exactly."""
    from scorecast.server.rescore_ray import rescore_ray

    models = tmp_path / "models"
    write_model(models, keyword_model())
    data = write_email_base(tmp_path / "base")
    spec = ScoreSpec(scores=("interests",), as_of_us=AS_OF_US)
    out = tmp_path / "out"
    out.mkdir()
    rescore(ModelRepository.load(models), data, spec, out / "local.parquet", chunk_contacts=700)
    result = rescore_ray(models, data, spec, out / "ray.parquet", chunk_contacts=700)
    local, remote = _by_contact(out / "local.parquet"), _by_contact(out / "ray.parquet")
    assert result.rows == remote.num_rows == N_CONTACTS and result.chunks > 1
    assert remote.schema.equals(local.schema)
    assert remote.combine_chunks().equals(local.combine_chunks())
    weights = local.column("interests.running").to_numpy()  # the keywords were read: not all zero
    assert (weights > 0).sum() > N_CONTACTS // 2


def _dataset(folder: Path, ids: list[int]) -> Path:
    folder.mkdir()
    pq.write_table(pa.table({"contact_id": pa.array(ids, pa.int64())}), folder / "part-0.parquet")
    return folder


def test_ray_swap_restores_the_previous_output(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """If the final rename fails, the previous result is back in place; a result whose row count
    is not the base's contact count never replaces it."""
    from scorecast.server import rescore_ray

    out = _dataset(tmp_path / "scores.parquet", [1, 2, 3])
    with pytest.raises(ValueError, match="2 rows but the base 3 contacts"):
        rescore_ray.swap_into_place(_dataset(tmp_path / "short", [1, 2]), out, 3)
    assert pq.read_table(out)["contact_id"].to_pylist() == [1, 2, 3]

    new = _dataset(tmp_path / "new", [4, 5, 6])
    real_rename = os.rename

    def failing_rename(src, dst):  # noqa: ANN001, ANN202
        if Path(src) == new:
            raise OSError(28, "No space left on device")
        return real_rename(src, dst)

    monkeypatch.setattr(os, "rename", failing_rename)
    with pytest.raises(OSError, match="No space left"):
        rescore_ray.swap_into_place(new, out, 3)
    assert pq.read_table(out)["contact_id"].to_pylist() == [1, 2, 3]
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []  # no aside folder left
    monkeypatch.setattr(os, "rename", real_rename)
    assert rescore_ray.swap_into_place(new, out, 3) == 3
    assert pq.read_table(out)["contact_id"].to_pylist() == [4, 5, 6]
