"""Which loaded account leaves first when the model memory budget is full.

Two policies over the same small interface (``admit``, ``touch``, ``remove``, ``victims``):

``Lfu`` (the server's): the least frequently called account leaves first, counting real-time
calls only (``ScoreBatch``, a one-chunk OIP call), with recency breaking ties (older first).
Bulk work (a ``Score`` stream of a whole base, TopN, model listings) is *scan* class: it loads
and refreshes an account but never counts as a call, so an account only bulk work has used
(count 0) leaves before any real-time one, oldest first. A nightly pass over every account thus
churns the memory of one or two accounts, and the accounts serving real-time traffic stay
loaded: the property plain LRU lacks (each scanned account becomes the newest, and a pass over
more accounts than fit pushes out every hot one). The counts outlive an eviction, as TinyLFU's
sketch does (Einziger et al., 2017): an account called once a minute and evicted in between
comes back with its count, ahead of the long tail called once. They age as TinyLFU's do: every
``AGING_CALLS_PER_ACCOUNT`` real-time calls per loaded account, each count is halved (and the
zeros forgotten), so yesterday's hot accounts give way. Frequency, not recency, decides because
the hot set can outgrow the budget: then the best a policy can do is keep the most called, and
an LRU of real-time accounts keeps whichever were called last (``benchmarks/eviction.py``
replays the accounts benchmark's trace to compare them; the tail's accounts, called once, churn
among themselves).

``Lru`` (plain least-recently-used, every access alike) is ModelMesh's policy; setting
``eviction=lru`` serves with it so ``benchmarks/accounts.py`` can show the two side by side.
"""

from __future__ import annotations

import heapq
from collections import OrderedDict
from collections.abc import Iterator
from typing import Protocol

__all__ = ["AGING_CALLS_PER_ACCOUNT", "EVICTION_POLICIES", "EvictionPolicy", "Lfu", "Lru", "policy_for"]

AGING_CALLS_PER_ACCOUNT = 100
"""Real-time calls per loaded account between two halvings of the counts. Long enough that the
hot set's rarer accounts (the 100th of 10,000 under Zipf 1.1: 1 call in 1,000) count several
calls before a halving, where the tail's count 0 or 1: the accounts benchmark's replay gives
nearly the hot hit rate of counts that never age (0.991 against 0.992 at 1,300 MB; every 30
calls per account, 0.986). TinyLFU's 10 per entry is for its 4-bit counters."""


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


class Lfu:
    """Least frequently called first, real-time calls counted and aged (see the module docstring)."""

    def __init__(self, capacity: int, aging_calls_per_account: int = AGING_CALLS_PER_ACCOUNT) -> None:
        self.aging_calls_per_account = aging_calls_per_account
        self._loaded: dict[str, int] = {}  # key -> tick of its last real-time access (scan: if none)
        self._tick = 0
        self._calls: dict[str, int] = {}  # key -> real-time calls, aged (kept past eviction)
        self._since_aging = 0

    def _access(self, key: str, scan: bool) -> None:
        self._tick += 1
        if scan and key in self._loaded and key in self._calls:
            return  # a bulk pass leaves the real-time accounts' order as it found it
        self._loaded[key] = self._tick
        if scan:
            return
        self._calls[key] = self._calls.get(key, 0) + 1
        self._since_aging += 1
        if self._since_aging >= self.aging_calls_per_account * max(len(self._loaded), 1):
            self._since_aging = 0
            self._calls = {k: n // 2 for k, n in self._calls.items() if n > 1}

    def admit(self, key: str, nbytes: int, scan: bool) -> None:
        self._access(key, scan)

    def touch(self, key: str, scan: bool) -> None:
        if key in self._loaded:
            self._access(key, scan)

    def remove(self, key: str) -> None:
        self._loaded.pop(key, None)

    def victims(self) -> Iterator[str]:
        # a heap, not a sort: the registry takes one or two victims of maybe thousands loaded
        calls = self._calls
        heap = [(calls.get(key, 0), tick, key) for key, tick in self._loaded.items()]
        heapq.heapify(heap)
        while heap:
            yield heapq.heappop(heap)[2]

    def calls(self, key: str) -> int:
        """The account's real-time calls as counted now, aged (for tests and logs)."""
        return self._calls.get(key, 0)


EVICTION_POLICIES = ("lfu", "lru")


def policy_for(name: str, capacity: int) -> EvictionPolicy:
    """The policy a setting names, for a budget of ``capacity`` bytes."""
    if name == "lfu":
        return Lfu(capacity)
    if name == "lru":
        return Lru(capacity)
    raise ValueError(f"eviction must be one of {EVICTION_POLICIES}, got {name!r}")
