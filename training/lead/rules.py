"""Rule-based lead scoring as configuration: criteria with points, country filters, weights.

The configuration is a JSON object (a file given to ``scorecast train --lead-rules``)::

    {
      "rules": [
        {"name": "target industry", "points": 10, "attribute": "industry", "in": ["software", "finance"]},
        {"name": "software", "points": 5, "attribute": "industry", "equals": "software"},
        {"name": "mid-size", "points": 15, "attribute": "employees", "range": [200, null]},
        {"name": "demo request", "points": 30, "interaction": "demo_request", "days": 21, "min_count": 1},
        {"name": "careers visitor", "points": -20, "web_page": "/careers", "days": 90, "min_count": 1}
      ],
      "filters": [{"attribute": "country", "exclude": ["RU", "IR"]}, {"attribute": "ip_country", "include": ["US", "GB"]}],
      "weights": {"industry": 1.5, "interactions": 2.0}
    }

A rule fires when its attribute equals the value, is one of the values (string attributes),
lies in ``[low, high]`` (numeric attributes; null = unbounded; a missing value never fires), or
when the contact had between ``min_count`` and ``max_count`` (default unbounded) interactions
of that kind (web visits of that page, ``*`` = any) in the last ``days`` days. Its points are
multiplied by the weight of its attribute (``interactions`` / ``web`` for behaviour rules;
default 1). A contact failing a filter (country not included, or excluded) is *excluded*: its
rule points are 0. Rules fire the same way for excluded contacts (their bitmask is kept).

Everything is checked against the training base at load; an error names the path of the bad
entry, e.g. ``rules[2].points: expected a number, got "x"``.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["MAX_RULES", "Predicate", "RuleConfigError", "RuleSet", "load_rules", "parse_rules"]

MAX_RULES = 31  # one bit each in the int32 "rules_fired" column
_RULE_KEYS = {"name", "points", "attribute", "equals", "in", "range", "interaction", "web_page", "days", "min_count", "max_count"}


class RuleConfigError(ValueError):
    """A bad rules configuration; ``path`` locates the entry (``rules[2].points``)."""

    def __init__(self, path: str, message: str) -> None:
        super().__init__(f"{path}: {message}")
        self.path = path


@dataclass(frozen=True)
class Predicate:
    """``low <= sum(features) <= high`` (any feature NaN: false)."""

    features: tuple[str, ...]
    low: float
    high: float

    def evaluate(self, X: np.ndarray, names: Sequence[str]) -> np.ndarray:
        """Whether it holds for each row of ``X`` (columns ``names``)."""
        cols = X[:, [list(names).index(f) for f in self.features]].astype(np.float64)
        value = np.nan_to_num(cols, nan=0.0).sum(axis=1)
        return (value >= self.low) & (value <= self.high) & ~np.isnan(cols).any(axis=1)


@dataclass(frozen=True)
class RuleSet:
    """Parsed rules: names, weighted points, predicates; and filter predicates with their sense."""

    names: tuple[str, ...]
    points: tuple[float, ...]  # weights applied
    predicates: tuple[Predicate, ...]
    filters: tuple[Predicate, ...]
    filter_excludes_when: tuple[bool, ...]  # True: excluded when it holds; False: when it does not
    config: dict[str, Any]

    @property
    def features(self) -> list[str]:
        """Every feature the rules and filters read, in first-use order."""
        return list(dict.fromkeys(f for p in (*self.predicates, *self.filters) for f in p.features))

    def evaluate(self, X: np.ndarray, names: Sequence[str]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """NumPy reference: (points float64, fired bitmask int32, excluded bool) per row."""
        n = len(X)
        fired = np.zeros(n, np.int64)
        points = np.zeros(n)
        for i, (p, pts) in enumerate(zip(self.predicates, self.points, strict=True)):
            hit = p.evaluate(X, names)
            fired |= hit.astype(np.int64) << i
            points += np.where(hit, pts, 0.0)
        excluded = np.zeros(n, bool)
        for p, when in zip(self.filters, self.filter_excludes_when, strict=True):
            hit = p.evaluate(X, names)
            excluded |= hit if when else ~hit
        return np.where(excluded, 0.0, points), fired.astype(np.int32), excluded


def _show(value: object) -> str:
    return json.dumps(value) if not isinstance(value, float) or math.isfinite(value) else repr(value)


def _number(value: object, path: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise RuleConfigError(path, f"expected a number, got {_show(value)}")
    return float(value)


def _count(value: object, path: str, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise RuleConfigError(path, f"expected an integer >= {minimum}, got {_show(value)}")
    return value


def _string(value: object, path: str, known: Sequence[str] | None = None, what: str = "value") -> str:
    if not isinstance(value, str) or not value:
        raise RuleConfigError(path, f"expected a non-empty string, got {_show(value)}")
    if known is not None and value not in known:
        raise RuleConfigError(path, f"unknown {what} {value!r}; known: {', '.join(sorted(known))}")
    return value


def _strings(value: object, path: str) -> list[str]:
    if not isinstance(value, list) or not value:
        raise RuleConfigError(path, f"expected a non-empty list of strings, got {_show(value)}")
    return [_string(v, f"{path}[{i}]") for i, v in enumerate(value)]


def _attribute(value: object, path: str, attributes: Mapping[str, str]) -> tuple[str, str]:
    name = _string(value, path, list(attributes), "attribute")
    return name, attributes[name]


def _rule(
    raw: object, path: str, attributes: Mapping[str, str], kinds: Sequence[str], pages: Sequence[str]
) -> tuple[str, float, Predicate, str]:
    """(name, points, predicate, weight key) of one rule."""
    if not isinstance(raw, dict):
        raise RuleConfigError(path, f"expected an object, got {_show(raw)}")
    unknown = sorted(set(raw) - _RULE_KEYS)
    if unknown:
        raise RuleConfigError(f"{path}.{unknown[0]}", f"unknown key; a rule has {', '.join(sorted(_RULE_KEYS))}")
    name = _string(raw.get("name"), f"{path}.name")
    points = _number(raw.get("points"), f"{path}.points")
    sources = [k for k in ("attribute", "interaction", "web_page") if k in raw]
    if len(sources) != 1:
        raise RuleConfigError(path, f"needs exactly one of attribute, interaction, web_page; has {sources or 'none'}")
    if sources[0] == "attribute":
        column, kind = _attribute(raw["attribute"], f"{path}.attribute", attributes)
        tests = [k for k in ("equals", "in", "range") if k in raw]
        if len(tests) != 1:
            raise RuleConfigError(path, f"an attribute rule needs exactly one of equals, in, range; has {tests or 'none'}")
        test = tests[0]
        if (test == "range") != (kind == "number"):
            raise RuleConfigError(
                f"{path}.{test}", f"attribute {column!r} is a {kind}: use {'range' if kind == 'number' else 'equals or in'}"
            )
        if test == "range":
            bounds = raw["range"]
            if not isinstance(bounds, list) or len(bounds) != 2:
                raise RuleConfigError(f"{path}.range", f"expected [low, high] (null: unbounded), got {_show(bounds)}")
            low = -math.inf if bounds[0] is None else _number(bounds[0], f"{path}.range[0]")
            high = math.inf if bounds[1] is None else _number(bounds[1], f"{path}.range[1]")
            if low > high:
                raise RuleConfigError(f"{path}.range", f"low {low} is above high {high}")
            return name, points, Predicate((f"attr:{column}",), low, high), column
        values = [_string(raw["equals"], f"{path}.equals")] if test == "equals" else _strings(raw["in"], f"{path}.in")
        return name, points, Predicate(tuple(f"attr:{column}={v}" for v in dict.fromkeys(values)), 1.0, math.inf), column
    for key in ("equals", "in", "range"):
        if key in raw:
            raise RuleConfigError(f"{path}.{key}", f"only attribute rules have {key}")
    source = sources[0]
    known = [*kinds, "*"] if source == "interaction" else [*pages, "*"]
    what = _string(raw[source], f"{path}.{source}", known, "interaction kind" if source == "interaction" else "page")
    days = _count(raw.get("days"), f"{path}.days", 1)
    low = _count(raw.get("min_count", 1), f"{path}.min_count", 0)
    high = math.inf if raw.get("max_count") is None else _count(raw["max_count"], f"{path}.max_count", low)
    feature = f"lead_int_count:{what}:{days}" if source == "interaction" else f"lead_web_visits:{what}:{days}"
    return name, points, Predicate((feature,), float(low), float(high)), "interactions" if source == "interaction" else "web"


def parse_rules(raw: object, attributes: Mapping[str, str], kinds: Sequence[str], pages: Sequence[str]) -> RuleSet:
    """Check a rules configuration against a base's attributes (name -> "string" or "number"),
    interaction kinds and pages; raise :class:`RuleConfigError` at the first bad entry."""
    if not isinstance(raw, dict):
        raise RuleConfigError("(top)", f"expected an object with rules, filters, weights; got {_show(raw)}")
    unknown = sorted(set(raw) - {"rules", "filters", "weights"})
    if unknown:
        raise RuleConfigError(unknown[0], "unknown key; the configuration has rules, filters, weights")
    rules_raw = raw.get("rules", [])
    if not isinstance(rules_raw, list):
        raise RuleConfigError("rules", f"expected a list, got {_show(rules_raw)}")
    if len(rules_raw) > MAX_RULES:
        raise RuleConfigError("rules", f"{len(rules_raw)} rules; at most {MAX_RULES} (one bit each in rules_fired)")
    weights_raw = raw.get("weights", {})
    if not isinstance(weights_raw, dict):
        raise RuleConfigError("weights", f"expected an object, got {_show(weights_raw)}")
    weights = {}
    for key, value in weights_raw.items():
        if key not in attributes and key not in ("interactions", "web"):
            raise RuleConfigError(
                f"weights.{key}", f"unknown attribute; known: {', '.join(sorted([*attributes, 'interactions', 'web']))}"
            )
        weights[key] = _number(value, f"weights.{key}")
    names, points, predicates = [], [], []
    for i, rule in enumerate(rules_raw):
        name, pts, predicate, weight_key = _rule(rule, f"rules[{i}]", attributes, kinds, pages)
        if name in names:
            raise RuleConfigError(f"rules[{i}].name", f"{name!r} is used twice")
        names.append(name)
        points.append(pts * weights.get(weight_key, 1.0))
        predicates.append(predicate)
    filters_raw = raw.get("filters", [])
    if not isinstance(filters_raw, list):
        raise RuleConfigError("filters", f"expected a list, got {_show(filters_raw)}")
    filters, when = [], []
    for i, item in enumerate(filters_raw):
        path = f"filters[{i}]"
        if not isinstance(item, dict):
            raise RuleConfigError(path, f"expected an object, got {_show(item)}")
        column, kind = _attribute(item.get("attribute"), f"{path}.attribute", attributes)
        if kind != "string":
            raise RuleConfigError(f"{path}.attribute", f"filters take string attributes; {column!r} is a {kind}")
        modes = [k for k in ("include", "exclude") if k in item]
        extra = sorted(set(item) - {"attribute", "include", "exclude"})
        if extra:
            raise RuleConfigError(f"{path}.{extra[0]}", "unknown key; a filter has attribute and include or exclude")
        if len(modes) != 1:
            raise RuleConfigError(path, f"needs exactly one of include, exclude; has {modes or 'none'}")
        values = _strings(item[modes[0]], f"{path}.{modes[0]}")
        filters.append(Predicate(tuple(f"attr:{column}={v}" for v in dict.fromkeys(values)), 1.0, math.inf))
        when.append(modes[0] == "exclude")
    return RuleSet(tuple(names), tuple(points), tuple(predicates), tuple(filters), tuple(when), dict(raw))


def load_rules(path: Path, attributes: Mapping[str, str], kinds: Sequence[str], pages: Sequence[str]) -> RuleSet:
    """Read and check a rules file (JSON); errors name the file and the bad entry."""
    try:
        raw = json.loads(Path(path).read_text())
    except json.JSONDecodeError as exc:
        raise RuleConfigError(str(path), f"not JSON: {exc}") from None
    try:
        return parse_rules(raw, attributes, kinds, pages)
    except RuleConfigError as exc:
        raise RuleConfigError(f"{path}: {exc.path}", str(exc).split(": ", 1)[1]) from None
