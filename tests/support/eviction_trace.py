"""The accounts benchmark's access trace, replayed against an eviction policy in-process.

``benchmarks/accounts.py`` serves 10,000 accounts over gRPC for minutes; what its hot-account
hit rate depends on is mostly the order of the accesses, the accounts' sizes and the budget. This
module makes that order the same way (real-time calls drawn by a Zipf law over accounts in a
random rank order, one bulk pass over every account in turn, ``calls_per_bulk`` real-time calls
per bulk account) and replays it against a policy as ``server/accounts.py`` drives one: admit
on a load, touch on a hit, evict in ``victims()`` order until the loaded bytes, the reservation
of the load in progress and the resident surplus fit the budget, and ``remove`` on each eviction.
The account in use is held (never its own victim). Seconds, not minutes, so policies can be
compared and tested.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np

from scorecast.server.eviction import EvictionPolicy

MB = 1_000_000
ACCOUNT_BYTES = (8_330_000, 10_110_000)
"""Measured bytes of the benchmark's two trained model sets' accounts (account ``i`` is set
``i % 2``), in a warmed-up process (``AccountRegistry``'s own measure)."""
PEAK_RATIO = 1.2
"""A load's reservation over its account's measured bytes (its last load's peak, measured)."""
SURPLUS_BYTES = 54 * MB
"""Resident memory beyond the accounts that the registry counts against a churning 500 MB budget
(benchmarks/README: 53-55 MB)."""


@dataclass(frozen=True)
class Access:
    """One call's access: ``scan`` for the bulk pass, else a real-time call."""

    account: str
    scan: bool


@dataclass
class HitRates:
    """Real-time calls on hot accounts after each one's first, and those that found it loaded."""

    hot_hits: int = 0
    hot_calls: int = 0
    top_hits: int = 0
    top_calls: int = 0
    loads: int = 0
    real_time_calls: int = 0
    bulk_accounts: int = 0

    @property
    def hot(self) -> float:
        """Hit rate of the 1% most called accounts."""
        return self.hot_hits / self.hot_calls if self.hot_calls else float("nan")

    @property
    def top(self) -> float:
        """Hit rate of the 0.1% most called accounts."""
        return self.top_hits / self.top_calls if self.top_calls else float("nan")


def names(accounts: int) -> list[str]:
    """The benchmark's account names."""
    return [f"a{i:05d}" for i in range(accounts)]


def ranked(accounts: int) -> list[str]:
    """Accounts by real-time rank, most called first (the benchmark's order)."""
    return random.Random(7).sample(names(accounts), accounts)


def trace(
    accounts: int, calls_per_bulk: float, bulk: int | None = None, warmup: int = 0, zipf: float = 1.1, seed: int = 0
) -> Iterator[Access]:
    """The benchmark's accesses: ``warmup`` real-time calls, then ``bulk`` accounts of the pass
    (default: every one), each followed by ``calls_per_bulk`` real-time calls on average (the
    benchmark's ratio)."""
    order = ranked(accounts)
    weights = 1.0 / np.arange(1, accounts + 1) ** zipf
    cumulative = np.cumsum(weights / weights.sum())
    rng = np.random.default_rng(seed)

    def calls(n: int) -> Iterator[Access]:
        # one vectorised search per batch of draws, not one per call
        for rank in np.minimum(np.searchsorted(cumulative, rng.random(n)), accounts - 1).tolist():
            yield Access(order[rank], scan=False)

    yield from calls(warmup)
    owed = 0.0
    for account in names(accounts)[: accounts if bulk is None else bulk]:
        yield Access(account, scan=True)
        owed += calls_per_bulk
        draws = int(owed)
        owed -= draws
        yield from calls(draws)


def size_of(account: str) -> int:
    """An account's measured bytes (as its model set's)."""
    return ACCOUNT_BYTES[int(account[1:]) % len(ACCOUNT_BYTES)]


def replay(
    policy: EvictionPolicy,
    accesses: Iterator[Access],
    accounts: int,
    budget: int,
    surplus: int = SURPLUS_BYTES,
    size: Callable[[str], int] = size_of,
) -> HitRates:
    """Replay ``accesses`` against ``policy`` under ``budget`` as the registry would; the hot
    accounts' hit rates during the bulk pass, counted as the benchmark counts them."""
    order = ranked(accounts)
    hot, top = set(order[: max(1, accounts // 100)]), set(order[: max(1, accounts // 1000)])
    loaded: dict[str, int] = {}
    held = 0
    seen: set[str] = set()
    passing = False  # calls count once the bulk pass has begun (after any warm-up)
    rates = HitRates()

    def make_room(needed: int, holding: str | None) -> None:
        nonlocal held
        if held + needed + surplus <= budget:
            return
        for victim in policy.victims():
            if victim == holding or victim not in loaded:
                continue
            held -= loaded.pop(victim)
            policy.remove(victim)
            if held + needed + surplus <= budget:
                return

    for access in accesses:
        account, hit = access.account, access.account in loaded
        if hit:
            policy.touch(account, access.scan)
        else:
            nbytes = size(account)
            make_room(int(nbytes * PEAK_RATIO), None)
            loaded[account] = nbytes
            held += nbytes
            rates.loads += 1
            policy.admit(account, nbytes, access.scan)
            make_room(0, account)
        if access.scan:
            rates.bulk_accounts += 1
            passing = True
            continue
        rates.real_time_calls += passing
        if account in hot:
            if account in seen and passing:
                rates.hot_hits += hit
                rates.hot_calls += 1
                if account in top:
                    rates.top_hits += hit
                    rates.top_calls += 1
            seen.add(account)
    return rates
