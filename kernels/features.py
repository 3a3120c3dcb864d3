"""The registry of feature families: which family computes a feature, and what it reads.

Features come in families, one per event table, each a module of this package
(``order_features``: RFM, repeat purchases, product groups; …) listed in ``FAMILIES``; what a
family is lives in ``family``, the frame that runs them in ``frame``. Feature names are part of
every model's metadata, so they never change meaning; ``FEATURE_PATTERNS`` lists them all.
"""

from __future__ import annotations

import functools

from collections.abc import Iterable

from .contact_features import CONTACT_ATTRIBUTES
from .email_features import EMAIL
from .family import FeatureFamily
from .interaction_features import INTERACTIONS
from .lead_web_features import LEAD_WEB
from .order_features import ORDERS
from .sku_features import SKUS
from .sku_view_features import SKU_VIEWS
from .web_features import WEB

__all__ = [
    "EVENT_TABLES",
    "FAMILIES",
    "FEATURE_PATTERNS",
    "REFERENCE_TABLES",
    "by_family",
    "family_of",
    "required_columns",
]

FAMILIES: tuple[FeatureFamily, ...] = (ORDERS, SKUS, EMAIL, WEB, SKU_VIEWS, CONTACT_ATTRIBUTES, INTERACTIONS, LEAD_WEB)
"""Every feature family; a frame's event tables are theirs, in this order."""

EVENT_TABLES: tuple[str, ...] = tuple(dict.fromkeys(f.table for f in FAMILIES))
REFERENCE_TABLES: tuple[str, ...] = tuple(dict.fromkeys(t for f in FAMILIES for t in getattr(f, "reference_tables", ())))
"""Tables without contact_id that a family looks things up in (campaigns); never rows."""

FEATURE_PATTERNS: tuple[str, ...] = tuple(p for f in FAMILIES for p in f.patterns)
"""Every feature name ``FeatureFrame.matrix`` knows; ``<…>`` is a parameter (a product group …)."""


@functools.lru_cache(maxsize=8192)  # models name the same features request after request
def family_of(name: str) -> FeatureFamily:
    """The family that computes a feature; ValueError naming the known patterns if none."""
    for family in FAMILIES:
        if family.knows(name):
            return family
    raise ValueError(f"unknown feature {name!r}; known: {', '.join(FEATURE_PATTERNS)}")


def required_columns(names: Iterable[str]) -> set[str]:
    """The ``table.column`` inputs these features read (``"orders.ts"``, …).

    A base needs only these; rows come from ``contacts.contact_id`` where that table is
    present, which no feature requires.

    Raises
    ------
    ValueError
        A name matching none of ``FEATURE_PATTERNS``.
    """
    columns: set[str] = set()
    for name in names:
        columns |= family_of(name).columns(name)
    return columns


@functools.lru_cache(maxsize=1024)  # a model's feature list, grouped once per process
def by_family(names: tuple[str, ...]) -> list[tuple[FeatureFamily, tuple[int, ...], tuple[str, ...]]]:
    """(family, positions in ``names``, their names) for each family the names belong to."""
    positions: dict[int, list[int]] = {}
    families = [family_of(name) for name in names]
    for i, family in enumerate(families):
        positions.setdefault(id(family), []).append(i)
    return [(families[at[0]], tuple(at), tuple(names[i] for i in at)) for at in positions.values()]
