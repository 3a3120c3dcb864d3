"""The accounts a server knows, and which of them have their models loaded.

A platform's thousands of brand accounts each have a folder of models
(``repository.account_folders``). The registry knows them all (rescanned on reload) and
loads an account's models on its first call, within a memory budget:

- **One load per account at a time, one account loading in the process at a time.** The first
  call for an unloaded account loads it (its model files several at once); calls that come
  meanwhile wait for that load. Account loads are serialised so each measures what it adds
  alone (``heap.py``): an account's size is measured, never a guess from files. A real-time
  call's load goes before the bulk work's loads waiting (``LoadGate``): a nightly pass loads an
  account after another, and a real-time call must not queue behind them.
- **A memory budget** (``model_memory_budget``): what an account holds is measured when it
  loads, as the larger of the heap it kept (``heap.py``) and the resident memory it added (the
  heap misses Python's own arenas: 10% of a trained account). Before a load, accounts are evicted
  until its *reservation* fits beside the loaded ones: the bytes of the files it loads times the
  peak RSS growth per file byte of the account's last load (``heap.peak_rss_bytes``), else of
  every load measured so far, else ``FIRST_GUESS``. A load's transients (the file read, the parsed graph, ONNX Runtime's
  optimisation copies: 1.4 times the final size on trained accounts, 3 times on models that are
  mostly weights) are thus measured too, not guessed. The reservation counts against the budget
  until the load ends; then the measured size replaces it and accounts are evicted until the
  budget holds. So the models' memory, an in-progress load included, stays within the budget.
  Once the server has warmed up, ``settle`` takes its RSS as the base; after each load, the
  resident memory beyond the base and the accounts' bytes (``surplus_bytes``: what the allocator
  keeps in the holes evictions leave, measured at 10-15% of a churning budget, and what past
  requests left resident, ONNX Runtime's run arena and Arrow's pool) counts against the budget
  too, so the RSS over the base stays within it. What calls in flight hold (decoded chunks) is
  not model memory: the request limits bound it (``max_decoded_bytes_per_chunk``,
  ``max_workers``, ``max_streams``).
  ``eviction.Lfu`` picks the accounts to evict, so a bulk pass over every account (scan
  class: Score streams, TopN, listings) does not push out the accounts real-time calls use.
  Pinned accounts (``pinned_accounts``) load at start and never leave.
- **Only the scores a call uses.** ``hold(..., scores=)`` loads just those scores of an unloaded
  account (a call naming two of five builds two sessions), and adds the ones a loaded account
  lacks: measured, reserved and gated like a load, the account's bytes growing by what they keep.
  Listings load every score.
- **Holds.** ``hold`` gives a call its account's repository and keeps it loaded until the call
  ends: only accounts no call holds are evicted, so eviction never breaks a call in flight (and
  the memory of an account evicted while unheld is freed when its last reference goes).
- **Per-account cap.** At most ``max_calls`` calls of one account at once (waiting for its load
  included); more are RESOURCE_EXHAUSTED naming the account, so one account's flood leaves the
  server's other slots to the others.
- **Failed loads** (the folder unreadable, or files that all failed) answer UNAVAILABLE naming
  the account and the reason, count in the metrics, and are retried after a backoff that
  doubles from ``retry_s`` up to ``MAX_RETRY_S`` (a reload retries at once); calls meanwhile
  get the same answer at once, without a load. Other accounts keep serving.
- **Usage** per account (calls, contacts, errors, calls that had to load) for the usage file.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Collection, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from scorecast.accounts import DEFAULT_ACCOUNT

from .errors import AccountNotFound, AccountUnavailable, ResourceExhausted
from .eviction import EvictionPolicy, policy_for
from .heap import heap_bytes, peak_rss_bytes, release_free_memory, reset_peak_rss, rss_bytes
from .repository import ModelRepository, ReloadReport, account_folders, model_files
from .runtime import DEFAULT_SESSION_OPTIONS, SessionOptions

__all__ = ["FIRST_GUESS", "MAX_RETRY_S", "AccountRegistry", "LoadGate", "Usage"]

log = logging.getLogger(__name__)

_T = TypeVar("_T")

MAX_RETRY_S = 300.0
"""Longest wait between two tries of an account that keeps failing to load."""
FIRST_GUESS = 32
"""Bytes of memory per byte of model file, for the reservation of a load before any load was
measured (trained five-score accounts: a peak of 4.7 MB for 0.27 MB of files)."""

_UNLOADED, _LOADING, _LOADED, _FAILED = "unloaded", "loading", "loaded", "failed"


@dataclass
class Usage:
    """What one account's calls did since the server started (for billing and capacity)."""

    calls: int = 0
    contacts: int = 0
    errors: int = 0
    loads: int = 0
    """Calls that found the account unloaded and waited for its models."""


class LoadGate:
    """One load at a time; when it ends, a real-time load waiting goes next, before any scan
    load (bulk work), whenever they came."""

    def __init__(self) -> None:
        self._cond = threading.Condition(threading.Lock())
        self._busy = False
        self._urgent = 0  # real-time loads waiting
        self._waiting = 0

    @property
    def waiting(self) -> int:
        """Loads waiting for the gate now."""
        return self._waiting

    @contextmanager
    def hold(self, scan: bool) -> Iterator[None]:
        """Wait for the gate (``scan``: after every real-time load waiting), keep it until the ``with`` ends."""
        with self._cond:
            self._urgent += not scan
            self._waiting += 1
            try:
                while self._busy or (scan and self._urgent):
                    self._cond.wait()
            finally:
                self._urgent -= not scan
                self._waiting -= 1
            self._busy = True
        try:
            yield
        finally:
            with self._cond:
                self._busy = False
                self._cond.notify_all()


@dataclass
class _Account:
    name: str
    folder: Path
    pinned: bool = False
    state: str = _UNLOADED
    repository: ModelRepository | None = None
    nbytes: int = 0
    last_nbytes: int = 0  # measured at its last load
    peak_per_byte: float = 0.0  # its last load's peak RSS growth per byte of files: its reservations
    calls: int = 0  # in flight, including those waiting for the load (the cap)
    holds: int = 0  # calls using the loaded repository (not evictable while > 0)
    loaded: threading.Event = field(default_factory=threading.Event)
    failure: str = ""
    failures: int = 0
    retry_at: float = 0.0
    usage: Usage = field(default_factory=Usage)


class AccountRegistry:
    """Accounts by name, their models loaded on demand within a memory budget (module docstring)."""

    def __init__(
        self,
        root: Path,
        options: SessionOptions = DEFAULT_SESSION_OPTIONS,
        *,
        budget: int,
        eviction: str = "lfu",
        pinned: Iterable[str] = (),
        max_calls: int | None = None,
        retry_s: float = 5.0,
        metrics: Any = None,
        preloaded: ModelRepository | None = None,
    ) -> None:
        self.root = Path(root)
        self.options = options
        self.budget = budget
        self.max_calls = max_calls
        self.retry_s = retry_s
        self.metrics = metrics
        self.policy: EvictionPolicy = policy_for(eviction, budget)
        self.pinned = frozenset(pinned)
        self._lock = threading.Lock()  # the table, the bytes, the policy: held for microseconds
        self._gate = LoadGate()  # one load in the process at a time (measured alone), real-time first
        self._accounts: dict[str, _Account] = {}
        self._held = 0
        self._reserved = 0  # the reservation of the load in progress (loads are serialised)
        self._peaks = self._peak_files = 0  # the loads' peaks and files' bytes, summed (for an account's first)
        self._base_rss: int | None = None  # the warmed-up process's RSS without accounts (``settle``)
        self._surplus = 0  # resident bytes beyond the base and the accounts, at the last load
        self.loads = self.evictions = self.load_failures = 0
        if not self.root.is_dir():
            raise FileNotFoundError(f"model repository {self.root} is not a folder")
        self._scan()
        default = self._accounts.get(DEFAULT_ACCOUNT)
        if default is not None and default.folder == self.root:
            # a repository without account folders (or with top-level score folders beside them):
            # its default account serves as the whole server did before accounts, always loaded
            self.pinned |= {DEFAULT_ACCOUNT}
            default.pinned = True
        if preloaded is not None:  # the default account's models, loaded by the caller (tests)
            entry = self._accounts.setdefault(DEFAULT_ACCOUNT, _Account(DEFAULT_ACCOUNT, preloaded.root))
            entry.pinned = True
            with self._lock:
                self._loaded(entry, preloaded, 0, scan=True)  # loaded before: not measured, and never evicted
        for name in sorted(self.pinned):
            entry = self._accounts.get(name)
            if entry is None:
                log.warning("pinned account %r has no folder in %s", name, self.root)
                continue
            entry.pinned = True
            if entry.state != _LOADED:
                try:
                    with self.hold(name, scan=True):
                        pass
                except AccountUnavailable as exc:
                    log.error("%s", exc)

    # -- the accounts ------------------------------------------------------------------------

    def _scan(self) -> tuple[list[str], list[str]]:
        """Match the table to the folders: (accounts added, accounts gone)."""
        folders = account_folders(self.root, DEFAULT_ACCOUNT)
        with self._lock:
            added = [n for n in folders if n not in self._accounts]
            gone = [n for n in self._accounts if n not in folders]
            for name in added:
                self._accounts[name] = _Account(name, folders[name], pinned=name in self.pinned)
            for name in gone:
                entry = self._accounts.pop(name)
                self._drop(entry)  # calls holding it finish on their repository
            self._publish()
        return added, gone

    @property
    def single(self) -> bool:
        """Whether the repository has no account folders: one default account, its top-level scores."""
        return list(self._accounts) == [DEFAULT_ACCOUNT] and self._accounts[DEFAULT_ACCOUNT].folder == self.root

    def known(self) -> list[str]:
        """Every account with a folder."""
        return sorted(self._accounts)

    def loaded(self) -> list[str]:
        """Accounts whose models are loaded now."""
        return sorted(n for n, e in self._accounts.items() if e.state == _LOADED)

    def repository(self, account: str) -> ModelRepository | None:
        """The account's models if loaded now (without holding them: for start-up and tests)."""
        entry = self._accounts.get(account)
        return entry.repository if entry is not None else None

    @property
    def held_bytes(self) -> int:
        """Measured bytes of every loaded account's models."""
        return self._held

    @property
    def surplus_bytes(self) -> int:
        """Resident bytes beyond the base and the loaded accounts at the last load (0 before
        ``settle``): counted against the budget."""
        return self._surplus

    def settle(self) -> None:
        """Take the process's RSS now, less the loaded accounts' bytes, as its base (the server
        calls this once warmed up): from then on what stays resident beyond the accounts' measured
        bytes counts against the budget too."""
        release_free_memory()
        with self._lock:
            self._base_rss = rss_bytes() - self._held

    @property
    def reserved_bytes(self) -> int:
        """Bytes set aside for the load in progress (0 when none): counted against the budget."""
        return self._reserved

    def usage(self) -> dict[str, Usage]:
        """Each account's usage counters since start (copies), accounts never called nor loaded left out."""
        with self._lock:
            return {n: Usage(**vars(e.usage)) for n, e in self._accounts.items() if e.usage.calls or e.usage.loads}

    def record(self, account: str, contacts: int, ok: bool) -> None:
        """Count one finished call of ``account`` (a known one; others are not billed)."""
        entry = self._accounts.get(account)
        if entry is None:
            return
        usage = entry.usage
        with self._lock:  # += on an attribute can interleave between threads
            usage.calls += 1
            usage.contacts += contacts
            usage.errors += not ok

    # -- holding an account's models ---------------------------------------------------------

    @contextmanager
    def hold(self, account: str, scan: bool, scores: Collection[str] | None = None) -> Iterator[ModelRepository]:
        """The account's models, loaded if need be, kept loaded until the ``with`` ends.

        ``scan``: bulk work (counts as no real-time call for eviction). ``scores``: the scores the
        call uses (None or empty: all); only those are loaded if the account is not yet, and those
        it lacks are added to a loaded one. Raises AccountNotFound, ResourceExhausted (the
        per-account cap) or AccountUnavailable.
        """
        scores = frozenset(scores) if scores else None
        with self._lock:
            entry = self._accounts.get(account)
            if entry is None:
                raise AccountNotFound(account)
            if self.max_calls is not None and entry.calls >= self.max_calls:
                raise ResourceExhausted(f"calls in flight for account {account!r}", entry.calls + 1, self.max_calls, "max_calls_per_account")
            entry.calls += 1
            # the common case, a loaded account that has the scores: one locked section on entry
            loaded = entry.repository if entry.state == _LOADED else None
            repository = self._take(entry, scan, waited=False) if loaded is not None and loaded.covers(scores) else None
        try:
            if repository is None:
                repository = self._acquire(entry, scan, scores)
        except BaseException:
            with self._lock:
                entry.calls -= 1
            raise
        try:
            yield repository
        finally:
            with self._lock:
                entry.holds -= 1
                entry.calls -= 1
                if entry.holds == 0 and self._held + self._surplus > self.budget:
                    self._make_room()

    def _take(self, entry: _Account, scan: bool, waited: bool) -> ModelRepository | None:
        """Hold the account's repository if it is loaded (lock held); None if not."""
        repository = entry.repository
        if entry.state != _LOADED or repository is None:
            return None
        entry.holds += 1  # held before a grow too: not evicted meanwhile
        self.policy.touch(entry.name, scan)
        if waited:
            entry.usage.loads += 1
        return repository

    def _acquire(self, entry: _Account, scan: bool, scores: frozenset[str] | None) -> ModelRepository:
        waited = False
        while True:
            with self._lock:
                repository = self._take(entry, scan, waited)
                if repository is not None:
                    if repository.covers(scores):
                        return repository
                    break
                if entry.state == _FAILED and time.monotonic() < entry.retry_at:
                    raise AccountUnavailable(entry.name, entry.failure, entry.retry_at - time.monotonic())
                loading = entry.state == _LOADING
                if not loading:
                    entry.state = _LOADING
                    entry.loaded = threading.Event()
                event = entry.loaded
            waited = True
            if loading:
                event.wait()  # the load of the call that came first
                continue
            try:
                return self._load(entry, scan, scores)
            finally:
                event.set()
        try:
            self._grow(entry, repository, scan, scores)
        except BaseException:
            with self._lock:
                entry.holds -= 1
            raise
        return repository

    def _measured(self, entry: _Account, files: int, work: Callable[[], _T]) -> tuple[_T, int, float]:
        """``work()`` (a load of ``files`` bytes of model files), alone in the process, within the
        budget: its reservation made room for first; returns its result, the bytes it kept and its
        seconds. The gate is held by the caller."""
        with self._lock:
            self._reserved = self._reservation(entry, files)
            self._make_room()
        release_free_memory()  # the evicted accounts' pages, and a clean start for the RSS delta
        start = time.perf_counter()
        peak_measured = reset_peak_rss()
        before, rss_before = heap_bytes(), rss_bytes()
        try:
            result = work()
        except BaseException:
            with self._lock:
                self._reserved = 0
            raise
        seconds = time.perf_counter() - start
        heap_kept = heap_bytes() - before  # the file bytes and parsed protos are freed by now
        peak = peak_rss_bytes() - rss_before if peak_measured else 0
        release_free_memory()  # their pages too
        rss_after = rss_bytes()
        nbytes = max(heap_kept, rss_after - rss_before, 0)
        peak = max(peak, nbytes)
        if files:
            entry.peak_per_byte = peak / files
            self._peaks, self._peak_files = self._peaks + peak, self._peak_files + files
        with self._lock:
            if self._base_rss is not None:
                self._surplus = max(rss_after - self._base_rss - self._held - nbytes, 0)
        return result, nbytes, seconds

    def _reservation(self, entry: _Account, files: int) -> int:
        """Bytes set aside for a load of ``files`` bytes of the account's model files: at the peak
        per file byte of its last load, else of every load so far, else ``FIRST_GUESS``."""
        if entry.peak_per_byte:
            return int(entry.peak_per_byte * files)
        if self._peak_files:
            return self._peaks * files // self._peak_files
        return FIRST_GUESS * files

    def _load(self, entry: _Account, scan: bool, scores: frozenset[str] | None) -> ModelRepository:
        with self._gate.hold(scan):
            try:
                repository, nbytes, seconds = self._measured(
                    entry, _file_bytes(entry.folder, scores), lambda: ModelRepository.load(entry.folder, self.options, scores)
                )
                if not repository.scores and repository.failures:
                    reasons = "; ".join(sorted(set(repository.failures.values())))
                    raise RuntimeError(f"every model file failed to load ({reasons})")
            except Exception as exc:  # noqa: BLE001 (any failure is the account's, reported and retried)
                with self._lock:
                    self._reserved = 0
                self._failed(entry, exc)
                raise AccountUnavailable(entry.name, entry.failure, entry.retry_at - time.monotonic()) from None
            with self._lock:  # loaded and held at once: no other call's eviction can take it between
                self._reserved = 0
                self._loaded(entry, repository, nbytes, scan)  # publishes; _make_room too if it evicts
                entry.holds += 1
                entry.usage.loads += 1
                self._make_room()
        log.info(
            "loaded account %r: %d models, %.1f MB measured, in %.0f ms (%.0f MB held + %.0f MB surplus of %.0f MB)",
            entry.name, sum(len(v) for v in repository.models.values()), entry.nbytes / 1e6, seconds * 1e3,
            self._held / 1e6, self._surplus / 1e6, self.budget / 1e6,
        )  # fmt: skip
        if self.metrics is not None:
            self.metrics.account_loaded(seconds)
        return repository

    def _grow(self, entry: _Account, repository: ModelRepository, scan: bool, scores: frozenset[str] | None) -> None:
        """Load the scores a held, loaded account lacks, measured like a load; its bytes grow by
        what they keep (the eviction policy is not told again: the account stays where it is)."""
        with self._gate.hold(scan):
            if repository.covers(scores):  # another call added them meanwhile
                return
            wanted = repository.wanted or frozenset()
            missing = None if scores is None else scores - wanted
            files = _file_bytes(entry.folder, missing) - (_file_bytes(entry.folder, wanted) if missing is None else 0)
            report, nbytes, seconds = self._measured(entry, max(files, 0), lambda: repository.want(scores))
            with self._lock:
                self._reserved = 0
                if entry.repository is repository and entry.state == _LOADED:
                    entry.nbytes += nbytes
                    entry.last_nbytes = entry.nbytes
                    self._held += nbytes
                self._make_room()
                self._publish()
        log.info("account %r: %d more models, %.1f MB measured, in %.0f ms", entry.name, len(report.loaded), nbytes / 1e6, seconds * 1e3)
        if self.metrics is not None and report.loaded:
            self.metrics.serve_scores(repository.scores)

    def _loaded(self, entry: _Account, repository: ModelRepository, nbytes: int, scan: bool) -> None:
        """Make ``repository`` the account's loaded models, of ``nbytes`` measured (lock held)."""
        self._held -= entry.nbytes
        entry.repository, entry.state = repository, _LOADED
        entry.nbytes = entry.last_nbytes = nbytes
        entry.failure, entry.failures = "", 0
        self._held += entry.nbytes
        self.loads += 1
        if not entry.pinned:
            self.policy.admit(entry.name, entry.nbytes, scan)
        self._publish()
        if self.metrics is not None:
            self.metrics.serve_scores(repository.scores)

    def _failed(self, entry: _Account, exc: Exception) -> None:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        with self._lock:
            entry.failures += 1
            wait = min(self.retry_s * 2 ** (entry.failures - 1), MAX_RETRY_S)
            entry.state, entry.failure, entry.retry_at = _FAILED, reason, time.monotonic() + wait
            self.load_failures += 1
        log.error("account %r could not be loaded (failure %d): %s; next try in %.0fs", entry.name, entry.failures, reason, wait)
        if self.metrics is not None:
            self.metrics.account_load_failed()

    def _make_room(self) -> None:
        """Evict unheld accounts, policy's order, until the reservation and the surplus fit beside
        the loaded ones (lock held)."""
        needed = self._reserved + self._surplus
        if self._held + needed <= self.budget:
            return
        for name in self.policy.victims():
            entry = self._accounts.get(name)
            if entry is None or entry.holds or entry.pinned or entry.state != _LOADED:
                continue
            self._drop(entry)
            self.evictions += 1
            if self.metrics is not None:
                self.metrics.account_evicted()
            if self._held + needed <= self.budget:
                break
        self._publish()

    def _drop(self, entry: _Account) -> None:
        """Unload an account (lock held): its models are freed once no call references them."""
        if entry.state == _LOADED:
            self._held -= entry.nbytes
            if entry.repository is not None:
                # request plans point back at the repository: without this cycle broken, its
                # sessions would wait for Python's cyclic collector, long after the eviction
                entry.repository.derived.clear()
            entry.state, entry.repository, entry.nbytes = _UNLOADED, None, 0
        self.policy.remove(entry.name)

    def _publish(self) -> None:
        if self.metrics is not None:
            loaded = sum(e.state == _LOADED for e in self._accounts.values())
            self.metrics.accounts(len(self._accounts), loaded, self._held, self.budget, self._surplus)

    # -- reloads -----------------------------------------------------------------------------

    def changed(self) -> bool:
        """Whether the folders differ from what is known or loaded (cheap enough to poll)."""
        if set(account_folders(self.root, DEFAULT_ACCOUNT)) != set(self._accounts):
            return True
        return any(
            e.repository is not None and e.repository.fingerprint() != e.repository.stamps for e in list(self._accounts.values())
        )

    def reload(self, account: str | None = None) -> dict[str, ReloadReport]:
        """Rescan the accounts and reload the loaded ones (or just ``account``); failed ones are
        retried on their next call. Reports by account."""
        if account is None:
            self._scan()
            names = list(self._accounts)
        else:
            if account not in self._accounts:
                raise AccountNotFound(account)
            names = [account]
        reports = {}
        for name in names:
            entry = self._accounts.get(name)
            if entry is None:
                continue
            if entry.state == _FAILED:
                with self._lock:
                    entry.state, entry.retry_at = _UNLOADED, 0.0
            repository = entry.repository
            if repository is None:
                continue
            with self._gate.hold(scan=True):
                before = heap_bytes()
                reports[name] = repository.reload()
                # new files' models, less the replaced ones no call holds any more
                delta = heap_bytes() - before if reports[name].changed else 0
            with self._lock:
                if entry.repository is repository:
                    nbytes = max(entry.nbytes + delta, 0)
                    self._held += nbytes - entry.nbytes
                    entry.nbytes = entry.last_nbytes = nbytes
                self._make_room()
        return reports

    def visible(self, account: str, allowed: frozenset[str] | None) -> None:
        """AccountNotFound unless ``account`` exists and ``allowed`` (a token's accounts; None:
        all) covers it: one answer for both, so a token learns nothing of others' accounts."""
        if (allowed is not None and account not in allowed) or account not in self._accounts:
            raise AccountNotFound(account)



def _file_bytes(folder: Path, scores: Collection[str] | None = None) -> int:
    """Bytes of the model files in an account's folder, of ``scores`` only when given (one stat each)."""
    return sum(st.st_size for st in model_files(folder, scores).values())
