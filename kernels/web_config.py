"""The web-heat configuration: page points and categories, session gap, decay and the
eliminating rule, as data (a JSON file) rather than code.

A config is a JSON object::

    {
      "session_gap_minutes": 30,        # visits further apart start a new session
      "half_life_days": 14,             # time decay of page points (0: no decay)
      "density_weight": 1.0,            # heat = points + density_weight * density
      "eliminating": "zero",            # "zero": an eliminating visit zeroes the heat;
      "eliminating_cap": 0.0,           #   "cap": it caps the heat at eliminating_cap
      "product_page": "/products/{sku}", # a product page's URL (null: none); its views feed
                                        #   the recommendations
      "pages": [
        {"page": "/pricing", "points": 10, "category": "hot"},
        {"prefix": "/careers", "points": 0, "category": "eliminating"},
        ...
      ]
    }

Each ``pages`` entry matches a page either exactly (``page``) or by prefix (``prefix``); an
exact match wins over any prefix, and the longest matching prefix over shorter ones. Pages
no entry matches score 0 points and have no category. ``category`` is ``hot``, ``warm``,
``cold`` (points only) or ``eliminating`` (a job seeker's page: careers …).

``product_page`` is the pattern of a product page: the text around one ``{sku}`` placeholder
(``/products/{sku}``, ``/p/{sku}.html``); a page matching it, once its query string or
fragment (from the first ``?`` or ``#``) is cut, is a view of that SKU (``product_page_parts``).

:func:`parse_web_config` validates a decoded config and returns it normalised (every key
present): models store that form in ``params["feature_params"]["web"]``. Errors name the
path of the bad entry: ``pages[3].points: expected a number, got "x"``.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

__all__ = [
    "CATEGORIES",
    "DEFAULT_WEB_CONFIG",
    "ELIMINATING_MODES",
    "SKU_PLACEHOLDER",
    "load_web_config",
    "parse_web_config",
    "product_page_parts",
]

CATEGORIES = ("cold", "warm", "hot", "eliminating")
"""Page categories; a page's category code is its position here (-1: no entry matched)."""
ELIMINATING_MODES = ("zero", "cap")
SKU_PLACEHOLDER = "{sku}"

_DEFAULTS: dict[str, Any] = {
    "session_gap_minutes": 30.0,
    "half_life_days": 14.0,
    "density_weight": 1.0,
    "eliminating": "zero",
    "eliminating_cap": 0.0,
    "product_page": None,
}

DEFAULT_WEB_CONFIG: dict[str, Any] = {**_DEFAULTS, "pages": []}
"""No page entries: every page scores 0 and has no category (features still count visits)."""


def _shown(value: object) -> str:
    return json.dumps(value) if isinstance(value, (str, int, float, bool, type(None))) else type(value).__name__


def _number(value: object, path: str, minimum: float | None = None) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ValueError(f"{path}: expected a number, got {_shown(value)}")
    if minimum is not None and value < minimum:
        raise ValueError(f"{path}: expected a number >= {minimum:g}, got {_shown(value)}")
    return float(value)


def parse_web_config(raw: object, where: str = "web config") -> dict[str, Any]:
    """Check a decoded web config and return it with every default filled in.

    Raises
    ------
    ValueError
        Naming the path of the first bad entry (``pages[3].points: …``) after ``where``.
    """
    try:
        return _parse(raw)
    except ValueError as err:
        raise ValueError(f"{where}: {err}") from None


def _parse(raw: object) -> dict[str, Any]:
    if not isinstance(raw, dict):
        raise ValueError(f"expected a JSON object, got {_shown(raw)}")
    unknown = sorted(set(raw) - set(_DEFAULTS) - {"pages"})
    if unknown:
        raise ValueError(f"{unknown[0]}: unknown key; known: {', '.join([*_DEFAULTS, 'pages'])}")
    out: dict[str, Any] = dict(_DEFAULTS)
    out["session_gap_minutes"] = _number(raw.get("session_gap_minutes", 30.0), "session_gap_minutes", 0.0)
    if out["session_gap_minutes"] <= 0:
        raise ValueError(f"session_gap_minutes: expected a number > 0, got {_shown(raw['session_gap_minutes'])}")
    out["half_life_days"] = _number(raw.get("half_life_days", 14.0), "half_life_days", 0.0)
    out["density_weight"] = _number(raw.get("density_weight", 1.0), "density_weight", 0.0)
    mode = raw.get("eliminating", "zero")
    if mode not in ELIMINATING_MODES:
        raise ValueError(f"eliminating: expected one of {', '.join(ELIMINATING_MODES)}, got {_shown(mode)}")
    out["eliminating"] = mode
    out["eliminating_cap"] = _number(raw.get("eliminating_cap", 0.0), "eliminating_cap", 0.0)
    pattern = raw.get("product_page")
    if pattern is not None:
        product_page_parts(pattern, "product_page")
    out["product_page"] = pattern
    pages = raw.get("pages", [])
    if not isinstance(pages, list):
        raise ValueError(f"pages: expected a list, got {_shown(pages)}")
    seen: dict[tuple[str, str], int] = {}
    entries = []
    for i, entry in enumerate(pages):
        path = f"pages[{i}]"
        if not isinstance(entry, dict):
            raise ValueError(f"{path}: expected an object, got {_shown(entry)}")
        extra = sorted(set(entry) - {"page", "prefix", "points", "category"})
        if extra:
            raise ValueError(f"{path}.{extra[0]}: unknown key; known: page, prefix, points, category")
        kinds = [k for k in ("page", "prefix") if k in entry]
        if len(kinds) != 1:
            raise ValueError(f"{path}: expected exactly one of page (exact) or prefix, got {kinds or 'neither'}")
        kind = kinds[0]
        pattern = entry[kind]
        if not isinstance(pattern, str) or not pattern:
            raise ValueError(f"{path}.{kind}: expected a non-empty string, got {_shown(pattern)}")
        if (kind, pattern) in seen:
            raise ValueError(f"{path}.{kind}: {_shown(pattern)} is already pages[{seen[kind, pattern]}]")
        seen[kind, pattern] = i
        if "points" not in entry:
            raise ValueError(f"{path}.points: missing")
        points = _number(entry["points"], f"{path}.points")
        category = entry.get("category", "cold")
        if category not in CATEGORIES:
            raise ValueError(f"{path}.category: expected one of {', '.join(CATEGORIES)}, got {_shown(category)}")
        entries.append({kind: pattern, "points": points, "category": category})
    out["pages"] = entries
    return out


def product_page_parts(pattern: object, where: str = "product_page") -> tuple[str, str]:
    """The text before and after the one ``{sku}`` of a product-page pattern.

    Raises
    ------
    ValueError
        Not a string, not exactly one ``{sku}``, or nothing before it (every page would match).
    """
    if not isinstance(pattern, str) or pattern.count(SKU_PLACEHOLDER) != 1:
        raise ValueError(f"{where}: expected a string with exactly one {SKU_PLACEHOLDER}, got {_shown(pattern)}")
    prefix, suffix = pattern.split(SKU_PLACEHOLDER)
    if not prefix:
        raise ValueError(f"{where}: expected a page path before {SKU_PLACEHOLDER} (\"/products/{{sku}}\"), got {_shown(pattern)}")
    if any(ch in prefix + suffix for ch in "?#"):
        raise ValueError(f"{where}: the query string and fragment are cut before matching; drop ? and # from {_shown(pattern)}")
    return prefix, suffix


def load_web_config(path: Path | str) -> dict[str, Any]:
    """Read and check a web config JSON file (see the module docstring)."""
    path = Path(path)
    try:
        raw = json.loads(path.read_text())
    except json.JSONDecodeError as err:
        raise ValueError(f"{path}: not JSON: {err}") from None
    return parse_web_config(raw, str(path))
