"""The model repository: a folder of ``<score>/<version>.onnx`` files, loaded into sessions.

Nothing but ``.onnx`` files is read from it. Versions sort numerically when they are numbers
("10" after "9"); the default version of a score is the highest that loaded.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from .errors import ModelLoadError, ModelNotFound
from .runtime import OnnxModel

__all__ = ["ModelRepository", "model_path"]

log = logging.getLogger(__name__)
_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]*$")


def model_path(root: Path, score: str, version: str) -> Path:
    """Where a score's version lives in a repository folder."""
    for what, value in (("score", score), ("version", version)):
        if not _NAME.match(value):
            raise ValueError(f"{what} {value!r} is not a valid name (letters, digits, _ . -)")
    return root / score / f"{version}.onnx"


def version_key(version: str) -> tuple[int, int | str]:
    """Numeric versions sort as numbers, after any non-numeric ones."""
    return (1, int(version)) if version.isdigit() else (0, version)


@dataclass
class ModelRepository:
    """Loaded models by score and version, plus the files that failed to load and why."""

    root: Path
    models: dict[str, dict[str, OnnxModel]] = field(default_factory=dict)
    failures: dict[Path, str] = field(default_factory=dict)

    @classmethod
    def load(
        cls, root: Path, device: str = "cpu", intra_op_threads: int = 0, inter_op_threads: int = 0, spinning: bool = False
    ) -> ModelRepository:
        """Load every ``<score>/<version>.onnx`` under ``root``; a bad file is logged and skipped.
        The thread arguments go to every session (``OnnxModel.load``)."""
        if not root.is_dir():
            raise FileNotFoundError(f"model repository {root} is not a folder")
        repo = cls(root=root)
        for path in sorted(root.glob("*/*.onnx")):
            score, version = path.parent.name, path.stem
            try:
                model = OnnxModel.load(path, device, intra_op_threads, inter_op_threads, spinning)
                if model.meta.score != score or model.meta.version != version:
                    raise ModelLoadError(
                        path, f"its metadata says {model.meta.score!r} version {model.meta.version!r}, its path {score!r} {version!r}"
                    )
            except ModelLoadError as exc:
                log.error("%s", exc)
                repo.failures[path] = str(exc)
                continue
            repo.models.setdefault(score, {})[version] = model
            log.info("loaded %s version %s from %s in %.2fs on %s", score, version, path, model.load_seconds, model.providers)
        return repo

    @property
    def scores(self) -> list[str]:
        """Scores with at least one loaded version."""
        return sorted(self.models)

    def versions(self, score: str) -> list[str]:
        """Loaded versions of a score, oldest first."""
        return sorted(self.models.get(score, {}), key=version_key)

    def get(self, score: str, version: str | None = None) -> OnnxModel:
        """The model for a score: the given version, or the default (newest)."""
        versions = self.models.get(score)
        if not versions:
            raise ModelNotFound(score, None, self.scores)
        if not version:
            return versions[max(versions, key=version_key)]
        if version not in versions:
            raise ModelNotFound(score, version, [f"{score}:{v}" for v in versions])
        return versions[version]

    def defaults(self) -> Iterable[OnnxModel]:
        """The default version of every score."""
        return (self.get(score) for score in self.scores)
