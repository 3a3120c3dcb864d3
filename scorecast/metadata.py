"""The one model-metadata format: what an ONNX file in the model repository says about itself.

Training writes a :class:`ModelMetadata` as JSON into the ONNX file's ``metadata_props`` under
the key :data:`METADATA_KEY`; the server reads it back from the session and needs nothing
else to serve the model. Every ONNX model of ours takes one input, ``features``: a float32
matrix ``[n_contacts, len(features)]`` whose columns are the named features in order.
A feature named ``request:<option>`` (e.g. ``request:horizon_days``) is not computed from
data: the server fills the column with the request's option, or the model's default for it
(``ModelParams.request_defaults``; see ``scorecast.options``). Every key of ``params`` the
server reads is a typed field of :class:`ModelParams`, checked when the metadata is read; the
other keys are the model's own (its report reads them).
"""

from __future__ import annotations

import functools
import json
import math
from collections.abc import Iterator, Mapping
from dataclasses import asdict, dataclass, field, fields
from typing import Any

__all__ = ["FORMAT_VERSION", "INPUT_NAME", "METADATA_KEY", "OPTIMIZED_KEY", "REQUEST_PREFIX", "ModelMetadata", "ModelParams", "OutputSpec"]

METADATA_KEY = "scorecast"
OPTIMIZED_KEY = "scorecast.optimized"
"""``metadata_props`` key of a graph ONNX Runtime's device-independent optimizer already ran on
(its value: the level and the version): the server builds its CPU session without running it again."""
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


@dataclass(frozen=True, eq=False)
class ModelParams(Mapping[str, Any]):
    """A model's ``params``: the keys the server reads, typed and checked, and the model's own.

    On disk (and in ``GetModel``'s ``params_json``) it is one JSON object; as a Mapping this
    is that object, so ``params["segments"]`` reads a model-specific key. The server reads
    only the typed fields below; a field left None is absent from the object.
    """

    groups: tuple[str, ...] | None = None
    """Product groups of a per-group score (affinity, cross_sell), one output each; a request's
    ``options.product_groups`` picks among them. None: the score has no groups."""
    probe: Mapping[str, Any] | None = None
    """The parity probe training recorded: ``{"features": rows, "outputs": {output: values}}``
    (NaN as null); the server replays it at load and refuses a model that disagrees."""
    max_batch_rows: int | None = None
    """Most rows per ONNX run (a graph whose working memory grows with rows x catalogue)."""
    request_defaults: Mapping[str, float] | None = None
    """The model's default for each request option it takes as a ``request:<option>`` feature
    (see ``scorecast.options``), used when a request leaves the option unset."""
    feature_params: Mapping[str, Any] | None = None
    """Passed to ``FeatureFrame.matrix`` for feature families that depend on a fitted
    vocabulary or a configuration (see ``scorecast.kernels.features``)."""
    extra: Mapping[str, Any] = field(default_factory=dict)
    """Every other key: model specific (thresholds, segment descriptions, validation for the
    report); the server never reads them."""

    @classmethod
    def from_json_object(cls, raw: Mapping[str, Any], model: str = "model") -> ModelParams:
        """Parse the JSON object ``params``; ValueError naming ``model`` and the key otherwise."""
        if not isinstance(raw, Mapping):
            raise ValueError(f"{model}: params must be a JSON object, got {type(raw).__name__}")
        typed = {f.name for f in fields(cls)} - {"extra"}
        given = {k: v for k, v in raw.items() if k in typed and v is not None}
        problems = [f"params.{key} {why}" for key, value in given.items() if (why := _PARAM_CHECKS[key](value))]
        if problems:
            raise ValueError(f"{model}: " + "; ".join(problems))
        if "groups" in given:
            given["groups"] = tuple(given["groups"])
        return cls(**given, extra={k: v for k, v in raw.items() if k not in typed})

    @functools.cached_property
    def _object(self) -> dict[str, Any]:
        typed = {f.name: getattr(self, f.name) for f in fields(self) if f.name != "extra"}
        json_typed = {k: list(v) if isinstance(v, tuple) else v for k, v in typed.items() if v is not None}
        return {**self.extra, **json_typed}

    def __getitem__(self, key: str) -> Any:
        return self._object[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._object)

    def __len__(self) -> int:
        return len(self._object)

    def __eq__(self, other: object) -> bool:
        return dict(self) == dict(other) if isinstance(other, Mapping) else NotImplemented

    __hash__ = None  # type: ignore[assignment]  # holds dicts


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


_PARAM_CHECKS: dict[str, Any] = {
    "groups": lambda v: None if isinstance(v, list | tuple) and all(isinstance(g, str) and g for g in v) else "must be a list of names",
    "probe": lambda v: None
    if isinstance(v, Mapping) and isinstance(v.get("features"), list) and isinstance(v.get("outputs"), Mapping)
    else 'must be an object {"features": [...], "outputs": {...}}',
    "max_batch_rows": lambda v: None if isinstance(v, int) and not isinstance(v, bool) and v > 0 else "must be a positive integer",
    "request_defaults": lambda v: None
    if isinstance(v, Mapping) and all(isinstance(k, str) and _is_number(x) for k, x in v.items())
    else "must map option names to numbers",
    "feature_params": lambda v: None if isinstance(v, Mapping) else "must be an object",
}
"""How each typed key is checked: None when fine, else what is wrong."""


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
    params: ModelParams = field(default_factory=ModelParams)  # a JSON object (dict) is parsed into one
    format_version: int = FORMAT_VERSION

    def __post_init__(self) -> None:
        if not isinstance(self.params, ModelParams):  # training writes params as a plain JSON object
            object.__setattr__(self, "params", ModelParams.from_json_object(self.params, f"{self.score} version {self.version}"))

    def to_json(self) -> str:
        """Serialise to the JSON stored in the ONNX file."""
        return json.dumps({**asdict(self), "params": dict(self.params)}, sort_keys=True)

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
