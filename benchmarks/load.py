"""Load test: concurrent ScoreBatch callers and 1M-contact Score streams against a server process.

    python benchmarks/load.py --contacts 1000000 --repeats 3 [--workdir DIR] [--duration 3]
        [--callers 1,16,64] [--sizes 1,100,10000] [--config NAME:PROCESSES:SERVE_ARGS ...] [--no-floor]
        [--baseline CHECKOUT] [--quick] [--json FILE]

1. ``ScoreBatch``: for each request size (contacts per request, taken from the simulated base
   with all their orders) and each number of concurrent callers, every caller (a separate
   process, so the client's GIL is not what is measured) sends requests back to back for
   ``--duration`` seconds over its own channel, each call with a ``--deadline``. Per repetition:
   requests/s, contacts/s, the latency p50/p99/max over every request of every caller, the calls
   that failed (any status: none is the goal, with default settings) and the mean number of calls
   scored per pass (dynamic batching, from the server's /metrics; ``-`` when it batches nothing);
   the table gives medians over repetitions.
2. ``Score`` stream: the whole base (``--contacts``, pre-read chunks of ``--chunk-contacts``)
   over one stream, taking turns with the same ``ScoringPipeline`` in this process over the same
   chunks; ``stream / in-process`` is the ratio of medians (goal >= 0.9).

3. The floor: the bare grpcio + ONNX Runtime server of ``bare_server.py`` on the same ONNX
   files, fed the same contacts' features precomputed (by scorecast's own feature code, in this
   process), takes its turn in every ScoreBatch case; ``p50 ×floor`` and ``p99 ×floor`` are
   scorecast's latency over the floor's (goal <= 1.3 for one contact). ``--no-floor`` skips it
   and the API floor.
4. The API floor: the same server with ``--api`` (``bare_server.py``), the least a server of
   scorecast's API does: the same ScoreBatch request bytes decoded from Arrow and validated,
   precomputed features, an Arrow batch back. ``p50 ×API`` is scorecast's latency over it: what
   scorecast's own code costs, apart from what the API's encoding costs (the API floor's own
   ``p50 ×floor``).

``--config`` (repeatable) compares server set-ups in one run, taking turns within every
repetition: e.g. ``--config default:1: --config 'off:1:--batch-max-delay-ms 0'`` runs one
default server against one that scores every call alone; ``NAME:2:`` is two processes sharing
one port (SO_REUSEPORT). Ratios are against the first set-up. The default set-ups: batching on
and off, one process and two. ``--baseline CHECKOUT``: one more set-up, ``before``, the server of
another checkout (an earlier commit, with its own ``.venv``), for before/after in one run.
``--quick``: callers 1 and 16, one repetition of 1 s, for development.

``server CPU`` is the server's user+system CPU seconds (its process and any children, from
/proc) over the timed window divided by the window: 2.0 means two cores busy; ``CPU/call`` is
that per answered call, which compares code on a shared machine where a server's requests/s
follow the CPU share it wins. The server is a
``scorecast serve`` subprocess (``scorecast.process.ServerProcess``) on loopback; scores
``rfm,affinity``. The machine's load average is printed: on a shared machine absolute latencies
are noisy, ratios measured in the same run much less so.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import multiprocessing as mp
import os
import shlex
import socket
import statistics
import subprocess
import sys
import time
import urllib.request
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import bare_server
import numpy as np
import pyarrow as pa
from e2e import SCORES, base_as_of, ensure_base, ensure_models, log, stream
from table import Column, print_columns

from scorecast.base import BaseChunks
from scorecast.client import _chunk, header
from scorecast.kernels import FeatureFrame
from scorecast.process import ServerProcess
from scorecast.server.pipeline import ScoreSpec, ScoringPipeline
from scorecast.server.repository import ModelRepository
from scorecast.server.rescore import input_columns

# ---------------------------------------------------------------------------------------------
# server CPU from /proc


def _children(pid: int) -> list[int]:
    out = []
    for task in Path(f"/proc/{pid}/task").glob("*/children"):
        out += [int(c) for c in task.read_text().split()]
    return out


def cpu_seconds(*pids: int) -> float:
    """User + system CPU seconds of processes and their descendants so far (Linux /proc)."""
    total, stack = 0.0, list(pids)
    tick = os.sysconf("SC_CLK_TCK")
    while stack:
        p = stack.pop()
        try:
            fields = Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / tick  # utime, stime
            stack += _children(p)
        except (FileNotFoundError, ProcessLookupError):
            continue
    return total


# ---------------------------------------------------------------------------------------------
# callers: one process each, reused across cases (channel per process)

_channels: dict[str, Any] = {}


def _channel(target: str) -> Any:
    if target not in _channels:
        import grpc

        from scorecast.proto import DEFAULT_MAX_MESSAGE_BYTES

        options = [
            ("grpc.max_receive_message_length", DEFAULT_MAX_MESSAGE_BYTES),
            ("grpc.max_send_message_length", DEFAULT_MAX_MESSAGE_BYTES),
        ]
        channel = grpc.insecure_channel(target, options=options)
        grpc.channel_ready_future(channel).result(timeout=30)
        _channels[target] = channel
    return _channels[target]


def connect(target: str) -> int:
    """Open this caller process's channel ahead of the timed cases."""
    _channel(target)
    time.sleep(0.2)  # so that each worker of the pool takes one of these jobs
    return os.getpid()


def caller(job: tuple[str, str, bytes, float, float, float]) -> tuple[list[float], float, int]:
    """Send one request back to back from ``start`` until ``end`` (epoch s), each with a deadline
    of ``deadline`` s; latencies of the answered calls, seconds sent, and the calls that failed.

    Requests and responses stay bytes (no protobuf on this side), for scorecast and the bare
    floor alike: what is timed is the server and the transport.
    """
    import grpc

    target, method, raw, start, end, deadline = job
    call = _channel(target).unary_unary(method)
    for _ in range(2):  # first-call costs out of the window
        call(raw, timeout=30)
    while time.time() < start:
        time.sleep(0.0005)
    latencies = []
    failed = 0
    clock = time.perf_counter
    began = time.time()
    while True:  # one request at least, even for a caller that got ready late
        t0 = clock()
        try:
            call(raw, timeout=deadline)
            latencies.append(clock() - t0)
        except grpc.RpcError:
            failed += 1
        if time.time() >= end:
            return latencies, time.time() - began, failed


def request_tables(chunk: Mapping[str, pa.Table], k: int) -> dict[str, pa.Table]:
    """The first ``k`` contacts of a chunk that have orders, with all their rows (a contact
    without any would measure an empty feature path: 30 % of the simulated base)."""
    buyers = np.isin(chunk["contacts"]["contact_id"].to_numpy(), chunk["orders"]["contact_id"].to_numpy())
    contacts = chunk["contacts"].filter(pa.array(buyers)).slice(0, k)
    wanted = pa.array(contacts["contact_id"])
    tables = {"contacts": contacts}
    for name, table in chunk.items():
        if name != "contacts":
            mask = np.isin(table["contact_id"].to_numpy(), wanted.to_numpy())
            tables[name] = table.filter(pa.array(mask))
    return tables


def batch_request(tables: Mapping[str, pa.Table], as_of: datetime) -> bytes:
    """A serialized ScoreBatchRequest for these tables."""
    from scorecast.proto import pb

    return pb.ScoreBatchRequest(header=header(list(SCORES), as_of=as_of), chunk=_chunk(tables)).SerializeToString()


def floor_features(tables: Mapping[str, pa.Table], pipeline: ScoringPipeline) -> np.ndarray:
    """The bare servers' input for these contacts: every model's feature rows, precomputed here
    by scorecast's own feature code, side by side as float32."""
    frame = FeatureFrame(tables, pipeline.spec.as_of_us)
    parts = [p.matrix(len(frame), frame.matrix(p.data_features, p.params) if p.data_features else None) for p in pipeline.plans]
    return np.ascontiguousarray(np.hstack(parts), dtype=np.float32)


@dataclass
class Config:
    """One server set-up under test: ``servers`` processes on one port, each ``scorecast serve <args>``
    (kind ``scorecast``); or the bare grpcio + ONNX Runtime server (``bare_server.py``) on the
    same models, kind ``floor`` or, with ``--api``, kind ``api``."""

    name: str
    servers: int
    args: list[str]
    kind: str = "scorecast"
    target: str = ""
    pids: list[int] = field(default_factory=list)
    python: str | None = None
    """Another checkout's interpreter (``--baseline``); None: this one."""
    metrics: list[str] = field(default_factory=list)
    """The /metrics URL of each of its processes (scorecast set-ups)."""

    @property
    def floor(self) -> bool:
        """A bare server (the floor or the API floor), not scorecast."""
        return self.kind != "scorecast"

    @classmethod
    def parse(cls, text: str) -> Config:
        name, servers, args = text.split(":", 2)
        return cls(name, int(servers), shlex.split(args))

    @property
    def method(self) -> str:
        return bare_server.METHOD if self.kind == "floor" else bare_server.API_METHOD

    def start(self, models: Path, workdir: Path, stack: contextlib.ExitStack, model_files: Sequence[Path] = ()) -> None:
        if self.floor:
            command = [sys.executable, bare_server.__file__, *map(str, model_files), *self.args]
            process = stack.enter_context(subprocess.Popen(command, stdout=subprocess.PIPE, text=True))
            stack.callback(process.kill)
            line = process.stdout.readline() if process.stdout else ""
            if not line.startswith("PORT "):
                raise RuntimeError(f"bare server did not start: {line!r}")
            self.target, self.pids = f"127.0.0.1:{line.split()[1]}", [process.pid]
            return
        # each process serves /metrics on a port of its own (the batch sizes are read there)
        ports = [_free_port() for _ in range(self.servers)]
        self.metrics = [f"http://127.0.0.1:{p}/metrics" for p in ports]
        first = stack.enter_context(ServerProcess(models, workdir, args=[*self.args, "--metrics-port", str(ports[0])], python=self.python))
        self.target, self.pids = first.target, [first.pid]
        # more processes bound to the same port (SO_REUSEPORT, grpc's default on Linux): the
        # kernel spreads connections over them
        for port in ports[1:]:
            args = [*self.args, "--port", str(first.port), "--metrics-port", str(port)]
            self.pids.append(stack.enter_context(ServerProcess(models, workdir, args=args, python=self.python)).pid)

    def batches(self) -> tuple[float, float]:
        """(passes, calls scored in them) so far over its processes, from /metrics; (0, 0) for a floor."""
        passes = calls = 0.0
        for url in self.metrics:
            with urllib.request.urlopen(url, timeout=10) as response:
                for line in response.read().decode().splitlines():
                    if line.startswith("scorecast_batch_calls_count "):
                        passes += float(line.split()[1])
                    elif line.startswith("scorecast_batch_calls_sum "):
                        calls += float(line.split()[1])
        return passes, calls


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def one_batch_run(config: Config, pool: mp.pool.Pool, raw: bytes, n_callers: int, duration: float, deadline: float) -> dict:
    start = time.time() + 0.5 + 0.05 * n_callers  # every caller warm first
    end = start + duration
    jobs = [(config.target, config.method, raw, start, end, deadline)] * n_callers
    result = pool.map_async(caller, jobs, chunksize=1)
    while time.time() < start:
        time.sleep(0.001)
    cpu0 = cpu_seconds(*config.pids)
    batches0 = config.batches()
    while time.time() < end:
        time.sleep(0.001)
    cpu1 = cpu_seconds(*config.pids)
    results = result.get()
    batches1 = config.batches()
    lat = np.concatenate([np.asarray(x) for x, _, _ in results])
    passes = batches1[0] - batches0[0]
    return {
        # each caller's own window: one that started late does not dilute the rate
        "requests_per_s": sum(len(x) / seconds for x, seconds, _ in results),
        "p50_ms": float(np.percentile(lat, 50) * 1e3) if len(lat) else float("nan"),
        "p99_ms": float(np.percentile(lat, 99) * 1e3) if len(lat) else float("nan"),
        "max_ms": float(lat.max() * 1e3) if len(lat) else float("nan"),
        "server_cpu": (cpu1 - cpu0) / duration,
        "requests": len(lat),
        "failed": sum(f for _, _, f in results),
        # calls per pass; NaN where nothing was batched (batching off, or a floor)
        "batch_mean": (batches1[1] - batches0[1]) / passes if passes else float("nan"),
    }


def batch_cases(
    configs: list[Config],
    pool: mp.pool.Pool,
    requests: dict[int, dict[bool, bytes]],
    callers: Sequence[int],
    duration: float,
    repeats: int,
    deadline: float,
) -> list[dict]:
    """Every size x callers case, the configurations taking turns within each repetition.

    ``ratio``: req/s against the first configuration; ``p50 ×floor``/``p99 ×floor``: latency
    against the bare floor's, measured in the same repetitions (goal <= 1.3 for one contact);
    ``p50 ×API``/``p99 ×API``: scorecast's against the API floor's.
    """
    rows = []
    for size, raw in requests.items():
        for n_callers in callers:
            reps: dict[str, list[dict]] = {c.name: [] for c in configs}
            for _ in range(repeats):
                for config in configs:
                    reps[config.name].append(one_batch_run(config, pool, raw[config.kind], n_callers, duration, deadline))
            med_of = {name: {k: _median(r[k] for r in runs) for k in runs[0]} for name, runs in reps.items()}
            floor = next((med_of[c.name] for c in configs if c.kind == "floor"), None)
            api = next((med_of[c.name] for c in configs if c.kind == "api"), None)
            reference = None
            for config in configs:
                med = med_of[config.name]
                row = {
                    "case": f"ScoreBatch {size:,} contact(s)",
                    "config": config.name,
                    "callers": n_callers,
                    "contacts": size,
                    **med,
                }
                row["contacts_per_s"] = med["requests_per_s"] * size
                # the server's CPU per answered call: on a shared machine, what the code costs
                # apart from the CPU share the server wins against other processes
                row["cpu_ms_per_call"] = med["server_cpu"] / med["requests_per_s"] * 1e3 if med["requests_per_s"] else None
                row["failed"] = max(r["failed"] for r in reps[config.name])  # the worst repetition
                if row["batch_mean"] != row["batch_mean"]:  # NaN: nothing batched
                    row["batch_mean"] = None
                row["all"] = reps[config.name]
                if floor is not None and config.kind != "floor":
                    row["p50_x_floor"] = med["p50_ms"] / floor["p50_ms"]
                    row["p99_x_floor"] = med["p99_ms"] / floor["p99_ms"]
                if api is not None and not config.floor:
                    row["p50_x_api"] = med["p50_ms"] / api["p50_ms"]
                    row["p99_x_api"] = med["p99_ms"] / api["p99_ms"]
                if floor is not None and config.kind != "floor":
                    row["rps_x_floor"] = med["requests_per_s"] / floor["requests_per_s"]
                if reference is None:
                    reference = med["requests_per_s"]
                else:
                    row["ratio"] = med["requests_per_s"] / reference
                    row["ratio_of"] = f"req/s vs {configs[0].name}"
                rows.append(row)
                log(
                    f"ScoreBatch {size} x {n_callers} callers, {config.name}: {med['requests_per_s']:.0f} req/s,"
                    f" p50 {med['p50_ms']:.2f} ms, p99 {med['p99_ms']:.2f} ms, server CPU {med['server_cpu']:.2f},"
                    f" failed {row['failed']}, calls per pass {med['batch_mean']:.1f}"
                )
    return rows


def _median(values: Any) -> float:
    """The median of the values that are numbers (NaN: not measured in that repetition)."""
    finite = [v for v in values if v == v]
    return statistics.median(finite) if finite else float("nan")


def stream_cases(
    configs: list[Config], chunks: list[dict[str, pa.Table]], models: Path, as_of: datetime, repeats: int
) -> list[dict]:
    """The whole base over one Score stream per configuration, taking turns with the in-process pipeline."""
    n = sum(len(c["contacts"]) for c in chunks)
    spec = ScoreSpec(scores=SCORES, as_of_us=int(as_of.timestamp() * 1_000_000))
    repository = ModelRepository.load(models)

    def in_process() -> int:
        pipeline = ScoringPipeline(repository, spec)
        return sum(pipeline.score(c).num_rows for c in chunks)

    times: dict[str, list[float]] = {"in-process": [], **{c.name: [] for c in configs}}
    cpu: dict[str, list[float]] = {c.name: [] for c in configs}
    for config in configs:  # warm
        assert stream(config.target, chunks[:2], as_of) == sum(len(c["contacts"]) for c in chunks[:2])
    in_process()
    for round_ in range(repeats):
        for config in configs:
            cpu0, t0 = cpu_seconds(*config.pids), time.perf_counter()
            assert stream(config.target, chunks, as_of) == n
            times[config.name].append(time.perf_counter() - t0)
            cpu[config.name].append((cpu_seconds(*config.pids) - cpu0) / times[config.name][-1])
        t0 = time.perf_counter()
        assert in_process() == n
        times["in-process"].append(time.perf_counter() - t0)
        log(f"stream round {round_ + 1}: " + ", ".join(f"{k} {v[-1]:.2f}s" for k, v in times.items()))
    med = {k: statistics.median(v) for k, v in times.items()}
    rows = []
    for config in configs:
        per_round = sorted(b / a for a, b in zip(times[config.name], times["in-process"], strict=True))
        rows.append(
            {"case": f"Score stream {n:,} contacts", "config": config.name, "callers": 1, "contacts": n, "median_s": med[config.name],
             "contacts_per_s": n / med[config.name], "server_cpu": statistics.median(cpu[config.name]),
             "ratio": med["in-process"] / med[config.name],
             "ratio_of": f"stream / in-process (goal >= 0.9; per round {per_round[0]:.2f}-{per_round[-1]:.2f})", "all_s": times[config.name]}
        )  # fmt: skip
    rows.append({"case": "in-process pipeline, same chunks", "config": "-", "callers": 1, "contacts": n, "median_s": med["in-process"],
                 "contacts_per_s": n / med["in-process"], "all_s": times["in-process"]})  # fmt: skip
    return rows


DEFAULT_CONFIGS = ["batching:1:", "alone:1:--batch-max-delay-ms 0", "batching-2p:2:", "alone-2p:2:--batch-max-delay-ms 0"]
"""Batching on (the default settings) and off, one process and two."""

COLUMNS: list[Column] = [("case", "case", "<", 34), ("config", "config", "<", 16), ("callers", "callers", "d", 7),
     ("requests_per_s", "req/s", ",.0f", 8), ("contacts_per_s", "contacts/s", ",.0f", 11), ("p50_ms", "p50 ms", ".2f", 8),
     ("p99_ms", "p99 ms", ".2f", 8), ("max_ms", "max ms", ".1f", 7), ("rps_x_floor", "req/s ×floor", ".2f", 12),
     ("p50_x_floor", "p50 ×floor", ".2f", 10), ("p99_x_floor", "p99 ×floor", ".2f", 10),
     ("p50_x_api", "p50 ×API", ".2f", 8), ("p99_x_api", "p99 ×API", ".2f", 8), ("batch_mean", "calls/pass", ".1f", 10),
     ("failed", "failed", "d", 6), ("server_cpu", "srv CPU", ".2f", 7), ("cpu_ms_per_call", "CPU/call ms", ".2f", 11),
     ("ratio", "ratio", ".2f", 6)]  # fmt: skip


def print_table(rows: list[dict], title: str) -> None:
    """This benchmark's table (``table.print_columns`` with its columns)."""
    print_columns(rows, title, COLUMNS)


def _ints(text: str) -> list[int]:
    return [int(x) for x in text.split(",") if x.strip()]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--contacts", type=int, default=1_000_000, help="contacts of the base and of the stream case (default 1000000)"
    )
    parser.add_argument("--repeats", type=int, default=3, help="repetitions per case; medians reported (default 3)")
    parser.add_argument("--seed", type=int, default=0, help="simulation seed (default 0)")
    parser.add_argument("--workdir", type=Path, default=Path("bench-data"), help="bases and models, reused (default bench-data)")
    parser.add_argument("--chunk-contacts", type=int, default=50_000, help="contacts per stream chunk (default 50000)")
    parser.add_argument("--duration", type=float, default=3.0, help="seconds per ScoreBatch repetition (default 3)")
    parser.add_argument("--callers", type=_ints, default=[1, 16, 64], help="concurrent callers (default 1,16,64)")
    parser.add_argument("--deadline", type=float, default=2.0, help="each ScoreBatch call's deadline, s (default 2)")
    parser.add_argument(
        "--baseline", type=Path, default=None, help="a checkout with its own .venv: its server takes turns as set-up 'before'"
    )
    parser.add_argument("--quick", action="store_true", help="callers 1,16, one repetition of 1 s: for development")
    parser.add_argument("--sizes", type=_ints, default=[1, 100, 10_000], help="contacts per ScoreBatch (default 1,100,10000)")
    parser.add_argument(
        "--config",
        action="append",
        default=None,
        help="a server set-up NAME:PROCESSES:SERVE_ARGS, e.g. 'intra1:2:--intra-op-threads 1'; repeat to compare"
        " set-ups in one run, taking turns (default: batching on and off, 1 and 2 processes)",
    )
    parser.add_argument(
        "--no-floor",
        action="store_true",
        help="leave out the bare grpcio + ONNX Runtime floor and the API floor (bare_server.py)",
    )
    parser.add_argument("--skip-batch", action="store_true", help="skip the ScoreBatch cases")
    parser.add_argument("--skip-stream", action="store_true", help="skip the Score stream case")
    parser.add_argument("--json", type=Path, default=None, help="also write the rows as JSON there")
    args = parser.parse_args()
    if args.quick:
        args.callers, args.repeats, args.duration = [c for c in args.callers if c <= 16] or [1, 16], 1, 1.0

    t_start = time.perf_counter()
    n, workdir = args.contacts, args.workdir.resolve()
    workdir.mkdir(parents=True, exist_ok=True)
    base = ensure_base(workdir / f"base-{n}-seed{args.seed}", n, args.seed)
    models = ensure_models(workdir / f"models-{n}-seed{args.seed}", base, n, args.seed)
    as_of = base_as_of(base)
    repository = ModelRepository.load(models)
    columns = input_columns(f for s in SCORES for f in repository.get(s).meta.features)
    chunks = list(BaseChunks(base, columns, chunk_contacts=args.chunk_contacts))
    pipeline = ScoringPipeline(repository, ScoreSpec(scores=SCORES, as_of_us=int(as_of.timestamp() * 1_000_000)))
    model_files = [p.model.path for p in pipeline.plans]
    requests = {}
    for k in args.sizes:
        tables = request_tables(chunks[0], k)
        raw = batch_request(tables, as_of)
        requests[k] = {"scorecast": raw, "floor": floor_features(tables, pipeline).tobytes(), "api": raw}
    # the API floor's feature rows: those of the largest request (each smaller one is its first rows)
    api_features = workdir / "api-floor-features.npy"
    np.save(api_features, floor_features(request_tables(chunks[0], max(args.sizes)), pipeline))
    del repository, pipeline
    load_start = os.getloadavg()

    configs = [Config.parse(c) for c in args.config or DEFAULT_CONFIGS]
    workers = max(max(args.callers) + 1, 8)
    if args.baseline is not None:
        # the code before: every caller gets a slot (before issue 28, calls beyond max_workers
        # were refused at once); scorecast's own set-ups run with their default admission
        before = Config("before", 1, ["--max-workers", str(workers)], python=str(args.baseline.resolve() / ".venv" / "bin" / "python"))
        configs.append(before)
    if not args.no_floor and not args.skip_batch:
        configs.append(Config("bare-floor", 1, ["--max-workers", str(workers)], kind="floor"))
        configs.append(Config("API-floor", 1, ["--max-workers", str(workers), "--api", str(api_features)], kind="api"))
    rows: list[dict] = []
    with contextlib.ExitStack() as stack:
        for config in configs:
            config.start(models, workdir, stack, model_files)
        if not args.skip_batch:
            # spawn: the callers import nothing of the parent's state (no fork after numba/ORT)
            with mp.get_context("spawn").Pool(max(args.callers)) as pool:
                for config in configs:
                    pool.map(connect, [config.target] * max(args.callers), chunksize=1)
                rows += batch_cases(configs, pool, requests, args.callers, args.duration, args.repeats, args.deadline)
        if not args.skip_stream:
            rows += stream_cases([c for c in configs if not c.floor], chunks, models, as_of, args.repeats)
    load_end = os.getloadavg()
    described = "; ".join(
        f"{c.name} = "
        + (f"`bare_server.py {shlex.join(c.args)}`" if c.floor else f"{c.servers} x `scorecast serve {shlex.join(c.args)}`")
        + (f" ({c.python})" if c.python else "")
        for c in configs
    )
    title = (
        f"scorecast load: {described}; scores {','.join(SCORES)}, median of {args.repeats}"
        f" ({args.duration:.0f}s per ScoreBatch repetition)\n"
        f"machine: {os.cpu_count()} cores; load average at start {load_start[0]:.1f}, at end {load_end[0]:.1f}\n"
    )
    print()
    print_table(rows, title)
    print(f"\ntotal {time.perf_counter() - t_start:.0f}s")
    if args.json is not None:
        args.json.write_text(
            json.dumps(
                {"args": {k: str(v) for k, v in vars(args).items()}, "load": [load_start, load_end], "rows": rows}, indent=2
            )
            + "\n"
        )


if __name__ == "__main__":
    main()
