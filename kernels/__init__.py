"""Numba feature kernels over Arrow data: the one feature pipeline of training and serving.

``FeatureFrame`` turns input tables into a float32 feature matrix, each feature computed by a
family module (``order_features`` …, see ``features``); the modules below them are
usable on their own: ``arrow`` (Arrow columns to NumPy), ``factorise`` (int64 ids to codes),
``rfm`` (the RFM kernel), ``repeat`` (the repeat-purchase kernel: BG/NBD and Gamma-Gamma
inputs), ``web`` (the web-visit kernel; ``web_config`` checks its page config) and
``errors`` (``InputError``, raised for every bad input). This
package imports nothing else of scorecast's.
"""

import os

from .arrow import category_codes, contact_codes, floats, timestamps_us, unique_contact_ids
from .errors import InputError
from .features import (
    FAMILIES,
    FEATURE_PATTERNS,
    FeatureFamily,
    FeatureFrame,
    order_feature_names,
    required_columns,
    warm_up,
)
from .repeat import RepeatSummary, repeat_summary
from .rfm import RfmSummary, rfm_summary



def passive_openmp() -> None:
    """Let numba's OpenMP (libgomp) workers sleep as soon as they are idle, unless
    OMP_WAIT_POLICY says otherwise; call before the first parallel kernel (libgomp reads it when
    it loads, later calls change nothing).

    Scoring runs tens of short parallel kernels a chunk, and by default idle workers spin about
    a millisecond after each, taking a core from the chunk scored beside it, Arrow and ONNX
    Runtime (300k-contact behaviour base, 7 chunks: 1.1 -> 0.8 CPU s). Training does not call
    it: scikit-learn's gradient boosting shares libgomp and fits 6-8x slower with passive
    waiting (30k rows, 200 iterations: 0.23-0.31 s against 1.6-2.0 s).
    """
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")


__all__ = [
    "FAMILIES",
    "FEATURE_PATTERNS",
    "FeatureFamily",
    "FeatureFrame",
    "InputError",
    "RepeatSummary",
    "RfmSummary",
    "category_codes",
    "contact_codes",
    "floats",
    "order_feature_names",
    "passive_openmp",
    "repeat_summary",
    "required_columns",
    "rfm_summary",
    "timestamps_us",
    "unique_contact_ids",
    "warm_up",
]
