"""The ``segments`` score: behavioural micro-segments, a k-means clustering exported to ONNX.

Inputs are behaviour features of several families: orders (recency, frequency, spend) and
web visits (views, time on site, page points, days since the last visit); e-mail features
join by adding one line to ``SEGMENT_INPUTS``. Each feature is filled where missing (no
order: recency a month beyond the oldest training value; no amount: 0), then ``ln(1 + x)``,
then standardised with the training base's mean and deviation. k-means (scikit-learn) on a
subsample of the training base; k from ``K_CANDIDATES`` by the best silhouette on a sample.

The graph: Gather -> Where(IsNaN, fill) -> Log(1 + x) -> (x - mean) / scale -> squared
distances to the centroids -> ArgMin: the segment id, a category whose names and
descriptions (the centroid's strongest deviations from the base mean, e.g. "recent buyers,
hot web visitors") are in the metadata.
"""

from __future__ import annotations

import time
from collections.abc import Sequence

import numpy as np
import onnx
import pyarrow as pa
from onnx import TensorProto, helper, numpy_helper
from sklearn.cluster import KMeans
from sklearn.metrics import silhouette_score
from threadpoolctl import threadpool_limits

from scorecast.kernels import FeatureFrame
from scorecast.metadata import INPUT_NAME, ModelMetadata, OutputSpec
from scorecast.onnx_graph import make_model

from ..onnx_export import attach_metadata, feature_matrix
from ..run import Fitted, Holdout, TrainingRun, as_us

__all__ = ["K_CANDIDATES", "SEGMENT_INPUTS", "SegmentsModel", "fit", "fit_segments"]

# (feature, fill for NaN: "beyond" = past the largest training value, else a number,
#  words for a centroid below / above the base mean)
ORDER_INPUTS = (
    ("recency_days", "beyond", "recent buyers", "lapsed or no buyers"),
    ("frequency", 0.0, "few orders", "frequent buyers"),
    ("monetary", 0.0, "low spend", "high-value"),
)
WEB_INPUTS = (
    ("web_views_30d", 0.0, "few page views", "many page views"),
    ("web_time_30d", 0.0, "little time on site", "long time on site"),
    ("web_points_30d", 0.0, "cold web visitors", "hot web visitors"),
    ("web_days_since_visit", "beyond", "recent web visitors", "no recent web visit"),
)
SEGMENT_INPUTS = ORDER_INPUTS + WEB_INPUTS
K_CANDIDATES = (4, 5, 6, 7, 8)
OUTPUT = "segment"  # int32 [N, 1]
_NOTABLE_Z = 0.5  # a centroid this many deviations from the base mean earns a word


class SegmentsModel:
    """k-means micro-segments on standardised ln(1 + x) behaviour features.

    Parameters
    ----------
    inputs
        ``SEGMENT_INPUTS``-like tuples (feature, fill, low words, high words).
    k
        Number of segments; None picks it from ``K_CANDIDATES`` by silhouette.
    max_train_rows, silhouette_rows, random_state
        Subsample for k-means, for the silhouette, and the seed of both and of k-means.
    feature_params
        The feature parameters (the web config …) the features were computed with; stored in
        the metadata so the server computes the same.

    Attributes
    ----------
    fill_, mean_, scale_ : ndarray (n_features,), float32
    kmeans_ : KMeans
    names_, descriptions_ : tuple of str
    shares_ : ndarray
    silhouettes_ : dict[int, float]
    """

    model_type = "kmeans"
    score = "segments"

    def __init__(
        self,
        inputs: Sequence[tuple] = SEGMENT_INPUTS,
        *,
        k: int | None = None,
        max_train_rows: int = 100_000,
        silhouette_rows: int = 4_000,
        random_state: int = 0,
        feature_params: dict | None = None,
    ) -> None:
        self.inputs = tuple(inputs)
        self.feature_params = dict(feature_params or {})
        self.k = k
        self.max_train_rows = max_train_rows
        self.silhouette_rows = silhouette_rows
        self.random_state = random_state

    @property
    def features(self) -> tuple[str, ...]:
        return tuple(i[0] for i in self.inputs)

    def fit(self, X: np.ndarray, feature_names: Sequence[str]) -> SegmentsModel:
        """Learn the fill values, standardisation, k and the centroids from the rows of ``X``."""
        start = time.perf_counter()
        block = feature_matrix(X, feature_names, self.features)
        if len(block) < max(K_CANDIDATES) * 10:
            raise ValueError(f"segments: {len(block)} contacts are too few to cluster")
        fill = np.empty(block.shape[1], np.float32)
        for j, (_, how, *_) in enumerate(self.inputs):
            finite = block[:, j][np.isfinite(block[:, j])]
            if how == "beyond":
                fill[j] = (float(finite.max()) if finite.size else 0.0) + 30.0
            else:
                fill[j] = how
        self.fill_ = fill
        logged = self._logged(block)
        self.mean_ = logged.mean(axis=0, dtype=np.float64).astype(np.float32)
        std = logged.std(axis=0, dtype=np.float64)
        self.scale_ = np.where(std > 0, std, 1.0).astype(np.float32)  # a constant column stays 0
        Z = self.transform(block, self.features)
        rng = np.random.default_rng(self.random_state)
        rows = rng.permutation(len(Z))[: self.max_train_rows]
        Z_train = Z[np.sort(rows)]
        sample = Z[rng.permutation(len(Z))[: self.silhouette_rows]]
        self.silhouettes_: dict[int, float] = {}
        candidates = (self.k,) if self.k is not None else K_CANDIDATES
        # One OpenMP thread: on a busy 2-core machine the threaded k-means took 19.8 s against
        # 3.6 s (30k contacts, k = 4..8, same centroids); the subsample keeps it small anyway.
        with threadpool_limits(1):
            best = self._search(Z_train, sample, candidates)
        self.kmeans_ = best
        labels = best.predict(Z)
        self.shares_ = np.bincount(labels, minlength=best.n_clusters) / len(Z)
        self.names_, self.descriptions_ = self._describe(best.cluster_centers_)
        self.fit_seconds_ = time.perf_counter() - start
        return self

    def _search(self, Z_train: np.ndarray, sample: np.ndarray, candidates: Sequence[int]) -> KMeans:
        """k-means for each candidate k; the best silhouette on ``sample`` wins."""
        best: KMeans | None = None
        for k in candidates:
            km = KMeans(n_clusters=k, n_init=3, random_state=self.random_state).fit(Z_train)
            if self.k is None:
                self.silhouettes_[k] = float(silhouette_score(sample, km.predict(sample), random_state=self.random_state))
            if best is None or (self.k is None and self.silhouettes_[k] > self.silhouettes_[best.n_clusters]):
                best = km
        assert best is not None
        return best

    def _logged(self, block: np.ndarray) -> np.ndarray:
        filled = np.where(np.isnan(block), self.fill_[None, :], block)
        return np.log(filled + np.float32(1)).astype(np.float32)

    def transform(self, X: np.ndarray, feature_names: Sequence[str]) -> np.ndarray:
        """The standardised float32 inputs of the clustering (the graph's order of operations)."""
        block = feature_matrix(X, feature_names, self.features)
        return ((self._logged(block) - self.mean_) / self.scale_).astype(np.float32)

    def predict(self, X: np.ndarray, feature_names: Sequence[str]) -> np.ndarray:
        """scikit-learn's segment id per row (int32)."""
        self._check_fitted()
        return self.kmeans_.predict(self.transform(X, feature_names)).astype(np.int32)

    def _describe(self, centers: np.ndarray) -> tuple[tuple[str, ...], tuple[str, ...]]:
        """A short name (two strongest traits) and a description (up to four) per centroid."""
        names: list[str] = []
        descriptions = []
        for i, z in enumerate(centers):
            order = np.argsort(-np.abs(z))
            traits = [self.inputs[j][2] if z[j] < 0 else self.inputs[j][3] for j in order if abs(z[j]) >= _NOTABLE_Z]
            name = ", ".join(traits[:2]) or "average"
            if name in names:
                name = f"{name} ({i + 1})"
            names.append(name)
            share = f"{100 * self.shares_[i]:.1f} % of the base"
            descriptions.append(f"{', '.join(traits[:4]) or 'close to the base average on every feature'} ({share})")
        return tuple(names), tuple(descriptions)

    def metadata(self, *, version: str, trained_at: str, data_as_of: str) -> ModelMetadata:
        """The model's :class:`ModelMetadata`, with each segment's name, description and centroid."""
        self._check_fitted()
        centers = self.kmeans_.cluster_centers_
        typical = np.expm1(centers * self.scale_ + self.mean_)
        segments = [
            {
                "id": i,
                "name": self.names_[i],
                "description": self.descriptions_[i],
                "share": float(self.shares_[i]),
                "centroid_z": {f: round(float(z), 3) for f, z in zip(self.features, centers[i], strict=True)},
                "typical": {f: round(float(v), 2) for f, v in zip(self.features, typical[i], strict=True)},
            }
            for i in range(len(centers))
        ]
        return ModelMetadata(
            score=self.score,
            version=version,
            model_type=self.model_type,
            features=self.features,
            outputs=(
                OutputSpec(
                    "segment", "category", "behavioural micro-segment (see params.segments)", OUTPUT, 0, categories=self.names_
                ),
            ),
            trained_at=trained_at,
            data_as_of=data_as_of,
            description=f"{len(centers)} behavioural micro-segments (k-means on standardised ln(1+x) order and web features)",
            metrics={
                "k": float(len(centers)),
                "inertia": float(self.kmeans_.inertia_),
                **{f"silhouette:{k}": s for k, s in self.silhouettes_.items()},
            },
            params={
                "feature_params": self.feature_params,
                "segments": segments,
                "fill": [float(v) for v in self.fill_],
                "mean": [float(v) for v in self.mean_],
                "scale": [float(v) for v in self.scale_],
                "k_candidates": list(K_CANDIDATES) if self.k is None else [self.k],
                "fit_seconds": round(self.fit_seconds_, 3),
            },
        )

    def to_onnx(self, *, version: str, trained_at: str, data_as_of: str) -> onnx.ModelProto:
        """The ONNX graph (see the module docstring) with metadata attached."""
        self._check_fitted()
        return attach_metadata(self._graph(), self.metadata(version=version, trained_at=trained_at, data_as_of=data_as_of))

    def _graph(self) -> onnx.ModelProto:
        d = len(self.features)
        centers = self.kmeans_.cluster_centers_.astype(np.float32)
        consts = {
            "fill": self.fill_.reshape(1, d),
            "one": np.array(1, np.float32),
            "mean": self.mean_.reshape(1, d),
            "scale": self.scale_.reshape(1, d),
            "centers": centers.reshape(1, len(centers), d),
            "axis1": np.array([1], np.int64),
            "axis2": np.array([2], np.int64),
        }
        node = helper.make_node
        nodes = [
            node("IsNaN", [INPUT_NAME], ["missing"]),
            node("Where", ["missing", "fill", INPUT_NAME], ["filled"]),
            node("Add", ["filled", "one"], ["plus1"]),
            node("Log", ["plus1"], ["logged"]),
            node("Sub", ["logged", "mean"], ["centred"]),
            node("Div", ["centred", "scale"], ["z"]),
            node("Unsqueeze", ["z", "axis1"], ["z3"]),  # [N, 1, d]
            node("Sub", ["z3", "centers"], ["diff"]),  # [N, k, d]
            node("Mul", ["diff", "diff"], ["sq"]),
            node("ReduceSum", ["sq", "axis2"], ["dist"], keepdims=0),  # [N, k]
            node("ArgMin", ["dist"], ["nearest"], axis=1, keepdims=1),  # int64 [N, 1]
            node("Cast", ["nearest"], [OUTPUT], to=TensorProto.INT32),
        ]
        graph = helper.make_graph(
            nodes,
            "segments",
            [helper.make_tensor_value_info(INPUT_NAME, TensorProto.FLOAT, [None, d])],
            [helper.make_tensor_value_info(OUTPUT, TensorProto.INT32, [None, 1])],
            initializer=[numpy_helper.from_array(v, k) for k, v in consts.items()],
        )
        model = make_model(graph)
        return model

    def _check_fitted(self) -> None:
        if not hasattr(self, "kmeans_"):
            raise ValueError("SegmentsModel is not fitted: call fit() first")


def fit_segments(X: np.ndarray, feature_names: Sequence[str], **params: object) -> SegmentsModel:
    """Fit a :class:`SegmentsModel` on ``X`` whose columns are ``feature_names``."""
    return SegmentsModel(**params).fit(X, feature_names)  # type: ignore[arg-type]


def fit(run: TrainingRun, version: str) -> Fitted:
    """``segments`` for ``scorecast train``: k-means on order (and, where present, web) features."""
    names = [i[0] for i in SEGMENT_INPUTS]
    frame = FeatureFrame(run.tables, as_us(run.as_of))
    X = frame.matrix(names, {"web": run.web_config})
    model = fit_segments(X, names, feature_params={"web": run.web_config})
    # the gate: each version's segments of the same contacts, judged by silhouette in this
    # version's standardised space (labels: the output, no truth)
    rows = np.sort(np.random.default_rng(model.random_state).permutation(len(X))[: model.silhouette_rows])
    holdout = Holdout(
        run.tables, as_us(run.as_of), frame.contact_ids.take(pa.array(rows)), {"segment": None},
        metric="silhouette", points=model.transform(X[rows], names),
    )  # fmt: skip
    return Fitted(model.to_onnx(**run.times(version, run.as_of)), run.tables, run.as_of, holdout)
