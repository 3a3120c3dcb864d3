"""kernels/web_config.py: the web config is checked at load, errors name the bad entry's path."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from scorecast.kernels.web_config import load_web_config, parse_web_config


def test_defaults_are_filled_in() -> None:
    """A minimal config gets every default; category defaults to cold."""
    config = parse_web_config({"pages": [{"prefix": "/blog/", "points": 1}]})
    assert config["session_gap_minutes"] == 30 and config["eliminating"] == "zero"
    assert config["pages"] == [{"prefix": "/blog/", "points": 1.0, "category": "cold"}]


def test_the_bundled_example_parses() -> None:
    """training/web_config.json (the default of `scorecast train`) is a valid config."""
    path = Path(__file__).parents[2] / "training" / "web_config.json"
    config = load_web_config(path)
    assert {e["category"] for e in config["pages"]} == {"cold", "warm", "hot", "eliminating"}


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ({"pages": [{"page": "/", "points": 1}] * 3 + [{"page": "/x", "points": "x"}]}, r'pages\[1\]\.page: "/" is already pages\[0\]'),
        ({"pages": [{"page": "/", "points": 1}, {"page": "/a", "points": 1}, {"page": "/b", "points": 1}, {"page": "/x", "points": "x"}]}, r'pages\[3\]\.points: expected a number, got "x"'),
        ({"pages": [{"points": 1}]}, r"pages\[0\]: expected exactly one of page \(exact\) or prefix"),
        ({"pages": [{"page": "/", "prefix": "/", "points": 1}]}, r"pages\[0\]: expected exactly one"),
        ({"pages": [{"page": "", "points": 1}]}, r"pages\[0\]\.page: expected a non-empty string"),
        ({"pages": [{"page": "/"}]}, r"pages\[0\]\.points: missing"),
        ({"pages": [{"page": "/", "points": 1, "category": "boiling"}]}, r'pages\[0\]\.category: expected one of cold, warm, hot, eliminating, got "boiling"'),
        ({"pages": [{"page": "/", "points": 1, "colour": "red"}]}, r"pages\[0\]\.colour: unknown key"),
        ({"pages": [{"page": "/", "points": True}]}, r"pages\[0\]\.points: expected a number, got true"),
        ({"pages": ["/pricing"]}, r'pages\[0\]: expected an object, got "/pricing"'),
        ({"pages": {"/": 1}}, r"pages: expected a list, got dict"),
        ({"eliminating": "halve"}, r'eliminating: expected one of zero, cap, got "halve"'),
        ({"session_gap_minutes": 0}, r"session_gap_minutes: expected a number > 0, got 0"),
        ({"half_life_days": -1}, r"half_life_days: expected a number >= 0, got -1"),
        ({"pagez": []}, r"pagez: unknown key"),
        ([1, 2], r"expected a JSON object, got list"),
    ],
    ids=[
        "duplicate", "points-string", "no-pattern", "two-patterns", "empty-pattern", "no-points", "bad-category",
        "unknown-entry-key", "points-bool", "entry-not-object", "pages-not-list", "bad-mode", "zero-gap",
        "negative-half-life", "unknown-key", "not-object",
    ],
)  # fmt: skip
def test_errors_name_the_path(raw: object, message: str) -> None:
    """Each bad config is refused with the path of the bad entry and the value."""
    with pytest.raises(ValueError, match=r"^web config: " + message):
        parse_web_config(raw)


def test_load_names_the_file(tmp_path: Path) -> None:
    """A file that is not JSON, or holds a bad entry, is refused naming the file."""
    bad_json = tmp_path / "a.json"
    bad_json.write_text("{pages: []")
    with pytest.raises(ValueError, match="a.json: not JSON"):
        load_web_config(bad_json)
    bad_entry = tmp_path / "b.json"
    bad_entry.write_text(json.dumps({"pages": [{"page": "/", "points": "x"}]}))
    with pytest.raises(ValueError, match=r'b.json: pages\[0\]\.points: expected a number, got "x"'):
        load_web_config(bad_entry)
