"""The ``pressure`` score: recent sends, a fatigue flag and a recommended wait before the next send.

Rules, with one number learned from the base: ``min_gap_days``, the shortest gap between two
sends after which the base opens about as often as after a long pause (see :func:`min_gap_days`).
"""

from __future__ import annotations

from datetime import datetime
from collections.abc import Sequence

import numpy as np
import onnx
import pyarrow as pa
from onnx import TensorProto, helper, numpy_helper

from scorecast.kernels import FeatureFrame
from scorecast.metadata import INPUT_NAME, ModelMetadata, OutputSpec
from scorecast.onnx_graph import make_model

from ..onnx_export import attach_metadata, feature_matrix
from ..run import Fitted, TrainingRun, as_us
from .email_events import email_rows, open_rate_by_gap

__all__ = ["PRESSURE_FEATURES", "PressureModel", "fit", "fit_from_tables", "fit_pressure", "min_gap_days"]

PRESSURE_FEATURES: tuple[str, ...] = (
    "email_sends_7d",
    "email_sends_30d",
    "email_opens_30d",
    "email_sends_365d",
    "email_opens_365d",
    "email_days_since_send",
    "email_unsubscribed",
    "email_hard_bounced",
)
COUNTS = "counts"  # int32 [N, 3]: sends_7d, sends_30d, fatigue
WAIT = "wait_days"  # float32 [N, 1]
_LONG_GAP_DAYS = 7


def min_gap_days(sends: np.ndarray, open_rate: np.ndarray, *, tolerance: float = 0.9, min_sends: int = 100) -> int:
    """The shortest comfortable gap, from the open rate of sends by whole days since the
    previous send (``email_data.open_rate_by_gap``): one day more than the largest gap under
    ``_LONG_GAP_DAYS`` whose open rate is below ``tolerance`` times the rate after gaps of
    ``_LONG_GAP_DAYS`` days or more (0 when no short gap opens less)."""
    long = slice(_LONG_GAP_DAYS, None)
    opened_long = np.nansum(open_rate[long] * sends[long])
    if sends[long].sum() < min_sends or opened_long == 0:
        return 0
    long_rate = opened_long / sends[long].sum()
    short = [d for d in range(_LONG_GAP_DAYS) if sends[d] >= min_sends and open_rate[d] < tolerance * long_rate]
    return max(short) + 1 if short else 0


class PressureModel:
    """Marketing pressure rules over the e-mail features.

    - ``sends_7d``, ``sends_30d``: distinct campaigns sent in the last 7 and 30 days.
    - ``fatigue`` (0/1): recent sends outpace the contact's reactions. With its earlier open
      rate ``r = (opens_365d - opens_30d) / (sends_365d - sends_30d)`` (the 11 months before the
      last 30 days) and its recent rate ``opens_30d / sends_30d``: at least ``min_sends_30d``
      sends in 30 days, at least ``min_earlier_sends`` earlier sends, ``r > 0`` and a recent rate
      under ``ratio * r``. A contact who never opens is not fatigued, it is inactive.
    - ``wait_days``: days to wait before the next send, ``max(0, min_gap_days -
      days_since_send)``, and ``max(0, rest_days - days_since_send)`` if fatigued; null
      (never send) for unsubscribed and hard-bounced contacts.
    """

    model_type = "pressure-rules"
    score = "pressure"
    features = PRESSURE_FEATURES

    def __init__(
        self,
        *,
        min_sends_30d: int = 4,
        min_earlier_sends: int = 3,
        ratio: float = 0.5,
        rest_days: float = 7.0,
    ) -> None:
        self.min_sends_30d = min_sends_30d
        self.min_earlier_sends = min_earlier_sends
        self.ratio = ratio
        self.rest_days = rest_days

    def fit(
        self, X: np.ndarray, feature_names: Sequence[str], sends_by_gap: np.ndarray, open_rate_by_gap: np.ndarray
    ) -> PressureModel:
        """Learn ``min_gap_days`` from the base's opens by gap; record the flag's share on ``X``."""
        self.min_gap_days_ = min_gap_days(sends_by_gap, open_rate_by_gap)
        self.open_rate_by_gap_ = [None if np.isnan(v) else float(v) for v in open_rate_by_gap]
        counts, wait = self.predict(X, feature_names)
        self.fatigue_share_ = float(counts[:, 2].mean()) if len(counts) else 0.0
        self.mean_wait_ = float(np.nanmean(wait)) if np.isfinite(wait).any() else 0.0
        return self

    def predict(self, X: np.ndarray, feature_names: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
        """The NumPy reference of the graph (float32 arithmetic, as the graph): int32 counts
        [N, 3] and float32 wait [N, 1]."""
        self._check_fitted()
        x = feature_matrix(X, feature_names, PRESSURE_FEATURES).astype(np.float32)
        s7, s30, o30, s365, o365, since, unsub, bounced = (x[:, j : j + 1] for j in range(8))
        f = np.float32
        one = f(1)
        earlier_s = s365 - s30
        earlier_rate = (o365 - o30) / np.maximum(earlier_s, one)
        recent_rate = o30 / np.maximum(s30, one)
        fatigue = (
            (s30 >= f(self.min_sends_30d))
            & (earlier_s >= f(self.min_earlier_sends))
            & (earlier_rate > f(0))
            & (recent_rate < f(self.ratio) * earlier_rate)
        )
        since0 = np.where(np.isnan(since), f(0), since)
        gap_wait = np.maximum(f(self.min_gap_days_) - since0, f(0))
        rest_wait = np.maximum(f(self.rest_days) - since0, f(0))
        wait = np.where(fatigue, np.maximum(gap_wait, rest_wait), gap_wait)
        wait = np.where((unsub > f(0)) | (bounced > f(0)), f(np.nan), wait).astype(np.float32)
        counts = np.concatenate([s7, s30, fatigue.astype(np.float32)], axis=1).astype(np.int32)
        return counts, wait

    def metadata(self, *, version: str, trained_at: str, data_as_of: str) -> ModelMetadata:
        """The model's :class:`ModelMetadata`; times are ISO 8601 strings."""
        self._check_fitted()
        outputs = (
            OutputSpec("sends_7d", "int32", "campaigns sent in the last 7 days", COUNTS, 0),
            OutputSpec("sends_30d", "int32", "campaigns sent in the last 30 days", COUNTS, 1),
            OutputSpec("fatigue", "int32", "1 if recent sends outpace the contact's opens (see params.rules), else 0", COUNTS, 2),
            OutputSpec(
                "wait_days",
                "float32",
                "days to wait before the next send; null: do not send (unsubscribed, hard bounce)",
                WAIT,
                0,
            ),
        )
        return ModelMetadata(
            score=self.score,
            version=version,
            model_type=self.model_type,
            features=PRESSURE_FEATURES,
            outputs=outputs,
            trained_at=trained_at,
            data_as_of=data_as_of,
            description="E-mail pressure: recent sends, a fatigue flag and a recommended wait before the next send",
            metrics={
                "fatigue_share": self.fatigue_share_,
                "mean_wait_days": self.mean_wait_,
                "min_gap_days": float(self.min_gap_days_),
            },
            params={
                "min_sends_30d": self.min_sends_30d,
                "min_earlier_sends": self.min_earlier_sends,
                "ratio": self.ratio,
                "rest_days": self.rest_days,
                "min_gap_days": self.min_gap_days_,
                "open_rate_by_gap_days": self.open_rate_by_gap_,
                "rules": "r = (opens_365d - opens_30d) / max(sends_365d - sends_30d, 1); fatigue = sends_30d >= min_sends_30d "
                "and sends_365d - sends_30d >= min_earlier_sends and r > 0 and opens_30d / max(sends_30d, 1) < ratio * r; "
                "wait = max(0, min_gap_days - days_since_send), max with rest_days - days_since_send if fatigued; "
                "null if unsubscribed or hard bounced",
            },
        )

    def to_onnx(self, *, version: str, trained_at: str, data_as_of: str) -> onnx.ModelProto:
        """The ONNX graph of :meth:`predict`, metadata attached."""
        self._check_fitted()
        return attach_metadata(self._graph(), self.metadata(version=version, trained_at=trained_at, data_as_of=data_as_of))

    def _graph(self) -> onnx.ModelProto:
        f = np.float32
        init = {f"col{j}": np.array([j], np.int64) for j in range(8)}
        init |= {
            "zero": np.array(0, f),
            "one": np.array(1, f),
            "nan": np.array(np.nan, f),
            "min_sends": np.array(self.min_sends_30d, f),
            "min_earlier": np.array(self.min_earlier_sends, f),
            "ratio": np.array(self.ratio, f),
            "min_gap": np.array(self.min_gap_days_, f),
            "rest": np.array(self.rest_days, f),
        }
        node = helper.make_node
        names = ("s7", "s30", "o30", "s365", "o365", "since", "unsub", "bounced")
        nodes = [node("Gather", [INPUT_NAME, f"col{j}"], [name], axis=1) for j, name in enumerate(names)]
        nodes += [
            node("Sub", ["s365", "s30"], ["earlier_s"]),
            node("Sub", ["o365", "o30"], ["earlier_o"]),
            node("Max", ["earlier_s", "one"], ["earlier_s1"]),
            node("Div", ["earlier_o", "earlier_s1"], ["earlier_rate"]),
            node("Max", ["s30", "one"], ["s30_1"]),
            node("Div", ["o30", "s30_1"], ["recent_rate"]),
            node("GreaterOrEqual", ["s30", "min_sends"], ["c1"]),
            node("GreaterOrEqual", ["earlier_s", "min_earlier"], ["c2"]),
            node("Greater", ["earlier_rate", "zero"], ["c3"]),
            node("Mul", ["ratio", "earlier_rate"], ["limit"]),
            node("Less", ["recent_rate", "limit"], ["c4"]),
            node("And", ["c1", "c2"], ["c12"]),
            node("And", ["c3", "c4"], ["c34"]),
            node("And", ["c12", "c34"], ["fatigue"]),
            node("IsNaN", ["since"], ["never"]),
            node("Where", ["never", "zero", "since"], ["since0"]),
            node("Sub", ["min_gap", "since0"], ["gap_left"]),
            node("Max", ["gap_left", "zero"], ["gap_wait"]),
            node("Sub", ["rest", "since0"], ["rest_left"]),
            node("Max", ["rest_left", "zero"], ["rest_wait"]),
            node("Max", ["gap_wait", "rest_wait"], ["tired_wait"]),
            node("Where", ["fatigue", "tired_wait", "gap_wait"], ["wait0"]),
            node("Greater", ["unsub", "zero"], ["is_unsub"]),
            node("Greater", ["bounced", "zero"], ["is_bounced"]),
            node("Or", ["is_unsub", "is_bounced"], ["stop"]),
            node("Where", ["stop", "nan", "wait0"], [WAIT]),
            node("Cast", ["fatigue"], ["fatigue_f"], to=TensorProto.FLOAT),
            node("Concat", ["s7", "s30", "fatigue_f"], ["counts_f"], axis=1),
            node("Cast", ["counts_f"], [COUNTS], to=TensorProto.INT32),
        ]
        graph = helper.make_graph(
            nodes,
            "pressure",
            [helper.make_tensor_value_info(INPUT_NAME, TensorProto.FLOAT, [None, len(PRESSURE_FEATURES)])],
            [
                helper.make_tensor_value_info(COUNTS, TensorProto.INT32, [None, 3]),
                helper.make_tensor_value_info(WAIT, TensorProto.FLOAT, [None, 1]),
            ],
            initializer=[numpy_helper.from_array(v, k) for k, v in init.items()],
        )
        model = make_model(graph)
        return model

    def _check_fitted(self) -> None:
        if not hasattr(self, "min_gap_days_"):
            raise ValueError("PressureModel is not fitted: call fit() first")


def fit_pressure(
    X: np.ndarray, feature_names: Sequence[str], sends_by_gap: np.ndarray, open_rate_by_gap: np.ndarray
) -> PressureModel:
    """Fit a :class:`PressureModel` (see its ``fit``)."""
    return PressureModel().fit(X, feature_names, sends_by_gap, open_rate_by_gap)


def fit_from_tables(tables: dict[str, pa.Table], as_of: datetime) -> PressureModel:
    """Open rates by days since the previous send, up to ``as_of``."""
    now = FeatureFrame(tables, as_us(as_of))
    sends, rates = open_rate_by_gap(email_rows(now), as_us(as_of))
    return fit_pressure(now.matrix(list(PRESSURE_FEATURES)), list(PRESSURE_FEATURES), sends, rates)


def fit(run: TrainingRun, version: str) -> Fitted:
    """``pressure`` for ``scorecast train``."""
    tables = run.email_tables()
    return Fitted(fit_from_tables(tables, run.as_of).to_onnx(**run.times(version, run.as_of)), tables, run.as_of)
