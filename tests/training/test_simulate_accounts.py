"""The fleet simulator (training/simulate/accounts.py) and ``scorecast simulate --accounts``."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from scorecast.cli.commands import main
from scorecast.server.repository import account_folders
from scorecast.training.simulate.accounts import MIN_CONTACTS, account_sizes


def test_sizes_are_skewed_most_small_a_few_large() -> None:
    """Over 10,000 accounts: the top 1% hold over 10% of contacts, the median is well below the mean."""
    sizes = np.sort(account_sizes(10_000, 10_000_000, seed=3))[::-1]
    assert sizes.min() >= MIN_CONTACTS and sizes.sum() >= 10_000_000
    assert sizes[:100].sum() / sizes.sum() > 0.10
    assert np.median(sizes) < 0.5 * sizes.mean()


def test_cli_writes_one_base_per_account(tmp_path: Path, capsys) -> None:  # noqa: ANN001
    """``simulate --accounts 3`` writes OUT/<account>/ bases, which a repository's account rule reads as accounts."""
    assert main(["simulate", "--accounts", "3", "--contacts", "600", "--out", str(tmp_path / "fleet")]) == 0
    names = sorted(p.name for p in (tmp_path / "fleet").iterdir())
    assert names == ["brand0000", "brand0001", "brand0002"]
    assert all((tmp_path / "fleet" / n / "orders.parquet").is_file() for n in names)
    assert "simulated 3 accounts" in capsys.readouterr().out
