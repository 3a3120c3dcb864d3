"""Bulk transport: the gRPC Score stream vs Arrow Flight do_exchange, same data, same pipeline.

    python benchmarks/transport.py --contacts 1000000 --repeats 3 [--workdir DIR] [--json FILE]

One server subprocess (this script with ``--serve``) holds one ``ModelRepository`` and serves
it twice: the scorecast gRPC server (``server.app.start_server``, the real servicer) and an Arrow
Flight server whose ``do_exchange`` feeds the same ``ScoringPipeline``. Both also have an echo
method (chunks sent back untouched, no scoring), so transport alone is measured too. The client
streams the whole base (pre-read ``BaseChunks``, ``--chunk-contacts`` per chunk) each way per
round, taking turns, plus the in-process pipeline over the same chunks:

- ``grpc score``: ``ScorecastClient.score`` (Arrow IPC bytes inside protobuf messages);
- ``flight score``: one ``do_exchange``; each chunk is the orders as one record batch with the
  chunk's ``contacts`` table as IPC bytes in its ``app_metadata``; one scores batch back per chunk;
- ``grpc echo`` / ``flight echo``: the same chunk payloads sent and returned unchanged;
- ``in-process``: ``ScoringPipeline.score`` over the same chunks.

MB/s counts the chunks' Arrow IPC payload (requests only) divided by the end-to-end time.
Medians over rounds; ratios are between medians measured in this run.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Mapping
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import grpc
import pyarrow as pa
import pyarrow.flight as flight
from e2e import SCORES, base_as_of, ensure_base, ensure_models, log, stream

from scorecast.base import BaseChunks
from scorecast.client import encode_table
from scorecast.proto import DEFAULT_MAX_MESSAGE_BYTES, pb
from scorecast.server.pipeline import ScoreSpec, ScoringPipeline
from scorecast.server.repository import ModelRepository
from scorecast.server.rescore import input_columns

ECHO_METHOD = "/bench.Echo/Stream"
MB = 1e6


# ---------------------------------------------------------------------------------------------
# server side (runs in the subprocess)


def _decode_ipc(data: bytes | pa.Buffer) -> pa.Table:
    with pa.ipc.open_stream(pa.py_buffer(data) if isinstance(data, bytes) else data) as reader:
        return reader.read_all()


class FlightScorer(flight.FlightServerBase):
    """do_exchange over the shared pipeline: command = JSON {scores, as_of_us} or {"echo": true}."""

    def __init__(self, repository: ModelRepository, location: str) -> None:
        super().__init__(location)
        self.repository = repository

    def do_exchange(self, context, descriptor, reader, writer):  # noqa: ANN001, ANN201 (Flight's signature)
        command = json.loads(descriptor.command)
        started = False
        if command.get("echo"):
            for chunk in reader:
                if not started:
                    writer.begin(chunk.data.schema)
                    started = True
                writer.write_with_metadata(chunk.data, chunk.app_metadata)
            return
        pipeline = ScoringPipeline(self.repository, ScoreSpec(scores=tuple(command["scores"]), as_of_us=command["as_of_us"]))
        for chunk in reader:
            tables = {"orders": pa.Table.from_batches([chunk.data]), "contacts": _decode_ipc(chunk.app_metadata)}
            batch = pipeline.score(tables)
            if not started:
                writer.begin(batch.schema)
                started = True
            writer.write_batch(batch)


def _echo_handler() -> grpc.GenericRpcHandler:
    def echo(requests: Iterator[bytes], context: grpc.ServicerContext) -> Iterator[bytes]:
        yield from requests

    handler = grpc.stream_stream_rpc_method_handler(echo)  # bytes in, bytes out (no (de)serialisers)
    return grpc.method_handlers_generic_handler("bench.Echo", {"Stream": handler})


def serve(models: Path, port_file: Path) -> None:
    """Both servers on one repository; ports written to ``port_file``; runs until stdin closes."""
    from scorecast.server.app import start_server
    from scorecast.server.config import ServerSettings

    settings = ServerSettings.load(models=models, port=0)
    running = start_server(settings)
    running.server.add_generic_rpc_handlers((_echo_handler(),))
    scorer = FlightScorer(running.repository, "grpc://127.0.0.1:0")
    threading.Thread(target=scorer.serve, daemon=True).start()
    port_file.write_text(json.dumps({"grpc": running.port, "flight": scorer.port}))
    sys.stdin.read()
    scorer.shutdown()
    running.stop(1)


# ---------------------------------------------------------------------------------------------
# client side


def grpc_echo(target: str, payloads: list[bytes]) -> int:
    """Send pre-serialized ScoreRequest messages through the echo method; bytes returned."""
    options = [("grpc.max_receive_message_length", DEFAULT_MAX_MESSAGE_BYTES), ("grpc.max_send_message_length", DEFAULT_MAX_MESSAGE_BYTES)]
    with grpc.insecure_channel(target, options=options) as channel:
        call = channel.stream_stream(ECHO_METHOD)
        return sum(len(r) for r in call(iter(payloads)))


def _flight_batches(chunks: list[Mapping[str, pa.Table]]) -> list[tuple[pa.RecordBatch, pa.Buffer]]:
    out = []
    for chunk in chunks:
        batches = chunk["orders"].combine_chunks().to_batches()
        assert len(batches) == 1, len(batches)
        out.append((batches[0], pa.py_buffer(encode_table(chunk["contacts"]))))
    return out


def flight_exchange(port: int, command: dict, chunks: list[Mapping[str, pa.Table]]) -> int:
    """One do_exchange: write every chunk from a thread while reading the replies; rows back."""
    client = flight.FlightClient(f"grpc://127.0.0.1:{port}")
    writer, reader = client.do_exchange(flight.FlightDescriptor.for_command(json.dumps(command)))
    failure: list[BaseException] = []

    def write() -> None:
        try:
            # encoded inside the timed run, as the gRPC client encodes its chunks
            for i, (batch, contacts) in enumerate(_flight_batches(chunks)):
                if i == 0:
                    writer.begin(batch.schema)
                writer.write_with_metadata(batch, contacts)
            writer.done_writing()
        except BaseException as exc:  # surfaced in the caller's thread
            failure.append(exc)

    thread = threading.Thread(target=write)
    thread.start()
    rows = 0
    for chunk in reader:
        rows += chunk.data.num_rows
    thread.join()
    writer.close()
    client.close()
    if failure:
        raise failure[0]
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--contacts", type=int, default=1_000_000, help="contacts of the base (default 1000000)")
    parser.add_argument("--repeats", type=int, default=3, help="timed rounds; medians reported (default 3)")
    parser.add_argument("--seed", type=int, default=0, help="simulation seed (default 0)")
    parser.add_argument("--workdir", type=Path, default=Path("bench-data"), help="bases and models, reused (default bench-data)")
    parser.add_argument("--chunk-contacts", type=int, default=50_000, help="contacts per chunk (default 50000)")
    parser.add_argument("--json", type=Path, default=None, help="also write the rows as JSON there")
    parser.add_argument("--serve", nargs=2, metavar=("MODELS", "PORT_FILE"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        serve(Path(args.serve[0]), Path(args.serve[1]))
        return

    n, workdir = args.contacts, args.workdir.resolve()
    workdir.mkdir(parents=True, exist_ok=True)
    base = ensure_base(workdir / f"base-{n}-seed{args.seed}", n, args.seed)
    models = ensure_models(workdir / f"models-{n}-seed{args.seed}", base, n, args.seed)
    as_of = base_as_of(base)
    as_of_us = int(as_of.timestamp() * 1_000_000)
    repository = ModelRepository.load(models)
    columns = input_columns(f for s in SCORES for f in repository.get(s).meta.features)
    assert set(columns) <= {"orders", "contacts"}, columns  # the Flight layout below carries these two
    chunks = list(BaseChunks(base, columns, chunk_contacts=args.chunk_contacts))
    payloads = [pb.ScoreRequest(chunk=pb.ContactChunk(tables={k: encode_table(t) for k, t in c.items()})).SerializeToString() for c in chunks]
    payload_bytes = sum(len(p) for p in payloads)
    spec = ScoreSpec(scores=SCORES, as_of_us=as_of_us)

    port_file = workdir / "transport.ports"
    port_file.unlink(missing_ok=True)
    proc = subprocess.Popen([sys.executable, __file__, "--serve", str(models), str(port_file)], stdin=subprocess.PIPE)
    try:
        while not port_file.exists():
            if proc.poll() is not None:
                raise RuntimeError("the server subprocess exited before it was ready")
            time.sleep(0.05)
        time.sleep(0.1)
        ports = json.loads(port_file.read_text())
        target = f"127.0.0.1:{ports['grpc']}"
        command = {"scores": list(SCORES), "as_of_us": as_of_us}
        cases = {
            "grpc score": lambda: stream(target, chunks, as_of),
            "flight score": lambda: flight_exchange(ports["flight"], command, chunks),
            "grpc echo": lambda: grpc_echo(target, payloads),
            "flight echo": lambda: flight_exchange(ports["flight"], {"echo": True}, chunks),
            "in-process": lambda: sum(ScoringPipeline(repository, spec).score(c).num_rows for c in chunks),
        }
        expected = {"grpc echo": payload_bytes, "flight echo": sum(len(c["orders"]) for c in chunks)}
        for name, run in cases.items():  # warm-up, and a check that every case did the whole job
            got = run()
            assert got == expected.get(name, n), (name, got)
        times: dict[str, list[float]] = {k: [] for k in cases}
        for round_ in range(args.repeats):
            for name, run in cases.items():
                t0 = time.perf_counter()
                run()
                times[name].append(time.perf_counter() - t0)
            log(f"round {round_ + 1}: " + ", ".join(f"{k} {v[-1]:.2f}s" for k, v in times.items()))
    finally:
        proc.stdin.close()  # type: ignore[union-attr]
        proc.wait(timeout=60)
    med = {k: statistics.median(v) for k, v in times.items()}
    ratios = {
        "flight score": ("grpc score", "Flight / gRPC, end to end"),
        "flight echo": ("grpc echo", "Flight / gRPC, transport alone"),
        "grpc score": ("in-process", "gRPC / in-process"),
    }
    print(f"\nscorecast transport: {n:,} contacts, {len(chunks)} chunks, {payload_bytes / MB:,.0f} MB of Arrow IPC payload, median of {args.repeats}")
    cols = f"{'case':<14} {'median s':>9} {'contacts/s':>11} {'MB/s':>8} {'ratio':>6}  ratio is (contacts/s)"
    print(cols)
    print("-" * len(cols))
    rows = []
    for name, seconds in med.items():
        ref = ratios.get(name)
        ratio = med[ref[0]] / seconds if ref else None
        rows.append({"case": name, "median_s": seconds, "contacts_per_s": n / seconds, "mb_per_s": payload_bytes / MB / seconds, "ratio": ratio, "all_s": times[name]})
        print(f"{name:<14} {seconds:>9.2f} {n / seconds:>11,.0f} {payload_bytes / MB / seconds:>8,.0f} {'' if ratio is None else f'{ratio:.2f}':>6}  {ref[1] if ref else ''}")
    if args.json is not None:
        args.json.write_text(json.dumps({"args": {k: str(v) for k, v in vars(args).items()}, "rows": rows}, indent=2) + "\n")


if __name__ == "__main__":
    main()
