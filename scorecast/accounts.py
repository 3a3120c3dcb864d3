"""Account names: which brand of a platform a request, a model or a repository folder belongs to.

A repository holds each account's models in ``<root>/<account>/<score>/<version>.onnx``; the
default account, :data:`DEFAULT_ACCOUNT` (the empty name, proto3's unset string), is the
repository root itself, so a repository without account folders is one default account. A
named account is a single folder name: :func:`check_account_name` refuses anything that could
leave the repository or hide (path separators, ``..``, a leading ``.``), control characters,
and names over :data:`MAX_ACCOUNT_CHARS`.
"""

from __future__ import annotations

import re
from pathlib import Path

__all__ = ["DEFAULT_ACCOUNT", "MAX_ACCOUNT_CHARS", "account_root", "check_account_name"]

DEFAULT_ACCOUNT = ""
"""The account of a request that names none: the repository root's models."""
MAX_ACCOUNT_CHARS = 64
"""Longest account name: a folder name everywhere, and short enough to echo in an error."""
_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]*")


def check_account_name(name: str) -> str:
    """``name`` when it is a valid named account; ValueError naming it and the rule otherwise."""
    shown = name if len(name) <= 2 * MAX_ACCOUNT_CHARS else f"{name[:MAX_ACCOUNT_CHARS]}… ({len(name)} chars)"
    if not name:
        raise ValueError("account '' is empty: leave the account out for the default account")
    if len(name) > MAX_ACCOUNT_CHARS:
        raise ValueError(f"account {shown!r} is {len(name)} chars long, over {MAX_ACCOUNT_CHARS}")
    if not _NAME.fullmatch(name):  # refuses '/', '\\', '..', a leading '.' or '-', control chars, spaces
        raise ValueError(f"account {shown!r} is not a valid name (letters, digits, _ . -, not starting with . or -)")
    return name


def account_root(root: Path, account: str) -> Path:
    """The repository folder of ``account`` under the repository ``root`` (the root for the default)."""
    return Path(root) if account == DEFAULT_ACCOUNT else Path(root) / check_account_name(account)
