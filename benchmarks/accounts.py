"""Accounts: thousands of brands' models served by one ``scorecast serve`` process, over gRPC.

    python benchmarks/accounts.py [--accounts 10000] [--duration 60] [--budget-mb 500]
        [--model-sets 2] [--zipf 1.1] [--callers 2] [--repeats 1] [--quick] [--workdir DIR]

1. Model sets: ``--model-sets`` small brands simulated (``training/simulate/accounts.py``) and
   trained on five scores (rfm, churn, clv, affinity, engagement), cached in the workdir. The
   CPU time of one account's load (``time.process_time`` around ``ModelRepository.load`` in this
   process, median of 5 per set) is reported: wall time means little on a shared machine.
2. A repository of ``--accounts`` accounts x 5 scores, each account's files hard links to one
   of the sets (``MODELS/<account>/<score>/1.onnx``): disk stays small, but every account is
   loaded as its own sessions, measured and evicted on its own.
3. Cases, each a fresh ``scorecast serve`` (port 0, metrics on a port it picks): ``one``, today's
   one-account server (a set's folder without account folders); ``lfu``, the accounts
   repository under ``model_memory_budget`` = ``--budget-mb``; ``lru``, the same with
   ``eviction=lru``. In each, for ``--duration`` seconds: ``--callers`` threads send real-time
   one-contact ``ScoreBatch`` calls (5 scores), accounts drawn by a Zipf law (rank r has weight
   1/r^``--zipf``, ranks on random accounts), while one thread makes the bulk pass: a ``Score``
   stream of one 200-contact chunk per account, every account in turn (in ``one``: the default
   account each time, the same traffic). Before each real-time call an OIP ``ModelReady`` (it
   never loads) tells whether the account's models are loaded: the call counts as *loaded* or
   *must load* (racy at the edges: the bulk pass may load or evict in between). Hot accounts
   are the 1% most called; their hit rate counts calls after each one's first.
4. Memory: the server's base is its RSS once ready (warmed up, no account loaded; in ``one``
   less its one account's measured bytes); the peak is the largest of VmRSS sampled every 50 ms
   and VmHWM (the server restarts it as each load begins, so it holds each load's peak).
   Reported: peak RSS over the base against the budget; in ``one`` it is what requests keep.
5. ``--repeats`` runs the three cases R times in turn; the table shows medians, and the server
   CPU ms per real-time call of ``one`` (from /proc: wall-independent).

``--quick``: 300 accounts, 15 s per case, budget 40 MB: a smoke run (a minute or two).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import statistics
import sys
import threading
import time
import urllib.request
from pathlib import Path

import grpc
import numpy as np
import pyarrow as pa

from scorecast.client import ScorecastClient
from scorecast.kernels.time_units import US_PER_DAY
from scorecast.process import ServerProcess
from scorecast.proto import oip, oip_rpc

SCORES = ("rfm", "churn", "clv", "affinity", "engagement")
AS_OF_US = 1_767_225_600_000_000  # 2026-01-01
AS_OF = pa.scalar(AS_OF_US, pa.timestamp("us", tz="UTC")).as_py()
CLK_TCK = os.sysconf("SC_CLK_TCK")


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


def load_cpu_ms(sets: list[Path]) -> float:
    """Median CPU time (all threads of this process) of loading one account's five models."""
    from scorecast.server.repository import ModelRepository

    times = []
    for models in sets:
        for _ in range(5):
            start = time.process_time()
            ModelRepository.load(models)
            times.append((time.process_time() - start) * 1e3)
    return statistics.median(times)


def _status(pid: int) -> dict[str, int]:
    fields = dict(line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines())
    return {k: int(fields[k].split()[0]) * 1024 for k in ("VmRSS", "VmHWM")}


def _cpu_s(pid: int) -> float:
    stat = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(stat[11]) + int(stat[12])) / CLK_TCK  # utime + stime


def _metrics(port: int) -> dict[str, float]:
    page = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=30).read().decode()
    out = {}
    for line in page.splitlines():
        if line.startswith("scorecast_") and "{" not in line:
            name, value = line.rsplit(" ", 1)
            out[name] = float(value)
    return out


def run_case(case: str, models: Path, names: list[str], args: argparse.Namespace) -> dict:
    """One case in a fresh server: real-time callers beside the bulk pass for ``args.duration``."""
    env = {"SCORECAST_MODEL_MEMORY_BUDGET": str(int(args.budget_mb * 1e6)), "SCORECAST_EVICTION": "lru" if case == "lru" else "lfu",
           "SCORECAST_RELOAD_INTERVAL_S": "0", "SCORECAST_METRICS_PORT": "0"}  # fmt: skip
    with ServerProcess(models, args.workdir / f"srv-{case}", env=env, ready_timeout_s=600) as server:
        (metrics_port,) = set(server.listening_ports()) - {server.port}
        weights = 1.0 / np.arange(1, len(names) + 1) ** args.zipf
        order = random.Random(7).sample(names, len(names))  # ranks fall on random accounts
        hot = set(order[: max(1, len(names) // 100)])  # the 1% most called
        top = set(order[: max(1, len(names) // 1000)])  # the 0.1%
        cumulative = np.cumsum(weights / weights.sum())
        base = _status(server.pid)["VmRSS"]  # the ready server's own: warmed up, no account loaded (in ``one``: its one)
        if case == "one":
            base -= _metrics(metrics_port)["scorecast_model_bytes_held"]
        stop, lock = threading.Event(), threading.Lock()
        hit_ms: list[float] = []
        load_ms: list[float] = []
        hot_calls = [0, 0, 0, 0]  # [hits, calls] of the 1%, then of the 0.1%, after each one's first call
        seen: set[str] = set()
        bulk_done, peak = [0], [0]

        def caller(seed: int) -> None:
            rng = np.random.default_rng(seed)
            tables = {"orders": orders(1, rng)}
            with ScorecastClient(server.target, timeout=120) as client, grpc.insecure_channel(server.target) as channel:
                ready = oip_rpc.GRPCInferenceServiceStub(channel).ModelReady
                while not stop.is_set():
                    account = order[int(np.searchsorted(cumulative, rng.random()))]
                    loaded = ready(oip.ModelReadyRequest(name=f"{account}/rfm" if account else "rfm"), timeout=60).ready
                    start = time.perf_counter()
                    client.score_batch(tables, SCORES, as_of=AS_OF, account=account)
                    ms = (time.perf_counter() - start) * 1e3
                    with lock:
                        (hit_ms if loaded else load_ms).append(ms)
                        if account in hot:
                            if account in seen:
                                hot_calls[0] += loaded
                                hot_calls[1] += 1
                                if account in top:
                                    hot_calls[2] += loaded
                                    hot_calls[3] += 1
                            seen.add(account)

        def bulk_pass() -> None:
            chunk = {"orders": orders(200, np.random.default_rng(1))}
            with ScorecastClient(server.target, timeout=600) as client:
                for account in names * (1 if case != "one" else 10**6):
                    if stop.is_set():
                        return
                    for _ in client.score([chunk], SCORES, as_of=AS_OF, account=account):
                        pass
                    bulk_done[0] += 1

        def sampler() -> None:
            while not stop.wait(0.05):
                status = _status(server.pid)
                peak[0] = max(peak[0], status["VmRSS"], status["VmHWM"])

        threads = [threading.Thread(target=caller, args=(s,)) for s in range(args.callers)]
        threads += [threading.Thread(target=bulk_pass), threading.Thread(target=sampler)]
        before = _metrics(metrics_port)
        cpu0, start = _cpu_s(server.pid), time.perf_counter()
        for t in threads:
            t.start()
        stop.wait(args.duration)
        stop.set()
        for t in threads:
            t.join()
        seconds, cpu = time.perf_counter() - start, _cpu_s(server.pid) - cpu0
        after = _metrics(metrics_port)
        peak[0] = max(peak[0], *_status(server.pid).values())

    def pct(values: list[float], q: float) -> float:
        return float(np.percentile(values, q)) if values else float("nan")

    loads = after.get("scorecast_account_loads_total", 0) - before.get("scorecast_account_loads_total", 0)
    load_s = after.get("scorecast_account_load_seconds_sum", 0) - before.get("scorecast_account_load_seconds_sum", 0)
    return {
        "hit_p50": pct(hit_ms, 50), "hit_p99": pct(hit_ms, 99), "hits": len(hit_ms),
        "load_p50": pct(load_ms, 50), "load_p99": pct(load_ms, 99), "misses": len(load_ms),
        "hot_hit_rate": hot_calls[0] / hot_calls[1] if hot_calls[1] else float("nan"),
        "top_hit_rate": hot_calls[2] / hot_calls[3] if hot_calls[3] else float("nan"), "hot_calls": hot_calls[1], "top_calls": hot_calls[3],
        "loads_per_s": loads / seconds, "load_wall_ms": load_s / loads * 1e3 if loads else float("nan"),
        "bulk_done": bulk_done[0], "rss_over_base_mb": (peak[0] - base) / 1e6, "base_mb": base / 1e6,
        "held_mb": after.get("scorecast_model_bytes_held", 0) / 1e6, "surplus_mb": after.get("scorecast_model_memory_surplus_bytes", 0) / 1e6,
        "evictions": after.get("scorecast_account_evictions_total", 0) - before.get("scorecast_account_evictions_total", 0),
        "cpu_ms_per_call": cpu / max(len(hit_ms) + len(load_ms), 1) * 1e3, "load_avg": os.getloadavg()[0],
    }  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--accounts", type=int, default=10_000)
    parser.add_argument("--duration", type=float, default=60.0, help="seconds per case")
    parser.add_argument("--budget-mb", type=float, default=500.0, help="model_memory_budget in MB")
    parser.add_argument("--model-sets", type=int, default=2)
    parser.add_argument("--zipf", type=float, default=1.1)
    parser.add_argument("--callers", type=int, default=2, help="real-time calling threads")
    parser.add_argument("--repeats", type=int, default=1, help="rounds of the three cases; medians shown")
    parser.add_argument("--quick", action="store_true", help="300 accounts, 15 s per case, budget 40 MB")
    parser.add_argument("--cases", default="one,lfu,lru", help="comma-separated cases to run (default all three)")
    parser.add_argument("--json", type=Path, default=None, help="also write every round's figures there")
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/scorecast-bench-accounts"))
    args = parser.parse_args()
    if args.quick:
        args.accounts, args.duration, args.budget_mb = 300, 15.0, 40.0
    args.workdir.mkdir(parents=True, exist_ok=True)
    sets = model_sets(args.workdir, args.model_sets)
    root = repository(args.workdir, sets, args.accounts)
    names = sorted(p.name for p in root.iterdir() if p.is_dir())
    cpu_load = load_cpu_ms(sets)
    print(f"{len(names)} accounts x {len(SCORES)} scores, budget {args.budget_mb:.0f} MB, {os.cpu_count()} cores, "
          f"load average {os.getloadavg()[0]:.1f}; one account's load: {cpu_load:.0f} ms of CPU (median)", flush=True)  # fmt: skip
    rounds: dict[str, list[dict]] = {case: [] for case in args.cases.split(",")}
    for r in range(args.repeats):
        for case in rounds:
            result = run_case(case, sets[0] if case == "one" else root, [""] if case == "one" else names, args)
            rounds[case].append(result)
            print(f"round {r + 1} {case}: {json.dumps({k: round(v, 3) for k, v in result.items()})}", flush=True)
    med = {case: {k: statistics.median(r[k] for r in results) for k in results[0]} for case, results in rounds.items()}
    print("\n| case | loaded p50 / p99 ms | must load p50 / p99 ms | hot hit rate, 1% / 0.1% (calls) | loads/s | bulk pass | peak RSS over base |")
    print("|---|---|---|---|---|---|---|")
    if "one" in med:
        r = med["one"]
        print(f"| one account (today) | {r['hit_p50']:.2f} / {r['hit_p99']:.1f} ({r['hits']:.0f}) | - | - | - | {r['bulk_done']:.0f} streams | "
              f"{r['rss_over_base_mb']:.0f} MB (requests only) |")  # fmt: skip
    for case, name in (("lfu", "LFU (ours)"), ("lru", "plain LRU")):
        if case in med:
            r = med[case]
            print(f"| {name} | {r['hit_p50']:.2f} / {r['hit_p99']:.1f} ({r['hits']:.0f}) | {r['load_p50']:.0f} / {r['load_p99']:.0f} ({r['misses']:.0f}) | "
                  f"{r['hot_hit_rate']:.3f} / {r['top_hit_rate']:.3f} ({r['hot_calls']:.0f} / {r['top_calls']:.0f}) | {r['loads_per_s']:.1f} (mean {r['load_wall_ms']:.0f} ms) | "
                  f"{r['bulk_done']:.0f}/{len(names)} | {r['rss_over_base_mb']:.0f} MB vs budget {args.budget_mb:.0f} MB |")  # fmt: skip
    if "one" in med and "lfu" in med:
        one, ours = med["one"], med["lfu"]
        print(f"\nloaded / one: p50 {ours['hit_p50'] / one['hit_p50']:.2f}x, p99 {ours['hit_p99'] / one['hit_p99']:.2f}x (goal <= 1.1); "
              f"server CPU per real-time call: one {one['cpu_ms_per_call']:.2f} ms, lfu {ours['cpu_ms_per_call']:.2f} ms (its loads and "
              f"bulk pass included); one account's load: {cpu_load:.0f} ms of CPU")  # fmt: skip
    if args.json is not None:
        args.json.write_text(json.dumps({"args": {k: str(v) for k, v in vars(args).items()}, "load_cpu_ms": cpu_load, "rounds": rounds}, indent=1))


if __name__ == "__main__":
    sys.exit(main())
