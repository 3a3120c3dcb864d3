"""ONNX export: attach scorecast metadata, save atomically, convert scikit-learn classifiers.

Every served model is one ONNX file with one float32 input named ``features`` and a
:class:`~scorecast.metadata.ModelMetadata` JSON in ``metadata_props[METADATA_KEY]``.

skl2onnx 1.20 has two defects on ``HistGradientBoostingClassifier`` that
:func:`hist_gradient_boosting_to_onnx` corrects while (and only while) it converts:

1. Under protobuf 7 the conversion fails with "Field onnx.AttributeProto.ints: Expected an
   int, got a boolean": ``tree_ensemble.add_tree_to_attribute_pairs_hist_gradient_boosting``
   passes the node's ``missing_go_to_left`` (a ``numpy.bool``) as
   ``nodes_missing_value_tracks_true``, which protobuf 7 refuses in a repeated int field.
   We cast it to ``int``; the value (1: a NaN takes the true, i.e. left, branch) is kept.
2. It calls ``add_node`` with ``adjust_threshold_for_sklearn=False``, so a split threshold
   ``t`` (float64 in scikit-learn, which compares ``float64(x) <= t``) is rounded to the
   *nearest* float32. When that rounds up, an input equal to ``float32(t)`` goes left in
   ONNX and right in scikit-learn (seen when two adjacent float32 values are split). We
   store the largest float32 ``<= t`` instead: for float32 ``x``, ``x <= t`` exactly when
   ``x <= that value``, so every routing decision matches scikit-learn.
"""

from __future__ import annotations

import contextlib
import functools
import tempfile
import threading
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import onnx
from onnx import TensorProto, helper
from onnx.compose import add_prefix_graph
from sklearn.ensemble import HistGradientBoostingClassifier

from scorecast.metadata import INPUT_NAME, METADATA_KEY, OPTIMIZED_KEY, ModelMetadata
from scorecast.onnx_graph import TARGET_OPSET, make_model, merged_opsets

__all__ = [
    "attach_metadata",
    "fixed_hist_gradient_boosting_export",
    "float32_at_most",
    "feature_matrix",
    "group_classifiers_to_onnx",
    "hist_gradient_boosting_to_onnx",
    "optimize_graph",
    "read_metadata",
]


_PROBABILITY_OUTPUT = "probability"
# skl2onnx patches a module attribute: two concurrent conversions must not interleave.
_PATCH_LOCK = threading.Lock()


def feature_matrix(X: np.ndarray, feature_names: Sequence[str], features: Sequence[str]) -> np.ndarray:
    """The columns of ``X`` named ``features``, in that order, as a C-contiguous float32 block.

    This is the ``features`` input of a model whose metadata lists ``features``.
    """
    X = np.asarray(X)
    if X.ndim != 2 or X.shape[1] != len(feature_names):
        raise ValueError(f"X has shape {X.shape}, expected (n_contacts, {len(feature_names)}) for the feature names given")
    index = {name: i for i, name in enumerate(feature_names)}
    if len(index) != len(feature_names):
        dupes = sorted({n for n in feature_names if list(feature_names).count(n) > 1})
        raise ValueError(f"duplicate feature names: {dupes}")
    missing = [name for name in features if name not in index]
    if missing:
        raise ValueError(f"features {missing} are not among the columns of X: {list(feature_names)}")
    if list(features) == list(feature_names):  # the whole matrix: no copy when already float32
        return np.ascontiguousarray(X, dtype=np.float32)
    return np.ascontiguousarray(X[:, [index[name] for name in features]], dtype=np.float32)


def attach_metadata(model: onnx.ModelProto, meta: ModelMetadata) -> onnx.ModelProto:
    """A copy of ``model`` carrying ``meta`` as JSON in ``metadata_props[METADATA_KEY]``.

    Checks that the graph has the one ``features`` input with ``len(meta.features)`` columns
    and every output the metadata names; raises ValueError naming the mismatch.
    """
    graph = model.graph
    initializers = {init.name for init in graph.initializer}
    inputs = [i for i in graph.input if i.name not in initializers]
    if [i.name for i in inputs] != [INPUT_NAME]:
        raise ValueError(f"model inputs are {[i.name for i in inputs]}, expected exactly [{INPUT_NAME!r}]")
    tensor = inputs[0].type.tensor_type
    if tensor.elem_type != onnx.TensorProto.FLOAT:
        raise ValueError(f"input {INPUT_NAME!r} has element type {onnx.TensorProto.DataType.Name(tensor.elem_type)}, expected FLOAT")
    dims = tensor.shape.dim
    if len(dims) != 2:
        raise ValueError(f"input {INPUT_NAME!r} has rank {len(dims)}, expected 2")
    if dims[1].HasField("dim_value") and dims[1].dim_value != len(meta.features):
        raise ValueError(f"input {INPUT_NAME!r} has {dims[1].dim_value} columns, metadata lists {len(meta.features)} features")
    outputs = {o.name: o for o in graph.output}
    for spec in meta.outputs:
        if spec.onnx_output not in outputs:
            raise ValueError(f"output {spec.name!r} reads ONNX output {spec.onnx_output!r}, which the model lacks (it has {sorted(outputs)})")
        odims = outputs[spec.onnx_output].type.tensor_type.shape.dim
        if spec.column is not None and len(odims) == 2 and odims[1].HasField("dim_value"):
            if not 0 <= spec.column < odims[1].dim_value:
                raise ValueError(f"output {spec.name!r}: column {spec.column} is outside ONNX output {spec.onnx_output!r} of width {odims[1].dim_value}")

    out = onnx.ModelProto()
    out.CopyFrom(model)
    kept = [p for p in out.metadata_props if p.key != METADATA_KEY]
    del out.metadata_props[:]
    out.metadata_props.extend(kept)
    out.metadata_props.add(key=METADATA_KEY, value=meta.to_json())
    out.producer_name = "scorecast"
    out.doc_string = meta.description
    return out


def optimize_graph(model: onnx.ModelProto) -> onnx.ModelProto:
    """A copy of ``model`` with ONNX Runtime's basic graph optimizations applied once, here, and
    marked so (``OPTIMIZED_KEY``): the server then builds its CPU session without optimizing.

    Basic is the device-independent level (constant folding, redundant nodes removed; standard
    operators only). Building a session of a trained account's graphs spent half its CPU in the
    optimizer for no faster run (measured per level on the five trained scores), and an
    account's first call waits for that build. A graph the optimizer gave operators of domains
    ``model`` does not import comes back unchanged and unmarked.
    """
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_BASIC
    with tempfile.TemporaryDirectory() as folder:
        options.optimized_model_filepath = str(Path(folder) / "optimized.onnx")
        ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])
        optimized = onnx.load(options.optimized_model_filepath)
    domains = {o.domain for o in model.opset_import}
    if any(n.domain not in domains for n in optimized.graph.node):
        return model
    out = onnx.ModelProto()
    out.CopyFrom(model)  # its opset imports, IR version and metadata: ONNX Runtime adds every domain it knows
    out.graph.CopyFrom(optimized.graph)
    kept = [p for p in out.metadata_props if p.key != OPTIMIZED_KEY]
    del out.metadata_props[:]
    out.metadata_props.extend(kept)
    out.metadata_props.add(key=OPTIMIZED_KEY, value=f"basic, onnxruntime {ort.__version__}")
    return out


PROBE_ROWS = 32
"""Rows of a model's parity probe: enough to cross most branches, small in the metadata."""


def add_probe(model: onnx.ModelProto, features: np.ndarray) -> onnx.ModelProto:
    """A copy of ``model`` whose metadata records these feature rows and its CPU outputs for
    them (``params["probe"]``); the server replays them at load and refuses a model (or a
    runtime, e.g. CUDA) that does not reproduce them. NaN is stored as JSON null."""
    import onnxruntime as ort

    meta = read_metadata(model)
    x = np.ascontiguousarray(features[:PROBE_ROWS], dtype=np.float32)
    if x.ndim != 2 or x.shape[1] != len(meta.features):
        raise ValueError(f"probe rows have shape {x.shape}, the model takes {len(meta.features)} features")
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    names = sorted({o.onnx_output for o in meta.outputs})
    outputs = dict(zip(names, session.run(names, {INPUT_NAME: x}), strict=True))
    probe = {"features": _json_floats(x), "outputs": {n: _json_floats(v.astype(np.float64)) for n, v in outputs.items()}}
    return attach_metadata(model, ModelMetadata(**{**meta.__dict__, "params": {**meta.params, "probe": probe}}))


def _json_floats(values: np.ndarray) -> list:
    """Nested lists of floats with NaN as None (JSON has no NaN)."""
    return np.where(np.isnan(values), None, values.astype(object)).tolist()


def read_metadata(model: onnx.ModelProto) -> ModelMetadata:
    """The :class:`ModelMetadata` attached to ``model``; raises ValueError when there is none."""
    for prop in model.metadata_props:
        if prop.key == METADATA_KEY:
            return ModelMetadata.from_json(prop.value)
    raise ValueError(f"model has no {METADATA_KEY!r} metadata property")


def float32_at_most(value: float) -> float:
    """The largest float32 that is ``<= value`` (``value`` itself when representable)."""
    f = np.float32(value)
    if float(f) > float(value):  # compare in float64: a Python float would be cast to float32
        f = np.nextafter(f, np.float32(-np.inf))
    return float(f)


@contextlib.contextmanager
def fixed_hist_gradient_boosting_export() -> Iterator[None]:
    """Patch skl2onnx's ``tree_ensemble.add_node`` for the two defects in the module docstring.

    Scoped to the ``with`` block and serialised by a lock: importing this module changes
    nothing in skl2onnx.
    """
    from skl2onnx.common import tree_ensemble

    original = tree_ensemble.add_node

    @functools.wraps(original)
    def add_node(*args: Any, nodes_missing_value_tracks_true: Any = 0, **kwargs: Any) -> Any:
        # positional layout of add_node: (attr_pairs, is_classifier, tree_id, tree_weight,
        # node_id, feature_id, mode, value, ...)
        if len(args) > 7 and args[6] == "BRANCH_LEQ":
            args = (*args[:7], float32_at_most(args[7]), *args[8:])
        return original(*args, nodes_missing_value_tracks_true=int(nodes_missing_value_tracks_true), **kwargs)

    with _PATCH_LOCK:
        tree_ensemble.add_node = add_node
        try:
            yield
        finally:
            tree_ensemble.add_node = original


# (group index, its P(positive) column) -> extra nodes, initializers, the column to concatenate
ColumnStep = Callable[[int, str], tuple[list[onnx.NodeProto], list[onnx.TensorProto], str]]


def group_classifiers_to_onnx(
    estimators: Sequence[HistGradientBoostingClassifier],
    n_features: int,
    graph_name: str,
    output: str,
    column_step: ColumnStep | None = None,
    initializers: Sequence[onnx.TensorProto] = (),
) -> onnx.ModelProto:
    """One graph of one binary classifier per group, all reading ``features``, their
    P(positive) columns concatenated into ``output`` [N, len(estimators)].

    ``column_step`` may rewrite each group's column (e.g. null it for some rows) before the
    concatenation; ``initializers`` are shared constants it uses.
    """
    nodes: list[onnx.NodeProto] = []
    inits = list(initializers)
    columns: list[str] = []
    converted: list[onnx.ModelProto] = []
    for i, estimator in enumerate(estimators):
        sub = hist_gradient_boosting_to_onnx(estimator, n_features, name=f"g{i}")
        graph = add_prefix_graph(sub.graph, f"g{i}_", rename_inputs=False)  # all read `features`
        nodes.extend(graph.node)
        inits.extend(graph.initializer)
        column = graph.output[0].name
        if column_step is not None:
            extra_nodes, extra_inits, column = column_step(i, column)
            nodes.extend(extra_nodes)
            inits.extend(extra_inits)
        columns.append(column)
        converted.append(sub)
    nodes.append(helper.make_node("Concat", columns, [output], axis=1, name="concat_groups"))
    graph = helper.make_graph(
        nodes,
        graph_name,
        [helper.make_tensor_value_info(INPUT_NAME, TensorProto.FLOAT, [None, n_features])],
        [helper.make_tensor_value_info(output, TensorProto.FLOAT, [None, len(estimators)])],
        initializer=inits,
    )
    return make_model(graph, merged_opsets(*converted))


def hist_gradient_boosting_to_onnx(
    estimator: HistGradientBoostingClassifier, n_features: int, *, name: str = "hgb"
) -> onnx.ModelProto:
    """Convert a fitted binary ``HistGradientBoostingClassifier`` to ONNX.

    The graph reads ``features`` (float32 ``[N, n_features]``, NaN = missing) and has one
    output, ``probability``: float32 ``[N, 1]``, P(class 1), no ZipMap.
    """
    from skl2onnx import convert_sklearn
    from skl2onnx.common.data_types import FloatTensorType

    classes = getattr(estimator, "classes_", None)
    if classes is None:
        raise ValueError("estimator is not fitted")
    if len(classes) != 2:
        raise ValueError(f"expected a binary classifier, got classes {np.asarray(classes).tolist()}")
    if estimator.n_features_in_ != n_features:
        raise ValueError(f"estimator was fitted on {estimator.n_features_in_} features, n_features={n_features}")
    if getattr(estimator, "is_categorical_", None) is not None and np.any(estimator.is_categorical_):
        raise ValueError("categorical features are not supported by the ONNX export")

    with fixed_hist_gradient_boosting_export():
        converted = convert_sklearn(
            estimator,
            name=name,
            initial_types=[(INPUT_NAME, FloatTensorType([None, n_features]))],
            options={id(estimator): {"zipmap": False}},
            target_opset=TARGET_OPSET,
        )
    return _class1_probability(converted)


def _class1_probability(converted: onnx.ModelProto) -> onnx.ModelProto:
    """Replace skl2onnx's ``label``/``probabilities`` outputs by the class-1 column only."""
    from onnx import TensorProto, helper

    graph = converted.graph
    if "probabilities" not in [o.name for o in graph.output]:
        raise ValueError(f"skl2onnx produced outputs {[o.name for o in graph.output]}, expected 'probabilities'")
    probabilities = "probabilities"
    starts = helper.make_tensor("class1_starts", TensorProto.INT64, [1], [1])
    ends = helper.make_tensor("class1_ends", TensorProto.INT64, [1], [2])
    axes = helper.make_tensor("class1_axes", TensorProto.INT64, [1], [1])
    nodes = [
        *graph.node,
        helper.make_node("Slice", [probabilities, "class1_starts", "class1_ends", "class1_axes"], [_PROBABILITY_OUTPUT], name="class1"),
    ]
    new_graph = helper.make_graph(
        nodes,
        graph.name,
        list(graph.input),
        [helper.make_tensor_value_info(_PROBABILITY_OUTPUT, TensorProto.FLOAT, [None, 1])],
        initializer=[*graph.initializer, starts, ends, axes],
    )
    return make_model(new_graph, merged_opsets(converted))
