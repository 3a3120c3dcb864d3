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

# numba runs the parallel kernels on OpenMP (libgomp), whose idle workers spin for about a
# millisecond after every parallel kernel by default: a chunk runs tens of them, and the spinning
# takes a core from the chunk scored beside it, Arrow and ONNX Runtime (300k-contact behaviour
# base, 7 chunks: 1.1 -> 0.8 CPU s). Set before libgomp loads (numba's first parallel kernel);
# an explicit OMP_WAIT_POLICY wins.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

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
    "repeat_summary",
    "required_columns",
    "rfm_summary",
    "timestamps_us",
    "unique_contact_ids",
    "warm_up",
]
