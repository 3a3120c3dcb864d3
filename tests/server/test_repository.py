"""The model repository: loading, versions, and files that must not be served."""

from __future__ import annotations

from pathlib import Path

import pytest

from scorecast.model_store import model_path
from scorecast.server.errors import ModelNotFound
from scorecast.server.repository import ModelRepository

from ..support.fakes import linear_model, write_model


def test_versions_sort_numerically_and_default_is_newest(tmp_path: Path) -> None:
    """'10' is newer than '9'; the default is the highest; each version stays reachable."""
    for version in ("2", "9", "10"):
        write_model(tmp_path, linear_model(version=version, weights=(float(version), 0.0)))
    repo = ModelRepository.load(tmp_path)
    assert repo.versions("spend") == ["2", "9", "10"]
    assert repo.get("spend").meta.version == "10"
    assert repo.get("spend", "9").meta.params["weights"][0] == 9.0
    with pytest.raises(ModelNotFound, match="version '3'"):
        repo.get("spend", "3")


def test_bad_files_are_skipped_with_a_reason(tmp_path: Path) -> None:
    """Garbage, missing metadata and a path/metadata mismatch are not served; each says why."""
    write_model(tmp_path, linear_model())
    (tmp_path / "junk").mkdir()
    (tmp_path / "junk" / "1.onnx").write_bytes(b"not onnx")
    model = linear_model(version="5")
    (tmp_path / "spend" / "6.onnx").write_bytes(model.SerializeToString())  # says 5, lives at 6
    del model.metadata_props[:]
    (tmp_path / "bare").mkdir()
    (tmp_path / "bare" / "1.onnx").write_bytes(model.SerializeToString())
    (tmp_path / "spend" / "notes.pkl").write_bytes(b"never read")
    repo = ModelRepository.load(tmp_path)
    assert repo.scores == ["spend"] and repo.versions("spend") == ["1"]
    reasons = {p.relative_to(tmp_path).as_posix(): r for p, r in repo.failures.items()}
    assert set(reasons) == {"junk/1.onnx", "spend/6.onnx", "bare/1.onnx"}
    assert "not an ONNX model" in reasons["junk/1.onnx"]
    assert "metadata says 'spend' version '5'" in reasons["spend/6.onnx"]
    assert "no 'scorecast' entry" in reasons["bare/1.onnx"]


def test_model_path_refuses_odd_names(tmp_path: Path) -> None:
    """Score and version names cannot escape the repository folder."""
    assert model_path(tmp_path, "rfm", "3") == tmp_path / "rfm" / "3.onnx"
    with pytest.raises(ValueError, match="version '../x'"):
        model_path(tmp_path, "rfm", "../x")


def test_missing_folder(tmp_path: Path) -> None:
    """A repository that is not a folder is a clear error."""
    with pytest.raises(FileNotFoundError, match="nowhere"):
        ModelRepository.load(tmp_path / "nowhere")


def test_only_the_wanted_scores_load_and_more_are_added(tmp_path: Path) -> None:
    """Loaded for one score, a repository serves it alone (a request for another names every
    score on disk); ``want`` adds one, keeping the models it had; None wants them all."""
    for score in ("a", "b", "c"):
        write_model(tmp_path, linear_model(score=score))
    repository = ModelRepository.load(tmp_path, scores=["a"])
    assert repository.scores == ["a"] and repository.wanted == {"a"} and repository.covers(["a"])
    assert not repository.covers(["a", "b"]) and not repository.covers(None)
    assert set(repository.fingerprint()) == {tmp_path / "a" / "1.onnx"}
    with pytest.raises(ModelNotFound, match=r"available: \['a', 'b', 'c'\]"):
        repository.get("b")
    first = repository.get("a")
    report = repository.want(["b", "nope"])
    assert report.loaded == [("b", "1")] and repository.scores == ["a", "b"] and repository.get("a") is first
    assert repository.covers(["nope"]) and repository.want(["a"]).loaded == []
    assert repository.want(None).loaded == [("c", "1")] and repository.wanted is None and repository.covers(None)
