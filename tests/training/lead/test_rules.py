"""Lead rules as configuration: each rule type fires exactly as configured; bad entries are
refused with their path."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from scorecast.training.lead.rules import MAX_RULES, RuleConfigError, load_rules, parse_rules

ATTRS = {"country": "string", "industry": "string", "employees": "number", "annual_volume": "number"}
KINDS = ["email_open", "demo_request"]
PAGES = ["/pricing", "/careers"]
NAMES = [
    "attr:country=FR",
    "attr:country=RU",
    "attr:industry=software",
    "attr:industry=finance",
    "attr:employees",
    "lead_int_count:demo_request:21",
    "lead_web_visits:/careers:90",
]
# rows: FR software 10 employees, 2 demos | RU finance 500, careers | FR retail NaN employees, 0 | DE software 200
X = np.array(
    [
        [1, 0, 1, 0, 10, 2, 0],
        [0, 1, 0, 1, 500, 0, 3],
        [1, 0, 0, 0, np.nan, 0, 0],
        [0, 0, 1, 0, 200, 1, 0],
    ],
    np.float32,
)


def _one(rule: dict, **extra: object) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rules = parse_rules({"rules": [{"name": "r", "points": 10, **rule}], **extra}, ATTRS, KINDS, PAGES)
    return rules.evaluate(X, NAMES)


def test_equals() -> None:
    points, fired, _ = _one({"attribute": "industry", "equals": "software"})
    assert fired.tolist() == [1, 0, 0, 1] and points.tolist() == [10, 0, 0, 10]


def test_in() -> None:
    _, fired, _ = _one({"attribute": "industry", "in": ["software", "finance"]})
    assert fired.tolist() == [1, 1, 0, 1]


def test_range_bounds_are_inclusive_and_missing_never_fires() -> None:
    _, fired, _ = _one({"attribute": "employees", "range": [200, 500]})
    assert fired.tolist() == [0, 1, 0, 1]
    _, fired, _ = _one({"attribute": "employees", "range": [None, 199]})
    assert fired.tolist() == [1, 0, 0, 0]


def test_interaction_counts() -> None:
    _, fired, _ = _one({"interaction": "demo_request", "days": 21, "min_count": 2})
    assert fired.tolist() == [1, 0, 0, 0]
    _, fired, _ = _one({"interaction": "demo_request", "days": 21, "min_count": 0, "max_count": 1})
    assert fired.tolist() == [0, 1, 1, 1]


def test_web_page_visits() -> None:
    points, fired, _ = _one({"web_page": "/careers", "days": 90, "points": -20})
    assert fired.tolist() == [0, 1, 0, 0] and points.tolist() == [0, -20, 0, 0]


def test_filters_exclude_and_include() -> None:
    points, fired, excluded = _one(
        {"attribute": "industry", "in": ["software", "finance"]}, filters=[{"attribute": "country", "exclude": ["RU"]}]
    )
    assert excluded.tolist() == [False, True, False, False]
    assert points.tolist() == [10, 0, 0, 10] and fired.tolist() == [1, 1, 0, 1]  # fired is kept, points are not
    _, _, excluded = _one({"attribute": "industry", "equals": "software"}, filters=[{"attribute": "country", "include": ["FR"]}])
    assert excluded.tolist() == [False, True, False, True]


def test_weights_scale_points_and_bits_follow_rule_order() -> None:
    config = {
        "rules": [
            {"name": "software", "points": 5, "attribute": "industry", "equals": "software"},
            {"name": "big", "points": 3, "attribute": "employees", "range": [100, None]},
            {"name": "demo", "points": 30, "interaction": "demo_request", "days": 21},
        ],
        "weights": {"industry": 2.0, "interactions": 0.5},
    }
    rules = parse_rules(config, ATTRS, KINDS, PAGES)
    assert rules.points == (10.0, 3.0, 15.0)
    points, fired, _ = rules.evaluate(X, NAMES)
    assert fired.tolist() == [0b101, 0b010, 0, 0b111]
    assert points.tolist() == [25, 3, 0, 28]
    assert rules.features == ["attr:industry=software", "attr:employees", "lead_int_count:demo_request:21"]


@pytest.mark.parametrize(
    ("config", "path", "message"),
    [
        (
            {
                "rules": [
                    {"name": "a", "points": 1, "attribute": "industry", "equals": "x"},
                    {"name": "b", "points": "x", "attribute": "industry", "equals": "x"},
                ]
            },
            "rules[1].points",
            'expected a number, got "x"',
        ),
        (
            {"rules": [{"name": "a", "points": 1, "attribute": "size", "equals": "x"}]},
            "rules[0].attribute",
            "unknown attribute 'size'",
        ),
        (
            {"rules": [{"name": "a", "points": 1, "attribute": "employees", "equals": "x"}]},
            "rules[0].equals",
            "is a number: use range",
        ),
        (
            {"rules": [{"name": "a", "points": 1, "attribute": "country", "range": [1, 2]}]},
            "rules[0].range",
            "is a string: use equals or in",
        ),
        (
            {"rules": [{"name": "a", "points": 1, "attribute": "employees", "range": [1, "9"]}]},
            "rules[0].range[1]",
            'expected a number, got "9"',
        ),
        ({"rules": [{"name": "a", "points": 1, "attribute": "employees", "range": [9, 1]}]}, "rules[0].range", "above high"),
        (
            {"rules": [{"name": "a", "points": 1, "attribute": "country", "in": ["FR", 3]}]},
            "rules[0].in[1]",
            "expected a non-empty string, got 3",
        ),
        (
            {"rules": [{"name": "a", "points": 1, "interaction": "call", "days": 7}]},
            "rules[0].interaction",
            "unknown interaction kind 'call'",
        ),
        (
            {"rules": [{"name": "a", "points": 1, "interaction": "demo_request", "days": 0}]},
            "rules[0].days",
            "expected an integer >= 1, got 0",
        ),
        ({"rules": [{"name": "a", "points": 1, "web_page": "/jobs", "days": 7}]}, "rules[0].web_page", "unknown page '/jobs'"),
        (
            {"rules": [{"name": "a", "points": True, "attribute": "country", "equals": "FR"}]},
            "rules[0].points",
            "expected a number, got true",
        ),
        (
            {"rules": [{"name": "a", "points": 1, "attribute": "country", "equals": "FR", "colour": 1}]},
            "rules[0].colour",
            "unknown key",
        ),
        ({"rules": [{"name": "a", "points": 1}]}, "rules[0]", "needs exactly one of attribute, interaction, web_page"),
        ({"rules": [{"name": "a", "points": 1, "attribute": "country", "equals": "FR"}] * 2}, "rules[1].name", "used twice"),
        ({"rules": {}}, "rules", "expected a list"),
        ({"filters": [{"attribute": "employees", "exclude": ["1"]}]}, "filters[0].attribute", "filters take string attributes"),
        ({"filters": [{"attribute": "country"}]}, "filters[0]", "exactly one of include, exclude"),
        ({"weights": {"colour": 2}}, "weights.colour", "unknown attribute"),
        ({"weights": {"industry": "2"}}, "weights.industry", 'expected a number, got "2"'),
        ({"rule": []}, "rule", "unknown key"),
        ([], "(top)", "expected an object"),
    ],
)
def test_bad_configuration_names_the_entry(config: object, path: str, message: str) -> None:
    with pytest.raises(RuleConfigError) as info:
        parse_rules(config, ATTRS, KINDS, PAGES)
    assert info.value.path == path
    assert str(info.value).startswith(f"{path}: ") and message in str(info.value)


def test_too_many_rules() -> None:
    rules = [{"name": f"r{i}", "points": 1, "attribute": "country", "equals": "FR"} for i in range(MAX_RULES + 1)]
    with pytest.raises(RuleConfigError, match="at most 31"):
        parse_rules({"rules": rules}, ATTRS, KINDS, PAGES)


def test_load_names_the_file(tmp_path: Path) -> None:
    path = tmp_path / "rules.json"
    path.write_text(json.dumps({"rules": [{"name": "a", "points": "x", "attribute": "country", "equals": "FR"}]}))
    with pytest.raises(RuleConfigError, match=r"rules.json: rules\[0\].points: expected a number"):
        load_rules(path, ATTRS, KINDS, PAGES)
    path.write_text("{nope")
    with pytest.raises(RuleConfigError, match="not JSON"):
        load_rules(path, ATTRS, KINDS, PAGES)
    assert math.isinf(
        parse_rules({"rules": [{"name": "a", "points": 1, "attribute": "employees", "range": [1, None]}]}, ATTRS, KINDS, PAGES)
        .predicates[0]
        .high
    )
