"""Champion and challenger: a retrained version is served only if it is not worse than the one serving.

The challenger (the version just fitted) and the champion (the newest version the repository
serves) are both scored, through ONNX Runtime, on the challenger's holdout: the same contacts,
features computed by the one feature pipeline from the same tables as of the same time, each
model reading its own feature list, and the true labels (``run.Holdout``). The metric is the
mean ROC AUC over the outputs both models have (affinity: the product groups in both). The
challenger is promoted unless it falls below the champion by more than the score's tolerance
(``PromotionPolicy``); otherwise it is kept as a candidate (``model_store.candidate_path``) that
nothing serves, with a JSON note of the comparison beside it.

A score without a holdout (rfm's quintiles, segments' clusters, the closed-form CLV models) or
a first version is promoted as it is, and the verdict says so. The champion may have trained
on some of the challenger's holdout contacts (its own split of an earlier base): that favours
the champion, so a challenger promoted under it is, if anything, better than measured.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import onnx

from scorecast.atomic import write_text
from scorecast.metadata import INPUT_NAME
from scorecast.model_store import candidate_path, find_model, store_model, versions, write_model

from .evaluation import roc_auc
from .onnx_export import read_metadata
from .run import Holdout
from .train import Built, feature_rows

__all__ = ["DEFAULT_TOLERANCE", "PromotionPolicy", "Verdict", "decide", "evaluate", "settle"]

DEFAULT_TOLERANCE = 0.01
"""Holdout AUC a retrain may lose against the serving version and still be promoted: the
spread of AUC between two fits of one small account's base on different seeds is about this."""


@dataclass(frozen=True)
class PromotionPolicy:
    """How much worse than the serving version a retrain may be, per score (AUC points).

    From a JSON file ``{"default": 0.01, "scores": {"affinity": 0.005}}`` (``from_file``)."""

    default: float = DEFAULT_TOLERANCE
    scores: dict[str, float] = field(default_factory=dict)

    def tolerance(self, score: str) -> float:
        """The tolerance for ``score``."""
        return self.scores.get(score, self.default)

    @classmethod
    def from_file(cls, path: Path) -> PromotionPolicy:
        """Read a policy; ValueError naming the key or value that is wrong."""
        try:
            raw = json.loads(Path(path).read_text())
        except (OSError, json.JSONDecodeError) as exc:
            raise ValueError(f"promotion policy {path}: {exc}") from None
        unknown = sorted(set(raw) - {"default", "scores"}) if isinstance(raw, dict) else ["(not an object)"]
        if unknown:
            raise ValueError(f"promotion policy {path}: unknown keys {unknown}; expected 'default' and 'scores'")
        policy = cls(float(raw.get("default", DEFAULT_TOLERANCE)), {str(k): float(v) for k, v in raw.get("scores", {}).items()})
        for name, value in [("default", policy.default), *policy.scores.items()]:
            if not 0.0 <= value < 1.0:
                raise ValueError(f"promotion policy {path}: tolerance of {name} must be in [0, 1), got {value}")
        return policy


@dataclass(frozen=True)
class Verdict:
    """What the gate decided for one retrained version."""

    score: str
    version: str
    promoted: bool
    champion: str | None = None  # the serving version it was compared with
    metric: str | None = None
    challenger_value: float | None = None
    champion_value: float | None = None
    tolerance: float | None = None
    reason: str = ""

    def line(self) -> str:
        """One line for the fleet's summary: the metric against the serving version."""
        if self.challenger_value is None:
            return f"{self.score} v{self.version}: {self.reason}"
        return (
            f"{self.score} v{self.version} {self.metric} {self.challenger_value:.3f} "
            f"vs v{self.champion} {self.champion_value:.3f}"
        )


def evaluate(model: onnx.ModelProto, holdout: Holdout, outputs: list[str]) -> float:
    """Mean ROC AUC of ``model``'s ``outputs`` on the holdout, through ONNX Runtime."""
    import onnxruntime as ort

    meta = read_metadata(model)
    x = feature_rows(holdout.tables, holdout.as_of_us, model, holdout.contact_ids)
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    specs = {o.name: o for o in meta.outputs}
    tensors = sorted({specs[name].onnx_output for name in outputs})
    results = dict(zip(tensors, session.run(tensors, {INPUT_NAME: x}), strict=True))
    values = []
    for name in outputs:
        spec = specs[name]
        column = results[spec.onnx_output]
        scores = column[:, spec.column] if spec.column is not None else column.reshape(len(x), -1)[:, 0]
        values.append(roc_auc(np.asarray(holdout.labels[name], bool), scores.astype(np.float64)))
    return float(np.mean(values))


def _comparable(holdout: Holdout, champion: onnx.ModelProto) -> list[str]:
    """The holdout's labelled outputs the champion also gives, with both classes present."""
    names = {o.name for o in read_metadata(champion).outputs}
    return [n for n, y in holdout.labels.items() if n in names and 0 < int(np.sum(y)) < len(y)]


def decide(built: Built, root: Path, policy: PromotionPolicy) -> Verdict:
    """Compare a fitted version with the version ``root`` serves for its score."""
    served = versions(root, built.score) if (Path(root) / built.score).is_dir() else []
    if not served:
        return Verdict(built.score, built.version, True, reason="first version")
    champion_version = served[-1]
    if built.holdout is None:
        return Verdict(built.score, built.version, True, champion_version, reason="no holdout to compare on: promoted")
    champion = onnx.load(find_model(root, built.score, champion_version))
    outputs = _comparable(built.holdout, champion)
    if not outputs:
        return Verdict(built.score, built.version, True, champion_version, reason="no output in common with the serving version: promoted")
    challenger_value = evaluate(built.model, built.holdout, outputs)
    champion_value = evaluate(champion, built.holdout, outputs)
    tolerance = policy.tolerance(built.score)
    promoted = challenger_value >= champion_value - tolerance
    reason = (
        "not worse than the serving version"
        if promoted
        else f"worse than serving v{champion_version} by {champion_value - challenger_value:.3f} > tolerance {tolerance}"
    )
    return Verdict(built.score, built.version, promoted, champion_version, "auc", challenger_value, champion_value, tolerance, reason)


def settle(built: Built, verdict: Verdict, root: Path) -> Path:
    """Store the version where the verdict puts it: served, or kept as a candidate with a note."""
    if verdict.promoted:
        return store_model(root, built.score, built.version, built.model)
    path = candidate_path(root, built.score, built.version)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_model(built.model, path)
    write_text(path.with_suffix(".json"), json.dumps(asdict(verdict), indent=2) + "\n")
    return path
