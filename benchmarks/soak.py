"""Soak: run ``scorecast serve`` for a set time under steady load, with reloads and bad requests
mixed in; report RSS over time, errors by kind and throughput.

    python benchmarks/soak.py --minutes 30 [--contacts 50000] [--out soak.json]

Nominal load (what one platform backend sends a scoring node, the load test's middle case):
8 ScoreBatch calls/s of 100 contacts each, plus one Score stream of 50k contacts per minute.
The soak runs at ``--load`` times that (default 2): paced, open loop, so a server that falls
behind shows it in the achieved rates rather than hiding it. Every ``--bad-every``-th call
is a malformed request (garbage Arrow IPC, a missing column, a wrong type, an unknown score,
an unknown version) that must get its own status code; every ``--reload-every`` seconds a new
version of ``rfm`` is dropped into the repository (written aside, renamed into place), the
oldest removed, and ``ReloadModels`` called (the server's poller would find it too).

Models: ``rfm, affinity, clv, churn`` trained on a simulated base of ``--contacts``. RSS is
sampled every 10 s; "flat" compares the mean of the last tenth of the run with the mean of
its second tenth (the first is warm-up), and the report prints the ratio. Exit status 1 if
any good request failed, a bad one got the wrong status, or the server died.
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import random
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import grpc
import onnx
import pyarrow as pa
import pyarrow.compute as pc

from scorecast.base import read_table
from scorecast.client import encode_table, header
from scorecast.metadata import METADATA_KEY, ModelMetadata
from scorecast.model_store import write_model
from scorecast.process import ServerProcess
from scorecast.proto import pb, rpc
from scorecast.training.simulate.retail import SimulationConfig, simulate_base, write_base
from scorecast.training.train import train

SCORES = ["rfm", "affinity", "clv", "churn"]
NOMINAL_BATCH_PER_S = 8.0
BATCH_CONTACTS = 100
NOMINAL_STREAMS_PER_MIN = 1.0
STREAM_CONTACTS = 50_000
STREAM_CHUNK = 10_000
SAMPLE_S = 10.0


def _chunks(orders: pa.Table, ids: pa.Array, size: int) -> list[bytes]:
    """Encoded orders tables for consecutive slices of ``ids`` (``size`` contacts each)."""
    out = []
    for lo in range(0, len(ids), size):
        part = orders.filter(pc.is_in(orders["contact_id"], ids[lo : lo + size]))
        out.append(encode_table(part))
    return out


def _bad_requests(orders: pa.Table) -> list[tuple[str, pb.ScoreBatchRequest, grpc.StatusCode]]:
    """Malformed ScoreBatch requests and the status each must get."""
    small = orders.slice(0, 200)

    def request(tables: dict[str, bytes], scores: list[str] = SCORES, **options: object) -> pb.ScoreBatchRequest:
        return pb.ScoreBatchRequest(header=header(scores, **options), chunk=pb.ContactChunk(tables=tables))  # type: ignore[arg-type]

    wrong_ts = small.set_column(small.schema.get_field_index("ts"), "ts", pa.array([str(v) for v in small["ts"].to_pylist()]))
    invalid = grpc.StatusCode.INVALID_ARGUMENT
    return [
        ("garbage-ipc", request({"orders": b"\xff\xff\xff\xff" + os.urandom(200)}), invalid),
        ("missing-column", request({"orders": encode_table(small.drop_columns(["ts"]))}), invalid),
        ("wrong-type", request({"orders": encode_table(wrong_ts)}), invalid),
        ("unknown-score", request({"orders": encode_table(small)}, ["nope"]), grpc.StatusCode.NOT_FOUND),
        ("unknown-version", request({"orders": encode_table(small)}, ["rfm"], model_versions={"rfm": "999999"}), grpc.StatusCode.NOT_FOUND),
    ]


class Tally:
    """Thread-safe counts of outcomes and per-minute throughput."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.counts: collections.Counter[str] = collections.Counter()
        self.contacts = 0
        self.latencies: list[float] = []
        self.failures: list[str] = []

    def add(self, key: str, contacts: int = 0, latency: float | None = None, failure: str | None = None) -> None:
        with self.lock:
            self.counts[key] += 1
            self.contacts += contacts
            if latency is not None:
                self.latencies.append(latency)
            if failure is not None and len(self.failures) < 50:
                self.failures.append(failure)


def _paced(rate_per_s: float, stop: threading.Event, work: callable, seed: int) -> None:  # type: ignore[valid-type]
    """Call ``work`` at ``rate_per_s`` on average (open loop, Poisson arrivals)."""
    rng = random.Random(seed)
    next_at = time.monotonic()
    while not stop.is_set():
        next_at += rng.expovariate(rate_per_s)
        delay = next_at - time.monotonic()
        if delay > 0 and stop.wait(delay):
            return
        work(rng)


def _bump_version(models: Path, score: str, version: int) -> Path:
    """Copy the newest file of ``score`` as ``version`` (metadata rewritten), written atomically."""
    newest = max((models / score).glob("*.onnx"), key=lambda p: int(p.stem))
    model = onnx.load(newest)
    prop = next(p for p in model.metadata_props if p.key == METADATA_KEY)
    meta = ModelMetadata.from_json(prop.value)
    prop.value = ModelMetadata(**{**meta.__dict__, "version": str(version)}).to_json()
    return write_model(model, models / score / f"{version}.onnx")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=30.0, help="duration (default 30)")
    parser.add_argument("--load", type=float, default=2.0, help="multiple of the nominal load (default 2)")
    parser.add_argument("--contacts", type=int, default=50_000, help="simulated base size (default 50000)")
    parser.add_argument("--bad-every", type=int, default=20, help="one malformed call per this many (default 20)")
    parser.add_argument("--reload-every", type=float, default=60.0, help="seconds between model drops + reloads (default 60)")
    parser.add_argument("--out", type=Path, default=None, help="write the report as JSON here")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="scorecast-soak-") as tmp:
        work = Path(tmp)
        print(f"simulating {args.contacts} contacts and training {SCORES} ...", flush=True)
        write_base(simulate_base(SimulationConfig(n_contacts=args.contacts, seed=3)), work / "base")
        train(work / "base", work / "models", scores=SCORES)
        orders = read_table(work / "base", "orders")
        assert orders is not None
        as_of = pc.max(orders["ts"]).as_py()
        ids = pc.unique(orders["contact_id"])
        batches = _chunks(orders, ids[: 200 * BATCH_CONTACTS], BATCH_CONTACTS)
        stream = _chunks(orders, ids[:STREAM_CONTACTS], STREAM_CHUNK)
        bad = _bad_requests(orders)
        tally = Tally()
        stop = threading.Event()
        rss: list[tuple[float, int]] = []
        options = [("grpc.max_receive_message_length", 64 << 20), ("grpc.max_send_message_length", 64 << 20)]

        with ServerProcess(work / "models", work, args=["--reload-interval", "0"]) as server:
            channel = grpc.insecure_channel(server.target, options=options)
            stub = rpc.ScorecastStub(channel)
            calls = [0]

            def batch_call(rng: random.Random) -> None:
                calls[0] += 1
                if calls[0] % args.bad_every == 0:
                    name, request, expected = bad[rng.randrange(len(bad))]
                    try:
                        stub.ScoreBatch(request, timeout=60)
                        tally.add(f"bad:{name}:OK", failure=f"{name} was accepted")
                    except grpc.RpcError as exc:
                        ok = exc.code() == expected
                        tally.add(f"bad:{name}:{exc.code().name}", failure=None if ok else f"{name}: {exc.code().name} {exc.details()}")
                    return
                request = pb.ScoreBatchRequest(header=header(SCORES, as_of=as_of), chunk=pb.ContactChunk(tables={"orders": batches[rng.randrange(len(batches))]}))
                start = time.perf_counter()
                try:
                    response = stub.ScoreBatch(request, timeout=60)
                    tally.add("batch:OK", contacts=response.rows, latency=time.perf_counter() - start)
                except grpc.RpcError as exc:
                    tally.add(f"batch:{exc.code().name}", failure=f"ScoreBatch: {exc.code().name} {exc.details()}")

            def stream_call(rng: random.Random) -> None:
                def requests():  # noqa: ANN202
                    yield pb.ScoreRequest(header=header(SCORES, as_of=as_of))
                    for chunk in stream:
                        yield pb.ScoreRequest(chunk=pb.ContactChunk(tables={"orders": chunk}))

                try:
                    rows = sum(r.rows for r in stub.Score(requests(), timeout=600))
                    tally.add("stream:OK", contacts=rows)
                except grpc.RpcError as exc:
                    tally.add(f"stream:{exc.code().name}", failure=f"Score: {exc.code().name} {exc.details()}")

            def reloader(rng: random.Random) -> None:
                version = max(int(p.stem) for p in (work / "models" / "rfm").glob("*.onnx")) + 1
                _bump_version(work / "models", "rfm", version)
                old = sorted((work / "models" / "rfm").glob("*.onnx"), key=lambda p: int(p.stem))[:-3]
                for path in old:
                    path.unlink()
                try:
                    report = stub.ReloadModels(pb.ReloadModelsRequest(), timeout=120)
                    tally.add("reload:OK" if not report.failures else "reload:FAILED", failure=None if not report.failures else str(report.failures))
                except grpc.RpcError as exc:
                    tally.add(f"reload:{exc.code().name}", failure=f"ReloadModels: {exc.code().name} {exc.details()}")

            # concurrent callers share the batch rate so one slow call does not stall the pacing
            batch_rate = NOMINAL_BATCH_PER_S * args.load
            callers = 4
            threads = [threading.Thread(target=_paced, args=(batch_rate / callers, stop, batch_call, i), daemon=True) for i in range(callers)]
            threads.append(threading.Thread(target=_paced, args=(NOMINAL_STREAMS_PER_MIN * args.load / 60, stop, stream_call, 100), daemon=True))
            threads.append(threading.Thread(target=_paced, args=(1 / args.reload_every, stop, reloader, 200), daemon=True))
            t0 = time.monotonic()
            for t in threads:
                t.start()
            end = t0 + args.minutes * 60
            minute_marks: list[tuple[float, int, int]] = []
            while time.monotonic() < end:
                time.sleep(min(SAMPLE_S, max(0.0, end - time.monotonic())))
                if server.proc.poll() is not None:
                    tally.add("server:DIED", failure=f"server exited with {server.proc.returncode}")
                    break
                elapsed = time.monotonic() - t0
                rss.append((elapsed, server.memory()["VmRSS"]))
                with tally.lock:
                    minute_marks.append((elapsed, tally.contacts, sum(tally.counts.values())))
                print(f"  {elapsed / 60:5.1f} min  RSS {rss[-1][1] / 2**20:7.1f} MiB  calls {minute_marks[-1][2]}  contacts {minute_marks[-1][1]}", flush=True)
            stop.set()
            for t in threads:
                t.join(120)
            channel.close()
            alive = server.proc.poll() is None

        elapsed = time.monotonic() - t0
        n = len(rss)
        tenth = max(1, n // 10)
        warm = [v for _, v in rss[tenth : 2 * tenth]] or [rss[0][1]]
        last = [v for _, v in rss[-tenth:]]
        lat = sorted(tally.latencies)
        report = {
            "minutes": round(elapsed / 60, 2),
            "load": args.load,
            "target_batch_per_s": NOMINAL_BATCH_PER_S * args.load,
            "achieved_batch_per_s": round(tally.counts["batch:OK"] / elapsed, 2),
            "target_streams_per_min": NOMINAL_STREAMS_PER_MIN * args.load,
            "achieved_streams_per_min": round(tally.counts["stream:OK"] / (elapsed / 60), 2),
            "contacts_per_s": round(tally.contacts / elapsed, 1),
            "batch_p50_ms": round(1e3 * lat[len(lat) // 2], 2) if lat else None,
            "batch_p99_ms": round(1e3 * lat[int(len(lat) * 0.99)], 2) if lat else None,
            "counts": dict(sorted(tally.counts.items())),
            "rss_mib": [(round(t / 60, 2), round(v / 2**20, 1)) for t, v in rss],
            "rss_warm_mib": round(statistics.mean(warm) / 2**20, 1),
            "rss_end_mib": round(statistics.mean(last) / 2**20, 1),
            "rss_end_over_warm": round(statistics.mean(last) / statistics.mean(warm), 3),
            "rss_max_mib": round(max(v for _, v in rss) / 2**20, 1),
            "failures": tally.failures,
            "server_alive": alive,
            "load_average": os.getloadavg(),
        }
        print(json.dumps({k: v for k, v in report.items() if k != "rss_mib"}, indent=1))
        if args.out:
            args.out.write_text(json.dumps(report, indent=1))
        failed = bool(tally.failures) or not alive
        print("RESULT:", "FAILED" if failed else "OK", f"(RSS end/warm {report['rss_end_over_warm']})")
        return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
