"""Champion and challenger: a retrained version is served only if it is not worse than the one serving.

The challenger (the version just fitted) and the champion (the newest version the repository
serves) are both scored, through ONNX Runtime, on the challenger's holdout: the same contacts,
features computed by the one feature pipeline from the same tables as of the same time, each
model reading its own feature list, and the truth (``run.Holdout``). The holdout names its
metric (``METRICS``), computed on the rows where both versions give a value:

- ``auc``: mean ROC AUC over the outputs both models have (affinity: the product groups in both;
  cross_sell: the groups, on the contacts new to each; engagement: p_open and p_click against
  the reaction to the next send; churn: p_no_order_90d against no repeat order in clv's holdout);
- ``mae``: mean absolute error (clv: expected orders over the holdout's length against the
  repeat purchase days in it), compared relatively: the tolerance is a share of the champion's;
- ``silhouette``: of each version's segments on the same contacts, in the challenger's
  standardised feature space (which favours the challenger a little: it chose k there);
- ``ndcg``: NDCG@K of each version's ``rec_1..rec_K`` SKUs (K: the outputs both have) against
  the SKUs each contact bought in the last ``holdout_days`` (recommendations: the report half of
  its selection holdout, features as of the cutoff). Both versions were fitted on orders up to
  their own as-of, which for a nightly retrain covers the same window but a day: a champion much
  older than the window saw less of it, which favours the challenger;
- ``qini``: Qini of each version's uplift on the held-out contacts' campaign rows, each row's
  features as of its campaign (promo_appetence; the served model never saw those contacts);
- lead is ``auc``: the probability against conversion on the scorecard's held-out leads.

The challenger is promoted unless it is worse than the champion by more than the score's
tolerance (``PromotionPolicy``, in the metric's unit; ``SCORE_TOLERANCES`` for the metrics on
another scale than AUC); otherwise it is kept as a candidate (``model_store.candidate_path``)
that nothing serves, with a JSON note of the comparison beside it.

Scores with nothing to gate (``UNGATED``) and a first version are promoted, and the verdict says
why. The champion may have trained on some of the challenger's holdout contacts (its own split
of an earlier base): that favours the champion, so a challenger promoted under it is, if
anything, better than measured.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import onnx
import pyarrow as pa
import pyarrow.compute as pc
from sklearn.metrics import silhouette_score

from scorecast.atomic import write_text
from scorecast.metadata import INPUT_NAME, REQUEST_PREFIX
from scorecast.model_store import candidate_path, find_model, store_model, versions, write_model

from .evaluation import ranking_metrics, roc_auc, uplift_metrics
from .onnx_export import read_metadata
from .run import Holdout
from .train import Built, feature_rows

__all__ = [
    "DEFAULT_TOLERANCE",
    "METRICS",
    "SCORE_TOLERANCES",
    "UNGATED",
    "Metric",
    "PromotionPolicy",
    "Verdict",
    "compare",
    "decide",
    "predict",
    "settle",
]

DEFAULT_TOLERANCE = 0.01
"""How much worse than the serving version a retrain may be and still be promoted, in its
metric's unit (AUC or silhouette points, a share of the MAE): the spread of AUC between two fits
of one small account's base on different seeds is about this."""
SCORE_TOLERANCES: dict[str, float] = {"recommendations": 0.025, "promo_appetence": 0.003, "lead": 0.03}
"""Built-in tolerances where the default does not fit the metric's scale or noise (a policy
file's ``scores`` overrides them), each set between two gaps measured on simulated accounts:
above the largest between equally good retrains (the champion fitted on the base 1-7 days
earlier, or with other seeds on the same split), so they do not flap, and below the smallest of
a planted regression. recommendations (NDCG@10, 2,500-8,000 contacts): retrains up to 0.013
nightly and 0.021 with another SVD seed (one seed whose holdout chose another blend fell 0.042,
as far as a planted regression: held back), item parameters scrambled across SKUs 0.043-0.057;
promo_appetence (Qini, about 0.01 there): retrains up to 0.001, shuffled outcomes 0.006-0.021;
lead (AUC of ~1,000 held-out leads, ~60 conversions): nightly up to 0.014, shuffled
conversions 0.26-0.42."""


@dataclass(frozen=True)
class PromotionPolicy:
    """How much worse than the serving version a retrain may be, per score, in the score's metric's
    unit (``METRICS``: AUC, NDCG, Qini or silhouette points; for clv's MAE a share of the champion's).

    From a JSON file ``{"default": 0.01, "scores": {"affinity": 0.005}}`` (``from_file``); the
    scores it does not name keep their ``SCORE_TOLERANCES``, the others the default."""

    default: float = DEFAULT_TOLERANCE
    scores: dict[str, float] = field(default_factory=lambda: dict(SCORE_TOLERANCES))

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
        named = {str(k): float(v) for k, v in raw.get("scores", {}).items()}
        policy = cls(float(raw.get("default", DEFAULT_TOLERANCE)), {**SCORE_TOLERANCES, **named})
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
            f"{self.score} v{self.version} {self.metric} {self.challenger_value:.4f} "
            f"vs v{self.champion} {self.champion_value:.4f}"
        )


UNGATED: dict[str, str] = {
    "rfm": "quintile rules of the base's own distribution, no predictive target: nothing to gate",
    "pressure": "send-count rules (one gap learned from the base), no predictive target: nothing to gate",
    "interests": "the contact's own decayed keyword weights, no learned model: nothing to gate",
    "web_heat": "page-point rules from the web config, no learned model: nothing to gate",
}
"""Scores promoted without a comparison, and why (the verdict's reason)."""


def _labelled(holdout: Holdout, names: set[str]) -> list[str]:
    return [n for n in holdout.labels if n in names]


def _two_classes(holdout: Holdout, names: set[str]) -> list[str]:
    return [n for n in _labelled(holdout, names) if 0 < int(np.sum(holdout.labels[n])) < len(holdout.labels[n])]


@dataclass(frozen=True)
class Metric:
    """How a holdout metric is computed on one version's outputs and which way is better."""

    higher_is_better: bool
    relative: bool  # tolerance as a share of the champion's value (scale-dependent metrics)
    compute: Callable[[Holdout, dict[str, np.ndarray], dict[str, np.ndarray]], float]  # (holdout, columns, rows kept)
    outputs: Callable[[Holdout, set[str]], list[str]] = _labelled  # those it reads, of the outputs both versions give
    categories: bool = False  # reads category outputs as their names (SKUs), not as codes

    def worse_by(self, challenger: float, champion: float) -> float:
        """How much worse the challenger is, in the tolerance's unit (negative: better)."""
        gap = champion - challenger if self.higher_is_better else challenger - champion
        return gap / max(abs(champion), 1e-12) if self.relative else gap


def _auc(holdout: Holdout, columns: dict[str, np.ndarray], keep: dict[str, np.ndarray]) -> float:
    values = []
    for name, scores in columns.items():
        y = np.asarray(holdout.labels[name], bool)[keep[name]]
        if 0 < int(y.sum()) < len(y):
            values.append(roc_auc(y, scores[keep[name]]))
    return float(np.mean(values)) if values else float("nan")


def _mae(holdout: Holdout, columns: dict[str, np.ndarray], keep: dict[str, np.ndarray]) -> float:
    errors = [np.abs(scores[keep[n]] - np.asarray(holdout.labels[n], np.float64)[keep[n]]) for n, scores in columns.items()]
    return float(np.mean(np.concatenate(errors)))


def _silhouette(holdout: Holdout, columns: dict[str, np.ndarray], keep: dict[str, np.ndarray]) -> float:
    (name, segments), = columns.items()
    rows = keep[name]
    if len(np.unique(segments[rows])) < 2:
        return -1.0  # one cluster separates nothing: the worst silhouette
    return float(silhouette_score(holdout.points[rows], segments[rows].astype(np.int64), random_state=0))


def _ranked(holdout: Holdout, names: set[str]) -> list[str]:
    """``rec_1``, ``rec_2``, … as far as both versions give them: the top K they share."""
    k = 0
    while f"rec_{k + 1}" in names:
        k += 1
    return [f"rec_{i}" for i in range(1, k + 1)] if "rec" in holdout.labels else []


def _ndcg(holdout: Holdout, columns: dict[str, np.ndarray], keep: dict[str, np.ndarray]) -> float:
    ranks = list(columns)  # rec_1..rec_K in order (``_ranked``)
    rows = np.flatnonzero(np.logical_and.reduce([keep[n] for n in ranks]))
    if not rows.size:
        return float("nan")
    relevant = [holdout.labels["rec"][i] for i in rows]
    bought = np.concatenate([np.asarray(r, object) for r in relevant])
    vocabulary = pc.unique(pa.array(bought, pa.string()))

    def codes(names: np.ndarray) -> np.ndarray:  # -1: a SKU none of these contacts bought, never a hit
        return pc.fill_null(pc.index_in(pa.array(names, pa.string()), value_set=vocabulary), -1).to_numpy()

    top = codes(np.stack([columns[n][rows] for n in ranks], axis=1).ravel()).reshape(len(rows), len(ranks))
    ends = np.cumsum([len(r) for r in relevant])[:-1]
    return ranking_metrics(top, np.split(codes(bought), ends), len(ranks))["ndcg"]


def _uplift(holdout: Holdout, names: set[str]) -> list[str]:
    return _labelled(holdout, names)[:1]


def _qini(holdout: Holdout, columns: dict[str, np.ndarray], keep: dict[str, np.ndarray]) -> float:
    (name, uplift), = columns.items()
    rows = keep[name]
    treated, bought = np.asarray(holdout.treated, bool)[rows], np.asarray(holdout.labels[name], bool)[rows]
    if treated.all() or not treated.any():
        return float("nan")
    return uplift_metrics(uplift[rows], treated, bought)["qini"]


METRICS: dict[str, Metric] = {
    "auc": Metric(higher_is_better=True, relative=False, compute=_auc, outputs=_two_classes),
    "mae": Metric(higher_is_better=False, relative=True, compute=_mae),
    "silhouette": Metric(higher_is_better=True, relative=False, compute=_silhouette),
    "ndcg": Metric(higher_is_better=True, relative=False, compute=_ndcg, outputs=_ranked, categories=True),
    "qini": Metric(higher_is_better=True, relative=False, compute=_qini, outputs=_uplift),
}
"""The holdout metrics the gate compares on (``Holdout.metric`` names one)."""


def _features(model: onnx.ModelProto, holdout: Holdout) -> np.ndarray:
    """``model``'s feature rows of the holdout's rows: as of ``as_of_us``, or of each row's time."""
    if holdout.times is None:
        return feature_rows(holdout.tables, holdout.as_of_us, model, holdout.contact_ids)
    times = np.asarray(holdout.times, np.int64)
    ids = pa.chunked_array([holdout.contact_ids]).combine_chunks()
    x = np.empty((len(ids), len(read_metadata(model).features)), np.float32)
    for time in np.unique(times):
        rows = np.flatnonzero(times == time)
        mine = ids.take(pa.array(rows))
        unique = pc.unique(mine)  # a contact once per time: the pipeline computes a contact once
        x[rows] = feature_rows(holdout.tables, int(time), model, unique)[pc.index_in(mine, value_set=unique).to_numpy()]
    return x


def _names(codes: np.ndarray, categories: tuple[str, ...]) -> np.ndarray:
    """Category codes as their names (object; None where a code names nothing)."""
    names = np.full(len(codes), None, object)
    valid = np.isfinite(codes) & (codes >= 0) & (codes < len(categories))
    names[valid] = np.asarray(categories, object)[codes[valid].astype(np.int64)]
    return names


def predict(model: onnx.ModelProto, holdout: Holdout, outputs: list[str], categories: bool = False) -> dict[str, np.ndarray]:
    """``model``'s ``outputs`` on the holdout's rows, through ONNX Runtime (float64 each; with
    ``categories``, category outputs as their names: versions may number SKUs differently)."""
    import onnxruntime as ort

    meta = read_metadata(model)
    x = _features(model, holdout)
    for option, value in holdout.request.items():
        name = f"{REQUEST_PREFIX}{option}"
        if name in meta.features:
            x[:, meta.features.index(name)] = value
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    specs = {o.name: o for o in meta.outputs}
    tensors = sorted({specs[name].onnx_output for name in outputs})
    results = dict(zip(tensors, session.run(tensors, {INPUT_NAME: x}), strict=True))
    columns = {}
    for name in outputs:
        spec = specs[name]
        column = results[spec.onnx_output]
        values = column[:, spec.column] if spec.column is not None else column.reshape(len(x), -1)[:, 0]
        values = values.astype(np.float64)
        columns[name] = _names(values, spec.categories) if categories and spec.dtype == "category" else values
    return columns


def _given(values: np.ndarray) -> np.ndarray:
    return np.not_equal(values, None) if values.dtype == object else np.isfinite(values)


def compare(challenger: onnx.ModelProto, champion: onnx.ModelProto, holdout: Holdout, outputs: list[str]) -> tuple[float, float]:
    """The holdout metric of both versions, on the rows where both give a value for each output."""
    metric = METRICS[holdout.metric]
    mine, theirs = (predict(m, holdout, outputs, metric.categories) for m in (challenger, champion))
    keep = {n: _given(mine[n]) & _given(theirs[n]) for n in outputs}  # cross_sell: null for a group's buyers
    return metric.compute(holdout, mine, keep), metric.compute(holdout, theirs, keep)


def _comparable(holdout: Holdout, challenger: onnx.ModelProto, champion: onnx.ModelProto) -> list[str]:
    """The outputs the holdout's metric reads, of those both versions give."""
    names = {o.name for o in read_metadata(champion).outputs} & {o.name for o in read_metadata(challenger).outputs}
    return METRICS[holdout.metric].outputs(holdout, names)


def decide(built: Built, root: Path, policy: PromotionPolicy) -> Verdict:
    """Compare a fitted version with the version ``root`` serves for its score."""
    served = versions(root, built.score) if (Path(root) / built.score).is_dir() else []
    if not served:
        return Verdict(built.score, built.version, True, reason="first version")
    champion_version = served[-1]
    if built.holdout is None:
        reason = UNGATED.get(built.score, "no holdout to compare on")
        return Verdict(built.score, built.version, True, champion_version, reason=f"{reason}: promoted")
    champion = onnx.load(find_model(root, built.score, champion_version))
    outputs = _comparable(built.holdout, built.model, champion)
    if not outputs:
        return Verdict(built.score, built.version, True, champion_version, reason="no output in common with the serving version: promoted")
    challenger_value, champion_value = compare(built.model, champion, built.holdout, outputs)
    if not (np.isfinite(challenger_value) and np.isfinite(champion_value)):
        return Verdict(built.score, built.version, True, champion_version, reason="no holdout row both versions score: promoted")
    tolerance = policy.tolerance(built.score)
    metric = METRICS[built.holdout.metric]
    gap = metric.worse_by(challenger_value, champion_value)
    promoted = gap <= tolerance
    unit = " of its value" if metric.relative else ""
    reason = (
        "not worse than the serving version"
        if promoted
        else f"worse than serving v{champion_version} by {gap:.4f}{unit} > tolerance {tolerance}"
    )
    return Verdict(
        built.score, built.version, promoted, champion_version, built.holdout.metric, challenger_value, champion_value, tolerance, reason
    )


def settle(built: Built, verdict: Verdict, root: Path) -> Path:
    """Store the version where the verdict puts it: served, or kept as a candidate with a note."""
    if verdict.promoted:
        return store_model(root, built.score, built.version, built.model)
    path = candidate_path(root, built.score, built.version)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_model(built.model, path)
    write_text(path.with_suffix(".json"), json.dumps(asdict(verdict), indent=2) + "\n")
    return path
