"""End-to-end benchmark: gRPC scoring vs the same pipeline in process, RFM engines, server memory.

    python benchmarks/e2e.py --contacts 1000000 --repeats 3 [--workdir DIR] [--skip-rss] [--json FILE]

1. Throughput of ``rfm,affinity`` on N simulated contacts, four ways, taking turns for
   ``--repeats`` rounds after one untimed warm-up pass each:
   - ``grpc``: a ``scorecast serve`` subprocess, ``ScorecastClient.score`` fed by ``BaseChunks``
     reading the base from Parquet; results consumed, not written;
   - ``rescore``: ``server.rescore.rescore`` in this process, Parquet in, Parquet out (temp file);
   - ``grpc-mem``: the same stream over chunks read beforehand (``list(BaseChunks)``);
   - ``in-process``: ``ScoringPipeline.score`` over those pre-read chunks, so ``grpc-mem /
     in-process`` isolates the transport and ``grpc / in-process`` adds reading the base;
   - ``ort``: ONNX Runtime alone on feature matrices computed once for the whole base, run in
     50k-row batches for both models.
   ``read``: ``list(BaseChunks)`` alone (the Parquet read and split that ``grpc`` and ``rescore``
   include) is timed each round too.
2. RFM features: ``compare_rfm`` (benchmarks/rfm_engines.py) on the base's orders table.
3. Server peak RSS streaming N and 4N contacts: a fresh server per size; ``VmRSS`` after its
   warm-up and ``VmHWM`` after the stream, from /proc/<pid>/status.

The base and models live in ``--workdir`` and are reused when they match N and the seed.
Medians over rounds; every ratio is between medians measured in this run.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterable, Mapping
from datetime import datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import grpc
import numba
import onnxruntime
import pyarrow as pa
from rfm_engines import compare_rfm
from table import Column, print_columns

from scorecast.base import BaseChunks, read_table
from scorecast.client import ScorecastClient
from scorecast.kernels import FeatureFrame
from scorecast.metadata import INPUT_NAME
from scorecast.process import ServerProcess as Server
from scorecast.server.pipeline import ScoreSpec, ScoringPipeline
from scorecast.server.repository import ModelRepository
from scorecast.server.rescore import input_columns, rescore
from scorecast.training.simulate.retail import SimulationConfig, simulate_base, write_base
from scorecast.training.train import train

SCORES = ("rfm", "affinity")
ORT_BATCH = 50_000
MIB = 1024 * 1024


def log(message: str) -> None:
    print(f"[e2e {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


# ---------------------------------------------------------------------------------------------
# data: a base per size and one model repository, reused when they match


def ensure_base(path: Path, n_contacts: int, seed: int) -> Path:
    marker = path / "base.json"
    if marker.is_file():
        meta = json.loads(marker.read_text())
        if meta.get("n_contacts") == n_contacts and meta.get("seed") == seed:
            log(f"reusing base {path} ({n_contacts:,} contacts, seed {seed})")
            return path
    log(f"simulating {n_contacts:,} contacts (seed {seed}) into {path}")
    start = time.perf_counter()
    base = simulate_base(SimulationConfig(n_contacts=n_contacts, seed=seed))
    write_base(base, path, overwrite=True)
    del base
    gc.collect()
    log(f"simulated in {time.perf_counter() - start:.1f}s")
    return path


def ensure_models(path: Path, base: Path, n_contacts: int, seed: int, scores: tuple[str, ...] = SCORES) -> Path:
    marker = path / "trained-on.json"
    wanted = {"n_contacts": n_contacts, "seed": seed, "scores": list(scores)}
    if (
        marker.is_file()
        and json.loads(marker.read_text()) == wanted
        and all(any((path / s).glob("*.onnx")) for s in scores)
    ):
        log(f"reusing models {path}")
        return path
    log(f"training {', '.join(scores)} on {base}")
    start = time.perf_counter()
    tmp = path.with_name(path.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    train(base, tmp, scores=list(scores))
    (tmp / "trained-on.json").write_text(json.dumps(wanted) + "\n")
    shutil.rmtree(path, ignore_errors=True)
    tmp.rename(path)
    gc.collect()
    log(f"trained in {time.perf_counter() - start:.1f}s")
    return path


def base_as_of(base: Path) -> datetime:
    return datetime.fromisoformat(json.loads((base / "base.json").read_text())["as_of"])


# ---------------------------------------------------------------------------------------------
# the server subprocess


def stream(target: str, chunks: Iterable[Mapping[str, pa.Table]], as_of: datetime, scores: tuple[str, ...] = SCORES) -> int:
    """Score chunks over one gRPC Score stream; results consumed, not written; rows scored."""
    rows = 0
    with ScorecastClient(target) as client:
        client.wait_ready(timeout=30)
        for batch in client.score(chunks, list(scores), as_of=as_of):
            rows += batch.num_rows
    return rows


def stream_base(
    target: str,
    base: Path,
    columns: dict[str, list[str]],
    as_of: datetime,
    chunk_contacts: int,
    scores: tuple[str, ...] = SCORES,
) -> int:
    """Score a whole base over gRPC, reading it from Parquet with ``BaseChunks`` (timed too)."""
    return stream(target, BaseChunks(base, columns, chunk_contacts=chunk_contacts), as_of, scores)


# ---------------------------------------------------------------------------------------------
# 1. scoring throughput


def throughput(
    base: Path, models: Path, workdir: Path, n: int, repeats: int, chunk_contacts: int
) -> tuple[list[dict], dict]:
    as_of = base_as_of(base)
    spec = ScoreSpec(scores=SCORES, as_of_us=int(as_of.timestamp() * 1_000_000))
    repository = ModelRepository.load(models)
    plans = [repository.get(s) for s in SCORES]
    columns = input_columns(f for m in plans for f in m.meta.features)

    # pre-read chunks (in-process case) and whole-base feature matrices (ORT-alone case)
    chunks = list(BaseChunks(base, columns, chunk_contacts=chunk_contacts))
    tables = {
        name: read_table(base, name, cols) for name, cols in {"contacts": [], **columns}.items()
    }
    tables = {k: v for k, v in tables.items() if v is not None}
    frame = FeatureFrame(tables, spec.as_of_us)
    # the pipeline's own per-model matrices (request:<option> columns filled as it fills them)
    matrices = [plan.matrix(frame) for plan in ScoringPipeline(repository, spec).plans]
    outputs = [sorted({o.onnx_output for o in m.meta.outputs}) for m in plans]
    del tables, frame
    assert all(len(x) == n for x in matrices), [len(x) for x in matrices]
    stages = {"features": 0.0, "onnx": 0.0, "assemble": 0.0}

    def run_inprocess() -> int:
        pipeline = ScoringPipeline(repository, spec)
        rows = sum(pipeline.score(c).num_rows for c in chunks)
        for k, v in pipeline.seconds.items():
            stages[k] = v
        return rows

    def run_rescore() -> int:
        with tempfile.TemporaryDirectory(dir=workdir) as tmp:
            return rescore(
                repository, base, spec, Path(tmp) / "scores.parquet", chunk_contacts=chunk_contacts
            ).rows

    def run_ort() -> int:
        for model, x, names in zip(plans, matrices, outputs, strict=True):
            for start in range(0, len(x), ORT_BATCH):
                model.session.run(names, {INPUT_NAME: x[start : start + ORT_BATCH]})
        return len(matrices[0])

    def run_read() -> int:
        return sum(
            len(c["contacts"]) for c in BaseChunks(base, columns, chunk_contacts=chunk_contacts)
        )

    cases: dict[str, Callable[[], int]] = {
        "read": run_read,
        "ort": run_ort,
        "in-process": run_inprocess,
        "rescore": run_rescore,
    }
    times: dict[str, list[float]] = {name: [] for name in ["grpc", "grpc-mem", *cases]}
    with Server(models, workdir) as server:
        grpc_runs = {
            "grpc": lambda: stream_base(server.target, base, columns, as_of, chunk_contacts),
            "grpc-mem": lambda: stream(server.target, chunks, as_of),
        }
        # warm-up: one untimed pass of every case (the server warmed its models itself)
        log("warm-up pass of every case")
        for name, run in {**grpc_runs, **cases}.items():
            rows = run()
            assert rows == n, (name, rows, n)
        order = [*grpc_runs.items(), *cases.items()]
        for round_ in range(repeats):
            for name, run in order:
                start = time.perf_counter()
                rows = run()
                times[name].append(time.perf_counter() - start)
                assert rows == n, (name, rows, n)
            log(
                f"round {round_ + 1}/{repeats}: "
                + ", ".join(f"{k} {v[-1]:.2f}s" for k, v in times.items())
            )
    med = {k: statistics.median(v) for k, v in times.items()}
    rate = {k: n / v for k, v in med.items()}

    def row(case: str, key: str, ratio: float | None = None, ratio_of: str = "") -> dict:
        return {
            "case": case,
            "contacts": n,
            "median_s": med[key],
            "contacts_per_s": rate[key],
            "ratio": ratio,
            "ratio_of": ratio_of,
            "all_s": times[key],
        }

    def per_round(a: str, b: str) -> str:
        ratios = sorted(tb / ta for ta, tb in zip(times[a], times[b], strict=True))
        return f"per round {ratios[0]:.2f}-{ratios[-1]:.2f}" if len(ratios) > 1 else "one round"

    rows = [
        row(
            "score: gRPC Score stream (Parquet -> client -> server)",
            "grpc",
            rate["grpc"] / rate["in-process"],
            f"gRPC / in-process (goal >= 0.8; {per_round('grpc', 'in-process')})",
        ),
        row(
            "score: gRPC Score stream over pre-read chunks",
            "grpc-mem",
            rate["grpc-mem"] / rate["in-process"],
            f"gRPC pre-read / in-process: transport alone ({per_round('grpc-mem', 'in-process')})",
        ),
        row(
            "score: in process, rescore (Parquet -> Parquet)",
            "rescore",
            rate["grpc"] / rate["rescore"],
            "gRPC / rescore",
        ),
        row(
            "score: in process, pipeline on pre-read chunks",
            "in-process",
            rate["in-process"] / rate["ort"],
            "in-process / ORT alone",
        ),
        row("score: ONNX Runtime alone, 50k-row batches", "ort"),
        row("read: BaseChunks over the Parquet base", "read", None, ""),
    ]
    ratio_rows = [
        {
            "case": "ratio: gRPC / ORT alone",
            "ratio": rate["grpc"] / rate["ort"],
            "ratio_of": "contacts/s",
        },
        {
            "case": "ratio: rescore / ORT alone",
            "ratio": rate["rescore"] / rate["ort"],
            "ratio_of": "contacts/s",
        },
    ]
    detail = {
        "pipeline_stage_s": stages,
        "chunks": len(chunks),
        "chunk_contacts": chunk_contacts,
        "columns": columns,
    }
    return rows + ratio_rows, detail


# ---------------------------------------------------------------------------------------------
# 2. RFM engines


def rfm_rows(base: Path, repeats: int) -> list[dict]:
    orders = read_table(base, "orders", ["ts", "amount", "product_group"])
    assert orders is not None
    as_of_us = int(base_as_of(base).timestamp() * 1_000_000)
    log(f"RFM engines on {orders.num_rows:,} orders")
    results = compare_rfm(orders, as_of_us, repeats)
    labels = {
        "scorecast": "rfm: scorecast numba kernel (FeatureFrame)",
        "duckdb": "rfm: DuckDB SQL GROUP BY",
        "polars": "rfm: polars group_by/agg",
    }
    out = []
    for r in results:
        ratio = None if r["engine"] == "scorecast" else r["ratio"]
        note = (
            ""
            if ratio is None
            else f"{r['engine']} s / scorecast s"
            + (" (goal >= 2)" if r["engine"] == "duckdb" else "")
        )
        out.append(
            {
                "case": labels.get(str(r["engine"]), str(r["engine"])),
                "contacts": r["rows"],
                "orders": orders.num_rows,
                "median_s": r["median_s"],
                "contacts_per_s": int(r["rows"]) / float(r["median_s"]),  # type: ignore[call-overload]
                "ratio": ratio,
                "ratio_of": note,
            }
        )
    return out


# ---------------------------------------------------------------------------------------------
# 3. server peak RSS, N vs 4N


def rss_rows(
    sizes: list[tuple[int, Path]],
    models: Path,
    workdir: Path,
    columns: dict[str, list[str]],
    chunk_contacts: int,
) -> list[dict]:
    out, peaks = [], {}
    for n, base in sizes:
        as_of = base_as_of(base)
        with Server(models, workdir) as server:
            warm = server.memory()
            start = time.perf_counter()
            rows = stream_base(server.target, base, columns, as_of, chunk_contacts)
            seconds = time.perf_counter() - start
            after = server.memory()
        assert rows == n, (rows, n)
        peaks[n] = after["VmHWM"]
        log(
            f"RSS {n:,}: after warm-up {warm['VmRSS'] / MIB:.0f} MiB, peak {after['VmHWM'] / MIB:.0f} MiB ({seconds:.1f}s stream)"
        )
        out.append(
            {
                "case": "rss: server after warm-up (VmRSS)",
                "contacts": n,
                "rss_mib": warm["VmRSS"] / MIB,
                "ratio": None,
                "ratio_of": "",
            }
        )
        out.append(
            {"case": "rss: server peak over one stream (VmHWM)", "contacts": n, "median_s": seconds, "contacts_per_s": n / seconds,
             "rss_mib": after["VmHWM"] / MIB, "ratio": None, "ratio_of": "single run"}
        )  # fmt: skip
    (n1, _), (n4, _) = sizes
    out[-1]["ratio"] = peaks[n4] / peaks[n1]
    out[-1]["ratio_of"] = f"peak {n4:,} / peak {n1:,} (goal <= 1.2)"
    return out


# ---------------------------------------------------------------------------------------------


COLUMNS: list[Column] = [("case", "case", "<", 56), ("contacts", "contacts", ",", 10), ("median_s", "median s", ".2f", 9),
     ("contacts_per_s", "contacts/s", ",.0f", 11), ("rss_mib", "RSS MiB", ",.0f", 8), ("ratio", "ratio", ".2f", 6)]  # fmt: skip


def print_table(rows: list[dict], header: str) -> None:
    """This benchmark's table (``table.print_columns`` with its columns)."""
    print_columns(rows, header, COLUMNS)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--contacts", type=int, default=1_000_000, help="N, contacts of the base (default 1000000)"
    )
    parser.add_argument(
        "--repeats", type=int, default=3, help="timed rounds per case; medians reported (default 3)"
    )
    parser.add_argument("--seed", type=int, default=0, help="simulation seed (default 0)")
    parser.add_argument(
        "--workdir",
        type=Path,
        default=Path("bench-data"),
        help="bases and models, reused across runs (default bench-data)",
    )
    parser.add_argument(
        "--chunk-contacts",
        type=int,
        default=50_000,
        help="contacts per chunk (default 50000, the CLI's)",
    )
    parser.add_argument(
        "--skip-rss",
        action="store_true",
        help="skip the N vs 4N server memory case (and the 4N base)",
    )
    parser.add_argument("--skip-rfm", action="store_true", help="skip the RFM engine comparison")
    parser.add_argument("--json", type=Path, default=None, help="also write the rows as JSON there")
    args = parser.parse_args()
    if args.repeats < 1 or args.contacts < 1:
        parser.error("--contacts and --repeats must be >= 1")

    t0 = time.perf_counter()
    n, workdir = args.contacts, args.workdir.resolve()
    workdir.mkdir(parents=True, exist_ok=True)
    base = ensure_base(workdir / f"base-{n}-seed{args.seed}", n, args.seed)
    models = ensure_models(workdir / f"models-{n}-seed{args.seed}", base, n, args.seed)
    base4 = (
        None
        if args.skip_rss
        else ensure_base(workdir / f"base-{4 * n}-seed{args.seed}", 4 * n, args.seed)
    )

    log(
        f"throughput: {args.repeats} rounds of gRPC (Parquet, pre-read), read, ORT alone, in-process, rescore"
    )
    rows, detail = throughput(base, models, workdir, n, args.repeats, args.chunk_contacts)
    columns = detail.pop("columns")
    if not args.skip_rfm:
        rows += rfm_rows(base, args.repeats)
    if base4 is not None:
        rows += rss_rows([(n, base), (4 * n, base4)], models, workdir, columns, args.chunk_contacts)

    versions = {
        "python": platform.python_version(),
        "onnxruntime": onnxruntime.__version__,
        "numba": numba.__version__,
        "pyarrow": pa.__version__,
        "grpcio": grpc.__version__,
    }
    try:
        import duckdb
        import polars

        versions |= {"duckdb": duckdb.__version__, "polars": polars.__version__}
    except ImportError:
        pass
    machine = {
        "cores": os.cpu_count(),
        "numba_threads": numba.get_num_threads(),
        "platform": platform.platform(),
        "load_avg": os.getloadavg(),
    }
    stages = detail["pipeline_stage_s"]
    header = (
        f"scorecast e2e: {n:,} contacts, scores {','.join(SCORES)}, chunks of {args.chunk_contacts:,}, median of {args.repeats}\n"
        f"machine: {machine['cores']} cores, {machine['platform']}; load avg at end {', '.join(f'{x:.1f}' for x in machine['load_avg'])}\n"
        f"versions: " + ", ".join(f"{k} {v}" for k, v in versions.items()) + "\n"
        f"in-process pipeline stages, last round: features {stages['features']:.2f}s, onnx {stages['onnx']:.2f}s,"
        f" assemble {stages['assemble']:.2f}s\n"
    )
    print()
    print_table(rows, header)
    print(f"\ntotal {time.perf_counter() - t0:.0f}s")
    if args.json is not None:
        args.json.write_text(
            json.dumps(
                {
                    "machine": machine,
                    "versions": versions,
                    "args": {k: str(v) for k, v in vars(args).items()},
                    "detail": detail,
                    "rows": rows,
                },
                indent=2,
            )
            + "\n"
        )


if __name__ == "__main__":
    main()
