"""recommendations at scale: a 10k-SKU catalogue, the whole base over gRPC, ONNX share of the time.

    python benchmarks/recommendations.py --contacts 1000000 --repeats 3 --workdir /tmp/bench-recs [--device cuda]

A simulated base (20 groups x 500 SKUs = 10k SKUs, taste and repeat purchases) is trained
once (``scorecast train --scores recommendations``, K = 10) and reused. Then:

1. gRPC: one ``scorecast serve`` process; the client streams the Parquet base with
   ``BaseChunks`` (50k contacts per chunk) once per round; contacts/s and the server's peak
   RSS (VmHWM). The server runs the model in slices of ``max_batch_rows`` rows (about 32 MB
   of scores each), so memory stays bounded per chunk whatever the base size.
2. In process: ``ScoringPipeline`` over pre-read chunks of the same base (at most
   ``--inprocess-contacts``); ``ScoringPipeline.seconds`` splits the time into kernels
   (``features``), ONNX Runtime (``onnx``) and Arrow output (``assemble``).

Rounds alternate the cases; the table shows medians and ratios between medians of this run.

``--scale``: bounded memory at 1M contacts x 50k SKUs, without gRPC or a simulated base::

    python benchmarks/recommendations.py --scale --contacts 1000000 --skus 50000 --small-contacts 100000 --workdir /tmp/bench-recs

A model is fitted (factors and prior, no holdout grid) on synthetic orders of
``--fit-contacts`` contacts over ``--skus`` SKUs (Zipf popularity) and written as ONNX. Then
one fresh process per size scores ``--small-contacts`` and ``--contacts`` contacts with
``ScoringPipeline``, chunks of ``--chunk-contacts`` generated on the fly (each contact
1 + Poisson(3) orders), and reports its time and peak RSS (``getrusage``: the process's
high-water mark, model and runtime included); the last column is the large run's peak RSS
over the small one's. Scores are rows x SKUs per ONNX run (``max_batch_rows``), never SKUs x SKUs.
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pyarrow as pa

sys.path.insert(0, str(Path(__file__).resolve().parent))

from e2e import MIB, base_as_of, log, print_table, stream_base  # noqa: E402

from scorecast.base import BaseChunks  # noqa: E402
from scorecast.client import ScorecastClient  # noqa: E402
from scorecast.process import ServerProcess  # noqa: E402
from scorecast.server.pipeline import ScoreSpec, ScoringPipeline  # noqa: E402
from scorecast.server.repository import ModelRepository  # noqa: E402
from scorecast.training.simulate.retail import SimulationConfig, simulate_base, write_base  # noqa: E402
from scorecast.server.runtime import SessionOptions  # noqa: E402
from scorecast.training.train import train  # noqa: E402

SCORE = ("recommendations",)


def ensure(workdir: Path, n: int, seed: int) -> tuple[Path, Path]:
    base = workdir / f"recs-base-{n}-seed{seed}"
    if not (base / "base.json").exists():
        log(f"simulating {n:,} contacts, 10k SKUs")
        start = time.perf_counter()
        write_base(
            simulate_base(SimulationConfig(n_contacts=n, seed=seed, n_groups=20, skus_per_group=500)), base, overwrite=True
        )
        log(f"simulated in {time.perf_counter() - start:.0f}s")
    models = workdir / f"recs-models-{n}-seed{seed}"
    if not (models / "recommendations").is_dir():
        log("training recommendations")
        start = time.perf_counter()
        train(base, models, scores=list(SCORE))
        log(f"trained in {time.perf_counter() - start:.0f}s")
    return base, models


def synthetic_orders(lo: int, hi: int, n_skus: int, end_us: int, seed: int) -> dict[str, pa.Table]:
    """Contacts ``lo..hi-1`` and their orders: 1 + Poisson(3) each, SKUs by Zipf(1.0)
    popularity (``S<code>``), times uniform over the year before ``end_us``."""
    rng = np.random.default_rng([seed, lo])
    ids = np.arange(lo, hi, dtype=np.int64)
    per = 1 + rng.poisson(3.0, ids.size)
    contact = np.repeat(ids, per)
    cdf = np.cumsum(1.0 / np.arange(1, n_skus + 1))
    sku = np.searchsorted(cdf / cdf[-1], rng.random(contact.size))
    ts = end_us - rng.integers(0, 365 * 86_400_000_000, contact.size)
    names = pa.array([f"S{i}" for i in range(n_skus)], pa.string())
    return {
        "contacts": pa.table({"contact_id": ids}),
        "orders": pa.table(
            {"contact_id": contact, "ts": pa.array(ts, pa.timestamp("us", "UTC")), "sku": names.take(pa.array(sku))}
        ),
    }


END_US = 1_767_225_600_000_000  # 2026-01-01


def scale_model(workdir: Path, n_skus: int, fit_contacts: int, seed: int) -> Path:
    """A recommendations model over ``n_skus`` SKUs fitted on synthetic orders; its repository."""
    from scorecast.kernels import category_codes, contact_codes, timestamps_us
    from scorecast.training.recommendations.model import Orders, RecommendationModel, vocabulary

    models = workdir / f"recs-scale-models-{n_skus}-{fit_contacts}-seed{seed}"
    path = models / "recommendations" / "1.onnx"
    if path.exists():
        return models
    log(f"fitting on {fit_contacts:,} synthetic contacts, {n_skus:,} SKUs")
    start = time.perf_counter()
    orders = synthetic_orders(0, fit_contacts, n_skus, END_US, seed)["orders"]
    # plus one order of every SKU (contacts past fit_contacts, five SKUs each): the whole catalogue
    extra = np.arange(n_skus)
    names_all = pa.array([f"S{i}" for i in range(n_skus)], pa.string())
    orders = pa.concat_tables([orders, pa.table({
        "contact_id": fit_contacts + extra // 5,
        "ts": pa.array(np.full(n_skus, END_US - 86_400_000_000), pa.timestamp("us", "UTC")),
        "sku": names_all,
    })])  # fmt: skip
    names = orders.column("sku").combine_chunks()
    ts = timestamps_us(orders.column("ts"), "orders.ts")
    skus = vocabulary(names, ts, END_US, n_skus)
    contact, ids = contact_codes(orders.column("contact_id"), field="orders.contact_id")
    codes = category_codes(names, skus, "orders.sku")
    model = RecommendationModel(k=10).fit(skus, Orders(contact, codes, ts, len(ids)), END_US)
    path.parent.mkdir(parents=True, exist_ok=True)
    stamp = {"version": "1", "trained_at": "2026-01-01T00:00:00+00:00", "data_as_of": "2026-01-01T00:00:00+00:00"}
    path.write_bytes(model.to_onnx(**stamp, metrics={}).SerializeToString())
    log(f"fitted {len(skus):,} SKUs in {time.perf_counter() - start:.0f}s")
    return models


def scale_run(models: Path, n_contacts: int, n_skus: int, chunk_contacts: int, seed: int) -> dict[str, float]:
    """Score ``n_contacts`` synthetic contacts in chunks in this process: seconds and peak RSS."""
    repository = ModelRepository.load(models)
    pipeline = ScoringPipeline(repository, ScoreSpec(scores=SCORE, as_of_us=END_US))
    pipeline.score(synthetic_orders(0, 1000, n_skus, END_US, seed))  # warm-up: kernels, arenas
    pipeline.seconds = dict.fromkeys(pipeline.seconds, 0.0)
    warm = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    seconds = rows = 0.0
    for lo in range(0, n_contacts, chunk_contacts):
        chunk = synthetic_orders(lo, min(lo + chunk_contacts, n_contacts), n_skus, END_US, seed)
        start = time.perf_counter()
        rows += pipeline.score(chunk).num_rows
        seconds += time.perf_counter() - start
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux
    return {"contacts": rows, "seconds": seconds, "peak_rss_mib": peak, "warm_rss_mib": warm, **pipeline.seconds}


def scale(args: argparse.Namespace) -> None:
    models = scale_model(args.workdir, args.skus, args.fit_contacts, args.seed)
    meta = ModelRepository.load(models).get("recommendations").meta
    results = []
    for n in (args.small_contacts, args.contacts):
        log(f"scoring {n:,} contacts x {args.skus:,} SKUs in a fresh process")
        command = [sys.executable, __file__, "--scale-run", str(n), "--models", str(models), "--skus", str(args.skus),
                   "--chunk-contacts", str(args.chunk_contacts), "--seed", str(args.seed)]  # fmt: skip
        out = subprocess.run(command, check=True, capture_output=True, text=True).stdout
        results.append(json.loads(out.strip().splitlines()[-1]))
        log(f"{n:,}: {results[-1]}")
    small = results[0]
    rows = [
        {
            "case": f"ScoringPipeline, chunks of {args.chunk_contacts:,}",
            "contacts": int(r["contacts"]),
            "median_s": r["seconds"],
            "contacts_per_s": r["contacts"] / r["seconds"],
            "rss_mib": r["peak_rss_mib"],
            "ratio": r["peak_rss_mib"] / small["peak_rss_mib"],
            "ratio_of": f"peak RSS vs {int(small['contacts']):,}",
        }
        for r in results
    ]
    header = (
        f"recommendations at scale: {args.skus:,} SKUs, K={meta.params['k']}, {meta.params['history_slots']} history slots, "
        f"ONNX runs of {meta.params['max_batch_rows']} rows; one run per size, peak RSS of the scoring process; "
        f"ratio: peak RSS vs {args.small_contacts:,} contacts"
    )
    print_table(rows, header)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--contacts", type=int, default=1_000_000, help="contacts in the base (default 1M)")
    parser.add_argument("--repeats", type=int, default=3, help="rounds; medians are shown (default 3)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--workdir", type=Path, default=Path("bench-data"), help="base and models, reused")
    parser.add_argument("--chunk-contacts", type=int, default=50_000)
    parser.add_argument("--inprocess-contacts", type=int, default=200_000, help="contacts of the in-process case")
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    parser.add_argument("--scale", action="store_true", help="bounded-memory check on synthetic orders (module docstring)")
    parser.add_argument("--skus", type=int, default=50_000, help="--scale: catalogue size (default 50k)")
    parser.add_argument("--small-contacts", type=int, default=100_000, help="--scale: the smaller base (default 100k)")
    parser.add_argument("--fit-contacts", type=int, default=100_000, help="--scale: contacts the model is fitted on")
    parser.add_argument("--scale-run", type=int, default=0, help=argparse.SUPPRESS)  # one size, in this process
    parser.add_argument("--models", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.scale_run:
        print(json.dumps(scale_run(args.models, args.scale_run, args.skus, args.chunk_contacts, args.seed)))
        return
    args.workdir.mkdir(parents=True, exist_ok=True)
    if args.scale:
        scale(args)
        return
    base, models = ensure(args.workdir, args.contacts, args.seed)
    as_of = base_as_of(base)
    as_of_us = int(as_of.timestamp() * 1_000_000)

    repository = ModelRepository.load(models, SessionOptions(device=args.device))
    meta = repository.get("recommendations").meta
    columns: dict[str, list[str]] = {}
    with ServerProcess(models, args.workdir, ["--device", args.device]) as server:
        with ScorecastClient(server.target) as client:
            client.wait_ready(timeout=60)
            for qualified in client.get_model("recommendations").input_columns:
                table, column = qualified.split(".", 1)
                columns.setdefault(table, []).append(column)
        chunks = []
        for chunk in BaseChunks(base, columns, chunk_contacts=args.chunk_contacts):
            chunks.append(chunk)
            if sum(len(c["contacts"]) for c in chunks) >= args.inprocess_contacts:
                break
        n_inprocess = sum(len(c["contacts"]) for c in chunks)
        grpc_s: list[float] = []
        local_s: list[float] = []
        stages: list[dict[str, float]] = []
        stream_base(server.target, base, columns, as_of, args.chunk_contacts, SCORE)  # warm: page cache, arenas
        for round_ in range(args.repeats):
            start = time.perf_counter()
            n_rows = stream_base(server.target, base, columns, as_of, args.chunk_contacts, SCORE)
            grpc_s.append(time.perf_counter() - start)
            log(f"round {round_ + 1}: gRPC {n_rows:,} contacts in {grpc_s[-1]:.2f}s")
            pipeline = ScoringPipeline(repository, ScoreSpec(scores=SCORE, as_of_us=as_of_us))
            start = time.perf_counter()
            for chunk in chunks:
                pipeline.score(chunk)
            local_s.append(time.perf_counter() - start)
            stages.append(dict(pipeline.seconds))
            log(f"round {round_ + 1}: in process {n_inprocess:,} contacts in {local_s[-1]:.2f}s {pipeline.seconds}")
        peak = server.memory().get("VmHWM", 0) / MIB
    grpc_median, local_median = statistics.median(grpc_s), statistics.median(local_s)
    stage_median = {k: statistics.median(s[k] for s in stages) for k in stages[0]}
    total = sum(stage_median.values())
    rows = [
        {
            "case": f"gRPC Score stream, {args.device}",
            "contacts": n_rows,
            "median_s": grpc_median,
            "contacts_per_s": n_rows / grpc_median,
            "rss_mib": peak,
            "ratio": 1.0,
            "ratio_of": "reference",
        },
        {
            "case": "in process ScoringPipeline (same chunks)",
            "contacts": n_inprocess,
            "median_s": local_median,
            "contacts_per_s": n_inprocess / local_median,
            "ratio": (n_inprocess / local_median) / (n_rows / grpc_median),
            "ratio_of": "contacts/s vs gRPC",
        },
    ]
    for stage, seconds in stage_median.items():
        rows.append(
            {
                "case": f"  in process: {stage}",
                "contacts": n_inprocess,
                "median_s": seconds,
                "contacts_per_s": n_inprocess / seconds if seconds else None,
                "ratio": seconds / total,
                "ratio_of": "share of in-process time",
            }
        )
    catalogue = len(meta.params["feature_params"]["skus"])
    header = (
        f"recommendations: {n_rows:,} contacts, {catalogue:,} SKUs, K={meta.params['k']}, "
        f"{meta.params['history_slots']} history slots, ONNX batches of {meta.params['max_batch_rows']} rows; "
        f"median of {args.repeats}"
    )
    print_table(rows, header)


if __name__ == "__main__":
    main()
