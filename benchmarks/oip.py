"""A 1-contact ModelInfer (Open Inference Protocol) against a 1-contact ScoreBatch, same run.

    python benchmarks/oip.py [--workdir DIR] [--contacts 3000] [--requests 2000] [--scores rfm]

Simulates and trains a small base in ``--workdir`` (kept for the next run), starts a
``scorecast serve`` process, and sends the same contact's orders (only the columns the score
reads) as alternating ScoreBatch and ModelInfer calls over one channel, which goes first
switching every pair. Requests are built before timing; each time is one blocking round trip.
Prints both medians and p90s and ``ModelInfer / ScoreBatch`` (goal <= 1.3).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import grpc
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from scorecast.cli import main as cli
from scorecast.client import _chunk, header
from scorecast.process import ServerProcess
from scorecast.proto import oip, oip_rpc, pb, rpc

AS_OF = datetime(2026, 1, 1, tzinfo=UTC)


def _tensor(request: oip.ModelInferRequest, name: str, column: pa.ChunkedArray) -> None:
    column = column.combine_chunks()
    if pa.types.is_timestamp(column.type):
        column = column.cast(pa.int64())
    if pa.types.is_string(column.type):
        values = [v.encode() for v in column.to_pylist()]
        raw = b"".join(len(v).to_bytes(4, "little") + v for v in values)
        datatype = "BYTES"
    else:
        array = column.to_numpy(zero_copy_only=False)
        raw, datatype = array.tobytes(), {"i": "INT64", "f": "FP64", "b": "BOOL"}[array.dtype.kind]
    request.inputs.add(name=name, datatype=datatype, shape=[len(column)])
    request.raw_input_contents.append(raw)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workdir", type=Path, default=Path("build/bench-oip"))
    parser.add_argument("--contacts", type=int, default=3000)
    parser.add_argument("--requests", type=int, default=2000, help="calls of each kind")
    parser.add_argument("--scores", default="rfm", help="one score (ModelInfer takes one model)")
    args = parser.parse_args(argv)
    base, models = args.workdir / "base", args.workdir / "models"
    if not models.exists():
        assert cli(["simulate", "--contacts", str(args.contacts), "--seed", "7", "--out", str(base)]) == 0
        assert cli(["train", "--data", str(base), "--out", str(models)]) == 0
    orders = pq.read_table(base / "orders.parquet")
    contact = orders["contact_id"][0]
    one = orders.filter(pc.equal(orders["contact_id"], contact))
    with ServerProcess(models, args.workdir / "server") as server, grpc.insecure_channel(server.target) as channel:
        native, inference = rpc.ScorecastStub(channel), oip_rpc.GRPCInferenceServiceStub(channel)
        inputs = [t.name for t in inference.ModelMetadata(oip.ModelMetadataRequest(name=args.scores)).inputs]
        tables = {"orders": one.select([n.split(".", 1)[1] for n in inputs])}
        batch_request = pb.ScoreBatchRequest(header=header([args.scores], as_of=AS_OF), chunk=_chunk(tables))
        infer_request = oip.ModelInferRequest(model_name=args.scores)
        infer_request.parameters["as_of"].int64_param = int(AS_OF.timestamp() * 1_000_000)
        for name in inputs:
            _tensor(infer_request, name, one[name.split(".", 1)[1]])
        calls = {"ScoreBatch": lambda: native.ScoreBatch(batch_request), "ModelInfer": lambda: inference.ModelInfer(infer_request)}
        for call in calls.values():  # warm both paths (channel, handler threads)
            for _ in range(50):
                call()
        seconds: dict[str, list[float]] = {name: [] for name in calls}
        order = list(calls)
        for i in range(args.requests):
            for name in order if i % 2 else reversed(order):
                start = time.perf_counter()
                calls[name]()
                seconds[name].append(time.perf_counter() - start)
    print(f"1 contact ({one.num_rows} orders), score {args.scores}, {args.requests} calls each, load {os.getloadavg()[0]:.1f}")
    for name, times in seconds.items():
        print(f"  {name:<11} median {statistics.median(times) * 1e3:6.3f} ms   p90 {np.percentile(times, 90) * 1e3:6.3f} ms")
    ratio = statistics.median(seconds["ModelInfer"]) / statistics.median(seconds["ScoreBatch"])
    print(f"  ModelInfer / ScoreBatch (medians): {ratio:.2f} (goal <= 1.3)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
