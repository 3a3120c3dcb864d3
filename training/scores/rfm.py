"""The ``rfm`` score: recency, frequency and monetary quintile scores 1–5 and a named segment."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from scorecast.kernels import FeatureFrame
from scorecast.metadata import INPUT_NAME, ModelMetadata, OutputSpec
from scorecast.onnx_graph import make_model

from ..onnx_export import attach_metadata, feature_matrix
from ..run import Fitted, TrainingRun, as_us, require_buyers

__all__ = ["RFM_FEATURES", "SEGMENTS", "SEGMENT_MAP", "RfmModel", "fit", "fit_rfm"]

RFM_FEATURES: tuple[str, str, str] = ("recency_days", "frequency", "monetary")

# Segment codes as the graph emits them; 0 is the contact without orders.
SEGMENTS: tuple[str, ...] = (
    "prospect",
    "champions",
    "loyal_customers",
    "potential_loyalists",
    "new_customers",
    "promising",
    "need_attention",
    "about_to_sleep",
    "at_risk",
    "cannot_lose_them",
    "hibernating",
    "lost",
)

# The usual RFM segment grid (as popularised by Putler's 11 segments), on R and
# FM = (F + M) // 2. Row r - 1 is R = r, column fm - 1 is FM = fm.
#
#          FM=1            FM=2                 FM=3                 FM=4              FM=5
SEGMENT_MAP: tuple[tuple[str, ...], ...] = (
    ("lost",           "lost",                "at_risk",             "cannot_lose_them", "cannot_lose_them"),  # R=1
    ("hibernating",    "hibernating",         "at_risk",             "at_risk",          "cannot_lose_them"),  # R=2
    ("about_to_sleep", "need_attention",      "need_attention",      "loyal_customers",  "loyal_customers"),   # R=3
    ("promising",      "potential_loyalists", "loyal_customers",     "champions",        "champions"),         # R=4
    ("new_customers",  "potential_loyalists", "potential_loyalists", "champions",        "champions"),         # R=5
)  # fmt: skip

OUTPUT = "rfm"  # the graph's one output: int32 [N, 5] = R, F, M, code, segment
_DEFAULT_QUANTILES = (0.2, 0.4, 0.6, 0.8)


class RfmModel:
    """Recency-frequency-monetary quintile scoring.

    Thresholds are learned once, on the buyers (``frequency > 0``) of the training base, so
    a contact's scores do not depend on which serving chunk it arrives in. For each feature
    the four thresholds ``t`` are the 20/40/60/80 % quantiles of the buyers' values (linear
    interpolation), stored as float32 (the dtype the graph compares in). With ``x`` the
    contact's value:

    - ``F = 1 + #{t < x}`` and ``M = 1 + #{t < x}``: a value equal to a threshold stays
      below it, which keeps the ties of the discrete frequency together;
    - ``R = 1 + #{t >= x}`` on ``recency_days``: lower recency scores higher, a recency
      equal to a threshold counts as the more recent side;
    - NaN scores 1 for all three;
    - ``code = 100 R + 10 F + M`` (e.g. 545);
    - ``segment``: :data:`SEGMENT_MAP` at ``(R, (F + M) // 2)``, as an index into
      :data:`SEGMENTS`.

    Prospects, contacts with no order (``not frequency > 0``, NaN included), get 0 for all
    five values: segment ``"prospect"``, and R/F/M/code that the metadata marks null.

    Parameters
    ----------
    quantiles : sequence of 4 floats, default=(0.2, 0.4, 0.6, 0.8)
        Increasing, in (0, 1): they cut the buyers into the 5 score levels.

    Attributes
    ----------
    thresholds_ : ndarray of shape (3, 4), float32
        Rows recency_days, frequency, monetary.
    n_contacts_, n_buyers_ : int
        Contacts and buyers in the training base.
    segment_shares_ : dict[str, float]
        Share of the training contacts in each segment.
    """

    model_type = "rfm-quintiles"
    score = "rfm"
    features = RFM_FEATURES

    def __init__(self, *, quantiles: Sequence[float] = _DEFAULT_QUANTILES) -> None:
        self.quantiles = tuple(quantiles)

    def fit(self, X: np.ndarray, feature_names: Sequence[str]) -> RfmModel:
        """Learn the thresholds from the buyers among the rows of ``X``."""
        q = np.asarray(self.quantiles, dtype=np.float64)
        if q.shape != (4,) or not (np.all(q > 0) and np.all(q < 1) and np.all(np.diff(q) > 0)):
            raise ValueError(f"quantiles must be 4 increasing values in (0, 1), got {self.quantiles}")
        block = feature_matrix(X, feature_names, RFM_FEATURES)
        buyers = block[:, 1] > 0
        if not buyers.any():
            raise ValueError(f"no buyers (frequency > 0) among the {len(block)} training contacts")
        thresholds = np.empty((3, 4), dtype=np.float32)
        for j, name in enumerate(RFM_FEATURES):
            values = block[buyers, j].astype(np.float64)
            values = values[np.isfinite(values)]
            if len(values) == 0:
                raise ValueError(f"feature {name!r} has no finite value among the {int(buyers.sum())} buyers")
            thresholds[j] = np.quantile(values, q).astype(np.float32)
        self.thresholds_ = thresholds
        self.n_contacts_ = len(block)
        self.n_buyers_ = int(buyers.sum())
        scored = self.predict(block, RFM_FEATURES)
        segments = scored[:, 4]
        counts = np.bincount(segments, minlength=len(SEGMENTS))
        # the R x FM grid of the buyers (FM = (F + M) // 2, as the segment map reads it): counts and mean spend
        cell = (scored[buyers, 0] - 1) * 5 + (scored[buyers, 1] + scored[buyers, 2]) // 2 - 1
        spend = np.nan_to_num(block[buyers, 2].astype(np.float64))
        n_cell = np.bincount(cell, minlength=25)
        self.grid_counts_ = n_cell.reshape(5, 5).tolist()
        self.grid_value_ = np.round(np.bincount(cell, weights=spend, minlength=25) / np.maximum(n_cell, 1), 2).reshape(5, 5).tolist()
        self.segment_shares_ = {name: float(c / len(block)) for name, c in zip(SEGMENTS, counts, strict=True)}
        return self

    def predict(self, X: np.ndarray, feature_names: Sequence[str]) -> np.ndarray:
        """The NumPy reference of the graph: int32 ``[N, 5]`` = R, F, M, code, segment."""
        self._check_fitted()
        block = feature_matrix(X, feature_names, RFM_FEATURES)
        t = self.thresholds_
        r = 1 + (block[:, 0:1] <= t[0]).sum(axis=1, dtype=np.int32)
        f = 1 + (block[:, 1:2] > t[1]).sum(axis=1, dtype=np.int32)
        m = 1 + (block[:, 2:3] > t[2]).sum(axis=1, dtype=np.int32)
        segment = _segment_table()[(r - 1) * 5 + (f + m) // 2 - 1]
        out = np.stack([r, f, m, 100 * r + 10 * f + m, segment], axis=1).astype(np.int32)
        out[~(block[:, 1] > 0)] = 0
        return out

    def metadata(self, *, version: str, trained_at: str, data_as_of: str) -> ModelMetadata:
        """The model's :class:`ModelMetadata`; times are ISO 8601 strings."""
        self._check_fitted()
        null = "0 (null) for prospects"
        outputs = (
            OutputSpec("r", "int32", f"recency score 1-5, 5 = most recent; {null}", OUTPUT, 0, null_value=0),
            OutputSpec("f", "int32", f"frequency score 1-5, 5 = most orders; {null}", OUTPUT, 1, null_value=0),
            OutputSpec("m", "int32", f"monetary score 1-5, 5 = highest spend; {null}", OUTPUT, 2, null_value=0),
            OutputSpec("code", "int32", f"100 R + 10 F + M, e.g. 545; {null}", OUTPUT, 3, null_value=0),
            OutputSpec("segment", "category", "RFM segment; 'prospect' for contacts without orders", OUTPUT, 4, categories=SEGMENTS),
        )
        return ModelMetadata(
            score=self.score,
            version=version,
            model_type=self.model_type,
            features=RFM_FEATURES,
            outputs=outputs,
            trained_at=trained_at,
            data_as_of=data_as_of,
            description="RFM quintile scores with thresholds from the training base's buyers, and the RFM segment",
            metrics={
                "n_contacts": float(self.n_contacts_),
                "buyer_share": self.n_buyers_ / self.n_contacts_,
                **{f"share:{name}": share for name, share in self.segment_shares_.items()},
            },
            params={
                "quantiles": list(self.quantiles),
                "thresholds": {name: [float(v) for v in self.thresholds_[j]] for j, name in enumerate(RFM_FEATURES)},
                "rules": "F, M = 1 + #(thresholds < x); R = 1 + #(thresholds >= x); NaN -> 1; "
                "code = 100R + 10F + M; segment = segment_map[R-1][(F+M)//2 - 1]; "
                "frequency > 0 is false -> all 0 (prospect)",
                "segment_map": [list(row) for row in SEGMENT_MAP],
                "report": {"grid_counts": self.grid_counts_, "grid_mean_monetary": self.grid_value_},
            },
        )

    def to_onnx(self, *, version: str, trained_at: str, data_as_of: str) -> onnx.ModelProto:
        """The ONNX graph of :meth:`predict`, thresholds as initializers, metadata attached."""
        self._check_fitted()
        return attach_metadata(self._graph(), self.metadata(version=version, trained_at=trained_at, data_as_of=data_as_of))

    def _graph(self) -> onnx.ModelProto:
        def const(name: str, array: np.ndarray) -> onnx.TensorProto:
            return numpy_helper.from_array(array, name)

        i32 = np.int32
        initializers = [
            const("col_recency", np.array([0], dtype=np.int64)),
            const("col_frequency", np.array([1], dtype=np.int64)),
            const("col_monetary", np.array([2], dtype=np.int64)),
            const("thresholds_recency", self.thresholds_[0:1]),  # [1, 4]: broadcasts against [N, 1]
            const("thresholds_frequency", self.thresholds_[1:2]),
            const("thresholds_monetary", self.thresholds_[2:3]),
            const("axis1", np.array([1], dtype=np.int64)),
            const("zero_f", np.array(0, dtype=np.float32)),
            const("zero_i", np.array(0, dtype=i32)),
            const("one", np.array(1, dtype=i32)),
            const("two", np.array(2, dtype=i32)),
            const("five", np.array(5, dtype=i32)),
            const("ten", np.array(10, dtype=i32)),
            const("hundred", np.array(100, dtype=i32)),
            const("segment_table", _segment_table()),  # [25]: index (R - 1) * 5 + FM - 1
        ]
        node = helper.make_node
        nodes = []
        for name, compare, x_first in (
            ("recency", "LessOrEqual", True),  # x <= t
            ("frequency", "Less", False),  # t < x
            ("monetary", "Less", False),
        ):
            t = f"thresholds_{name}"
            nodes += [
                node("Gather", [INPUT_NAME, f"col_{name}"], [f"x_{name}"], axis=1),
                node(compare, [f"x_{name}", t] if x_first else [t, f"x_{name}"], [f"hit_{name}"]),
                node("Cast", [f"hit_{name}"], [f"hit_{name}_i"], to=TensorProto.INT32),
                node("ReduceSum", [f"hit_{name}_i", "axis1"], [f"count_{name}"], keepdims=1),
                node("Add", [f"count_{name}", "one"], [f"score_{name}"]),
            ]
        nodes += [
            node("Mul", ["score_recency", "hundred"], ["r100"]),
            node("Mul", ["score_frequency", "ten"], ["f10"]),
            node("Add", ["r100", "f10"], ["rf"]),
            node("Add", ["rf", "score_monetary"], ["code"]),
            node("Add", ["score_frequency", "score_monetary"], ["f_plus_m"]),
            node("Div", ["f_plus_m", "two"], ["fm"]),  # integer division: floor for positives
            node("Sub", ["score_recency", "one"], ["r0"]),
            node("Mul", ["r0", "five"], ["row_start"]),
            node("Add", ["row_start", "fm"], ["cell_plus_1"]),
            node("Sub", ["cell_plus_1", "one"], ["cell"]),
            node("Gather", ["segment_table", "cell"], ["segment"], axis=0),
            node("Concat", ["score_recency", "score_frequency", "score_monetary", "code", "segment"], ["scores"], axis=1),
            node("Gather", [INPUT_NAME, "col_frequency"], ["x_freq"], axis=1),
            node("Greater", ["x_freq", "zero_f"], ["buyer"]),  # false for 0 and NaN
            node("Where", ["buyer", "scores", "zero_i"], [OUTPUT]),
        ]
        graph = helper.make_graph(
            nodes,
            "rfm",
            [helper.make_tensor_value_info(INPUT_NAME, TensorProto.FLOAT, [None, len(RFM_FEATURES)])],
            [helper.make_tensor_value_info(OUTPUT, TensorProto.INT32, [None, 5])],
            initializer=initializers,
        )
        model = make_model(graph)
        return model

    def _check_fitted(self) -> None:
        if not hasattr(self, "thresholds_"):
            raise ValueError("RfmModel is not fitted: call fit() first")


def _segment_table() -> np.ndarray:
    """:data:`SEGMENT_MAP` as a flat int32 table of segment codes, index (R - 1) * 5 + FM - 1."""
    return np.array([SEGMENTS.index(name) for row in SEGMENT_MAP for name in row], dtype=np.int32)


def fit_rfm(X: np.ndarray, feature_names: Sequence[str], *, quantiles: Sequence[float] = _DEFAULT_QUANTILES) -> RfmModel:
    """Fit an :class:`RfmModel` on the feature matrix ``X`` whose columns are ``feature_names``."""
    return RfmModel(quantiles=quantiles).fit(X, feature_names)


def fit(run: TrainingRun, version: str) -> Fitted:
    """``rfm`` for ``scorecast train``: quintile edges of the buyers as of the run's as-of."""
    X = FeatureFrame(run.tables, as_us(run.as_of)).matrix(RFM_FEATURES)
    require_buyers(X[:, RFM_FEATURES.index("frequency")], f"rfm as of {run.as_of.date()}")
    return Fitted(fit_rfm(X, RFM_FEATURES).to_onnx(**run.times(version, run.as_of)), run.tables, run.as_of)
