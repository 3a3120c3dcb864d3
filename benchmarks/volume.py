"""Volume jobs: top-N selection vs a full sort, and Ray vs local whole-base rescoring.

    python benchmarks/volume.py --contacts 1000000 --repeats 3 --workdir /tmp/bench-e2e [--skip-ray]

Uses (or makes) the same base and rfm+affinity models as ``e2e.py``. Two parts:

1. **top-N**: the base's scores (``rfm,affinity`` rescored once, untimed) ranked by one
   affinity column. ``RunningTopN`` over the 50k-row batches of the score file vs a full
   ``sort_by`` of the whole table and ``slice(0, N)``, for several N; both in this process on
   pre-read data, results checked equal. Then each again in a fresh subprocess that reads the
   score file itself (batches for top-N, the whole table for the sort): its peak RSS (VmHWM)
   above that of a process that only does the same imports.
2. **rescore engines**: ``rescore`` (local) vs ``rescore_ray`` on a local Ray instance with
   every core, Parquet base to Parquet scores, results checked equal (sorted by contact_id).

Rounds alternate the cases so load drift hits them alike; medians and ratios from this run.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import pyarrow as pa
import pyarrow.parquet as pq
from e2e import base_as_of, ensure_base, ensure_models, log, print_table

from scorecast.server.pipeline import ScoreSpec
from scorecast.server.repository import ModelRepository
from scorecast.server.rescore import rescore
from scorecast.server.topn import top_n

SCORES = ("rfm", "affinity")
BATCH = 50_000

PEAK = """
import sys, time
import pyarrow.parquet as pq
from scorecast.server.topn import top_n
path, by, n, how = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
start = time.perf_counter()
if how == "none":  # the imports alone: the baseline both others are measured above
    rows = n
elif how == "topn":
    f = pq.ParquetFile(path)
    rows = top_n(f.iter_batches(batch_size=50_000, columns=["contact_id", by]), by, n).num_rows
else:
    t = pq.read_table(path, columns=["contact_id", by])
    rows = t.sort_by([(by, "descending"), ("contact_id", "ascending")]).slice(0, n).num_rows
seconds = time.perf_counter() - start
hwm = next(int(l.split()[1]) for l in open("/proc/self/status") if l.startswith("VmHWM"))
print(rows, seconds, hwm * 1024)
"""


def peak_run(path: Path, by: str, n: int, how: str) -> tuple[float, int]:
    """Seconds and peak RSS bytes of one top-N or full-sort run in a fresh process."""
    out = subprocess.run([sys.executable, "-c", PEAK, str(path), by, str(n), how], capture_output=True, text=True, check=True)
    rows, seconds, hwm = out.stdout.split()
    assert int(rows) == n
    return float(seconds), int(hwm)


def topn_rows(scores_path: Path, by: str, sizes: list[int], repeats: int) -> list[dict]:
    table = pq.read_table(scores_path, columns=["contact_id", by])
    batches = table.to_batches(max_chunksize=BATCH)
    n_rows = table.num_rows
    rows: list[dict] = []
    for n in sizes:
        expected = table.sort_by([(by, "descending"), ("contact_id", "ascending")]).slice(0, n).combine_chunks()
        assert top_n(batches, by, n).equals(expected), f"top-{n} differs from the full sort"
        timing: dict[str, list[float]] = {"topn": [], "sort": []}
        for _ in range(repeats):
            start = time.perf_counter()
            top_n(batches, by, n)
            timing["topn"].append(time.perf_counter() - start)
            start = time.perf_counter()
            table.sort_by([(by, "descending"), ("contact_id", "ascending")]).slice(0, n)
            timing["sort"].append(time.perf_counter() - start)
        peaks = {how: [peak_run(scores_path, by, n, how) for _ in range(repeats)] for how in ("none", "topn", "sort")}
        med = {k: statistics.median(v) for k, v in timing.items()}
        # Peak RSS above a process that only imports the same modules (~280 MiB of libraries).
        base_hwm = statistics.median(p[1] for p in peaks["none"])
        hwm = {k: (statistics.median(p[1] for p in v) - base_hwm) / 2**20 for k, v in peaks.items()}
        wall = {k: statistics.median(p[0] for p in v) for k, v in peaks.items()}
        rows += [
            {"case": f"top-{n:,}: RunningTopN over 50k batches (pre-read)", "contacts": n_rows, "median_s": med["topn"],
             "contacts_per_s": n_rows / med["topn"], "ratio": med["sort"] / med["topn"], "ratio_of": "sort s / top-N s"},
            {"case": f"top-{n:,}: full sort_by + slice (pre-read)", "contacts": n_rows, "median_s": med["sort"],
             "contacts_per_s": n_rows / med["sort"]},
            {"case": f"top-{n:,}: fresh process, Parquet batches -> top-N", "contacts": n_rows, "median_s": wall["topn"],
             "rss_mib": hwm["topn"], "ratio": hwm["sort"] / max(hwm["topn"], 1.0),
             "ratio_of": "peak RSS above imports: sort / top-N"},
            {"case": f"top-{n:,}: fresh process, whole table -> sort", "contacts": n_rows, "median_s": wall["sort"],
             "rss_mib": hwm["sort"]},
        ]  # fmt: skip
        log(f"top-{n}: top-N {med['topn']:.3f}s, sort {med['sort']:.3f}s; peak RSS {hwm['topn']:.0f} vs {hwm['sort']:.0f} MiB")
    return rows


def engine_rows(models: Path, base: Path, spec: ScoreSpec, workdir: Path, repeats: int, chunk: int) -> list[dict]:
    import ray

    from scorecast.server.rescore_ray import rescore_ray

    ray.init(include_dashboard=False, log_to_driver=False)
    repository = ModelRepository.load(models)
    out = workdir / "volume-out"
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir()
    seconds: dict[str, list[float]] = {"local": [], "ray": []}
    try:
        # No untimed round: the base is in the page cache and the numba cache warm from the
        # top-N part's scoring, and starting the Ray actors is part of every Ray run's cost.
        for round_ in range(repeats):
            start = time.perf_counter()
            local = rescore(repository, base, spec, out / "local.parquet", chunk_contacts=chunk)
            t_local = time.perf_counter() - start
            start = time.perf_counter()
            remote = rescore_ray(models, base, spec, out / "ray.parquet", chunk_contacts=chunk)
            t_ray = time.perf_counter() - start
            assert local.rows == remote.rows
            seconds["local"].append(t_local)
            seconds["ray"].append(t_ray)
            log(f"round {round_ + 1}: local {t_local:.1f}s, ray {t_ray:.1f}s")
            if round_ == 0:  # outside the timings
                a = pq.read_table(out / "local.parquet").sort_by("contact_id").combine_chunks()
                b = pq.read_table(out / "ray.parquet").sort_by("contact_id").combine_chunks()
                assert a.equals(b), "ray result differs from local"
                del a, b
    finally:
        ray.shutdown()
        shutil.rmtree(out, ignore_errors=True)
    n = local.rows
    med = {k: statistics.median(v) for k, v in seconds.items()}
    spread = ", ".join(f"{r:.2f}" for r in sorted(b / a for a, b in zip(seconds["local"], seconds["ray"], strict=True)))
    return [
        {"case": "rescore --engine local (Parquet -> Parquet file)", "contacts": n, "median_s": med["local"], "contacts_per_s": n / med["local"]},
        {"case": "rescore --engine ray (local Ray, all cores)", "contacts": n, "median_s": med["ray"], "contacts_per_s": n / med["ray"],
         "ratio": med["local"] / med["ray"], "ratio_of": f"ray contacts/s / local (per round s ray/local: {spread})"},
    ]  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--contacts", type=int, default=1_000_000, help="contacts of the base (default 1000000)")
    parser.add_argument("--repeats", type=int, default=3, help="timed rounds per case; medians shown (default 3)")
    parser.add_argument("--ray-repeats", type=int, default=None, help="rounds of the engine comparison (default --repeats)")
    parser.add_argument("--seed", type=int, default=0, help="simulation seed (default 0)")
    parser.add_argument("--workdir", type=Path, default=Path("bench-data"), help="bases and models, shared with e2e.py")
    parser.add_argument("--chunk-contacts", type=int, default=50_000, help="contacts per chunk (default 50000)")
    parser.add_argument("--top", type=lambda t: [int(x) for x in t.split(",")], default=[1_000, 20_000, 200_000], help="N values")
    parser.add_argument("--skip-ray", action="store_true", help="skip the engine comparison")
    args = parser.parse_args()
    args.workdir.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    base = ensure_base(args.workdir / f"base-{args.contacts}-seed{args.seed}", args.contacts, args.seed)
    models = ensure_models(args.workdir / f"models-{args.contacts}-seed{args.seed}", base, args.contacts, args.seed)
    as_of = base_as_of(base)
    spec = ScoreSpec(scores=SCORES, as_of_us=int(as_of.timestamp() * 1_000_000))
    scores_path = Path(os.environ.get("TMPDIR", "/tmp")) / f"volume-scores-{os.getpid()}.parquet"
    log("scoring the base once for the top-N cases")
    rescore(ModelRepository.load(models), base, spec, scores_path, chunk_contacts=args.chunk_contacts)
    try:
        by = next(c for c in pq.read_schema(scores_path).names if c.startswith("affinity."))
        rows = topn_rows(scores_path, by, args.top, args.repeats)
    finally:
        scores_path.unlink(missing_ok=True)
    if not args.skip_ray:
        rows += engine_rows(models, base, spec, args.workdir, args.ray_repeats or args.repeats, args.chunk_contacts)
    load = os.getloadavg()
    import numba
    import onnxruntime

    versions = f"pyarrow {pa.__version__}, onnxruntime {onnxruntime.__version__}, numba {numba.__version__}"
    if not args.skip_ray:
        import ray

        versions += f", ray {ray.__version__}"
    header = (
        f"\nscorecast volume: {args.contacts:,} contacts, top-N by {by}, median of {args.repeats}\n"
        f"machine: {os.cpu_count()} cores; load avg at end {load[0]:.1f}, {load[1]:.1f}, {load[2]:.1f} (shared machine: compare ratios)\n"
        f"versions: {versions}\n"
    )
    print_table(rows, header)
    print(f"\ntotal {time.perf_counter() - start:.0f}s")


if __name__ == "__main__":
    main()
