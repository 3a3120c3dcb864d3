"""Write score batches to one Parquet file atomically: all of it, or nothing.

Batches go to a temporary file beside the target, which is renamed over the target only when
every batch is written; on any error (or interruption) it is removed, so a reader never sees a
partial result. On Linux the temporary file is unnamed (``O_TMPFILE``) until that moment, so
even a process killed by SIGKILL leaves nothing behind: the kernel frees the file with the
process. Elsewhere it is a hidden ``.<name>.partial-<pid>`` file, and one left by a killed
process is removed by the next writer of the same target.
"""

from __future__ import annotations

import ctypes
import os
from pathlib import Path
from types import TracebackType

import pyarrow as pa
import pyarrow.parquet as pq

__all__ = ["AtomicParquetWriter", "fsync_path"]

_AT_FDCWD = -100
_AT_SYMLINK_FOLLOW = 0x400


class AtomicParquetWriter:
    """``with AtomicParquetWriter(path) as w: w.write(batch)`` — the file appears at the end."""

    def __init__(self, path: Path) -> None:
        self.path = path
        if path.is_dir():
            raise IsADirectoryError(f"output {path} is a folder; give a .parquet file path")
        if not path.parent.is_dir():
            raise FileNotFoundError(f"output folder {path.parent} does not exist")
        self.tmp = path.with_name(f".{path.name}.partial-{os.getpid()}")
        _remove_stale(path)
        self._fd = _unnamed_file(path.parent)
        self._sink: pa.NativeFile | None = None
        self._writer: pq.ParquetWriter | None = None
        self.rows = 0

    def __enter__(self) -> AtomicParquetWriter:
        return self

    def write(self, batch: pa.RecordBatch) -> None:
        """Append one batch (its schema must match the first batch's)."""
        if self._writer is None:
            # Through /proc, Arrow writes the unnamed file natively (no Python file object).
            self._sink = pa.OSFile(f"/proc/self/fd/{self._fd}" if self._fd is not None else str(self.tmp), "wb")
            self._writer = pq.ParquetWriter(self._sink, batch.schema, compression="zstd")
        elif batch.schema != self._writer.schema:
            batch = batch.cast(self._writer.schema)
        self._writer.write_batch(batch)
        self.rows += batch.num_rows

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        try:
            if self._writer is not None:
                self._writer.close()
            if self._sink is not None:
                self._sink.close()
            if exc_type is None:
                if self._writer is None:
                    raise ValueError(f"nothing to write to {self.path}: no batch was scored")
                # Data on disk before the name: after a crash the path holds the old file or the whole new one.
                if self._fd is not None:
                    os.fsync(self._fd)
                    _link(self._fd, self.tmp)
                else:
                    fsync_path(self.tmp)
                os.replace(self.tmp, self.path)
                fsync_path(self.path.parent)
        finally:
            if self._fd is not None:
                os.close(self._fd)
                self._fd = None
            self.tmp.unlink(missing_ok=True)


def fsync_path(path: Path) -> None:
    """Flush a file's data, or a folder's entries (a rename in it), to disk."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _unnamed_file(folder: Path) -> int | None:
    """A writable file in ``folder`` with no name yet (Linux O_TMPFILE), or None where unsupported."""
    flag = getattr(os, "O_TMPFILE", None)
    if flag is None or not Path("/proc/self/fd").is_dir():
        return None
    try:
        return os.open(folder, flag | os.O_WRONLY, 0o666)  # the umask applies, as for a named file
    except OSError:  # a file system without O_TMPFILE support
        return None


def _link(fd: int, name: Path) -> None:
    """Give the unnamed file of ``fd`` a name (linkat through /proc, as open(2) documents)."""
    libc = ctypes.CDLL(None, use_errno=True)
    source = f"/proc/self/fd/{fd}".encode()
    if libc.linkat(_AT_FDCWD, source, _AT_FDCWD, os.fsencode(name), _AT_SYMLINK_FOLLOW) != 0:
        errno = ctypes.get_errno()
        raise OSError(errno, f"cannot name the result file {name}: {os.strerror(errno)}")


def _remove_stale(path: Path) -> None:
    """Remove ``.<name>.partial-<pid>`` files of this target whose process is gone."""
    for partial in path.parent.glob(f".{path.name}.partial-*"):
        pid = partial.name.rsplit("-", 1)[-1]
        if pid.isdigit() and not _alive(int(pid)):
            partial.unlink(missing_ok=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        return True
    return True
