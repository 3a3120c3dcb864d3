"""Account names: what may name an account folder, and where an account's models live."""

from __future__ import annotations

from pathlib import Path

import pytest

from scorecast.accounts import DEFAULT_ACCOUNT, MAX_ACCOUNT_CHARS, account_root, check_account_name


@pytest.mark.parametrize("name", ["acme", "Brand_42", "a.b-c", "x" * MAX_ACCOUNT_CHARS])
def test_valid_names_pass(name: str) -> None:
    assert check_account_name(name) == name


@pytest.mark.parametrize(
    ("name", "why"),
    [
        ("", "empty"),
        ("a/b", "not a valid name"),
        ("a\\b", "not a valid name"),
        ("..", "not a valid name"),
        (".hidden", "not a valid name"),
        ("-flag", "not a valid name"),
        ("tab\there", "not a valid name"),
        ("nul\x00", "not a valid name"),
        ("x" * (MAX_ACCOUNT_CHARS + 1), "over 64"),
    ],
    ids=["empty", "slash", "backslash", "dotdot", "leading-dot", "leading-dash", "control", "nul", "too-long"],
)
def test_bad_names_are_refused_naming_the_value(name: str, why: str) -> None:
    with pytest.raises(ValueError, match=why) as info:
        check_account_name(name)
    assert f"account {name[:MAX_ACCOUNT_CHARS]!r}"[:20] in str(info.value)


def test_a_huge_name_is_not_echoed_whole() -> None:
    with pytest.raises(ValueError) as info:
        check_account_name("y" * 100_000)
    assert len(str(info.value)) < 200


def test_account_root(tmp_path: Path) -> None:
    """The default account is the repository root; a named one its folder; a bad one refused."""
    assert account_root(tmp_path, DEFAULT_ACCOUNT) == tmp_path
    assert account_root(tmp_path, "acme") == tmp_path / "acme"
    with pytest.raises(ValueError, match="not a valid name"):
        account_root(tmp_path, "../elsewhere")
