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
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--contacts", type=int, default=1_000_000, help="contacts in the base (default 1M)")
    parser.add_argument("--repeats", type=int, default=3, help="rounds; medians are shown (default 3)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--workdir", type=Path, default=Path("bench-data"), help="base and models, reused")
    parser.add_argument("--chunk-contacts", type=int, default=50_000)
    parser.add_argument("--inprocess-contacts", type=int, default=200_000, help="contacts of the in-process case")
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    args = parser.parse_args()
    args.workdir.mkdir(parents=True, exist_ok=True)
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
