"""Eviction policies on the accounts benchmark's trace, replayed in-process (seconds, not minutes).

    python benchmarks/eviction.py [--accounts 10000] [--budgets-mb 500,1300] [--calls-per-bulk 4]
        [--bulk N] [--warmup CALLS]

The trace is ``benchmarks/accounts.py``'s (``tests/support/eviction_trace.py``): real-time calls
drawn by a Zipf law (s = 1.1) over accounts in a random rank order, one bulk pass over every
account (or the first ``--bulk``), ``--calls-per-bulk`` real-time calls per bulk account (that
benchmark's ratio at 10,000 accounts and 500 MB: ~4), accounts of the two trained sets' measured
sizes (8.3 and 10.1 MB), 54 MB of resident surplus in the budget. For each budget it prints
the hit rate of the 1% and the 0.1% most called accounts, counted as that benchmark counts
(calls after each one's first, during the pass), for ``lfu`` (the server's), ``lru`` (plain
LRU) and ``by rank``: a reference that knows each account's rank in advance and keeps the
best-ranked (bulk-only accounts leave first), the most a policy that learns ranks from calls
can approach once the hot set outgrows the budget.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Iterator
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from scorecast.server.eviction import Lfu, Lru
from tests.support.eviction_trace import MB, ranked, replay, trace


class ByRank:
    """Keeps the best-ranked accounts (ranks known in advance); bulk-only accounts leave first."""

    def __init__(self, accounts: int) -> None:
        self._rank = {name: r for r, name in enumerate(ranked(accounts))}
        self._loaded: dict[str, int] = {}  # key -> its rank, or -1 while only bulk work used it

    def admit(self, key: str, nbytes: int, scan: bool) -> None:
        self._loaded[key] = -1 if scan else self._rank[key]

    def touch(self, key: str, scan: bool) -> None:
        if not scan:
            self._loaded[key] = self._rank[key]

    def remove(self, key: str) -> None:
        self._loaded.pop(key, None)

    def victims(self) -> Iterator[str]:
        return iter(sorted(self._loaded, key=lambda k: -(len(self._rank) if self._loaded[k] < 0 else self._loaded[k])))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--accounts", type=int, default=10_000)
    parser.add_argument("--budgets-mb", default="500,1300", help="comma-separated model_memory_budget values in MB")
    parser.add_argument("--calls-per-bulk", type=float, default=4.0, help="real-time calls per account of the bulk pass")
    parser.add_argument("--bulk", type=int, default=None, help="accounts of the pass replayed (default: every one)")
    parser.add_argument("--warmup", type=int, default=0, help="real-time calls before the pass (not counted)")
    args = parser.parse_args()
    accesses = list(trace(args.accounts, args.calls_per_bulk, args.bulk, args.warmup))
    print(f"{args.accounts} accounts, {len(accesses)} accesses ({args.calls_per_bulk:g} real-time calls per bulk account)")
    print("\n| budget | LFU (ours) 1% / 0.1% | plain LRU | by rank (reference) | replay s |")
    print("|---|---|---|---|---|")
    for mb in (float(b) for b in args.budgets_mb.split(",")):
        budget = int(mb * MB)
        start = time.perf_counter()
        rates = [replay(p, iter(accesses), args.accounts, budget) for p in (Lfu(budget), Lru(budget), ByRank(args.accounts))]
        cells = " | ".join(f"{r.hot:.3f} / {r.top:.3f}" for r in rates)
        print(f"| {mb:.0f} MB | {cells} | {time.perf_counter() - start:.1f} |", flush=True)


if __name__ == "__main__":
    sys.exit(main())
