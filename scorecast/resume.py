"""The answers of a bulk ``score`` job, kept beside its output until the output is whole.

``<out>.resume/`` holds one Arrow IPC file per answered chunk (``part-000012.arrow``) and a
``manifest.json`` naming the job (base files, scores, options, chunk size), the model versions
of its first answer and how many chunks and contacts are answered. Each part is renamed into
place before the manifest counts it, and the manifest is replaced atomically (fsynced), so a
client killed at any moment leaves a state that a ``--resume`` run continues. Parts are not
fsynced one by one (that cost a 1M-contact job about a fifth of its time): after a machine
crash a part the manifest counts may be unreadable, and ``--resume`` then keeps the readable
ones before it and scores the rest again. A ``--resume`` run writes the kept
answers into the output again and streams only the remaining chunks, with the same model
versions and reference time, so the output is the bytes an uninterrupted run writes. The
output file itself is never resumed: it appears only when whole (``AtomicParquetWriter``).
The folder is removed once the output is in place.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pyarrow as pa

from .atomic import disk_full, write_text
from .tables import TABLES

__all__ = ["ResumeState", "base_signature", "state_folder"]

_FORMAT = 1
_PARTS = pa.ipc.IpcWriteOptions(compression="lz4")


def state_folder(out: Path) -> Path:
    """Where the partial state of the job writing ``out`` lives: ``<out>.resume`` beside it."""
    return out.with_name(f"{out.name}.resume")


def base_signature(base: Path) -> list[list[Any]]:
    """Each file of a base's tables (and its base.json) with its size and modification time:
    a base changed since the state was kept does not resume."""
    files = []
    for name in [*TABLES, "base"]:
        path = base / (f"{name}.parquet" if name in TABLES else "base.json")
        files += sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path] if path.is_file() else []
    return [[p.relative_to(base).as_posix(), p.stat().st_size, p.stat().st_mtime_ns] for p in files]


class ResumeState:
    """``ResumeState.open(out, job, resume)``, then ``batches()`` (the kept answers), ``add`` for
    each new answer, ``finish()`` once the output is in place."""

    def __init__(self, folder: Path, job: Mapping[str, Any], manifest: Mapping[str, Any] | None = None) -> None:
        self.folder = folder
        self.job = dict(job)
        manifest = manifest or {}
        self.models: dict[str, str] = dict(manifest.get("models") or {})
        self.as_of: str | None = manifest.get("as_of")
        self.chunks: int = int(manifest.get("chunks", 0))
        self.contacts: int = int(manifest.get("contacts", 0))

    @classmethod
    def open(cls, out: Path, job: Mapping[str, Any], resume: bool) -> tuple[ResumeState, str]:
        """The state of the job writing ``out``, with a note for the user ("" when none).

        With ``resume``, the kept state of the same ``job`` (ValueError naming what differs
        when it is another job's), or a new one if none was kept. Without, a new one: an earlier
        run's state is removed.
        """
        folder = state_folder(out)
        manifest_path = folder / "manifest.json"
        job = json.loads(json.dumps(job))  # as the manifest keeps it (tuples as lists), so the two compare
        if not folder.exists():
            return cls(folder, job), (f"nothing to resume in {folder}: starting from the first chunk" if resume else "")
        if not resume:
            shutil.rmtree(folder)
            return cls(folder, job), f"removed the partial state of an earlier run in {folder} (--resume continues one)"
        try:
            manifest = json.loads(manifest_path.read_text())
        except FileNotFoundError:
            return cls(folder, job), f"{folder} holds no answered chunk yet: starting from the first chunk"
        except ValueError as exc:
            raise ValueError(f"{manifest_path} is not a manifest ({exc}); remove {folder} to start over") from None
        if manifest.get("format") != _FORMAT:
            raise ValueError(f"{manifest_path} has format {manifest.get('format')!r}, not {_FORMAT}; remove {folder} to start over")
        kept = manifest.get("job", {})
        differs = sorted(k for k in set(kept) | set(job) if kept.get(k) != job.get(k))
        if differs:
            raise ValueError(
                f"the partial state in {folder} is of another job ({', '.join(differs)} differ); "
                f"run without --resume to start over"
            )
        state = cls(folder, job, manifest)
        state._keep_readable()
        return state, f"resuming from {folder}: {state.chunks} chunks ({state.contacts:,} contacts) already scored"

    def batches(self) -> Iterator[pa.RecordBatch]:
        """The answers kept, in chunk order."""
        for index in range(self.chunks):
            with pa.ipc.open_file(pa.memory_map(str(self._part(index)))) as reader:
                for k in range(reader.num_record_batches):
                    yield reader.get_batch(k)

    def _keep_readable(self) -> None:
        """Count only the parts before the first unreadable one (a machine crash can lose a
        part the manifest counted: parts are not fsynced)."""
        contacts = 0
        for index in range(self.chunks):
            try:
                with pa.ipc.open_file(pa.memory_map(str(self._part(index)))) as reader:
                    contacts += sum(reader.get_batch(k).num_rows for k in range(reader.num_record_batches))
            except (OSError, pa.ArrowInvalid):
                self.chunks = index
                break
        self.contacts = contacts

    def set_models(self, models: list[tuple[str, str]]) -> None:
        """Record the model versions of the job's first answer (they score the rest)."""
        self.models = dict(models)

    def add(self, batch: pa.RecordBatch) -> None:
        """Keep the answer of the next chunk: its part first, then the manifest that counts it."""
        self.folder.mkdir(exist_ok=True)
        part, tmp = self._part(self.chunks), self.folder / f".part-{self.chunks:06d}.tmp"
        try:
            with pa.OSFile(str(tmp), "wb") as f, pa.ipc.new_file(f, batch.schema, options=_PARTS) as writer:
                writer.write_batch(batch)
            os.replace(tmp, part)
        except BaseException as exc:  # nothing half-written stays, whatever stopped the write
            tmp.unlink(missing_ok=True)
            full = disk_full(exc, part) if isinstance(exc, OSError) else None
            if full is not None:
                raise full from exc
            raise
        self.chunks += 1
        self.contacts += batch.num_rows
        manifest = {
            "format": _FORMAT,
            "job": self.job,
            "as_of": self.as_of,
            "models": self.models,
            "chunks": self.chunks,
            "contacts": self.contacts,
        }
        write_text(self.folder / "manifest.json", json.dumps(manifest, indent=1))

    def finish(self) -> None:
        """Remove the state: the output is whole."""
        shutil.rmtree(self.folder, ignore_errors=True)

    def _part(self, index: int) -> Path:
        return self.folder / f"part-{index:06d}.arrow"
