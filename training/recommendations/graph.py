"""The served recommendations graph (ONNX, CPU or CUDA), built from a fitted model's arrays.

Gather the history's factor rows, weighted ReduceSum, MatMul with the item factors (an
initializer, O(SKUs x factors)), add the prior; with view slots, one ScatterElements adds the
view weight onto the viewed SKUs; then one ScatterElements onto the history's SKUs: the repeat
weight, or -inf when the exclusion flag is set; TopK. Memory per run: the rows x SKUs scores
of a batch, never a SKUs x SKUs matrix. Ties go to the lower SKU code, as in
``RecommendationModel.recommend``.
"""

from __future__ import annotations

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from scorecast.metadata import INPUT_NAME
from scorecast.onnx_graph import make_model

__all__ = ["TINY", "recommendations_graph"]

TINY = 1e-12
"""Floor of a row's largest weight when normalising by it (a row of zeros stays zeros)."""


def recommendations_graph(
    *,
    item_factors: np.ndarray,
    prior: np.ndarray,
    slot_weights: np.ndarray,
    explore: float,
    beta: float,
    repeat_boost: float,
    view_boost: float,
    history_slots: int,
    view_slots: int,
    k: int,
) -> onnx.ModelProto:
    """The graph without metadata: input ``features`` = ``history_slots`` history codes, their
    weights, ``view_slots`` viewed codes and their weights, the exclusion flag; outputs
    ``items`` (codes as float, NaN where excluded), ``scores`` and ``cold``."""
    h, v, n_items = history_slots, view_slots, item_factors.shape[0]
    before_history = "scores_viewed" if v else "scores_all"
    c = helper.make_tensor

    def const(name: str, array: np.ndarray) -> onnx.TensorProto:
        return numpy_helper.from_array(np.asarray(array), name)

    inits = [
        # one zero row appended for "no SKU": Gather needs no masking
        const("factors_padded", np.vstack([item_factors, np.zeros((1, item_factors.shape[1]), np.float32)])),
        const("item_factors_t", np.ascontiguousarray(np.float32(explore) * item_factors.T)),
        const("prior", (np.float32(beta) * prior)[None, :]),
        const("slot_weights", slot_weights[None, :]),
        c("repeat_boost", TensorProto.FLOAT, [], [float(repeat_boost)]),
        c("tiny", TensorProto.FLOAT, [], [TINY]),
        c("h_start", TensorProto.INT64, [1], [0]),
        c("h_end", TensorProto.INT64, [1], [h]),
        c("w_end", TensorProto.INT64, [1], [2 * h]),
        c("flag_start", TensorProto.INT64, [1], [2 * h + 2 * v]),
        c("flag_end", TensorProto.INT64, [1], [2 * h + 2 * v + 1]),
        c("axis1", TensorProto.INT64, [1], [1]),
        c("axis_last", TensorProto.INT64, [1], [-1]),
        c("zero", TensorProto.FLOAT, [], [0.0]),
        c("half", TensorProto.FLOAT, [], [0.5]),
        c("minus_inf", TensorProto.FLOAT, [], [-np.inf]),
        c("nan", TensorProto.FLOAT, [], [np.nan]),
        c("dummy", TensorProto.INT64, [], [n_items]),
        c("zero_i", TensorProto.INT64, [], [0]),
        c("k", TensorProto.INT64, [1], [k]),
        c("first_end", TensorProto.INT64, [1], [1]),
    ]
    if v:
        inits += [
            c("v_end", TensorProto.INT64, [1], [2 * h + v]),
            c("view_boost", TensorProto.FLOAT, [], [float(view_boost)]),
        ]
    nodes = [
        helper.make_node("Slice", [INPUT_NAME, "h_start", "h_end", "axis1"], ["history"]),
        helper.make_node("Slice", [INPUT_NAME, "h_end", "w_end", "axis1"], ["history_w"]),
        helper.make_node("Slice", [INPUT_NAME, "flag_start", "flag_end", "axis1"], ["flag"]),
        helper.make_node("GreaterOrEqual", ["history", "zero"], ["valid"]),
        helper.make_node("Cast", ["valid"], ["valid_f"], to=TensorProto.FLOAT),
        helper.make_node("Cast", ["history"], ["history_i"], to=TensorProto.INT64),
        helper.make_node("Where", ["valid", "history_i", "dummy"], ["codes"]),  # -1 -> the dummy row
        helper.make_node("Gather", ["factors_padded", "codes"], ["embedded"], axis=0),  # (N, h, rank)
        helper.make_node("Unsqueeze", ["slot_weights", "axis_last"], ["slot_weights_3d"]),
        helper.make_node("Mul", ["embedded", "slot_weights_3d"], ["weighted"]),
        helper.make_node("ReduceSum", ["weighted", "axis1"], ["user"], keepdims=0),  # (N, rank)
        helper.make_node("MatMul", ["user", "item_factors_t"], ["raw"]),
        helper.make_node("Add", ["raw", "prior"], ["scores_all"]),  # (N, n_items)
        *(_view_nodes("scores_all", "scores_viewed") if v else []),
        # Repeat boost and exclusion: one ScatterElements onto the history's SKUs, in place
        # of the scores (no padded copy). Empty slots point at slot 0's SKU with slot 0's
        # update, so duplicate indices always write the same value; for a cold contact
        # slot 0 is empty too and every slot rewrites SKU 0's own score.
        helper.make_node("Greater", ["flag", "half"], ["exclude"]),
        helper.make_node("Slice", ["valid", "h_start", "first_end", "axis1"], ["first_valid"]),
        helper.make_node("Slice", ["history_i", "h_start", "first_end", "axis1"], ["first_code_raw"]),
        helper.make_node("Where", ["first_valid", "first_code_raw", "zero_i"], ["first_code"]),
        helper.make_node("Where", ["valid", "history_i", "first_code"], ["codes_safe"]),
        helper.make_node("Or", ["valid", "first_valid"], ["valid_eff"]),  # empty slot: slot 0's
        helper.make_node("And", ["valid_eff", "exclude"], ["masked"]),
        # personal frequency normalised by the row's largest: repeat_boost * w / max(w)
        helper.make_node("ReduceMax", ["history_w", "axis1"], ["w_max_raw"], keepdims=1),
        helper.make_node("Max", ["w_max_raw", "tiny"], ["w_max"]),
        helper.make_node("Div", ["history_w", "w_max"], ["w_norm"]),
        helper.make_node("Mul", ["w_norm", "repeat_boost"], ["boost_weights"]),
        helper.make_node("Mul", ["valid_f", "boost_weights"], ["boost_valid"]),
        helper.make_node("Slice", ["boost_valid", "h_start", "first_end", "axis1"], ["boost_first"]),
        helper.make_node("Where", ["valid", "boost_valid", "boost_first"], ["boost"]),
        helper.make_node("GatherElements", [before_history, "codes_safe"], ["at_history"], axis=1),
        helper.make_node("Add", ["at_history", "boost"], ["boosted"]),
        helper.make_node("Where", ["masked", "minus_inf", "boosted"], ["updates"]),
        helper.make_node("ScatterElements", [before_history, "codes_safe", "updates"], ["scores_final"], axis=1),
        helper.make_node("TopK", ["scores_final", "k"], ["scores", "top"], axis=1, largest=1, sorted=1),
        helper.make_node("Cast", ["top"], ["top_f"], to=TensorProto.FLOAT),
        helper.make_node("IsInf", ["scores"], ["excluded"]),
        helper.make_node("Where", ["excluded", "nan", "top_f"], ["items"]),
        helper.make_node("Not", ["first_valid"], ["is_cold"]),
        helper.make_node("Cast", ["is_cold"], ["cold"], to=TensorProto.INT32),
    ]
    graph = helper.make_graph(
        nodes,
        "recommendations",
        [helper.make_tensor_value_info(INPUT_NAME, TensorProto.FLOAT, [None, 2 * h + 2 * v + 1])],
        [
            helper.make_tensor_value_info("items", TensorProto.FLOAT, [None, k]),
            helper.make_tensor_value_info("scores", TensorProto.FLOAT, [None, k]),
            helper.make_tensor_value_info("cold", TensorProto.INT32, [None, 1]),
        ],
        initializer=inits,
    )
    return make_model(graph)


def _view_nodes(scores: str, out: str) -> list[onnx.NodeProto]:
    """The view boost: ``view_boost * v / max(v)`` added at the viewed SKUs by one
    ScatterElements, empty slots pointing at slot 0's SKU with slot 0's update (as the history's)."""
    node = helper.make_node
    return [
        node("Slice", [INPUT_NAME, "w_end", "v_end", "axis1"], ["viewed"]),
        node("Slice", [INPUT_NAME, "v_end", "flag_start", "axis1"], ["viewed_w"]),
        node("GreaterOrEqual", ["viewed", "zero"], ["v_valid"]),
        node("Cast", ["v_valid"], ["v_valid_f"], to=TensorProto.FLOAT),
        node("Cast", ["viewed"], ["viewed_i"], to=TensorProto.INT64),
        node("Slice", ["v_valid", "h_start", "first_end", "axis1"], ["v_first_valid"]),
        node("Slice", ["viewed_i", "h_start", "first_end", "axis1"], ["v_first_raw"]),
        node("Where", ["v_first_valid", "v_first_raw", "zero_i"], ["v_first_code"]),
        node("Where", ["v_valid", "viewed_i", "v_first_code"], ["v_codes"]),
        node("ReduceMax", ["viewed_w", "axis1"], ["vw_max_raw"], keepdims=1),
        node("Max", ["vw_max_raw", "tiny"], ["vw_max"]),
        node("Div", ["viewed_w", "vw_max"], ["vw_norm"]),
        node("Mul", ["vw_norm", "view_boost"], ["v_boost_weights"]),
        node("Mul", ["v_valid_f", "v_boost_weights"], ["v_boost_valid"]),
        node("Slice", ["v_boost_valid", "h_start", "first_end", "axis1"], ["v_boost_first"]),
        node("Where", ["v_valid", "v_boost_valid", "v_boost_first"], ["v_boost"]),
        node("GatherElements", [scores, "v_codes"], ["at_viewed"], axis=1),
        node("Add", ["at_viewed", "v_boost"], ["viewed_scores"]),
        node("ScatterElements", [scores, "v_codes", "viewed_scores"], [out], axis=1),
    ]
