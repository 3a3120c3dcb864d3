"""Accounts: thousands of brands' models in one process, loaded on demand within a budget.

    python benchmarks/accounts.py [--accounts 10000] [--duration 120] [--budget-mb 1024]
        [--model-sets 2] [--zipf 1.1] [--callers 2] [--workdir DIR]

1. Model sets: ``--model-sets`` small brands simulated (``training/simulate/accounts.py``) and
   trained on five scores (rfm, churn, clv, affinity, engagement), cached in the workdir.
2. A repository of ``--accounts`` accounts x 5 scores, each account's files hard links to one
   of the sets (``MODELS/<account>/<score>/1.onnx``): every account is loaded as its own
   sessions, measured and evicted on its own (nothing is shared but the bytes on disk).
3. For each eviction policy (``segmented``, then plain ``lru``), each in a fresh process:
   ``--callers`` threads send real-time one-contact calls, accounts drawn by a Zipf law (rank r
   has weight 1/r^``--zipf``), while one thread makes the bulk pass: every account in turn
   (scan class, as a nightly Score stream) scores one 200-contact chunk. Each call takes the
   servicer's path without gRPC: ``AccountRegistry.hold`` then the request's cached
   ``ScoringPipeline``. Reported: p50/p99 of real-time calls on loaded models and of those that
   had to load, the hit rate of the hot accounts (the 1% most called) after their first load,
   loads/s, the bulk pass's progress, and the RSS above the process's base (before any account
   loaded) against the budget.
4. Today's one-account server: the same callers on a repository without account folders (its
   one account pinned) measured in the same run: ``loaded / one`` is the ratio of p50s and
   p99s (goal <= 1.1).

The whole run takes about 3 x ``--duration`` plus the training (a minute per set on a quiet
machine, cached). On a shared machine absolute latencies are noisy: ratios measured in the same
run much less so; the load average is printed. gRPC is left out until the ``account`` header
field is on the wire (it costs both sides of every ratio the same).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import random
import shutil
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pyarrow as pa

from scorecast.accounts import DEFAULT_ACCOUNT
from scorecast.kernels.time_units import US_PER_DAY
from scorecast.server.accounts import AccountRegistry
from scorecast.server.heap import rss_bytes
from scorecast.options import ScoreSpec
from scorecast.server.pipeline import ScoringPipeline
from scorecast.server.runtime import share_thread_pools

SCORES = ("rfm", "churn", "clv", "affinity", "engagement")
AS_OF_US = 1_767_225_600_000_000  # 2026-01-01


def model_sets(workdir: Path, n: int) -> list[Path]:
    """``n`` trained model folders (``<score>/1.onnx``), cached in ``workdir``."""
    from scorecast.training.simulate.accounts import simulate_accounts
    from scorecast.training.simulate.retail import SimulationConfig
    from scorecast.training.train import train

    sets = []
    for i in range(n):
        models = workdir / f"set{i}" / "models"
        if not all((models / s / "1.onnx").is_file() for s in SCORES):
            bases = workdir / f"set{i}" / "bases"
            shutil.rmtree(bases, ignore_errors=True)
            simulate_accounts(1, 3_000 + 1_000 * i, bases, SimulationConfig(seed=i))
            train(next(bases.iterdir()), models, scores=list(SCORES))
        sets.append(models)
    return sets


def repository(workdir: Path, sets: list[Path], accounts: int) -> Path:
    """``accounts`` account folders of hard links to the sets (made once per size)."""
    root = workdir / f"repo{accounts}"
    if (root / f"a{accounts - 1:05d}").is_dir():
        return root
    for i in range(accounts):
        source = sets[i % len(sets)]
        for score in SCORES:
            folder = root / f"a{i:05d}" / score
            folder.mkdir(parents=True, exist_ok=True)
            if not (folder / "1.onnx").exists():
                os.link(source / score / "1.onnx", folder / "1.onnx")
    return root


def orders(contacts: int, rng: np.random.Generator) -> pa.Table:
    """Three orders per contact over the last year."""
    ids = np.repeat(np.arange(contacts, dtype=np.int64), 3)
    days = rng.uniform(1, 365, ids.size)
    return pa.table(
        {
            "contact_id": ids,
            "ts": pa.array(AS_OF_US - (days * US_PER_DAY).astype(np.int64), pa.timestamp("us", tz="UTC")),
            "amount": rng.uniform(5, 200, ids.size),
            "sku": pa.array([f"s{k % 40}" for k in range(ids.size)]),
            "product_group": pa.array([f"g{k % 4}" for k in range(ids.size)]),
            "promo": pa.array(rng.random(ids.size) < 0.2),
        }
    )


def call(registry: AccountRegistry, account: str, tables: dict[str, pa.Table], scan: bool) -> None:
    """The servicer's path: hold the account, take its cached pipeline, score."""
    spec = ScoreSpec(scores=SCORES, as_of_us=AS_OF_US)
    with registry.hold(account, scan) as repo:
        pipeline = repo.derived.get("bench")
        if pipeline is None:
            pipeline = repo.derived["bench"] = ScoringPipeline(repo, spec)
        pipeline.for_spec(spec).score(tables)


def run(registry: AccountRegistry, names: list[str], args: argparse.Namespace, bulk: bool) -> dict:
    """Real-time callers (and the bulk pass) for ``args.duration`` seconds; the figures."""
    weights = 1.0 / np.arange(1, len(names) + 1) ** args.zipf
    order = random.Random(7).sample(names, len(names))  # ranks fall on random accounts
    hot = set(order[: max(1, len(names) // 100)])
    cumulative = np.cumsum(weights / weights.sum())
    stop = threading.Event()
    lock = threading.Lock()
    hit_ms: list[float] = []
    load_ms: list[float] = []
    hot_calls = [0, 0]  # hot calls after the account's first load: [hits, all]
    seen: set[str] = set()
    bulk_done = [0]
    rss_peak = [rss_bytes()]

    def caller(seed: int) -> None:
        rng = np.random.default_rng(seed)
        one = {"orders": orders(1, rng)}
        while not stop.is_set():
            account = order[int(np.searchsorted(cumulative, rng.random()))]
            loaded = registry.repository(account) is not None
            start = time.perf_counter()
            call(registry, account, one, scan=False)
            ms = (time.perf_counter() - start) * 1e3
            with lock:
                (hit_ms if loaded else load_ms).append(ms)
                if account in hot:
                    if account in seen:
                        hot_calls[0] += loaded
                        hot_calls[1] += 1
                    seen.add(account)

    def bulk_pass() -> None:
        chunk = {"orders": orders(200, np.random.default_rng(1))}
        for account in names:
            if stop.is_set():
                return
            call(registry, account, chunk, scan=True)
            bulk_done[0] += 1

    def sampler() -> None:
        while not stop.wait(0.25):
            rss_peak[0] = max(rss_peak[0], rss_bytes())

    threads = [threading.Thread(target=caller, args=(s,)) for s in range(args.callers)] + [threading.Thread(target=sampler)]
    if bulk:
        threads.append(threading.Thread(target=bulk_pass))
    loads0, start = registry.loads, time.perf_counter()
    for t in threads:
        t.start()
    stop.wait(args.duration)
    stop.set()
    for t in threads:
        t.join()
    seconds = time.perf_counter() - start

    def pct(values: list[float], q: float) -> float:
        return float(np.percentile(values, q)) if values else float("nan")

    return {
        "hit_p50": pct(hit_ms, 50), "hit_p99": pct(hit_ms, 99), "hits": len(hit_ms),
        "load_p50": pct(load_ms, 50), "load_p99": pct(load_ms, 99), "misses": len(load_ms),
        "hot_hit_rate": hot_calls[0] / hot_calls[1] if hot_calls[1] else float("nan"),
        "loads_per_s": (registry.loads - loads0) / seconds, "bulk_done": bulk_done[0],
        "rss_peak": rss_peak[0], "evictions": registry.evictions,
    }  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--accounts", type=int, default=10_000)
    parser.add_argument("--duration", type=float, default=120.0, help="seconds per policy (and for the one-account baseline)")
    parser.add_argument("--budget-mb", type=float, default=1024.0, help="model_memory_budget in MB")
    parser.add_argument("--model-sets", type=int, default=2)
    parser.add_argument("--zipf", type=float, default=1.1)
    parser.add_argument("--callers", type=int, default=2, help="real-time calling threads")
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/scorecast-bench-accounts"))
    parser.add_argument("--only", choices=("one", "segmented", "lru"), help=argparse.SUPPRESS)  # one case, in its own process
    args = parser.parse_args()
    args.workdir.mkdir(parents=True, exist_ok=True)
    if args.only:
        print(json.dumps(case(args)))
        return
    model_sets(args.workdir, args.model_sets)  # trained here, before any serving process
    print(f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores; {args.accounts} accounts x {len(SCORES)} scores")
    results = {}
    for name in ("one", "segmented", "lru"):  # each in a fresh process: its RSS is its own
        out = subprocess.run([sys.executable, __file__, *sys.argv[1:], "--only", name], capture_output=True, text=True, check=True)
        results[name] = json.loads(out.stdout.strip().splitlines()[-1])
    base, seg = results.pop("one"), results["segmented"]
    budget = args.budget_mb * 1e6
    print(f"\none account (today):        p50 {base['hit_p50']:.2f} ms  p99 {base['hit_p99']:.2f} ms  ({base['hits']} calls)")
    for policy, r in results.items():
        print(
            f"{policy:9s}: loaded p50 {r['hit_p50']:.2f} p99 {r['hit_p99']:.2f} ms ({r['hits']} calls) | must load p50 {r['load_p50']:.1f} "
            f"p99 {r['load_p99']:.1f} ms ({r['misses']}) | hot hit rate {r['hot_hit_rate']:.3f} | {r['loads_per_s']:.1f} loads/s | "
            f"bulk pass {r['bulk_done']}/{args.accounts} | RSS over base {r['rss_over_base'] / 1e6:.0f} MB vs budget {budget / 1e6:.0f} MB "
            f"(held {r['held_mb']:.0f} MB measured) | {r['evictions']} evictions"
        )
    print(f"loaded / one: p50 {seg['hit_p50'] / base['hit_p50']:.2f}x  p99 {seg['hit_p99'] / base['hit_p99']:.2f}x (goal <= 1.1)")


def case(args: argparse.Namespace) -> dict:
    """One case in this process: today's one-account server, or accounts under one policy."""
    sets = model_sets(args.workdir, args.model_sets)
    share_thread_pools(0, 0)  # as `scorecast serve` does
    warm = {"orders": orders(1, np.random.default_rng(0))}
    if args.only == "one":
        one = AccountRegistry(sets[0], budget=1 << 40)  # a repository without account folders, always loaded
        call(one, DEFAULT_ACCOUNT, warm, scan=False)  # compiles the kernels
        return run(one, [DEFAULT_ACCOUNT], args, bulk=False)
    root = repository(args.workdir, sets, args.accounts)
    registry = AccountRegistry(root, budget=int(args.budget_mb * 1e6), eviction=args.only, max_calls=None)
    call(registry, registry.known()[0], warm, scan=True)  # compiles the kernels, maps ONNX Runtime's code
    rss0 = rss_bytes() - registry.held_bytes  # the process's base: everything but the models
    result = run(registry, registry.known(), args, bulk=True)
    result["rss_over_base"] = result["rss_peak"] - rss0
    result["held_mb"] = registry.held_bytes / 1e6
    return result


if __name__ == "__main__":
    sys.exit(main())
