"""Behaviour group end to end: engagement, pressure, interests, web_heat, segments over gRPC.

    python benchmarks/behaviour.py --contacts 1000000 --repeats 3 [--workdir DIR] [--skip-read] [--skip-duckdb] [--json FILE]

A simulated base of N contacts (``SimulationConfig(n_contacts=N, seed=S)``: contacts, orders,
campaigns, e-mail and web events) and the five scores of the engagement/behaviour group trained
on it by ``scorecast.training.train.train`` (both timed once, reused from ``--workdir`` when
they match N and the seed). Then ``--repeats`` rounds, taking turns, after one untimed
warm-up pass each:

- ``grpc``: a ``scorecast serve`` subprocess, ``ScorecastClient.score`` fed by ``BaseChunks``
  reading only the needed columns from Parquet (campaigns, a reference table, sent whole with
  every chunk); the five scores in one stream; results consumed, not written;
- ``in-process``: the same ``ScoringPipeline`` in this process over the chunks read beforehand;
  its stage split (features / onnx / assemble) is printed for the last round;
- ``grpc-mem``: the same stream over the pre-read chunks, so ``grpc-mem / in-process`` isolates
  the transport;
- ``read``: ``list(BaseChunks)`` alone (the Parquet read and split ``grpc`` includes).
  ``--skip-read`` leaves out these last two;
- ``rescore``: ``scorecast rescore``'s function in this process, Parquet base in, Parquet
  scores out (split on disk, read-ahead, scoring, the atomic write);
- ``duckdb``: the floor for that, DuckDB only reading the same columns of the same Parquet
  tables and grouping each event table by contact (``count(*)`` and ``max`` of every column),
  results fetched as Arrow; all cores, like the rest. ``--skip-duckdb`` leaves out these two.

The server's peak RSS (VmHWM) is read after the last round. Medians over rounds; the ratio
gRPC / in-process is between medians measured in this run.
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
import time
from collections.abc import Callable, Iterable, Mapping
from datetime import datetime
from pathlib import Path

import grpc
import numba
import onnxruntime
import pyarrow as pa
from table import Column, print_columns

from scorecast.base import BaseChunks, table_names
from scorecast.kernels import passive_openmp
from scorecast.client import ScorecastClient
from scorecast.process import ServerProcess as Server
from scorecast.server.pipeline import ScoreSpec, ScoringPipeline
from scorecast.server.repository import ModelRepository
from scorecast.server.rescore import input_columns, rescore
from scorecast.training.simulate.retail import SimulationConfig, simulate_base, write_base
from scorecast.training.train import train

SCORES = ("engagement", "pressure", "interests", "web_heat", "segments")
TABLES_NEEDED = ("contacts", "orders", "campaigns", "email_events", "web_events")
MIB = 1024 * 1024


def log(message: str) -> None:
    print(f"[behaviour {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


# ---------------------------------------------------------------------------------------------
# data: one base and one model repository, reused when they match N and the seed


def ensure_base(path: Path, n_contacts: int, seed: int) -> tuple[Path, float | None]:
    """The base in ``path`` (simulated unless it matches); seconds simulating it, None if reused."""
    marker = path / "base.json"
    if marker.is_file():
        meta = json.loads(marker.read_text())
        if meta.get("n_contacts") == n_contacts and meta.get("seed") == seed and set(TABLES_NEEDED) <= set(table_names(path)):
            log(f"reusing base {path} ({n_contacts:,} contacts, seed {seed})")
            return path, None
    log(f"simulating {n_contacts:,} contacts (seed {seed}) into {path}")
    start = time.perf_counter()
    base = simulate_base(SimulationConfig(n_contacts=n_contacts, seed=seed))
    write_base(base, path, overwrite=True)
    del base
    gc.collect()
    seconds = time.perf_counter() - start
    log(f"simulated in {seconds:.1f}s")
    return path, seconds


def ensure_models(path: Path, base: Path, n_contacts: int, seed: int) -> tuple[Path, float | None]:
    """The five scores trained on ``base`` into ``path``; seconds training, None if reused."""
    marker = path / "trained-on.json"
    wanted = {"n_contacts": n_contacts, "seed": seed, "scores": list(SCORES)}
    if marker.is_file() and json.loads(marker.read_text()) == wanted and all(any((path / s).glob("*.onnx")) for s in SCORES):
        log(f"reusing models {path}")
        return path, None
    log(f"training {', '.join(SCORES)} on {base}")
    start = time.perf_counter()
    tmp = path.with_name(path.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    train(base, tmp, scores=list(SCORES))
    (tmp / "trained-on.json").write_text(json.dumps(wanted) + "\n")
    shutil.rmtree(path, ignore_errors=True)
    tmp.rename(path)
    gc.collect()
    seconds = time.perf_counter() - start
    log(f"trained in {seconds:.1f}s")
    return path, seconds


def base_as_of(base: Path) -> datetime:
    return datetime.fromisoformat(json.loads((base / "base.json").read_text())["as_of"])


# ---------------------------------------------------------------------------------------------
# rounds


def duckdb_read_and_group(base: Path, columns: Mapping[str, list[str]]) -> int:
    """The floor for a whole-base rescore: read the columns and group every table by contact;
    returns the contacts of the contacts table (as the other cases return their rows)."""
    import duckdb  # the bench extra: pip install -e '.[bench]'

    contacts = 0
    with duckdb.connect() as con:
        con.execute(f"SET threads TO {os.cpu_count() or 1}")
        for name, wanted in columns.items():
            source = f"read_parquet('{base / name}.parquet')"
            if "contact_id" not in wanted:  # a reference table: read whole
                con.sql(f"SELECT {', '.join(wanted)} FROM {source}").to_arrow_table()
                continue
            aggregates = ", ".join(["count(*) AS n"] + [f'max("{c}")' for c in wanted if c != "contact_id"])
            grouped = con.sql(f"SELECT contact_id, {aggregates} FROM {source} GROUP BY contact_id").to_arrow_table()
            if name == "contacts":
                contacts = grouped.num_rows
    return contacts


def throughput(
    base: Path, models: Path, workdir: Path, n: int, repeats: int, chunk_contacts: int, with_read: bool, with_duckdb: bool
) -> dict:
    """Medians of gRPC, in-process and read rounds, the in-process stage split, server peak RSS."""
    as_of = base_as_of(base)
    spec = ScoreSpec(scores=SCORES, as_of_us=int(as_of.timestamp() * 1_000_000))
    repository = ModelRepository.load(models)
    columns = input_columns(f for s in SCORES for f in repository.get(s).meta.features)
    log(f"input columns: {columns}")
    start = time.perf_counter()
    chunks = list(BaseChunks(base, columns, chunk_contacts=chunk_contacts))
    log(f"pre-read {len(chunks)} chunks in {time.perf_counter() - start:.1f}s")
    stages: dict[str, float] = {}

    def run_inprocess() -> int:
        pipeline = ScoringPipeline(repository, spec)
        rows = sum(pipeline.score(c).num_rows for c in chunks)
        stages.clear()
        stages.update(pipeline.seconds)
        return rows

    def run_read() -> int:
        return sum(len(c["contacts"]) for c in BaseChunks(base, columns, chunk_contacts=chunk_contacts))

    with Server(models, workdir) as server:
        warm_rss = server.memory()["VmRSS"]

        def run_stream(source: Iterable[Mapping[str, pa.Table]]) -> int:
            rows = 0
            with ScorecastClient(server.target) as client:
                client.wait_ready(timeout=30)
                for batch in client.score(source, list(SCORES), as_of=as_of):
                    rows += batch.num_rows
            return rows

        cases: dict[str, Callable[[], int]] = {
            "grpc": lambda: run_stream(BaseChunks(base, columns, chunk_contacts=chunk_contacts)),
            "in-process": run_inprocess,
        }
        if with_read:
            cases["grpc-mem"] = lambda: run_stream(chunks)
            cases["read"] = run_read
        if with_duckdb:
            out = workdir / "behaviour-rescore.parquet"
            cases["rescore"] = lambda: rescore(repository, base, spec, out, chunk_contacts=chunk_contacts).rows
            cases["duckdb"] = lambda: duckdb_read_and_group(base, {"contacts": ["contact_id"], **columns})
        times: dict[str, list[float]] = {name: [] for name in cases}
        log("warm-up pass of every case")
        for name, run in cases.items():
            rows = run()
            assert rows == n, (name, rows, n)
        for round_ in range(repeats):
            for name, run in cases.items():
                start = time.perf_counter()
                rows = run()
                times[name].append(time.perf_counter() - start)
                assert rows == n, (name, rows, n)
            log(f"round {round_ + 1}/{repeats}: " + ", ".join(f"{k} {v[-1]:.2f}s" for k, v in times.items()))
        peak_rss = server.memory()["VmHWM"]
    return {
        "times": times,
        "stages": dict(stages),
        "warm_rss": warm_rss,
        "peak_rss": peak_rss,
        "chunks": len(chunks),
        "columns": columns,
    }


# ---------------------------------------------------------------------------------------------


def table(result: dict, n: int) -> list[dict]:
    times = result["times"]
    med = {k: statistics.median(v) for k, v in times.items()}
    rate = {k: n / v for k, v in med.items()}
    ratios = sorted(t_in / t_grpc for t_in, t_grpc in zip(times["in-process"], times["grpc"], strict=True))
    spread = f"per round {ratios[0]:.2f}-{ratios[-1]:.2f}" if len(ratios) > 1 else "one round"
    rows = [
        {
            "case": "gRPC Score stream, 5 scores (Parquet -> client -> server)",
            "key": "grpc",
            "ratio": rate["grpc"] / rate["in-process"],
            "ratio_of": f"gRPC / in-process contacts/s ({spread})",
            "rss_mib": result["peak_rss"] / MIB,
        },
        {"case": "ScoringPipeline in process, pre-read chunks", "key": "in-process", "ratio": None, "ratio_of": ""},
    ]
    if "read" in times:
        rows.append(
            {
                "case": "gRPC Score stream over the pre-read chunks",
                "key": "grpc-mem",
                "ratio": rate["grpc-mem"] / rate["in-process"],
                "ratio_of": "gRPC pre-read / in-process: transport alone",
            }
        )
        rows.append(
            {
                "case": "read: BaseChunks over the Parquet base",
                "key": "read",
                "ratio": med["read"] / med["grpc"],
                "ratio_of": "read s / gRPC s",
            }
        )
    if "rescore" in times:
        rows.append(
            {
                "case": "rescore: Parquet base -> Parquet scores, in process",
                "key": "rescore",
                "ratio": med["rescore"] / med["duckdb"],
                "ratio_of": "rescore s / DuckDB s (goal <= 1.5)",
            }
        )
        rows.append({"case": "DuckDB: read the same columns, group by contact", "key": "duckdb", "ratio": None, "ratio_of": ""})
    for r in rows:
        key = r.pop("key")
        r |= {"contacts": n, "median_s": med[key], "contacts_per_s": rate[key], "all_s": times[key]}
    return rows


COLUMNS: list[Column] = [("case", "case", "<", 58), ("contacts", "contacts", ",", 10), ("median_s", "median s", ".2f", 9),
     ("contacts_per_s", "contacts/s", ",.0f", 11), ("rss_mib", "peak RSS MiB", ",.0f", 12), ("ratio", "ratio", ".2f", 6)]  # fmt: skip


def print_table(rows: list[dict], header: str) -> None:
    """This benchmark's table (``table.print_columns`` with its columns)."""
    print_columns(rows, header, COLUMNS)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--contacts", type=int, default=1_000_000, help="N, contacts of the base (default 1000000)")
    parser.add_argument("--repeats", type=int, default=3, help="timed rounds per case; medians reported (default 3)")
    parser.add_argument("--seed", type=int, default=0, help="simulation seed (default 0)")
    parser.add_argument(
        "--workdir", type=Path, default=Path("bench-data"), help="base and models, reused across runs (default bench-data)"
    )
    parser.add_argument("--chunk-contacts", type=int, default=50_000, help="contacts per chunk (default 50000, the CLI's)")
    parser.add_argument("--skip-read", action="store_true", help="skip the pre-read gRPC and read-alone cases")
    parser.add_argument("--skip-duckdb", action="store_true", help="skip the rescore and DuckDB cases")
    parser.add_argument("--json", type=Path, default=None, help="also write the results as JSON there")
    args = parser.parse_args()
    passive_openmp()  # as `scorecast serve` and `rescore` do: the in-process cases run like them
    if args.repeats < 1 or args.contacts < 1:
        parser.error("--contacts and --repeats must be >= 1")

    t0 = time.perf_counter()
    n, workdir = args.contacts, args.workdir.resolve()
    workdir.mkdir(parents=True, exist_ok=True)
    base, simulate_s = ensure_base(workdir / f"behaviour-base-{n}-seed{args.seed}", n, args.seed)
    models, train_s = ensure_models(workdir / f"behaviour-models-{n}-seed{args.seed}", base, n, args.seed)
    result = throughput(base, models, workdir, n, args.repeats, args.chunk_contacts, not args.skip_read, not args.skip_duckdb)
    rows = table(result, n)

    versions = {
        "python": platform.python_version(),
        "onnxruntime": onnxruntime.__version__,
        "numba": numba.__version__,
        "pyarrow": pa.__version__,
        "grpcio": grpc.__version__,
    }
    if not args.skip_duckdb:
        import duckdb

        versions["duckdb"] = duckdb.__version__
    machine = {"cores": os.cpu_count(), "platform": platform.platform(), "load_avg": os.getloadavg()}
    stages = result["stages"]

    def once(seconds: float | None) -> str:
        return "reused from --workdir" if seconds is None else f"{seconds:.1f}s"

    header = (
        f"scorecast behaviour group: {n:,} contacts, scores {','.join(SCORES)}, chunks of {args.chunk_contacts:,}"
        f" ({result['chunks']}), median of {args.repeats}\n"
        f"machine: {machine['cores']} cores, {machine['platform']}; load avg at end {', '.join(f'{x:.1f}' for x in machine['load_avg'])}\n"
        f"versions: " + ", ".join(f"{k} {v}" for k, v in versions.items()) + "\n"
        f"once: simulate {once(simulate_s)}, train {once(train_s)}\n"
        f"in-process pipeline stages, last round: features {stages.get('features', 0):.2f}s, onnx {stages.get('onnx', 0):.2f}s,"
        f" assemble {stages.get('assemble', 0):.2f}s\n"
        f"server RSS: {result['warm_rss'] / MIB:,.0f} MiB after warm-up, peak (VmHWM) {result['peak_rss'] / MIB:,.0f} MiB\n"
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
                    "simulate_s": simulate_s,
                    "train_s": train_s,
                    "pipeline_stage_s": stages,
                    "server_rss_mib": {"warm": result["warm_rss"] / MIB, "peak": result["peak_rss"] / MIB},
                    "chunks": result["chunks"],
                    "columns": result["columns"],
                    "rows": rows,
                },
                indent=2,
            )
            + "\n"
        )


if __name__ == "__main__":
    main()
