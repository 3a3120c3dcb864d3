"""Numba feature kernels over Arrow data: the one feature pipeline of training and serving.

This package imports nothing else of scorecast's. Its modules, by job:

The pipeline (input tables to a float32 feature matrix)
- ``frame``       ``FeatureFrame``: fixes the rows and the reference time; ``matrix(names)``;
                  ``warm_up`` compiles every kernel before a server reports ready
- ``features``    the registry: ``FAMILIES``, ``FEATURE_PATTERNS``, ``required_columns``, which
                  family computes a feature
- ``family``      the contract between the frame and its families (``FeatureFamily``, ``Frame``)

Feature families (one per event table; each parses its feature names and calls the kernels)
- ``order_features``        orders: RFM, repeat purchases, per-product-group counts
- ``sku_features``          orders: the SKUs each contact bought (recommendations, uplift)
- ``sku_view_features``     web_events: the product pages each contact viewed
- ``email_features``        email_events (+ campaigns): sends, opens, clicks, keyword weights
- ``web_features``          web_events: visit density, page value, categories, recency
- ``contact_features``      contacts: firmographic attributes as numbers and indicators
- ``interaction_features``  interactions: windowed counts (the lead behaviour families)
- ``lead_web_features``     web_events: the lead family's B2B web-visit counts

Kernels (usable on their own; NumPy in, NumPy out)
- ``rfm``            the RFM summary per contact
- ``repeat``         the repeat-purchase summary (BG/NBD, Pareto/NBD, Gamma-Gamma inputs)
- ``email``          the e-mail summary and keyword weights
- ``web``            the web-visit summary (``web_config`` checks its page configuration)
- ``event_windows``  windowed counts per contact and category
- ``sku_history``    recent distinct SKUs, time-decayed top viewed SKUs, promo share
- ``grouping``       counting sort of rows by contact code, the first step of every kernel
- ``partition``      a contact's partition (one hash for both rescore engines' splits)

Shared by all of the above
- ``arrow``       Arrow columns to the NumPy arrays the kernels take (codes, µs, floats)
- ``factorise``   dense codes for int64 keys in order of first appearance
- ``checks``      argument checks of the kernel wrappers
- ``errors``      ``InputError``, raised for every bad input, naming the field
- ``time_units``  µs since the epoch (UTC) and the constants to convert them
- ``web_config``  the web-heat configuration (page points, categories, sessions) as data
"""

import os

from .arrow import category_codes, contact_codes, floats, timestamps_us, unique_contact_ids
from .errors import InputError
from .family import FeatureFamily
from .features import FAMILIES, FEATURE_PATTERNS, required_columns
from .frame import FeatureFrame, warm_up
from .order_features import order_feature_names
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
