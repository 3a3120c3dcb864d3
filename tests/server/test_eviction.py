"""Eviction order (server/eviction.py): a scan over many accounts leaves the real-time ones
loaded under LFU and pushes them all out under plain LRU; the least called leave first, their
counts outlive an eviction and age; on the accounts benchmark's trace, the hot accounts' hit rate."""

from __future__ import annotations

import pytest

from scorecast.server.eviction import Lfu, Lru, policy_for
from tests.support.eviction_trace import ACCOUNT_BYTES, MB, replay, trace


def _survivors(policy: Lru | Lfu, capacity: int, hot: list[str], scanned: list[str]) -> set[str]:
    """Play hot real-time hits, then a scan over ``scanned``, evicting in policy order to hold
    ``capacity`` accounts of one byte each; the hot accounts still loaded at the end."""
    loaded: set[str] = set()

    def access(key: str, scan: bool) -> None:
        if key in loaded:
            policy.touch(key, scan)
            return
        while len(loaded) >= capacity:
            victim = next(policy.victims())
            policy.remove(victim)
            loaded.discard(victim)
        policy.admit(key, 1, scan)
        loaded.add(key)

    for _ in range(2):
        for key in hot:
            access(key, scan=False)
    for key in scanned:
        access(key, scan=True)
        access(hot[len(key) % len(hot)], scan=False)  # real-time traffic goes on during the pass
    return loaded & set(hot)


def test_scan_keeps_real_time_accounts_under_lfu_not_plain_lru() -> None:
    """A pass over 1,000 accounts with room for 20: all 5 hot accounts stay under LFU; plain LRU
    loses all but the one just touched each time (the scan makes each scanned account newest)."""
    hot = [f"hot{i}" for i in range(5)]
    scanned = [f"bulk{i}" for i in range(1000)]
    assert _survivors(Lfu(20), 20, hot, scanned) == set(hot)
    assert len(_survivors(Lru(20), 20, hot, scanned)) < len(hot)


def test_scanned_accounts_leave_first_then_the_least_called_oldest_first() -> None:
    """Scan-only accounts (no real-time call) go first, oldest first, whatever their recency;
    then real-time ones by their calls, and among equal counts the oldest."""
    policy = Lfu(100)
    policy.admit("a", 1, scan=False)
    policy.touch("a", scan=False)  # a: 2 calls
    policy.admit("b", 1, scan=False)  # b: 1 call
    policy.admit("c", 1, scan=False)  # c: 1 call, newer than b
    policy.admit("s", 1, scan=True)
    policy.admit("t", 1, scan=True)
    policy.touch("s", scan=True)  # a scan refreshes s (now newer than t) but counts no call
    policy.touch("b", scan=True)  # nor for b: still 1 call, still older than c among real-time ones
    assert list(policy.victims()) == ["t", "s", "b", "c", "a"]
    assert [policy.calls(k) for k in "abcst"] == [2, 1, 1, 0, 0]


def test_a_returning_account_keeps_its_calls_and_outranks_the_tail() -> None:
    """'slow' was called three times, then evicted (a scan needed its room): loaded again, it
    comes back with its count and leaves after the accounts called once, newer ones included."""
    policy = Lfu(100)
    for _ in range(3):
        policy.admit("slow", 1, scan=False)
        policy.remove("slow")
    policy.admit("slow", 1, scan=False)
    for key in ("tail1", "tail2"):
        policy.admit(key, 1, scan=False)
    policy.admit("bulk", 1, scan=True)
    assert policy.calls("slow") == 4
    assert list(policy.victims()) == ["bulk", "tail1", "tail2", "slow"]


def test_counts_age_so_yesterdays_hot_account_gives_way() -> None:
    """Every ``aging_calls_per_account`` x loaded accounts real-time calls, counts halve and
    zeros are forgotten: an account that was hot and stopped falls behind one called since."""
    policy = Lfu(100, aging_calls_per_account=5)  # two loaded accounts: halve every 10 calls
    policy.admit("old", 1, scan=False)
    policy.admit("new", 1, scan=False)
    for _ in range(7):
        policy.touch("old", scan=False)  # 9 calls so far: old 8, new 1
    assert policy.calls("old") == 8
    policy.touch("new", scan=False)  # 10th: old 8 -> 4, new 2 -> 1
    assert (policy.calls("old"), policy.calls("new")) == (4, 1)
    for _ in range(10):
        policy.touch("new", scan=False)  # 20th call halves again: old 4 -> 2, new 11 -> 5
    assert (policy.calls("old"), policy.calls("new")) == (2, 5)
    assert next(policy.victims()) == "old"


def test_policy_for_names_the_choices() -> None:
    assert isinstance(policy_for("lru", 1), Lru) and isinstance(policy_for("lfu", 1), Lfu)
    with pytest.raises(ValueError, match="eviction must be one of"):
        policy_for("segmented", 1)


def test_a_bulk_pass_over_every_account_leaves_the_hot_accounts_loaded() -> None:
    """The accounts benchmark's trace at 2,000 accounts (Zipf real-time calls, 4 per bulk account,
    a bulk pass over every account) with room for 30 accounts: under LFU the 2 most called find
    their account loaded at every call after their first, the 20 most called (1%) at 99% of
    them; plain LRU misses 28% and 3%."""
    accounts, budget = 2_000, int(30 * sum(ACCOUNT_BYTES) / 2)
    lfu = replay(Lfu(budget), trace(accounts, 4), accounts, budget, surplus=0)
    assert lfu.bulk_accounts == accounts and lfu.top_calls > 1_000
    assert lfu.top == 1.0 and lfu.hot >= 0.99
    lru = replay(Lru(budget), trace(accounts, 4), accounts, budget, surplus=0)
    assert lru.top < 0.98 and lru.hot < 0.8


@pytest.mark.parametrize(("budget_mb", "lfu_at_least"), [(500, 0.87), (1300, 0.99)])
def test_hot_hit_rate_on_the_benchmark_trace(budget_mb: int, lfu_at_least: float) -> None:
    """The accounts benchmark's full pass over 10,000 accounts, replayed: the 1% most called
    (100 accounts, ~920 MB of models) fit a 1,300 MB budget beside the surplus and the tail's
    churn, and LFU keeps them at 0.991 (0.9897 at 1,250 MB); at 500 MB (room for ~47 accounts)
    no policy can keep them all, and LFU keeps the most called (0.882, where keeping the
    best-ranked accounts by rank, known in advance, gives 0.885); plain LRU far below both."""
    budget = budget_mb * MB
    lfu = replay(Lfu(budget), trace(10_000, 4), 10_000, budget)
    lru = replay(Lru(budget), trace(10_000, 4), 10_000, budget)
    assert lfu.hot >= lfu_at_least and lfu.top >= 0.999
    assert lru.hot < lfu.hot - 0.1
