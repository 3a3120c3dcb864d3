"""Fleet jobs and PostgreSQL I/O: accounts per minute on a local pool against a two-node Ray
cluster, and a base from Postgres to Postgres against Parquet to Parquet (time, peak RSS).

    python benchmarks/fleet.py                       # small: 8 accounts, a 100k-contact base
    python benchmarks/fleet.py --accounts 1000 --base-contacts 1000000 --rss-orders 1000000,10000000

Part 1 retrains (rfm, affinity) and rescores ``--accounts`` simulated accounts of
``--account-contacts`` contacts, on the process pool (``--workers``) and on a two-node Ray
cluster on loopback (one CPU per node), started and stopped here (tests/support/services.py).
Part 2 rescores one base of ``--base-contacts`` contacts Parquet -> Parquet and the same base
Postgres -> Postgres (a PostgreSQL server started here), each in a fresh ``scorecast rescore``
process, and reports wall time and peak RSS; then peak RSS of the Postgres path on bases whose
orders number each of ``--rss-orders``. Figures are medians of ``--repeat`` runs; the machine
may be shared, so read ratios measured in the same run.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from scorecast.cli import main as cli  # noqa: E402
from tests.support.services import load_base, start_postgres, start_ray_cluster  # noqa: E402

AS_OF = "2026-01-01"
SCORES = "rfm,affinity"


def measured(argv: list[str], env: dict[str, str] | None = None) -> tuple[float, float]:
    """Wall seconds and peak RSS (MiB) of one ``scorecast`` process."""
    start = time.perf_counter()
    process = subprocess.Popen([sys.executable, "-m", "scorecast.cli", *argv], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env)
    _, status, usage = os.wait4(process.pid, 0)
    seconds = time.perf_counter() - start
    if os.waitstatus_to_exitcode(status) != 0:
        raise RuntimeError(f"{argv[:2]} failed: {process.stderr.read().decode()[-2000:]}")  # type: ignore[union-attr]
    process.stderr.close()  # type: ignore[union-attr]
    return seconds, usage.ru_maxrss / 1024


def fleet_part(args: argparse.Namespace, work: Path) -> None:
    bases = work / "bases"
    for i in range(args.accounts):
        cli(["simulate", "--contacts", str(args.account_contacts), "--seed", str(100 + i), "--out", str(bases / f"a{i:04d}")])
    rates = {}
    for engine in ("local", "ray"):
        models, out = work / f"models-{engine}", work / f"scores-{engine}"
        extra = ["--workers", str(args.workers)] if engine == "local" else ["--engine", "ray"]
        env = None
        cluster = None
        if engine == "ray":
            cluster = start_ray_cluster(cpus_per_node=1)
            running = cluster.__enter__()
            extra += ["--address", running.address]
            env = {**os.environ, **running.env}
        try:
            train = ["fleet", "train", "--data", str(bases), "--models", str(models), "--scores", SCORES, "--as-of", AS_OF, *extra]
            rescore = ["fleet", "rescore", "--data", str(bases), "--models", str(models), "--scores", SCORES, "--as-of", AS_OF, "--out", str(out), *extra]
            t_train, _ = measured(train, env)
            t_rescore, _ = measured(rescore, env)
        finally:
            if cluster is not None:
                cluster.__exit__(None, None, None)
        total = t_train + t_rescore
        rates[engine] = args.accounts / total * 60
        print(f"fleet {engine:5}: {args.accounts} accounts, train {t_train:.1f} s + rescore {t_rescore:.1f} s -> {rates[engine]:.1f} accounts/min")
    print(f"ray / local pool: {rates['ray'] / rates['local']:.2f} (goal >= 0.8)")


def io_part(args: argparse.Namespace, work: Path) -> None:

    base, models = work / "base", work / "models"
    cli(["simulate", "--contacts", str(args.base_contacts), "--seed", "1", "--out", str(base)])
    cli(["train", "--data", str(base), "--out", str(models), "--scores", SCORES, "--as-of", AS_OF])
    common = ["rescore", "--models", str(models), "--scores", SCORES, "--as-of", AS_OF]
    with start_postgres() as pg:
        load_base(pg, base, "bench")
        parquet, postgres = [], []
        for _ in range(args.repeat):
            parquet.append(measured([*common, "--data", str(base), "--out", str(work / "s.parquet")]))
            postgres.append(measured([*common, "--data", pg.url(schema="bench"), "--out", pg.url(schema="bench", table="scores")]))
        tp, rp = statistics.median(t for t, _ in parquet), statistics.median(r for _, r in parquet)
        tg, rg = statistics.median(t for t, _ in postgres), statistics.median(r for _, r in postgres)
        print(f"{args.base_contacts:,} contacts: Parquet->Parquet {tp:.1f} s ({rp:.0f} MiB), Postgres->Postgres {tg:.1f} s ({rg:.0f} MiB): {tg / tp:.2f}x (goal <= 1.5)")
        rss = {}
        for orders in args.rss_orders:
            contacts = max(1000, int(orders / 3.3))  # the simulator gives about 3.3 orders per contact
            folder = work / f"rss-{orders}"
            cli(["simulate", "--contacts", str(contacts), "--seed", "2", "--out", str(folder)])
            load_base(pg, folder, f"rss{orders}")
            n = int(pg.query(f"SELECT count(*) FROM rss{orders}.orders")[0][0])
            _, rss[orders] = measured([*common, "--data", pg.url(schema=f"rss{orders}"), "--out", pg.url(schema=f"rss{orders}", table="scores")])
            print(f"Postgres->Postgres, {n:,} order rows: peak RSS {rss[orders]:.0f} MiB")
            shutil.rmtree(folder)
        if len(rss) >= 2:
            low, high = min(rss), max(rss)
            print(f"peak RSS {high:,} / {low:,} order rows: {rss[high] / rss[low]:.2f} (goal <= 1.2)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--accounts", type=int, default=8)
    parser.add_argument("--account-contacts", type=int, default=2500)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--base-contacts", type=int, default=100_000)
    parser.add_argument("--rss-orders", type=lambda t: [int(x) for x in t.split(",")], default=[100_000, 1_000_000])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--skip-fleet", action="store_true")
    parser.add_argument("--skip-io", action="store_true")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="scorecast-bench-fleet-"))
    try:
        if not args.skip_fleet:
            fleet_part(args, work)
        if not args.skip_io:
            io_part(args, work)
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
