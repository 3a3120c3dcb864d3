"""Three cheap attacks from outside against a ``scorecast serve`` subprocess (issue 15).

    python benchmarks/attacks.py [--bomb-rows 20000000] [--idle-streams 32] [--names 1000]

- **bomb**: one zstd-compressed Arrow IPC ``orders`` table of identical rows (a few hundred KB
  that decodes to ``--bomb-rows`` x 24 bytes) in a ScoreBatch; prints its status and the
  server's peak RSS (VmHWM) before and after.
- **idle**: ``--idle-streams`` Score streams that send a header and then nothing; then a
  1-contact ScoreBatch and a health check, each with a 1 s deadline; prints their outcome
  and latency.
- **labels**: ``--names`` ScoreBatch calls for random score names; prints how many
  ``scorecast_score_errors`` series ``/metrics`` then holds.

The fake models of tests/support/fakes.py are served with default settings (the server's
own defaults are what is measured).
"""

from __future__ import annotations

import argparse
import socket
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import grpc
import numpy as np
import pyarrow as pa
from grpc_health.v1 import health_pb2, health_pb2_grpc

from scorecast.client import encode_table
from scorecast.kernels.time_units import US_PER_DAY  # noqa: E402
from scorecast.process import ServerProcess
from scorecast.proto import pb, rpc
from tests.support.fakes import grouped_model, linear_model, segment_model, write_model

AS_OF_US = 1_767_225_600_000_000
OPTIONS = [("grpc.max_receive_message_length", -1), ("grpc.max_send_message_length", -1)]


def bomb_payload(rows: int) -> bytes:
    """``rows`` identical orders as one zstd-compressed IPC stream (in 1M-row batches)."""
    block = 1_000_000
    schema = pa.schema([("contact_id", pa.int64()), ("ts", pa.timestamp("us", tz="UTC")), ("amount", pa.float64())])
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, schema, options=pa.ipc.IpcWriteOptions(compression="zstd")) as writer:
        done = 0
        while done < rows:
            n = min(block, rows - done)
            writer.write_batch(pa.record_batch([pa.array(np.ones(n, np.int64)), pa.array(np.full(n, AS_OF_US - US_PER_DAY, np.int64), pa.timestamp("us", tz="UTC")),
                                                pa.array(np.ones(n))], schema=schema))
            done += n
    return sink.getvalue().to_pybytes()


def _request(tables: dict[str, bytes], score: str = "spend") -> pb.ScoreBatchRequest:
    opts = pb.ScoreOptions()
    opts.as_of.seconds = AS_OF_US // 1_000_000
    return pb.ScoreBatchRequest(header=pb.ScoreHeader(scores=[score], options=opts), chunk=pb.ContactChunk(tables=tables))


def attack_bomb(server: ServerProcess, stub: rpc.ScorecastStub, rows: int) -> None:
    payload = bomb_payload(rows)
    before = server.memory()["VmHWM"]
    start = time.perf_counter()
    try:
        response = stub.ScoreBatch(_request({"orders": payload}), timeout=600)
        outcome = f"OK ({response.rows} rows)"
    except grpc.RpcError as exc:
        outcome = f"{exc.code().name}: {exc.details()[:160]}"
    seconds = time.perf_counter() - start
    after = server.memory()["VmHWM"]
    mb = 1e6
    print(f"bomb: {len(payload) / 1e3:.0f} KB zstd -> {rows * 24 / mb:.0f} MB decoded ({rows:,} rows): {outcome} in {seconds:.2f}s; "
          f"server peak RSS {before / mb:.0f} MB -> {after / mb:.0f} MB")


def attack_idle(server: ServerProcess, n: int) -> None:
    hold = threading.Event()
    channels = [grpc.insecure_channel(server.target, options=OPTIONS) for _ in range(4)]

    def idle() -> object:
        yield pb.ScoreRequest(header=pb.ScoreHeader(scores=["spend"]))
        hold.wait(120)

    streams = [rpc.ScorecastStub(channels[i % 4]).Score(idle(), timeout=120) for i in range(n)]
    time.sleep(2.0)
    one = pa.table({"contact_id": [1], "ts": pa.array([AS_OF_US - US_PER_DAY], pa.timestamp("us", tz="UTC")), "amount": [1.0]})
    results = []
    with grpc.insecure_channel(server.target, options=OPTIONS) as channel:
        for name, call in (
            ("ScoreBatch(1 contact)", lambda: rpc.ScorecastStub(channel).ScoreBatch(_request({"orders": encode_table(one)}), timeout=1)),
            ("health Check", lambda: health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(service=""), timeout=1)),
        ):
            start = time.perf_counter()
            try:
                call()
                outcome = "OK"
            except grpc.RpcError as exc:
                outcome = exc.code().name
            results.append(f"{name} {outcome} in {(time.perf_counter() - start) * 1e3:.0f} ms")
    refused = sum(1 for s in streams if s.done() and s.code() == grpc.StatusCode.RESOURCE_EXHAUSTED)
    hold.set()
    for s in streams:
        s.cancel()
    for c in channels:
        c.close()
    print(f"idle: {n} idle Score streams ({refused} refused at once): " + "; ".join(results))


def attack_labels(server: ServerProcess, stub: rpc.ScorecastStub, metrics_port: int, names: int) -> None:
    rng = np.random.default_rng(0)
    orders = pa.table({"contact_id": [1], "ts": pa.array([AS_OF_US], pa.timestamp("us", tz="UTC")), "amount": [1.0]})
    payload = {"orders": encode_table(orders)}
    for _ in range(names):
        try:
            stub.ScoreBatch(_request(payload, f"x{rng.integers(1 << 62):x}"), timeout=10)
        except grpc.RpcError:
            pass
    text = urllib.request.urlopen(f"http://127.0.0.1:{metrics_port}/metrics", timeout=10).read().decode()
    series = [line for line in text.splitlines() if line.startswith("scorecast_score_errors_total{")]
    print(f"labels: {names} random score names -> {len(series)} scorecast_score_errors_total series, /metrics {len(text) / 1e3:.0f} KB")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bomb-rows", type=int, default=20_000_000, help="rows the bomb decodes to (24 bytes each; default 20M)")
    parser.add_argument("--idle-streams", type=int, default=32, help="idle Score streams (default 32)")
    parser.add_argument("--names", type=int, default=1000, help="random score names sent (default 1000)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="scorecast-attacks-") as tmp:
        models = Path(tmp) / "models"
        for model in (linear_model(), grouped_model(), segment_model()):
            write_model(models, model)
        metrics_port = _free_port()
        env = {"SCORECAST_METRICS_PORT": str(metrics_port), "SCORECAST_RELOAD_INTERVAL_S": "0"}
        for attack in ("bomb", "idle", "labels"):  # a fresh server each: one attack must not mask another
            with ServerProcess(models, Path(tmp), env=env) as server, grpc.insecure_channel(server.target, options=OPTIONS) as channel:
                stub = rpc.ScorecastStub(channel)
                if attack == "bomb":
                    attack_bomb(server, stub, args.bomb_rows)
                elif attack == "idle":
                    attack_idle(server, args.idle_streams)
                else:
                    attack_labels(server, stub, metrics_port, args.names)
    return 0


if __name__ == "__main__":
    sys.exit(main())
