"""Tree ensembles in tensor (GEMM) form: an ONNX→ONNX rewrite for the CUDA provider.

ONNX Runtime's ``ai.onnx.ml`` ``TreeEnsembleClassifier``/``TreeEnsembleRegressor`` have no
CUDA kernel: under ``--device cuda`` they fall back to the CPU, with a device round trip per
model. :func:`to_gemm` replaces each of them by standard operators that all have CUDA
kernels, after Hummingbird's GEMM strategy, per tree ``t`` (padded to ``K`` internal nodes
and ``L`` leaves):

1. ``Gather`` the feature of every internal node, compare it with the node's threshold in
   float32, exactly as the node's mode says (``BRANCH_LEQ`` ``<=``, ``BRANCH_LT`` ``<``,
   ``BRANCH_GTE`` ``>=``, ``BRANCH_GT`` ``>``, ``BRANCH_EQ`` ``==``, ``BRANCH_NEQ`` ``!=``),
   and OR in ``isnan(x)`` where ``nodes_missing_value_tracks_true`` is 1: the decisions
   ``T`` (0/1, ``[t, N, K]``). A NaN otherwise follows the comparison (false, but true for
   ``!=``), as ONNX Runtime does. Features are gathered, not multiplied by a one-hot
   matrix, since ``NaN * 0`` would spread a missing value to every node.
2. ``T · C`` with ``C[t, k, l]`` = +1 if leaf ``l`` lies under the true branch of node
   ``k``, -1 under its false branch, 0 otherwise; it equals ``D[t, l]`` (the number of true
   branches on ``l``'s path) for the reached leaf only, and is smaller for every other one,
   so ``ArgMax(T · C - D)`` is the leaf. All of it is small integers: exact in float32 (and
   in TF32 on the GPU).
3. The leaf's values (``E``, ``[t·L, n_outputs]``) are gathered, not multiplied (exact),
   summed over trees (``AVERAGE`` divides by the number of trees), base values added, then
   the post-transform and the classifier's output layout, as ONNX Runtime's
   ``TreeAggregatorClassifier`` writes them.

Only what is reproduced exactly is rewritten; anything else (``MIN``/``MAX`` aggregation,
``PROBIT``, ``SOFTMAX_ZERO``, non-float32 inputs or thresholds, label outputs that are
strings and used, …) raises :class:`UnsupportedTree` naming the node and the reason, and the
caller keeps the native form. :mod:`scorecast.server.runtime` also checks parity on a probe
batch (:func:`probe_rows`) before it serves a rewritten graph.

Size guards: a node whose matrices exceed :data:`MAX_PARAMETER_BYTES`, or whose working
memory exceeds :data:`MAX_BYTES_PER_ROW` per input row, is refused. The working memory per
row (:attr:`GemmRewrite.bytes_per_row`) lets the runtime score large batches in slices.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from scorecast.onnx_graph import GraphBuilder

__all__ = [
    "MAX_BYTES_PER_ROW",
    "MAX_PARAMETER_BYTES",
    "TREE_FORMS",
    "TREE_OPS",
    "GemmRewrite",
    "UnsupportedTree",
    "probe_rows",
    "to_gemm",
    "tree_nodes",
]

ML_DOMAIN = "ai.onnx.ml"
TREE_OPS = ("TreeEnsembleClassifier", "TreeEnsembleRegressor")
# The server's ``tree_form`` setting: auto (gemm on cuda, native on cpu), native, gemm.
TREE_FORMS = ("auto", "native", "gemm")
# ~64 MiB of C and E per tree node: 8 groups × 100 trees × 31 leaves is ~0.4 MiB in all.
MAX_PARAMETER_BYTES = 64 << 20
# Working memory of one node per input row (decisions, T·C, leaf values): above this even a
# 1,000-row batch would need a GiB.
MAX_BYTES_PER_ROW = 1 << 20
_MODES = ("BRANCH_LEQ", "BRANCH_LT", "BRANCH_GTE", "BRANCH_GT", "BRANCH_EQ", "BRANCH_NEQ")
_COMPARE = {"BRANCH_LEQ": "LessOrEqual", "BRANCH_LT": "Less", "BRANCH_GTE": "GreaterOrEqual", "BRANCH_GT": "Greater", "BRANCH_EQ": "Equal"}
# A padded leaf's path count: T·C - D stays far below 0 there, so ArgMax never picks it.
_NO_LEAF = float(1 << 20)
_MIN_OPSET = 13  # ReduceSum with axes as an input, ArgMax, IsNaN on float


class UnsupportedTree(ValueError):
    """A tree node the rewrite cannot reproduce exactly; the native form must stay."""

    def __init__(self, node: str, reason: str) -> None:
        super().__init__(f"tree node {node!r}: {reason}")
        self.node = node
        self.reason = reason


@dataclass(frozen=True)
class GemmRewrite:
    """The rewritten model and what the runtime needs to know about it."""

    model: onnx.ModelProto
    nodes: tuple[str, ...]
    """Names of the tree nodes replaced."""
    parameter_bytes: int
    """Bytes of the added initializers."""
    bytes_per_row: int
    """Estimated working memory per input row of the largest replaced node (the nodes run one
    after another and ONNX Runtime reuses their intermediate buffers)."""


@dataclass
class _Ensemble:
    """One tree node's trees as padded tensors (see the module docstring)."""

    name: str
    feature: np.ndarray  # [S] int64, S = n_trees * K
    threshold: np.ndarray  # [S] float32
    mode: np.ndarray  # [S] str
    missing_true: np.ndarray  # [S] bool
    path: np.ndarray  # C: [n_trees, K, L] float32
    count: np.ndarray  # D: [n_trees, L] float32
    values: np.ndarray  # E: [n_trees * L, n_outputs] float32
    has_value: np.ndarray  # [n_trees * L, n_outputs] bool: the leaf carries a weight there
    n_trees: int
    weights: list[float] = field(default_factory=list)

    @property
    def K(self) -> int:
        return self.path.shape[1]

    @property
    def L(self) -> int:
        return self.path.shape[2]


def tree_nodes(model: onnx.ModelProto) -> list[onnx.NodeProto]:
    """The ai.onnx.ml tree-ensemble nodes of the main graph."""
    return [n for n in model.graph.node if n.domain == ML_DOMAIN and n.op_type in TREE_OPS]


def _attrs(node: onnx.NodeProto) -> dict[str, object]:
    return {a.name: helper.get_attribute_value(a) for a in node.attribute}


def _text(value: object) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _floats(node: str, attrs: dict[str, object], name: str) -> np.ndarray | None:
    """A float attribute, plain or ``<name>_as_tensor`` (accepted only as float32)."""
    if name in attrs:
        return np.asarray(attrs[name], dtype=np.float32)
    tensor = attrs.get(f"{name}_as_tensor")
    if tensor is None:
        return None
    array = numpy_helper.to_array(tensor)  # type: ignore[arg-type]
    if array.dtype != np.float32:
        raise UnsupportedTree(node, f"{name}_as_tensor is {array.dtype}, only float32 is compared exactly")
    return array.reshape(-1)


def _parse(node: onnx.NodeProto) -> tuple[_Ensemble, dict[str, object]]:
    """Read a tree node's attributes into padded tensors; UnsupportedTree if malformed."""
    name = node.name or node.output[0]
    attrs = _attrs(node)
    tree_ids = np.asarray(attrs.get("nodes_treeids", []), dtype=np.int64)
    node_ids = np.asarray(attrs.get("nodes_nodeids", []), dtype=np.int64)
    features = np.asarray(attrs.get("nodes_featureids", []), dtype=np.int64)
    thresholds = _floats(name, attrs, "nodes_values")
    modes = [_text(m) for m in attrs.get("nodes_modes", [])]  # type: ignore[attr-defined]
    true_ids = np.asarray(attrs.get("nodes_truenodeids", []), dtype=np.int64)
    false_ids = np.asarray(attrs.get("nodes_falsenodeids", []), dtype=np.int64)
    n = len(tree_ids)
    missing = np.asarray(attrs.get("nodes_missing_value_tracks_true") or [0] * n, dtype=np.int64)
    if thresholds is None:
        thresholds = np.zeros(n, dtype=np.float32)
    if n == 0 or any(len(a) != n for a in (node_ids, features, thresholds, modes, true_ids, false_ids, missing)):
        raise UnsupportedTree(name, "the nodes_* attributes are empty or of different lengths")
    unknown = sorted({m for m in modes if m not in _MODES and m != "LEAF"})
    if unknown:
        raise UnsupportedTree(name, f"unknown node modes {unknown}")

    classifier = node.op_type == "TreeEnsembleClassifier"
    prefix = "class" if classifier else "target"
    w_trees = np.asarray(attrs.get(f"{prefix}_treeids", []), dtype=np.int64)
    w_nodes = np.asarray(attrs.get(f"{prefix}_nodeids", []), dtype=np.int64)
    w_ids = np.asarray(attrs.get(f"{prefix}_ids", []), dtype=np.int64)
    w_values = _floats(name, attrs, f"{prefix}_weights")
    if w_values is None or not len(w_trees) == len(w_nodes) == len(w_ids) == len(w_values):
        raise UnsupportedTree(name, f"the {prefix}_* attributes are missing or of different lengths")
    if classifier:
        labels = attrs.get("classlabels_int64s") or attrs.get("classlabels_strings") or []
        n_outputs = len(labels)  # type: ignore[arg-type]
    else:
        n_outputs = int(attrs.get("n_targets", 1))  # type: ignore[call-overload]
    if n_outputs < 1 or (len(w_ids) and (w_ids.min() < 0 or w_ids.max() >= n_outputs)):
        raise UnsupportedTree(name, f"{prefix}_ids out of range for {n_outputs} outputs")

    # One tree per tree id, in order of first appearance (ONNX Runtime's order of roots).
    order = list(dict.fromkeys(tree_ids.tolist()))
    index = {(t, i): k for k, (t, i) in enumerate(zip(tree_ids.tolist(), node_ids.tolist(), strict=True))}
    if len(index) != n:
        raise UnsupportedTree(name, "duplicate (tree id, node id) pairs")
    trees: list[tuple[list[int], list[tuple[int, list[tuple[int, bool]]]]]] = []  # (internal nodes, leaves with paths)
    members: dict[int, list[int]] = {tree: [] for tree in order}
    for k, tree in enumerate(tree_ids.tolist()):
        members[tree].append(k)
    for tree in order:
        children = {int(c) for k in members[tree] if modes[k] != "LEAF" for c in (true_ids[k], false_ids[k])}
        roots = [k for k in members[tree] if node_ids[k] not in children]
        if len(roots) != 1:
            raise UnsupportedTree(name, f"tree {tree} has {len(roots)} roots")
        internal: list[int] = []
        leaves: list[tuple[int, list[tuple[int, bool]]]] = []
        stack: list[tuple[int, list[tuple[int, bool]]]] = [(roots[0], [])]
        seen: set[int] = set()
        while stack:
            k, path = stack.pop()
            if k in seen:
                raise UnsupportedTree(name, f"tree {tree} is not a tree (node {node_ids[k]} reached twice)")
            seen.add(k)
            if modes[k] == "LEAF":
                leaves.append((k, path))
                continue
            slot = len(internal)
            internal.append(k)
            for child, branch in ((false_ids[k], False), (true_ids[k], True)):
                if (tree, int(child)) not in index:
                    raise UnsupportedTree(name, f"tree {tree} node {node_ids[k]} points to missing node {child}")
                stack.append((index[(tree, int(child))], [*path, (slot, branch)]))
        trees.append((internal, leaves))

    n_trees = len(trees)
    K = max(len(t[0]) for t in trees)
    L = max(len(t[1]) for t in trees)
    if K == 0:
        raise UnsupportedTree(name, "no tree has a split")
    parameter_bytes = 4 * n_trees * (K * L + L + L * n_outputs) + 17 * n_trees * K
    if parameter_bytes > MAX_PARAMETER_BYTES:
        raise UnsupportedTree(name, f"its GEMM matrices need {parameter_bytes:,} bytes > MAX_PARAMETER_BYTES={MAX_PARAMETER_BYTES:,}")
    S = n_trees * K
    feature = np.zeros(S, dtype=np.int64)
    threshold = np.zeros(S, dtype=np.float32)
    mode = np.full(S, "BRANCH_LEQ", dtype=object)
    missing_true = np.zeros(S, dtype=bool)
    path = np.zeros((n_trees, K, L), dtype=np.float32)
    count = np.full((n_trees, L), _NO_LEAF, dtype=np.float32)
    leaf_slot: dict[int, int] = {}
    for t, (internal, leaves) in enumerate(trees):
        for slot, k in enumerate(internal):
            s = t * K + slot
            feature[s], threshold[s], mode[s], missing_true[s] = features[k], thresholds[k], modes[k], bool(missing[k])
        for leaf, (k, steps) in enumerate(leaves):
            leaf_slot[k] = t * L + leaf
            count[t, leaf] = sum(branch for _, branch in steps)
            for slot, branch in steps:
                path[t, slot, leaf] = 1.0 if branch else -1.0
    if feature.min() < 0:
        raise UnsupportedTree(name, "negative nodes_featureids")

    values = np.zeros((n_trees * L, n_outputs), dtype=np.float32)
    has_value = np.zeros((n_trees * L, n_outputs), dtype=bool)
    for t, i, j, w in zip(w_trees.tolist(), w_nodes.tolist(), w_ids.tolist(), w_values.tolist(), strict=True):
        k = index.get((t, i))
        if k is None or k not in leaf_slot:
            raise UnsupportedTree(name, f"a weight names tree {t} node {i}, which is not a reachable leaf")
        values[leaf_slot[k], j] += np.float32(w)
        has_value[leaf_slot[k], j] = True
    ensemble = _Ensemble(name, feature, threshold, mode, missing_true, path, count, values, has_value, n_trees, w_values.tolist())
    return ensemble, attrs


def _decisions(b: GraphBuilder, x: str, e: _Ensemble) -> str:
    """Float 0/1 decisions ``[n_trees, N, K]``: node true (step 1 of the module docstring)."""
    groups = [m for m in _MODES if (e.mode == m).any()]
    parts: list[str] = []
    order: list[np.ndarray] = []
    for g, m in enumerate(groups):
        slots = np.flatnonzero(e.mode == m)
        order.append(slots)
        xg = b.op("Gather", [x, b.const(name=f"feature_{g}", value=e.feature[slots])], axis=1)
        t = b.const(name=f"threshold_{g}", value=e.threshold[slots])
        if m == "BRANCH_NEQ":
            decision = b.op("Not", [b.op("Equal", [xg, t])])
        else:
            decision = b.op(_COMPARE[m], [xg, t])
        tracks = e.missing_true[slots]
        if tracks.any():
            nan = b.op("IsNaN", [xg])
            if not tracks.all():
                nan = b.op("And", [nan, b.const(name=f"missing_true_{g}", value=tracks)])
            decision = b.op("Or", [decision, nan])
        parts.append(b.op("Cast", [decision], to=TensorProto.FLOAT))
    flat = parts[0] if len(parts) == 1 else b.op("Concat", parts, axis=1)
    if len(parts) > 1:  # back from mode-grouped order to slot order
        inverse = np.argsort(np.concatenate(order)).astype(np.int64)
        flat = b.op("Gather", [flat, b.const(name="slot_order", value=inverse)], axis=1)
    shaped = b.op("Reshape", [flat, b.const(name="decision_shape", value=np.array([-1, e.n_trees, e.K], dtype=np.int64))])
    return b.op("Transpose", [shaped], perm=[1, 0, 2])


def _raw_scores(b: GraphBuilder, x: str, e: _Ensemble) -> str:
    """Summed leaf values ``[N, n_outputs]`` (steps 2 and 3), before base values."""
    decisions = _decisions(b, x, e)
    matched = b.op("Sub", [b.op("MatMul", [decisions, b.const(name="C", value=e.path)]), b.const(name="D", value=e.count[:, None, :])])
    leaf = b.op("ArgMax", [matched], axis=2, keepdims=0)  # [n_trees, N]
    offsets = (np.arange(e.n_trees, dtype=np.int64) * e.L)[:, None]
    rows = b.op("Add", [leaf, b.const(name="leaf_offset", value=offsets)])
    values = b.op("Gather", [b.const(name="E", value=e.values), rows], axis=0)  # [n_trees, N, n_outputs]
    return b.op("ReduceSum", [values, b.const(name="tree_axis", value=np.array([0], dtype=np.int64))], keepdims=0)


def _bytes_per_row(e: _Ensemble) -> int:
    # gathered x, bool and float decisions, transposed copy, T·C and its difference, leaf values
    return 4 * e.n_trees * (5 * e.K + 2 * e.L + 2 + 2 * e.values.shape[1])


def _regressor(b: GraphBuilder, node: onnx.NodeProto, e: _Ensemble, attrs: dict[str, object], raw: str) -> None:
    n_targets = e.values.shape[1]
    transform = _text(attrs.get("post_transform", b"NONE"))
    if transform != "NONE":
        raise UnsupportedTree(e.name, f"post_transform {transform} on a regressor")
    aggregate = _text(attrs.get("aggregate_function", b"SUM"))
    if aggregate not in ("SUM", "AVERAGE"):
        raise UnsupportedTree(e.name, f"aggregate_function {aggregate}")
    base = _floats(e.name, attrs, "base_values")
    base = np.zeros(0, np.float32) if base is None else base
    if len(base) not in (0, n_targets):
        raise UnsupportedTree(e.name, f"{len(base)} base_values for {n_targets} targets")
    score = raw
    if aggregate == "AVERAGE":
        score = b.op("Div", [score, b.const(name="n_trees", value=np.array(e.n_trees, dtype=np.float32))])
    if len(base):
        score = b.op("Add", [score, b.const(name="base_values", value=base)])
    b.op("Identity", [score], output=node.output[0])


def _classifier(b: GraphBuilder, node: onnx.NodeProto, e: _Ensemble, attrs: dict[str, object], raw: str, label_used: bool) -> None:
    """ONNX Runtime's TreeAggregatorClassifier layouts that are reproduced exactly."""
    n_classes = e.values.shape[1]
    transform = _text(attrs.get("post_transform", b"NONE"))
    base = _floats(e.name, attrs, "base_values")
    base = np.zeros(0, np.float32) if base is None else base
    int_labels = attrs.get("classlabels_int64s")
    if label_used and not int_labels:
        raise UnsupportedTree(e.name, "its string label output is used")
    labels = b.const(name="labels", value=np.asarray(int_labels, dtype=np.int64)) if label_used else ""
    used_classes = {int(j) for j in np.flatnonzero(e.has_value.any(axis=0))}
    label: str | None = None
    if n_classes == 2 and used_classes <= {0} and len(base) <= 1:
        # Binary, one score s (weights of class 0): Z = [σ(-s), σ(s)] (LOGISTIC) and the
        # label is class 1 when s > 0; when every weight is >= 0, Z = [1 - p, p] with p = s
        # or σ(s), and the label flips at s > 0.5 (ONNX Runtime's _set_score_binary).
        if transform not in ("NONE", "LOGISTIC"):
            raise UnsupportedTree(e.name, f"post_transform {transform} on a binary classifier")
        s = b.op("Slice", [raw, *(b.const(name=k, value=np.array([v], np.int64)) for k, v in (("s0", 0), ("s1", 1), ("ax", 1)))])
        if len(base):
            s = b.op("Add", [s, b.const(name="base_values", value=base)])
        all_positive = bool((np.asarray(e.weights) >= 0).all())
        if all_positive:
            p = b.op("Sigmoid", [s]) if transform == "LOGISTIC" else s
            z = b.op("Concat", [b.op("Sub", [b.const(name="one", value=np.array(1, np.float32)), p]), p], axis=1)
            cut = 0.5
        elif transform == "LOGISTIC":
            z = b.op("Concat", [b.op("Sigmoid", [b.op("Neg", [s])]), b.op("Sigmoid", [s])], axis=1)
            cut = 0.0
        else:
            raise UnsupportedTree(e.name, "binary classifier with mixed-sign weights and post_transform NONE")
        if label_used:
            positive = b.op("Greater", [s, b.const(name="cut", value=np.array(cut, np.float32))])
            index = b.op("Squeeze", [b.op("Cast", [positive], to=TensorProto.INT64), b.const(name="sq", value=np.array([1], np.int64))])
            label = b.op("Gather", [labels, index], axis=0)
    elif n_classes > 2 and (len(base) == n_classes or (len(base) == 0 and e.has_value[e.count.reshape(-1) < _NO_LEAF].all())):
        # Multiclass: every class has a score (base value or a weight at every leaf).
        if transform not in ("NONE", "LOGISTIC", "SOFTMAX"):
            raise UnsupportedTree(e.name, f"post_transform {transform} on a multiclass classifier")
        scores = b.op("Add", [raw, b.const(name="base_values", value=base)]) if len(base) else raw
        if label_used:
            label = b.op("Gather", [labels, b.op("ArgMax", [scores], axis=1, keepdims=0)], axis=0)
        z = {"NONE": lambda: scores, "LOGISTIC": lambda: b.op("Sigmoid", [scores]), "SOFTMAX": lambda: b.op("Softmax", [scores], axis=1)}[transform]()
    else:
        raise UnsupportedTree(
            e.name, f"classifier layout not reproduced: {n_classes} classes, weights for classes {sorted(used_classes)}, {len(base)} base_values"
        )
    b.op("Identity", [z], output=node.output[1])
    if label is not None:
        b.op("Identity", [label], output=node.output[0])


def _input_types(model: onnx.ModelProto) -> dict[str, int]:
    inferred = onnx.shape_inference.infer_shapes(model)
    types = {}
    for v in (*inferred.graph.input, *inferred.graph.value_info, *inferred.graph.output):
        types[v.name] = v.type.tensor_type.elem_type
    for init in model.graph.initializer:
        types[init.name] = init.data_type
    return types


def to_gemm(model: onnx.ModelProto) -> GemmRewrite:
    """``model`` with every ai.onnx.ml tree-ensemble node replaced by its GEMM form.

    Raises :class:`UnsupportedTree` (the first node that cannot be reproduced exactly) or
    ValueError when there is no tree node; ``model`` itself is left unchanged.
    """
    trees = tree_nodes(model)
    if not trees:
        raise ValueError("the model has no ai.onnx.ml tree-ensemble node")
    opset = max((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), default=0)
    if opset < _MIN_OPSET:
        raise UnsupportedTree(trees[0].name, f"default-domain opset {opset} < {_MIN_OPSET}")
    types = _input_types(model)
    consumed = {i for n in model.graph.node for i in n.input} | {o.name for o in model.graph.output}
    replaced: dict[int, list[onnx.NodeProto]] = {}
    initializers: list[onnx.TensorProto] = []
    names: list[str] = []
    bytes_per_row = 0
    for k, node in enumerate(model.graph.node):
        if node.domain != ML_DOMAIN or node.op_type not in TREE_OPS:
            continue
        name = node.name or node.output[0]
        if types.get(node.input[0]) != TensorProto.FLOAT:
            raise UnsupportedTree(name, f"input {node.input[0]!r} is not known to be float32")
        ensemble, attrs = _parse(node)
        per_row = _bytes_per_row(ensemble)
        if per_row > MAX_BYTES_PER_ROW:
            raise UnsupportedTree(name, f"needs ~{per_row:,} bytes per row > MAX_BYTES_PER_ROW={MAX_BYTES_PER_ROW:,}")
        b = GraphBuilder(f"gemm{k}_")
        raw = _raw_scores(b, node.input[0], ensemble)
        if node.op_type == "TreeEnsembleRegressor":
            _regressor(b, node, ensemble, attrs, raw)
        else:
            _classifier(b, node, ensemble, attrs, raw, label_used=node.output[0] in consumed)
        replaced[k] = b.nodes
        initializers.extend(b.initializers)
        names.append(name)
        bytes_per_row = max(bytes_per_row, per_row)  # nodes run one after another

    out = onnx.ModelProto()
    out.CopyFrom(model)
    del out.graph.node[:]
    for k, node in enumerate(model.graph.node):
        out.graph.node.extend(replaced.get(k, [node]))
    out.graph.initializer.extend(initializers)
    if not any(n.domain == ML_DOMAIN for n in out.graph.node):
        kept = [o for o in out.opset_import if o.domain != ML_DOMAIN]
        del out.opset_import[:]
        out.opset_import.extend(kept)
    onnx.checker.check_model(out)
    return GemmRewrite(out, tuple(names), sum(len(t.raw_data) for t in initializers), bytes_per_row)


def probe_rows(model: onnx.ModelProto, width: int, n_rows: int = 2048, seed: int = 0) -> np.ndarray:
    """A float32 ``[n_rows, width]`` batch that exercises every split of ``model``'s trees.

    Each value of feature f is drawn from f's thresholds, the float32 neighbours on either
    side of them (so ``<`` and ``<=`` disagree), NaN and ±inf.
    """
    rng = np.random.default_rng(seed)
    candidates: list[list[np.ndarray]] = [[np.array([0.0, np.nan, np.inf, -np.inf], np.float32)] for _ in range(width)]
    for node in tree_nodes(model):
        attrs = _attrs(node)
        modes = [_text(m) for m in attrs.get("nodes_modes", [])]  # type: ignore[attr-defined]
        try:
            values = _floats(node.name, attrs, "nodes_values")
        except UnsupportedTree:
            continue
        if values is None:
            continue
        for f, t, m in zip(attrs.get("nodes_featureids", []), values, modes, strict=False):  # type: ignore[call-overload]
            if m != "LEAF" and 0 <= f < width:
                t = np.float32(t)
                candidates[f].append(np.array([t, np.nextafter(t, np.float32(-np.inf)), np.nextafter(t, np.float32(np.inf))], np.float32))
    columns = []
    for parts in candidates:
        pool = np.concatenate(parts)
        columns.append(pool[rng.integers(0, len(pool), n_rows)])
    return np.ascontiguousarray(np.stack(columns, axis=1), dtype=np.float32)
