"""The one model-metadata format: what an ONNX file in the model repository says about itself.

Training writes a :class:`ModelMetadata` as JSON into the ONNX file's ``metadata_props`` under
the key :data:`METADATA_KEY`; the server reads it back from the session and needs nothing
else to serve the model. Every ONNX model of ours takes one input, ``features``: a float32
matrix ``[n_contacts, len(features)]`` whose columns are the named features in order.
A feature named ``request:<option>`` (e.g. ``request:horizon_days``) is not computed from
data: the server fills the column with the request's option, or the model's default for it
(``params["request_defaults"][<option>]``). ``params["feature_params"]``, when present, is
passed to ``FeatureFrame.matrix`` for feature families that depend on a fitted vocabulary or a
configuration (see ``scorecast.kernels.features``).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from typing import Any

__all__ = ["FORMAT_VERSION", "INPUT_NAME", "METADATA_KEY", "REQUEST_PREFIX", "ModelMetadata", "OutputSpec"]

METADATA_KEY = "scorecast"
FORMAT_VERSION = 1
INPUT_NAME = "features"
REQUEST_PREFIX = "request:"

# dtypes an output column may have in the scores table
OUTPUT_DTYPES = ("float32", "float64", "int32", "category", "timestamp")


@dataclass(frozen=True)
class OutputSpec:
    """One output column of a score, ``<score>.<name>`` in the scores table.

    ``onnx_output`` names the ONNX output it comes from and ``column`` its column when that
    output is a matrix. ``null_value``: values equal to it become nulls (e.g. 0 for "no score").
    ``categories``: for dtype ``category``, the names of the integer codes the graph emits.
    dtype ``timestamp``: the graph emits days after the request's as-of time (NaN: null); the
    column is a UTC timestamp.
    """

    name: str
    dtype: str
    description: str
    onnx_output: str
    column: int | None = None
    null_value: float | None = None
    categories: tuple[str, ...] | None = None

    def __post_init__(self) -> None:
        if self.dtype not in OUTPUT_DTYPES:
            raise ValueError(f"output {self.name!r}: dtype {self.dtype!r} is not one of {OUTPUT_DTYPES}")
        if (self.dtype == "category") != (self.categories is not None):
            raise ValueError(f"output {self.name!r}: categories go with dtype 'category' and only with it")


@dataclass(frozen=True)
class ModelMetadata:
    """Everything the server and ``GetModel`` need to know about one model version."""

    score: str
    version: str
    model_type: str
    features: tuple[str, ...]
    outputs: tuple[OutputSpec, ...]
    trained_at: str  # ISO 8601, UTC
    data_as_of: str  # ISO 8601: the reference time of the training data
    description: str = ""
    horizon_days: int | None = None
    metrics: dict[str, float] = field(default_factory=dict)
    params: dict[str, Any] = field(default_factory=dict)  # JSON-able, model specific
    format_version: int = FORMAT_VERSION

    def to_json(self) -> str:
        """Serialise to the JSON stored in the ONNX file."""
        return json.dumps(asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> ModelMetadata:
        """Parse the JSON stored in an ONNX file; raises ValueError naming what is wrong."""
        try:
            raw = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ValueError(f"model metadata is not JSON: {exc}") from None
        if not isinstance(raw, dict):
            raise ValueError(f"model metadata must be a JSON object, got {type(raw).__name__}")
        if raw.get("format_version") != FORMAT_VERSION:
            raise ValueError(f"model metadata format_version {raw.get('format_version')!r}, expected {FORMAT_VERSION}")
        try:
            outputs = tuple(
                OutputSpec(**{**o, "categories": tuple(o["categories"]) if o.get("categories") is not None else None})
                for o in raw.pop("outputs")
            )
            return cls(**{**raw, "features": tuple(raw.pop("features")), "outputs": outputs})
        except (KeyError, TypeError) as exc:
            raise ValueError(f"model metadata is missing or has an unknown field: {exc}") from None

    def column_names(self) -> list[str]:
        """The scores-table columns this model produces, ``<score>.<output>``."""
        return [f"{self.score}.{o.name}" for o in self.outputs]
