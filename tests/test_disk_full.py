"""A full disk (ENOSPC) met by every writer of scorecast.atomic: ``rescore``'s output, ``train``'s
models (the model store), a simulated base, a ``score`` job's kept state. Each reports one line
naming the path and the free space, leaves no partial file, and a server whose repository is on
the full disk keeps serving its models.

The disk is a small tmpfs the test mounts (CI runs as root); where mounting is not allowed the
tests skip, saying why."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pyarrow as pa
import pytest

from scorecast.atomic import AtomicParquetWriter, DiskFull, write_bytes
from scorecast.cli import main
from scorecast.client import ScorecastClient
from scorecast.model_store import store_model
from scorecast.process import ServerProcess

from .support.fakes import linear_model, segment_model, write_model

SIZE = 1 << 20


def _fill(folder: Path) -> None:
    """Fill the file system of ``folder`` to the last byte."""
    import shutil

    with (folder / "filler").open("ab") as f:
        try:
            f.write(b"\0" * shutil.disk_usage(folder).free)
            f.flush()
        except OSError:
            pass


@pytest.fixture
def small(tmp_path: Path) -> Iterator[Path]:
    """A 1 MiB tmpfs, full."""
    folder = tmp_path / "small"
    folder.mkdir()
    run = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={SIZE}", "tmpfs", str(folder)], capture_output=True, text=True)
    if run.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs to fill ({run.stderr.strip() or run.returncode}): the disk-full tests need root (CI runs as root)")
    try:
        _fill(folder)
        yield folder
    finally:
        subprocess.run(["umount", "-l", str(folder)], check=False)


def _left(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.rglob("*") if p.name != "filler")


def _one_line(err: str, path: Path) -> str:
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert f"no space left on the device writing {path}" in lines[0] and " free on its file system" in lines[0]
    return lines[0]


def test_a_model_write_on_a_full_disk(small: Path) -> None:
    """The model store: DiskFull names the file and the free space; no temporary file is left."""
    with pytest.raises(DiskFull) as info:
        store_model(small, "spend", "1", linear_model())
    assert info.value.path == small / "spend" / "1.onnx" and info.value.free is not None and info.value.free == 0
    _one_line(str(info.value), small / "spend" / "1.onnx")
    assert _left(small) == ["spend"]  # the score's folder, empty


def test_a_parquet_output_on_a_full_disk(small: Path) -> None:
    """AtomicParquetWriter: the unnamed file is dropped; nothing appears at the target."""
    batch = pa.record_batch({"contact_id": pa.array(range(200_000), pa.int64())})
    with pytest.raises(DiskFull, match="no space left on the device writing"):
        with AtomicParquetWriter(small / "scores.parquet") as writer:
            writer.write(batch)
    assert _left(small) == []


def test_write_bytes_on_a_full_disk(small: Path) -> None:
    with pytest.raises(DiskFull):
        write_bytes(small / "part.arrow", b"x" * 100_000)
    assert _left(small) == []


@pytest.fixture(scope="module")
def base(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("full")
    assert main(["simulate", "--contacts", "3000", "--seed", "2", "--out", str(root / "base")]) == 0
    return root / "base"


def test_rescore_on_a_full_disk_is_one_line(small: Path, base: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    for model in (linear_model(), segment_model()):
        write_model(tmp_path / "models", model)
    capsys.readouterr()
    out = small / "scores.parquet"
    assert main(["rescore", "--models", str(tmp_path / "models"), "--data", str(base), "--scores", "spend,segments", "--out", str(out)]) == 2
    _one_line(capsys.readouterr().err.splitlines()[-1], out)  # after the as-of note and the progress bar
    assert _left(small) == []


@pytest.mark.slow
def test_train_on_a_full_disk_is_one_line(small: Path, base: Path, capsys: pytest.CaptureFixture[str]) -> None:
    capsys.readouterr()
    assert main(["train", "--data", str(base), "--out", str(small / "models"), "--scores", "rfm"]) == 2
    err = capsys.readouterr().err
    _one_line(err.splitlines()[-1], small / "models" / "rfm" / "1.onnx")
    assert not list(small.rglob("*.onnx")) and not list(small.rglob("*.tmp"))


def test_simulate_on_a_full_disk_is_one_line(small: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A base folder is written aside and swapped in: on a full disk the aside folder goes."""
    capsys.readouterr()
    assert main(["simulate", "--contacts", "20000", "--out", str(small / "base")]) == 2
    _one_line(capsys.readouterr().err.splitlines()[-1], small / "base")
    assert _left(small) == []


@pytest.mark.slow
def test_a_server_on_a_full_disk_keeps_serving(small: Path, tmp_path: Path) -> None:
    """The repository's disk fills up: a new version cannot be written (DiskFull, nothing
    partial), and a truncated file that another tool left there fails its load; after both
    reloads the server still serves version 1."""
    import shutil

    (small / "filler").unlink()
    models = small / "models"
    write_model(models, linear_model())
    orders = pa.table(
        {
            "contact_id": pa.array([1, 1, 2], pa.int64()),
            "ts": pa.array([datetime(2025, 12, 1, tzinfo=UTC)] * 3, pa.timestamp("us", tz="UTC")),
            "amount": pa.array([10.0, 5.0, 7.0]),
        }
    )
    with ServerProcess(models, tmp_path / "srv", args=["--reload-interval", "0"]) as server, ScorecastClient(server.target, timeout=30) as client:
        before = client.score_batch({"orders": orders}, ["spend"], as_of=datetime(2026, 1, 1, tzinfo=UTC))
        _fill(small)
        with pytest.raises(DiskFull):
            store_model(models, "spend", "2", linear_model(version="2", weights=(2.0, 20.0)))
        assert sorted(p.name for p in (models / "spend").iterdir()) == ["1.onnx"]
        client.reload_models()
        # what `cp` leaves when the disk fills mid-copy: a truncated file under the final name
        (small / "filler").unlink()
        (models / "spend" / "3.onnx").write_bytes((models / "spend" / "1.onnx").read_bytes()[:300])
        _fill(small)
        report = client.reload_models()
        assert [f.path for f in report.failures] == ["spend/3.onnx"]
        assert [(m.score, m.version) for m in client.list_models()] == [("spend", "1")]
        after = client.score_batch({"orders": orders}, ["spend"], as_of=datetime(2026, 1, 1, tzinfo=UTC))
        assert after.equals(before)
    shutil.rmtree(models, ignore_errors=True)
