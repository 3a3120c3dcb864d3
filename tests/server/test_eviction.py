"""Eviction order (server/eviction.py): a scan over many accounts leaves the real-time ones
protected under the segmented LRU, and pushes them all out under plain LRU."""

from __future__ import annotations

import pytest

from scorecast.server.eviction import Lru, SegmentedLru, policy_for


def _survivors(policy: Lru | SegmentedLru, capacity: int, hot: list[str], scanned: list[str]) -> set[str]:
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


def test_scan_keeps_real_time_accounts_under_segmented_lru_not_plain_lru() -> None:
    """A pass over 1,000 accounts with room for 20: all 5 hot accounts stay under the segmented
    LRU; plain LRU loses all but the one just touched each time (the scan makes each scanned
    account newest)."""
    hot = [f"hot{i}" for i in range(5)]
    scanned = [f"bulk{i}" for i in range(1000)]
    assert _survivors(SegmentedLru(20), 20, hot, scanned) == set(hot)
    assert len(_survivors(Lru(20), 20, hot, scanned)) < len(hot)


def test_protected_share_demotes_its_oldest_to_probation() -> None:
    """Past its share of the budget, protected's oldest entry drops back to probation (newest
    there), and leaves before any protected entry."""
    policy = SegmentedLru(10, protected_share=0.5)  # 5 bytes protected
    for key in "abc":
        policy.admit(key, 2, scan=False)
        policy.touch(key, scan=False)  # a, b, c promoted: 6 bytes > 5, so a is demoted
    assert policy.protected() == ["b", "c"]
    assert list(policy.victims()) == ["a", "b", "c"]


def test_scan_hits_neither_promote_nor_refresh_protected() -> None:
    """A scan hit leaves a probation entry in probation and a protected one where it was."""
    policy = SegmentedLru(100)
    for key in "ab":
        policy.admit(key, 1, scan=False)
        policy.touch(key, scan=False)
    policy.admit("s", 1, scan=True)
    policy.touch("s", scan=True)
    policy.touch("a", scan=True)
    assert policy.protected() == ["a", "b"]
    assert next(policy.victims()) == "s"


def test_policy_for_names_the_choices() -> None:
    assert isinstance(policy_for("lru", 1), Lru) and isinstance(policy_for("segmented", 1), SegmentedLru)
    with pytest.raises(ValueError, match="eviction must be one of"):
        policy_for("fifo", 1)


def test_a_real_time_account_loaded_again_goes_straight_to_protected() -> None:
    """'slow' had one real-time hit, then left (a scan churned probation): called again, it enters
    protected at once, as its last hit is newer than protected's oldest; 'tail', whose only hit
    is older than every protected account's last, enters probation; a scan load never promotes."""
    policy = SegmentedLru(100)
    policy.admit("tail", 1, scan=False)
    policy.remove("tail")
    for key in "ab":
        policy.admit(key, 1, scan=False)
        policy.touch(key, scan=False)  # a, b protected, their hits newer than tail's
    policy.admit("slow", 1, scan=False)  # first call: probation
    assert policy.protected() == ["a", "b"]
    policy.remove("slow")  # evicted by a scan before its second call
    policy.admit("slow", 1, scan=False)
    policy.admit("tail", 1, scan=False)
    policy.admit("bulk", 1, scan=True)
    policy.admit("bulk", 1, scan=True)
    assert policy.protected() == ["a", "b", "slow"]
    assert list(policy.victims()) == ["tail", "bulk", "a", "b", "slow"]
