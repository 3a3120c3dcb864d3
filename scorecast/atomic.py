"""Atomic writes: a file or folder appears whole at its final path, or not at all.

The one writer of everything scorecast leaves on disk: model files (``write_bytes`` through
``scorecast.model_store``), reports, simulated bases (``new_dir``: a hidden sibling folder
swapped into place by ``replace_dir``) and score outputs (``AtomicParquetWriter``). Data is
fsynced before the rename and the folder after it, so a crash never leaves a renamed file
whose bytes are not on disk.

``AtomicParquetWriter``: batches go to a temporary file beside the target, which is renamed over the target only when
every batch is written; on any error (or interruption) it is removed, so a reader never sees a
partial result. On Linux the temporary file is unnamed (``O_TMPFILE``) until that moment, so
even a process killed by SIGKILL leaves nothing behind: the kernel frees the file with the
process. Elsewhere it is a hidden ``.<name>.partial-<pid>`` file, and one left by a killed
process is removed by the next writer of the same target.

A full disk (ENOSPC, or EDQUOT for a quota) is ``DiskFull``: one line naming the path and
the space left on its file system; the temporary file or folder is gone by then.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno as errnos
import os
import shutil
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path
from types import TracebackType

import pyarrow as pa
import pyarrow.parquet as pq

__all__ = ["AtomicParquetWriter", "DiskFull", "disk_full", "fsync_dir", "new_dir", "process_alive", "replace_dir", "sibling_dir", "write_bytes", "write_text"]

_AT_FDCWD = -100
_AT_SYMLINK_FOLLOW = 0x400


class DiskFull(OSError):
    """No space left where ``path`` was being written: its message is one line naming the path
    and the free space."""

    def __init__(self, path: Path, free: int | None, code: int = errnos.ENOSPC) -> None:
        left = "unknown free space" if free is None else f"{_size(free)} free"
        super().__init__(code, f"no space left on the device writing {path} ({left} on its file system); nothing was written there")
        self.path = path
        self.free = free

    def __str__(self) -> str:
        return str(self.strerror)


def _size(n: int) -> str:
    for unit in ("bytes", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n} {unit}" if unit == "bytes" else f"{n:.1f} {unit}"
        n /= 1024  # type: ignore[assignment]
    raise AssertionError("unreachable")


def disk_full(exc: BaseException, path: Path) -> DiskFull | None:
    """``exc`` as DiskFull when it says the disk (or a quota) is full, else None. Arrow's
    errors carry the errno in their text only."""
    if isinstance(exc, DiskFull):
        return exc
    if not isinstance(exc, OSError):
        return None
    code = exc.errno if exc.errno in (errnos.ENOSPC, errnos.EDQUOT) else None
    if code is None and ("[errno 28]" in str(exc).lower() or "No space left on device" in str(exc)):
        code = errnos.ENOSPC
    if code is None:
        return None
    folder = Path(path)
    while not folder.is_dir() and folder != folder.parent:
        folder = folder.parent
    try:
        free: int | None = shutil.disk_usage(folder).free
    except OSError:
        free = None
    return DiskFull(Path(path), free, code)


def _raise_if_full(exc: BaseException, path: Path) -> None:
    full = disk_full(exc, path)
    if full is not None and full is not exc:
        raise full from exc


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
        try:
            self._write(batch)
        except OSError as exc:
            _raise_if_full(exc, self.path)
            raise

    def _write(self, batch: pa.RecordBatch) -> None:
        if self._writer is None:
            # Through /proc, Arrow writes the unnamed file natively (no Python file object).
            self._sink = pa.OSFile(f"/proc/self/fd/{self._fd}" if self._fd is not None else str(self.tmp), "wb")
            # Parquet dictionaries only for Arrow's dictionary (categorical) columns: tried on
            # every float score column they cost 40% of the write and grow the file (300k
            # contacts, 26 columns: 0.20 -> 0.12 CPU s, 10.5 -> 8.3 MB); zstd level 1, not Arrow's
            # default 3: the same 8.6 MB for the 300k behaviour scores, 0.17 -> 0.14 CPU s
            categorical = [f.name for f in batch.schema if pa.types.is_dictionary(f.type)]
            self._writer = pq.ParquetWriter(
                self._sink, batch.schema, compression="zstd", compression_level=1, use_dictionary=categorical
            )
        elif batch.schema != self._writer.schema:
            batch = batch.cast(self._writer.schema)
        self._writer.write_batch(batch)
        self.rows += batch.num_rows

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        try:
            self._finish(exc_type)
        except OSError as error:
            _raise_if_full(error, self.path)
            raise

    def _finish(self, exc_type: type[BaseException] | None) -> None:
        try:
            if self._writer is not None:
                self._writer.close()
            if self._sink is not None:
                self._sink.close()
            if exc_type is None:
                if self._writer is None:
                    raise ValueError(f"nothing to write to {self.path}: no batch was scored")
                if self._fd is not None:
                    os.fsync(self._fd)
                    _link(self._fd, self.tmp)
                else:
                    _fsync_file(self.tmp)
                os.replace(self.tmp, self.path)
                fsync_dir(self.path.parent)
        finally:
            if self._fd is not None:
                os.close(self._fd)
                self._fd = None
            self.tmp.unlink(missing_ok=True)


def write_bytes(path: Path, data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically (temporary sibling, fsync, rename); returns the path.

    The file gets the umask's permissions (not mkstemp's 0600); nothing is left on error.
    """
    path = Path(path)
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    except OSError as exc:
        _raise_if_full(exc, path)
        raise
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            umask = os.umask(0)
            os.umask(umask)
            os.fchmod(f.fileno(), 0o666 & ~umask)
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException as exc:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        _raise_if_full(exc, path)
        raise
    fsync_dir(path.parent)
    return path


def write_text(path: Path, text: str) -> Path:
    """``write_bytes`` of ``text`` in UTF-8."""
    return write_bytes(path, text.encode("utf-8"))


def fsync_dir(folder: Path) -> None:
    """Make a rename inside ``folder`` durable (where the platform can open a folder)."""
    with contextlib.suppress(OSError):
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def _fsync_file(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def sibling_dir(path: Path, tag: str) -> Path:
    """A new hidden folder beside ``path`` (same file system, so a rename is atomic); made
    with mkdir, not mkdtemp, so that the umask and not mkdtemp's 0700 sets its permissions."""
    for _ in range(100):
        candidate = path.parent / f".{path.name}.{uuid.uuid4().hex[:12]}.{tag}"
        try:
            candidate.mkdir()
        except FileExistsError:
            continue
        return candidate
    raise FileExistsError(f"no free temporary name beside {path}")


def replace_dir(src: Path, dst: Path) -> None:
    """Move folder ``src`` to ``dst``; at every moment ``dst`` is the old folder or the new one."""
    _fsync_tree(src)
    if not dst.exists():
        os.rename(src, dst)
    elif not any(dst.iterdir()):
        os.replace(src, dst)  # rename(2) replaces an empty directory in one step
    else:
        # a non-empty folder cannot be replaced in one rename: move it aside first
        old = sibling_dir(dst, "old")
        os.replace(dst, old / "previous")
        try:
            os.rename(src, dst)
        except BaseException:
            os.replace(old / "previous", dst)
            old.rmdir()
            raise
        shutil.rmtree(old, ignore_errors=True)
    fsync_dir(dst.parent)


def _fsync_tree(folder: Path) -> None:
    for path in folder.rglob("*"):
        if path.is_file():
            _fsync_file(path)
        elif path.is_dir():
            fsync_dir(path)


@contextlib.contextmanager
def new_dir(dst: Path, *, overwrite: bool = True) -> Iterator[Path]:
    """``with new_dir(dst) as tmp:`` fill ``tmp``; it replaces ``dst`` when the block succeeds,
    and is removed when it fails. Without ``overwrite``, a non-empty ``dst`` is FileExistsError
    before anything is written."""
    if dst.exists() and not dst.is_dir():
        raise FileExistsError(f"{dst} exists and is not a directory")
    if not overwrite and dst.is_dir() and any(dst.iterdir()):
        raise FileExistsError(f"{dst} exists and is not empty (pass overwrite=True to replace it)")
    dst.parent.mkdir(parents=True, exist_ok=True)
    tmp = sibling_dir(dst, "tmp")
    try:
        yield tmp
        replace_dir(tmp, dst)
    except BaseException as exc:
        shutil.rmtree(tmp, ignore_errors=True)
        _raise_if_full(exc, dst)
        raise


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
        if pid.isdigit() and not process_alive(int(pid)):
            partial.unlink(missing_ok=True)


def process_alive(pid: int) -> bool:
    """Whether a process with this id runs on this host (another user's counts)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        return True
    return True
