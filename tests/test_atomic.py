"""AtomicParquetWriter: the file appears whole at the end, or not at all."""

from __future__ import annotations

import os
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from scorecast.atomic import AtomicParquetWriter

BATCH = pa.record_batch({"contact_id": [1, 2], "x.value": pa.array([0.5, 0.25], pa.float32())})


def test_written_at_the_end(tmp_path: Path) -> None:
    """Nothing at the target until the writer closes; then every batch."""
    target = tmp_path / "scores.parquet"
    with AtomicParquetWriter(target) as writer:
        writer.write(BATCH)
        writer.write(BATCH)
        assert not target.exists()
    assert pq.read_table(target).num_rows == 4 and writer.rows == 4
    assert [p.name for p in tmp_path.iterdir()] == ["scores.parquet"]


def test_parquet_dictionaries_only_for_categorical_columns(tmp_path: Path) -> None:
    """Categorical (dictionary) columns come back as such; score columns are not dictionary-encoded."""
    target = tmp_path / "scores.parquet"
    segment = pa.DictionaryArray.from_arrays(pa.array([1, 0], pa.int32()), pa.array(["a", "b"]))
    batch = BATCH.append_column("x.segment", segment)
    with AtomicParquetWriter(target) as writer:
        writer.write(batch)
    assert pq.read_table(target).equals(pa.Table.from_batches([batch]))
    group = pq.ParquetFile(target).metadata.row_group(0)
    assert [group.column(i).has_dictionary_page for i in range(3)] == [False, False, True]


def test_error_leaves_nothing_and_keeps_old_file(tmp_path: Path) -> None:
    """An error mid-write removes the partial file and leaves a previous result untouched."""
    target = tmp_path / "scores.parquet"
    pq.write_table(pa.table({"old": [1]}), target)
    with pytest.raises(RuntimeError, match="boom"), AtomicParquetWriter(target) as writer:
        writer.write(BATCH)
        raise RuntimeError("boom")
    assert pq.read_table(target).column_names == ["old"]
    assert [p.name for p in tmp_path.iterdir()] == ["scores.parquet"]


def test_bad_targets(tmp_path: Path) -> None:
    """A folder or a missing parent folder is refused before anything is written."""
    with pytest.raises(IsADirectoryError):
        AtomicParquetWriter(tmp_path)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        AtomicParquetWriter(tmp_path / "no" / "x.parquet")


def test_nothing_visible_while_writing(tmp_path: Path) -> None:
    """While batches are written, the folder shows no file at all (Linux: an unnamed temp file)."""
    target = tmp_path / "scores.parquet"
    with AtomicParquetWriter(target) as writer:
        writer.write(BATCH)
        visible = sorted(p.name for p in tmp_path.iterdir())
    if writer._fd is None and visible:  # no O_TMPFILE here: the named fallback
        pytest.skip("this file system has no O_TMPFILE; the named temp file is covered below")
    assert visible == []
    assert [p.name for p in tmp_path.iterdir()] == ["scores.parquet"]


def test_stale_partial_of_a_dead_process_is_removed(tmp_path: Path) -> None:
    """A `.name.partial-<pid>` left by a killed process (named fallback) goes at the next write;
    a live process's is left alone."""
    import subprocess
    import sys

    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True, check=True)
    target = tmp_path / "scores.parquet"
    stale = tmp_path / f".scores.parquet.partial-{int(dead.stdout)}"
    live = tmp_path / f".scores.parquet.partial-{os.getppid()}"
    stale.write_bytes(b"half")
    live.write_bytes(b"busy")
    with AtomicParquetWriter(target) as writer:
        writer.write(BATCH)
    assert sorted(p.name for p in tmp_path.iterdir()) == [live.name, "scores.parquet"]


def test_write_bytes_replaces_whole_and_leaves_no_temp(tmp_path: Path) -> None:
    from scorecast.atomic import write_bytes

    target = tmp_path / "m.onnx"
    write_bytes(target, b"old")
    write_bytes(target, b"new")
    assert target.read_bytes() == b"new"
    assert [p.name for p in tmp_path.iterdir()] == ["m.onnx"]
    assert target.stat().st_mode & 0o044  # readable by others under the usual umask, not mkstemp's 0600


def test_new_dir_swaps_in_or_leaves_the_old_folder(tmp_path: Path) -> None:
    from scorecast.atomic import new_dir

    out = tmp_path / "base"
    with new_dir(out) as tmp:
        (tmp / "a.txt").write_text("1")
    assert (out / "a.txt").read_text() == "1"
    with pytest.raises(RuntimeError, match="midway"), new_dir(out) as tmp:
        (tmp / "b.txt").write_text("2")
        raise RuntimeError("midway")
    assert [p.name for p in out.iterdir()] == ["a.txt"]
    assert [p.name for p in tmp_path.iterdir()] == ["base"]
    with new_dir(out) as tmp:
        (tmp / "c.txt").write_text("3")
    assert [p.name for p in out.iterdir()] == ["c.txt"]
    assert [p.name for p in tmp_path.iterdir()] == ["base"]


def test_replace_dir_restores_the_old_folder_when_the_swap_fails(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import os

    from scorecast import atomic

    out, new = tmp_path / "out", tmp_path / "new"
    out.mkdir()
    (out / "old.txt").write_text("old")
    new.mkdir()
    (new / "new.txt").write_text("new")

    def refuse(src: object, dst: object) -> None:
        raise OSError("rename refused")

    monkeypatch.setattr(os, "rename", refuse)
    with pytest.raises(OSError, match="rename refused"):
        atomic.replace_dir(new, out)
    assert [p.name for p in out.iterdir()] == ["old.txt"]
