"""Fleet jobs: one job run over every account of a fleet, locally or on a Ray cluster.

A fleet is where a platform keeps its accounts' bases: a folder of bases ``DIR/<account>/``, or
a PostgreSQL database with a schema per account (``postgresql://…/db``: every schema holding
a base table). ``run_fleet`` calls a job (``job(account) -> AccountResult``, a picklable
callable: ``training.fleet.TrainAccount``, ``server.fleet.RescoreAccount``) for each account,
on a local process pool or as Ray tasks spread over a cluster's nodes, and:

- an account that fails does not stop the others: its result says ``failed`` and why;
- each result is recorded in a state file as it arrives (written atomically), so that a run
  stopped half-way resumes (``resume=True``) without redoing any account that finished;
- a progress bar counts the accounts; ``summary`` is the table printed at the end.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import socket
import sys
import time
import traceback
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from . import postgres
from .atomic import write_text
from .base import table_names
from .model_store import check_name
from .sources import Source

__all__ = [
    "AccountResult",
    "FleetFailed",
    "FleetState",
    "account_base",
    "account_output",
    "fleet_accounts",
    "run_fleet",
    "summary",
]

FAILED = "failed"
Job = Callable[[str], "AccountResult"]


class FleetFailed(RuntimeError):
    """Some accounts failed (the others finished); the message lists each with its reason."""


@dataclass(frozen=True)
class AccountResult:
    """What a job did for one account."""

    account: str
    outcome: str  # promoted, candidate, first version, rescored, failed...
    rows: int = 0
    seconds: float = 0.0
    metric: str = ""  # the holdout metric against the serving version, or what stood for it
    reason: str = ""  # why it failed, or why a version was kept back
    node: str = ""  # where it ran: the Ray node id, or host:pid
    details: dict[str, Any] = field(default_factory=dict)

    @property
    def failed(self) -> bool:
        return self.outcome == FAILED


def fleet_accounts(data: Source) -> list[str]:
    """The accounts of a fleet, sorted: the base folders under a folder, or the schemas of a database."""
    if postgres.is_postgres_url(data):
        return postgres.list_schemas(postgres.parse_url(str(data)))
    root = Path(data)
    if not root.is_dir():
        raise FileNotFoundError(f"fleet {root} is not a folder (a folder of bases <account>/, or a postgresql:// database)")
    accounts = []
    for path in sorted(root.iterdir()):
        if path.is_dir() and not path.name.startswith(".") and table_names(path):
            accounts.append(check_name("account", path.name))
    if not accounts:
        raise ValueError(f"fleet {root} holds no base folder (<account>/orders.parquet, ...)")
    return accounts


def account_base(data: Source, account: str) -> Source:
    """One account's base in a fleet: its folder, or its schema."""
    if postgres.is_postgres_url(data):
        return _with_query(str(data), schema=account)
    return Path(data) / check_name("account", account)


def account_output(out: Source, account: str) -> Source:
    """Where one account's scores go: ``OUT/<account>.parquet``, or the table of its schema."""
    if postgres.is_postgres_url(out):
        return _with_query(str(out), schema=account)
    return Path(out) / f"{check_name('account', account)}.parquet"


def _with_query(url: str, **values: str) -> str:
    from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

    parts = urlsplit(url)
    query = dict(parse_qsl(parts.query, keep_blank_values=True)) | values
    return urlunsplit(parts._replace(query=urlencode(query)))


class FleetState:
    """The results of a fleet run so far, in a JSON file rewritten atomically after each account."""

    def __init__(self, path: Path, job: str, fleet: str, results: dict[str, AccountResult] | None = None) -> None:
        self.path, self.job, self.fleet = path, job, fleet
        self.results: dict[str, AccountResult] = results or {}

    @classmethod
    def open(cls, path: Path, job: str, fleet: str, resume: bool) -> FleetState:
        """A fresh state, or with ``resume`` the one in ``path`` (ValueError if it is another job's)."""
        if not resume or not path.exists():
            return cls(path, job, fleet)
        raw = json.loads(path.read_text())
        if raw.get("job") != job or raw.get("fleet") != fleet:
            raise ValueError(f"state {path} is of `{raw.get('job')}` over {raw.get('fleet')}, not `{job}` over {fleet}: give another --state")
        return cls(path, job, fleet, {a: AccountResult(**r) for a, r in raw.get("accounts", {}).items()})

    def done(self) -> set[str]:
        """Accounts that finished (a failed one is tried again)."""
        return {a for a, r in self.results.items() if not r.failed}

    def record(self, result: AccountResult) -> None:
        self.results[result.account] = result
        body = {
            "job": self.job,
            "fleet": self.fleet,
            "updated": datetime.now(UTC).isoformat(timespec="seconds"),
            "accounts": {a: asdict(r) for a, r in sorted(self.results.items())},
        }
        self.path.parent.mkdir(parents=True, exist_ok=True)
        write_text(self.path, json.dumps(body, indent=1) + "\n")


def guarded(job: Job, account: str) -> AccountResult:
    """``job(account)``, its time and node; an exception becomes a failed result naming it."""
    start = time.perf_counter()
    node = _node()
    try:
        result = job(account)
    except BaseException as exc:  # noqa: BLE001 (one account's failure, whatever it is, is its result)
        if isinstance(exc, KeyboardInterrupt):
            raise
        reason = f"{type(exc).__name__}: {exc}".replace("\n", " ")[:500]
        if not isinstance(exc, (ValueError, OSError, RuntimeError)):
            reason += " | " + traceback.format_exc(limit=-1).strip().splitlines()[-1][:200]
        return AccountResult(account, FAILED, seconds=round(time.perf_counter() - start, 2), reason=reason, node=node)
    return AccountResult(**{**asdict(result), "seconds": round(time.perf_counter() - start, 2), "node": node})


def _node() -> str:
    if "ray" in sys.modules:
        import ray

        if ray.is_initialized():
            return ray.get_runtime_context().get_node_id()
    return f"{socket.gethostname()}:{os.getpid()}"


def _pool_setup(threads: int) -> None:
    """In each pool process, before any numeric library loads: its share of the cores."""
    for name in ("OMP_NUM_THREADS", "NUMBA_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[name] = str(threads)


def run_fleet(
    job: Job,
    accounts: Sequence[str],
    state: FleetState,
    engine: str = "local",
    workers: int | None = None,
    address: str | None = None,
    progress: bool = False,
) -> list[AccountResult]:
    """Run ``job`` for every account not already done in ``state``; the results, in account order.

    ``engine``: "local" (a process pool of ``workers``, default one per core) or "ray" (one
    task per account, spread over the nodes of the cluster at ``address``, else RAY_ADDRESS,
    else a local one)."""
    if engine not in ("local", "ray"):
        raise ValueError(f"engine must be local or ray, got {engine!r}")
    todo = [a for a in accounts if a not in state.done()]
    bar = _progress(len(accounts), len(accounts) - len(todo), progress)
    try:
        for result in (_run_ray if engine == "ray" else _run_local)(job, todo, workers, address):
            state.record(result)
            bar.update(1)
            bar.set_postfix_str(f"{result.account}: {result.outcome}")
    finally:
        bar.close()
    return [state.results[a] for a in accounts if a in state.results]


def _progress(total: int, done: int, enabled: bool) -> Any:
    from tqdm import tqdm

    return tqdm(total=total, initial=done, unit="account", desc="fleet", disable=not enabled, file=sys.stderr)


def _run_local(job: Job, accounts: Sequence[str], workers: int | None, address: str | None) -> Iterable[AccountResult]:
    if address:
        raise ValueError("--address names a Ray cluster: use it with --engine ray")
    if not accounts:
        return
    cores = os.cpu_count() or 1
    workers = max(1, min(workers or cores, len(accounts)))
    # spawn, not fork: the parent may hold threads (tqdm, Arrow, OpenMP), which fork would copy half-alive
    context = multiprocessing.get_context("spawn")
    pool = ProcessPoolExecutor(workers, mp_context=context, initializer=_pool_setup, initargs=(max(1, cores // workers),))
    try:
        pending: dict[Future, str] = {}
        queue = list(accounts)
        while queue or pending:
            while queue and len(pending) < 2 * workers:  # a bounded queue: a stop leaves little in flight
                account = queue.pop(0)
                pending[pool.submit(guarded, job, account)] = account
            finished, _ = wait(pending, return_when=FIRST_COMPLETED)
            for future in finished:
                account = pending.pop(future)
                try:
                    yield future.result()
                except Exception as exc:  # the worker process died (killed, out of memory)
                    yield AccountResult(account, FAILED, reason=f"worker process lost: {type(exc).__name__}: {exc}")
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


def _run_ray(job: Job, accounts: Sequence[str], workers: int | None, address: str | None) -> Iterable[AccountResult]:
    try:
        import ray
    except ImportError:
        raise RuntimeError("the ray engine needs Ray: pip install 'scorecast[ray]'") from None
    if not accounts:
        return
    started = not ray.is_initialized()
    if started:
        ray.init(address=address, log_to_driver=False, include_dashboard=False) if address else ray.init(log_to_driver=False, include_dashboard=False)
    try:
        # SPREAD: accounts go to every node, not first to fill the head; one CPU each
        remote = ray.remote(guarded).options(num_cpus=1, scheduling_strategy="SPREAD", max_retries=0)
        cpus = int(ray.cluster_resources().get("CPU", 1))
        limit = max(1, 2 * (workers or cpus))
        pending: dict[Any, str] = {}
        queue = list(accounts)
        while queue or pending:
            while queue and len(pending) < limit:
                account = queue.pop(0)
                pending[remote.remote(job, account)] = account
            ready, _ = ray.wait(list(pending), num_returns=1)
            for ref in ready:
                account = pending.pop(ref)
                try:
                    yield ray.get(ref)
                except Exception as exc:  # the task's worker died
                    yield AccountResult(account, FAILED, reason=f"ray task lost: {type(exc).__name__}: {str(exc)[:300]}")
    finally:
        if started:
            ray.shutdown()


def summary(results: Sequence[AccountResult]) -> str:
    """The per-account table printed at the end of a fleet run, failures listed last."""
    rows = [("account", "rows", "seconds", "holdout metric vs serving", "outcome")]
    for r in results:
        rows.append((r.account, f"{r.rows:,}", f"{r.seconds:.1f}", r.metric or "-", r.outcome))
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(cell.ljust(w) if i in (0, 3, 4) else cell.rjust(w) for i, (cell, w) in enumerate(zip(row, widths, strict=True))) for row in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    kept = [r for r in results if not r.failed and r.reason]
    failed = [r for r in results if r.failed]
    outcomes: dict[str, int] = {}
    for r in results:
        outcomes[r.outcome] = outcomes.get(r.outcome, 0) + 1
    lines.append("")
    lines.append(f"{len(results)} accounts: " + ", ".join(f"{n} {o}" for o, n in sorted(outcomes.items())))
    for r in kept:
        lines.append(f"kept back  {r.account}: {r.reason}")
    for r in failed:
        lines.append(f"FAILED     {r.account}: {r.reason}")
    return "\n".join(lines)
