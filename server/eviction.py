"""Which loaded account leaves first when the model memory budget is full.

Two policies over the same small interface (``admit``, ``touch``, ``remove``, ``victims``):

``SegmentedLru`` (the server's): an account enters a *probation* segment when it loads and
moves to a *protected* segment on a real-time hit (``ScoreBatch``, a one-chunk OIP call). Bulk
work (a ``Score`` stream of a whole base, TopN, model listings) is *scan* class: it loads into
probation and refreshes an entry there, but never promotes one, and leaves protected entries
where they are. Victims come from probation first (oldest first), from protected only when
probation is empty. Protected holds at most ``protected_share`` of the budget; past it its
oldest entry drops back to probation. So a nightly pass over every account churns probation
only, and the accounts serving real-time traffic stay loaded: the property plain LRU lacks
(each scanned account becomes the newest, and a pass over more accounts than fit pushes out
every hot one). A segmented LRU (Karedla et al., 1994): the request class already says which
accesses are scans. One piece of history outlives an eviction, as 2Q's ghost list does: when
each account last had a real-time hit. An account that a real-time call must load again goes
straight to protected if its previous real-time hit is newer than protected's oldest entry's
(it would still be protected had it been promoted then): an account called once a minute is
evicted from probation by a busy scan before its second call could promote it, and would
otherwise miss on every call. An account called once (the long tail) still enters probation.

``Lru`` (plain least-recently-used, every access alike) is ModelMesh's policy; setting
``eviction=lru`` serves with it so ``benchmarks/accounts.py`` can show the two side by side.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterator
from typing import Protocol

__all__ = ["EVICTION_POLICIES", "EvictionPolicy", "Lru", "SegmentedLru", "policy_for"]

DEFAULT_PROTECTED_SHARE = 0.8
"""Share of the budget real-time accounts may hold: the rest (probation) is where scans churn,
and it must still hold a few of the largest accounts so a scan's load does not evict the one
before it mid-pass (20% of the default 2 GiB budget is ~400 MB: hundreds of accounts)."""


class EvictionPolicy(Protocol):
    """Orders the evictable accounts; the registry keeps the bytes and the budget."""

    def admit(self, key: str, nbytes: int, scan: bool) -> None:
        """A newly loaded account of ``nbytes``."""

    def touch(self, key: str, scan: bool) -> None:
        """A hit on a loaded account (``scan``: by bulk work)."""

    def remove(self, key: str) -> None:
        """The account left (evicted, unloaded, pinned)."""

    def victims(self) -> Iterator[str]:
        """Accounts in the order they should leave, first to go first."""


class Lru:
    """Plain least-recently-used: every access makes its account the newest."""

    def __init__(self, capacity: int) -> None:
        self._order: OrderedDict[str, int] = OrderedDict()

    def admit(self, key: str, nbytes: int, scan: bool) -> None:
        self._order[key] = nbytes
        self._order.move_to_end(key)

    def touch(self, key: str, scan: bool) -> None:
        if key in self._order:
            self._order.move_to_end(key)

    def remove(self, key: str) -> None:
        self._order.pop(key, None)

    def victims(self) -> Iterator[str]:
        return iter(list(self._order))


class SegmentedLru:
    """Probation and protected segments; only real-time hits promote (see the module docstring)."""

    def __init__(self, capacity: int, protected_share: float = DEFAULT_PROTECTED_SHARE) -> None:
        if not 0 < protected_share < 1:
            raise ValueError(f"protected_share must be in (0, 1), got {protected_share!r}")
        self.protected_bytes_max = int(capacity * protected_share)
        self._probation: OrderedDict[str, int] = OrderedDict()
        self._protected: OrderedDict[str, int] = OrderedDict()
        self._protected_bytes = 0
        self._clock = 0
        self._last_hit: dict[str, int] = {}  # key -> clock of its last real-time hit (kept past eviction)

    def _real_time_hit(self, key: str) -> int:
        """Record a real-time hit on ``key``; the clock of its previous one (0: none)."""
        self._clock += 1
        previous = self._last_hit.get(key, 0)
        self._last_hit[key] = self._clock
        return previous

    def admit(self, key: str, nbytes: int, scan: bool) -> None:
        self.remove(key)
        if scan:
            self._probation[key] = nbytes
            return
        previous = self._real_time_hit(key)
        oldest = next(iter(self._protected), None)
        if previous and (oldest is None or previous > self._last_hit.get(oldest, 0)):
            self._promote(key, nbytes)  # would still be protected had it been promoted then
        else:
            self._probation[key] = nbytes

    def touch(self, key: str, scan: bool) -> None:
        if key in self._protected:
            if not scan:
                self._real_time_hit(key)
                self._protected.move_to_end(key)
            return
        if key not in self._probation:
            return
        if scan:
            self._probation.move_to_end(key)
            return
        self._real_time_hit(key)
        self._promote(key, self._probation.pop(key))

    def _promote(self, key: str, nbytes: int) -> None:
        self._protected[key] = nbytes
        self._protected_bytes += nbytes
        while self._protected_bytes > self.protected_bytes_max and len(self._protected) > 1:
            old, size = self._protected.popitem(last=False)
            self._protected_bytes -= size
            self._probation[old] = size  # demoted as the newest of probation: one more chance

    def remove(self, key: str) -> None:
        self._probation.pop(key, None)
        size = self._protected.pop(key, None)
        if size is not None:
            self._protected_bytes -= size

    def victims(self) -> Iterator[str]:
        return iter([*self._probation, *self._protected])

    def protected(self) -> list[str]:
        """Accounts in the protected segment, oldest first (for tests and logs)."""
        return list(self._protected)


EVICTION_POLICIES = ("segmented", "lru")


def policy_for(name: str, capacity: int) -> EvictionPolicy:
    """The policy a setting names, for a budget of ``capacity`` bytes."""
    if name == "segmented":
        return SegmentedLru(capacity)
    if name == "lru":
        return Lru(capacity)
    raise ValueError(f"eviction must be one of {EVICTION_POLICIES}, got {name!r}")
