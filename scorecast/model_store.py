"""The model repository on disk: ``<root>/<score>/<version>.onnx``, one rule for every user.

Training writes versions here, the report and ``lead-rules`` read the newest, and the server
loads the folder. Score and version names are letters, digits, ``_ . -`` (not starting with
``.`` or ``-``), so no name can leave the folder. Versions sort with ``version_key``: numeric
versions as numbers ("10" after "9"), after any non-numeric ones; the newest is the highest.
A new version written by training is one more than the highest numeric one, candidates
included, so that a number is never given twice.

A candidate is a retrained version the promotion gate kept back (it was worse than the version
serving): ``<root>/<score>/candidates/<version>.onnx``, beside a ``<version>.json`` saying why.
Nothing that serves scans that folder; ``promote_candidate`` moves one into the served set.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from pathlib import Path

import onnx

from .atomic import fsync_dir, write_bytes

__all__ = [
    "CANDIDATES",
    "MODEL_SUFFIX",
    "candidate_path",
    "check_name",
    "find_model",
    "model_files",
    "model_path",
    "next_version",
    "promote_candidate",
    "store_model",
    "version_key",
    "versions",
    "write_model",
]

MODEL_SUFFIX = ".onnx"
CANDIDATES = "candidates"
_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]*$")


def check_name(what: str, value: str) -> str:
    """``value`` when it is a valid score or version name; ValueError naming it otherwise."""
    if not _NAME.match(value):
        raise ValueError(f"{what} {value!r} is not a valid name (letters, digits, _ . -)")
    return value


def model_path(root: Path, score: str, version: str) -> Path:
    """Where a score's version lives in a repository folder."""
    return Path(root) / check_name("score", score) / f"{check_name('version', version)}{MODEL_SUFFIX}"


def version_key(version: str) -> tuple[int, int | str]:
    """Numeric versions sort as numbers, after any non-numeric ones."""
    return (1, int(version)) if version.isdigit() else (0, version)


def model_files(root: Path) -> Iterator[tuple[str, str, Path]]:
    """``(score, version, path)`` of every model file with valid names under ``root``."""
    for path in Path(root).glob(f"*/*{MODEL_SUFFIX}"):
        score, version = path.parent.name, path.name[: -len(MODEL_SUFFIX)]
        if _NAME.match(score) and _NAME.match(version):
            yield score, version, path


def versions(root: Path, score: str) -> list[str]:
    """The versions of ``score`` in the repository, oldest first."""
    folder = Path(root) / check_name("score", score)
    found = [p.name[: -len(MODEL_SUFFIX)] for p in folder.glob(f"*{MODEL_SUFFIX}")]
    return sorted((v for v in found if _NAME.match(v)), key=version_key)


def candidate_path(root: Path, score: str, version: str) -> Path:
    """Where a candidate version of a score is kept (never served)."""
    return Path(root) / check_name("score", score) / CANDIDATES / f"{check_name('version', version)}{MODEL_SUFFIX}"


def next_version(root: Path, score: str) -> str:
    """One more than the highest numeric version of ``score``, candidates included ("1" if none)."""
    candidates = Path(root) / check_name("score", score) / CANDIDATES
    kept = [p.name[: -len(MODEL_SUFFIX)] for p in candidates.glob(f"*{MODEL_SUFFIX}")]
    numeric = [int(v) for v in [*versions(root, score), *kept] if v.isdigit()]
    return str(max(numeric, default=0) + 1)


def promote_candidate(root: Path, score: str, version: str) -> Path:
    """Move a candidate into the served versions (an operator's decision: pinning it); returns
    its new path. The server's next reload serves it; as the highest version, by default."""
    source = candidate_path(root, score, version)
    if not source.is_file():
        raise FileNotFoundError(f"no candidate {score} version {version} in {source.parent}")
    target = model_path(root, score, version)
    os.replace(source, target)
    fsync_dir(target.parent)
    source.with_suffix(".json").unlink(missing_ok=True)
    return target


def find_model(root: Path, score: str, version: str | None = None) -> Path:
    """The file of ``score``'s ``version``, or of its newest version; FileNotFoundError naming
    what is there otherwise."""
    root = Path(root)
    folder = root / check_name("score", score)
    if not folder.is_dir():
        known = sorted(p.name for p in root.iterdir() if p.is_dir()) if root.is_dir() else []
        raise FileNotFoundError(f"no score {score!r} in {root} (scores there: {known})")
    if version is not None:
        path = model_path(root, score, version)
        if not path.is_file():
            raise FileNotFoundError(f"{path} does not exist")
        return path
    found = versions(root, score)
    if not found:
        raise FileNotFoundError(f"no model versions in {folder}")
    return model_path(root, score, found[-1])


def write_model(model: onnx.ModelProto, path: Path) -> Path:
    """Check ``model`` (full ONNX check) and write it to ``path`` atomically; returns the path."""
    onnx.checker.check_model(model, full_check=True)
    return write_bytes(Path(path), model.SerializeToString())


def store_model(root: Path, score: str, version: str, model: onnx.ModelProto) -> Path:
    """Write ``model`` as ``score``'s ``version`` in the repository at ``root``; returns its path."""
    path = model_path(root, score, version)
    path.parent.mkdir(parents=True, exist_ok=True)
    return write_model(model, path)
