"""Fleet jobs and PostgreSQL I/O: accounts per minute on a local pool against a two-node Ray
cluster, and a base from Postgres to Postgres against Parquet to Parquet (time, peak RSS).

    python benchmarks/fleet.py                       # small: 8 accounts, a 100k-contact base
    python benchmarks/fleet.py --accounts 1000 --base-contacts 1000000 --rss-contacts 30000,300000
    python benchmarks/fleet.py --skip-fleet --base-contacts 1000000 --train-contacts 100000 --rss-contacts ""

Part 1 retrains (rfm, affinity) and rescores ``--accounts`` simulated accounts of
``--account-contacts`` contacts, on the process pool (``--workers``) and on a two-node Ray
cluster on loopback (one CPU per node), started and stopped here (tests/support/services.py).
Part 2 rescores one base of ``--base-contacts`` contacts Parquet -> Parquet and the same base
Postgres -> Postgres (a PostgreSQL server started here), each in a fresh ``scorecast rescore``
process, and reports wall time and peak RSS; then peak RSS of both paths, rescoring scores that
read every event table (orders, web_events, email_events: about 33 rows per contact), on bases
of each of ``--rss-contacts`` (30k and 300k contacts: about 1M and 10M event rows), in chunks
of each of ``--rss-chunk-contacts``. Peak RSS is the process's own ``VmHWM``. Times are medians
of ``--repeat`` runs; the machine may be shared, so read ratios measured in the same run.
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
RSS_SCORES = "rfm,affinity,web_heat,engagement"  # read orders, web_events and email_events
EVENT_TABLES = ("orders", "web_events", "email_events")


_PEAK = (
    "import atexit, runpy, sys\n"
    "def peak():\n"
    "    hwm = next(line for line in open('/proc/self/status') if line.startswith('VmHWM'))\n"
    "    sys.stderr.write(f'PEAK_KIB {hwm.split()[1]}\\n')\n"
    "atexit.register(peak)\n"
    "sys.argv = ['scorecast', *sys.argv[1:]]\n"
    "runpy.run_module('scorecast.cli', run_name='__main__')\n"
)
"""``scorecast ARGS`` that writes its peak RSS (``VmHWM``) to stderr as it exits. Not ``wait4``'s
``ru_maxrss``: Linux carries the parent's RSS at the fork into it, so a child of this process,
which holds the simulated base, would report at least this process's size."""


def measured(argv: list[str], env: dict[str, str] | None = None) -> tuple[float, float]:
    """Wall seconds and peak RSS (MiB, of the main process) of one ``scorecast`` process."""
    start = time.perf_counter()
    done = subprocess.run([sys.executable, "-c", _PEAK, *argv], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env, text=True)
    seconds = time.perf_counter() - start
    if done.returncode != 0:
        raise RuntimeError(f"{argv[:2]} failed: {done.stderr[-2000:]}")
    peak = [line for line in done.stderr.splitlines() if line.startswith("PEAK_KIB ")][-1]
    return seconds, int(peak.split()[1]) / 1024


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
    simulate(args.base_contacts, base)
    trained_on = base
    if args.train_contacts:  # the models' fit is not what is timed: a smaller base trains them sooner
        trained_on = work / "train-base"
        simulate(args.train_contacts, trained_on, seed=2)
    cli(["train", "--data", str(trained_on), "--out", str(models), "--scores", SCORES, "--as-of", AS_OF])
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
        shutil.rmtree(base)
        # peak RSS with scores that read every event table (orders, web_events, email_events)
        rss_models = work / "rss-models"
        rss: dict[int, dict[int, tuple[float, float]]] = {chunk: {} for chunk in args.rss_chunk_contacts}
        for contacts in args.rss_contacts:
            folder = work / f"rss-{contacts}"
            simulate(contacts, folder)
            if not rss_models.exists():
                cli(["train", "--data", str(folder), "--out", str(rss_models), "--scores", RSS_SCORES, "--as-of", AS_OF])
            load_base(pg, folder, f"rss{contacts}")
            events = sum(int(pg.query(f"SELECT count(*) FROM rss{contacts}.{t}")[0][0]) for t in EVENT_TABLES)
            for chunk in args.rss_chunk_contacts:
                run = ["rescore", "--models", str(rss_models), "--scores", RSS_SCORES, "--as-of", AS_OF, "--chunk-contacts", str(chunk)]
                _, on_parquet = measured([*run, "--data", str(folder), "--out", str(work / "rss.parquet")])
                schema = f"rss{contacts}"
                _, on_postgres = measured([*run, "--data", pg.url(schema=schema), "--out", pg.url(schema=schema, table="scores")])
                rss[chunk][events] = (on_parquet, on_postgres)
                print(f"{contacts:,} contacts, {events:,} event rows, chunks of {chunk:,}: peak RSS Postgres->Postgres {on_postgres:.0f} MiB, Parquet->Parquet {on_parquet:.0f} MiB")
            shutil.rmtree(folder)
        for chunk, by_events in rss.items():
            if len(by_events) >= 2:
                low, high = min(by_events), max(by_events)
                ratio_pg, ratio_parquet = by_events[high][1] / by_events[low][1], by_events[high][0] / by_events[low][0]
                print(f"peak RSS, chunks of {chunk:,}, {high:,} / {low:,} event rows: Postgres path {ratio_pg:.2f} (goal <= 1.2); Parquet path {ratio_parquet:.2f}")


def simulate(contacts: int, out: Path, seed: int = 1) -> None:
    """A simulated base, in a child process (this one stays small)."""
    subprocess.run([sys.executable, "-m", "scorecast.cli", "simulate", "--contacts", str(contacts), "--seed", str(seed), "--out", str(out)],
                   check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--accounts", type=int, default=8)
    parser.add_argument("--account-contacts", type=int, default=2500)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--base-contacts", type=int, default=100_000)
    parser.add_argument("--train-contacts", type=int, default=0, help="train part 2's models on a base of this many contacts (default: the timed base)")
    parser.add_argument("--rss-contacts", type=lambda t: [int(x) for x in t.split(",") if x], default=[30_000, 300_000],
                        help="bases for peak RSS (the simulator gives about 33 event rows per contact)")  # fmt: skip
    parser.add_argument("--rss-chunk-contacts", type=lambda t: [int(x) for x in t.split(",")], default=[50_000],
                        help="--chunk-contacts of the peak-RSS runs, one run each (default rescore's 50k: a 30k-contact base is one chunk)")  # fmt: skip
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
