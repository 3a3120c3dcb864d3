"""The model repository: ``<account>/<score>/<version>.onnx`` files, loaded into sessions.

**Layout.** ``MODELS/<account>/<score>/<version>.onnx``: one folder per account, holding that
account's score folders. A repository without account folders (``MODELS/<score>/<version>.onnx``,
the layout before accounts) is one account, the default one, so every existing repository keeps
working. ``account_folders`` tells them apart by what a top-level folder holds: one with
``.onnx`` files directly in it is a score folder of the default account; any other (its
subfolders hold the ``.onnx`` files, or it is still empty) is an account folder. The two may
sit side by side; the default account's scores are then the top-level score folders, and an
account folder of the default account's name is ignored (logged). Names that are not valid
account names (letters, digits, ``_ . -``, not starting with ``.`` or ``-``) are skipped.

**One account's models** are a ``ModelRepository`` over its folder. Nothing but ``.onnx``
files is read from it. Versions sort numerically when they are numbers ("10" after "9"); the
default version of a score is the highest that loaded.

**Only the scores asked for.** ``ModelRepository.load(root, scores=...)`` loads those scores'
folders alone, and ``want`` adds more later (an account's call that names two of its five scores
builds two sessions); ``wanted`` is None once every score is. Reloads and ``fingerprint`` see only
the wanted scores' files.

``reload`` rescans the folder: new and changed files are loaded beside the models being
served, then the whole set is swapped in one assignment. A request holds the models it
started with (``ScoringPipeline`` keeps them), so it finishes on them; a file that fails to
load (bad file, failed parity probe) leaves the version it would have replaced serving, and
its reason stays in ``failures`` for ``GetModel`` to report.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Collection, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any
from pathlib import Path

from scorecast.accounts import check_account_name
from scorecast.model_store import MODEL_SUFFIX, check_name, version_key

from .errors import ModelLoadError, ModelNotFound
from .runtime import DEFAULT_SESSION_OPTIONS, OnnxModel, SessionOptions

__all__ = ["ModelRepository", "ReloadReport", "account_folders", "model_files"]

log = logging.getLogger(__name__)


# (mtime_ns, size, inode): a file whose stamp is unchanged is not loaded again
_Stamp = tuple[int, int, int]


def account_folders(root: Path, default: str) -> dict[str, Path]:
    """Each account of the repository at ``root`` and the folder its score folders live in
    (``root`` itself for the default account's top-level score folders); see the layout above."""
    accounts: dict[str, Path] = {}
    legacy = False
    try:
        folders = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    except FileNotFoundError:
        return {}
    for folder in folders:
        if next(folder.glob(f"*{MODEL_SUFFIX}"), None) is not None:
            legacy = True
            continue
        try:
            check_account_name(folder.name)
        except ValueError as exc:
            log.warning("skipping %s: %s", folder, exc)
            continue
        accounts[folder.name] = folder
    if legacy or not accounts:  # top-level score folders, or an empty repository: the default account
        if default in accounts:
            log.warning("ignoring account folder %s: the top-level score folders are account %r", accounts[default], default)
        accounts[default] = root
    return accounts


def model_files(root: Path, scores: Collection[str] | None = None) -> dict[Path, os.stat_result]:
    """Each ``<score>/<version>.onnx`` file under ``root`` (of ``scores`` only, when given) and
    its stat: one stat per file, a file removed meanwhile left out."""
    files = {}
    for path in root.glob(f"*/*{MODEL_SUFFIX}"):
        if scores is not None and path.parent.name not in scores:
            continue
        try:
            files[path] = path.stat()
        except FileNotFoundError:  # removed between glob and stat: a load or reload will say so
            continue
    return files


LOAD_THREADS = 4
"""Model files loaded at once (a reload, an account's first call): the five models of an account
load in about the time of the slowest (measured on 2 busy cores: 82 ms against 135 ms one by one)."""
_loader_pool: ThreadPoolExecutor | None = None
_loader_lock = threading.Lock()


def _loader() -> ThreadPoolExecutor:
    global _loader_pool
    with _loader_lock:
        if _loader_pool is None:
            _loader_pool = ThreadPoolExecutor(LOAD_THREADS, thread_name_prefix="scorecast-load")
        return _loader_pool


@dataclass(frozen=True)
class _Snapshot:
    """One consistent set of served models; replaced whole, never mutated."""

    models: dict[str, dict[str, OnnxModel]]
    stamps: dict[Path, _Stamp]
    failures: dict[Path, str]
    derived: dict[Any, Any] = field(default_factory=dict)  # what callers build from these models


@dataclass(frozen=True)
class ReloadReport:
    """What one ``reload`` changed: (score, version) pairs, and failures by path."""

    loaded: list[tuple[str, str]] = field(default_factory=list)
    unloaded: list[tuple[str, str]] = field(default_factory=list)
    failed: dict[Path, str] = field(default_factory=dict)

    @property
    def changed(self) -> bool:
        return bool(self.loaded or self.unloaded or self.failed)


class ModelRepository:
    """Loaded models by score and version, plus the files that failed to load and why."""

    def __init__(self, root: Path, options: SessionOptions = DEFAULT_SESSION_OPTIONS, scores: Iterable[str] | None = None) -> None:
        self.root = root
        self.options = options
        self._wanted = None if scores is None else frozenset(scores)
        self._snapshot = _Snapshot({}, {}, {})
        self._reload_lock = threading.Lock()  # one reload at a time; readers never wait

    @classmethod
    def load(cls, root: Path, options: SessionOptions = DEFAULT_SESSION_OPTIONS, scores: Iterable[str] | None = None) -> ModelRepository:
        """Load every ``<score>/<version>.onnx`` under ``root`` (only ``scores``' when given); a bad
        file is logged and skipped. ``options`` build every model's session (``OnnxModel.load``),
        now and on reloads."""
        if not root.is_dir():
            raise FileNotFoundError(f"model repository {root} is not a folder")
        repo = cls(root, options, scores)
        repo.reload()
        return repo

    @property
    def wanted(self) -> frozenset[str] | None:
        """The scores served when their files load (None: every score in the folder)."""
        return self._wanted

    def covers(self, scores: Collection[str] | None) -> bool:
        """Whether ``scores`` (None: all) are wanted already: loaded, or found failed or absent."""
        if self._wanted is None:
            return True
        return scores is not None and self._wanted.issuperset(scores)

    def want(self, scores: Collection[str] | None) -> ReloadReport:
        """Serve ``scores`` too (None: every score), loading their files now."""
        with self._reload_lock:
            if not self.covers(scores):
                self._wanted = None if scores is None else self._wanted | frozenset(scores)  # type: ignore[operator]
            return self._reload()

    @property
    def models(self) -> dict[str, dict[str, OnnxModel]]:
        """Served models by score, then version (one consistent snapshot)."""
        return self._snapshot.models

    @property
    def derived(self) -> dict[Any, Any]:
        """A cache for what callers build from the served models (request plans): it goes with
        them, emptied by any reload that swaps them."""
        return self._snapshot.derived

    @property
    def stamps(self) -> dict[Path, _Stamp]:
        """The file stamps the served set was built from (compare with ``fingerprint``)."""
        return self._snapshot.stamps

    @property
    def failures(self) -> dict[Path, str]:
        """Files that did not load, with the reason; a fixed file drops out on the next reload."""
        return self._snapshot.failures

    def fingerprint(self) -> dict[Path, _Stamp]:
        """Stamp of every wanted model file now in the folder (cheap: one stat per file)."""
        return {path: (st.st_mtime_ns, st.st_size, st.st_ino) for path, st in model_files(self.root, self._wanted).items()}

    def reload(self) -> ReloadReport:
        """Load new and changed files beside the served models, then swap them in at once."""
        with self._reload_lock:
            return self._reload()

    def _reload(self) -> ReloadReport:
        old = self._snapshot
        stamps = self.fingerprint()
        models: dict[str, dict[str, OnnxModel]] = {}
        failures: dict[Path, str] = {}
        kept_stamps: dict[Path, _Stamp] = {}
        report = ReloadReport()
        fresh = self._load_all([p for p in sorted(stamps) if self._needs_load(old, p, stamps[p])])
        for path in sorted(stamps):
            score, version = path.parent.name, path.stem
            current = old.models.get(score, {}).get(version)
            if current is not None and old.stamps.get(path) == stamps[path]:
                models.setdefault(score, {})[version] = current
                kept_stamps[path] = stamps[path]
                continue
            if path in old.failures and old.stamps.get(path) == stamps[path]:
                failures[path] = old.failures[path]  # same bad file: do not retry every poll
                kept_stamps[path] = stamps[path]
                if current is not None:
                    models.setdefault(score, {})[version] = current
                continue
            model = fresh[path]
            if isinstance(model, ModelLoadError):
                log.error("%s", model)
                failures[path] = report.failed[path] = str(model)
                kept_stamps[path] = stamps[path]
                if current is not None:  # a broken replacement leaves the old one serving
                    models.setdefault(score, {})[version] = current
                    log.warning("%s version %s keeps serving the previously loaded file", score, version)
                continue
            models.setdefault(score, {})[version] = model
            kept_stamps[path] = stamps[path]
            report.loaded.append((score, version))
            log.info(
                "loaded %s version %s from %s in %.2fs on %s (trees: %s)",
                score,
                version,
                path,
                model.load_seconds,
                model.providers,
                model.tree_form,
            )
        for score, versions in old.models.items():
            for version in versions:
                if version not in models.get(score, {}):
                    report.unloaded.append((score, version))
                    log.info("unloaded %s version %s: its file is gone", score, version)
        self._snapshot = _Snapshot(models, kept_stamps, failures)
        return report

    @staticmethod
    def _needs_load(old: _Snapshot, path: Path, stamp: _Stamp) -> bool:
        """A file new or changed since ``old`` (a failed one only once its stamp changes)."""
        if old.stamps.get(path) != stamp:
            return True
        return path not in old.failures and old.models.get(path.parent.name, {}).get(path.stem) is None

    def _load_all(self, paths: list[Path]) -> dict[Path, OnnxModel | ModelLoadError]:
        """Each file loaded (or why not), several at once: building a session releases the GIL for
        most of its time, and an account's first call waits for all of its models."""

        def one(path: Path) -> OnnxModel | ModelLoadError:
            try:
                return self._load(path, path.parent.name, path.stem)
            except ModelLoadError as exc:
                return exc

        if len(paths) <= 1:
            return {p: one(p) for p in paths}
        return dict(zip(paths, _loader().map(one, paths), strict=True))

    def _load(self, path: Path, score: str, version: str) -> OnnxModel:
        try:
            check_name("score", score)
            check_name("version", version)
        except ValueError as exc:
            raise ModelLoadError(path, str(exc)) from None
        model = OnnxModel.load(path, self.options)
        if model.meta.score != score or model.meta.version != version:
            raise ModelLoadError(
                path, f"its metadata says {model.meta.score!r} version {model.meta.version!r}, its path {score!r} {version!r}"
            )
        return model

    @property
    def scores(self) -> list[str]:
        """Scores with at least one loaded version."""
        return sorted(self.models)

    def versions(self, score: str) -> list[str]:
        """Loaded versions of a score, oldest first."""
        return sorted(self.models.get(score, {}), key=version_key)

    def failed_versions(self, score: str) -> dict[str, str]:
        """Versions of a score whose file failed to load (or to replace a served one), with why."""
        return {p.stem: reason for p, reason in self.failures.items() if p.parent.name == score}

    def get(self, score: str, version: str | None = None) -> OnnxModel:
        """The model for a score: the given version, or the default (newest)."""
        versions = self.models.get(score)
        if version and not (versions and version in versions):
            failed = self.failed_versions(score).get(version)
            if failed is not None:
                raise ModelNotFound(score, version, [f"{score}:{v}" for v in versions or ()], failed)
        if not versions:
            raise ModelNotFound(score, None, self.scores if self._wanted is None else self._on_disk())
        if not version:
            return versions[max(versions, key=version_key)]
        if version not in versions:
            raise ModelNotFound(score, version, [f"{score}:{v}" for v in versions])
        return versions[version]

    def _on_disk(self) -> list[str]:
        """Score folders holding model files, wanted or not (for error messages)."""
        return sorted({p.parent.name for p in self.root.glob(f"*/*{MODEL_SUFFIX}")})

    def defaults(self) -> Iterable[OnnxModel]:
        """The default version of every score."""
        models = self.models
        return [versions[max(versions, key=version_key)] for _, versions in sorted(models.items())]
