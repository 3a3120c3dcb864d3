"""Soak: run ``scorecast serve`` for a set time under steady load, with reloads, promotions, bad
requests, a refused caller and a server restart mixed in; report RSS over time, errors by kind
and throughput.

    python benchmarks/soak.py --minutes 60 [--accounts 20] [--contacts 50000] [--out soak.json]

Accounts (issue 30): the base's contacts are split over ``--accounts`` accounts; real-time calls
pick their account by a Zipf law (``--zipf``), and a bulk pass streams every account's contacts
in turn (``ScorecastClient.score``: the stream goes on across the restart), pass after pass. A
call names its account in its header once the server has the field (issue 26); before, every
account is the server's one set of models. Once a minute a new ``rfm`` version is dropped (it
becomes the default: a promotion) and ``ReloadModels`` is called. A caller whose token lacks the
admin role calls ReloadModels every 5 s and must be refused (PERMISSION_DENIED; with accounts, a
token of another account). Halfway (``--restart-at``) the server is stopped (SIGTERM) and started
again on its port; real-time calls wait for it (wait_for_ready), so none may fail.

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
its second tenth (the first is warm-up), and the report prints the ratio. The model-memory
budget is checked when the server exports ``scorecast_model_bytes`` and
``scorecast_model_memory_budget_bytes`` (issue 26's gauges) on /metrics; otherwise reported as
not measured. Exit status 1 if any good request failed, a bad one got the wrong status, the
refused caller was let in, or the server died.
"""

from __future__ import annotations

import argparse
import collections
import hashlib
import json
import socket
import urllib.request
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
from scorecast.client import ScorecastClient, encode_table, header
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


def _zipf_weights(n: int, s: float) -> list[float]:
    return [1 / (k + 1) ** s for k in range(n)]


def _with_account(request_header: pb.ScoreHeader, account: str) -> pb.ScoreHeader:
    """The header naming ``account`` where the server's API has the field (issue 26)."""
    if "account" in pb.ScoreHeader.DESCRIPTOR.fields_by_name:
        request_header.account = account  # type: ignore[attr-defined]
    return request_header


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _gauges(port: int, names: tuple[str, ...]) -> dict[str, float]:
    """Unlabelled gauges of /metrics (those present)."""
    try:
        text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
    except OSError:
        return {}
    out = {}
    for line in text.splitlines():
        name, _, value = line.partition(" ")
        if name in names:
            out[name] = float(value)
    return out


BUDGET_GAUGES = ("scorecast_model_bytes", "scorecast_model_memory_budget_bytes", "scorecast_models_served")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=60.0, help="duration (default 60)")
    parser.add_argument("--load", type=float, default=2.0, help="multiple of the nominal load (default 2)")
    parser.add_argument("--contacts", type=int, default=50_000, help="simulated base size (default 50000)")
    parser.add_argument("--accounts", type=int, default=20, help="accounts the contacts are split over (default 20)")
    parser.add_argument("--zipf", type=float, default=1.1, help="Zipf exponent of real-time calls over accounts (default 1.1)")
    parser.add_argument("--bad-every", type=int, default=20, help="one malformed call per this many (default 20)")
    parser.add_argument("--reload-every", type=float, default=60.0, help="seconds between promotions + reloads (default 60)")
    parser.add_argument("--restart-at", type=float, default=0.5, help="share of the run after which the server restarts (default 0.5)")
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
        accounts = [f"brand{k:04d}" for k in range(args.accounts)]
        # account k: every accounts-th contact from k on; its real-time batches and its bulk chunks
        own = {a: ids.take(pa.array(range(k, len(ids), args.accounts))) for k, a in enumerate(accounts)}
        batches = {a: _chunks(orders, own[a][: 20 * BATCH_CONTACTS], BATCH_CONTACTS) for a in accounts}
        bulk = {a: [{"orders": orders.filter(pc.is_in(orders["contact_id"], own[a][lo : lo + STREAM_CHUNK]))} for lo in range(0, len(own[a]), STREAM_CHUNK)] for a in accounts}
        weights = _zipf_weights(args.accounts, args.zipf)
        bad = _bad_requests(orders)
        admin_token, refused_token = "soak-admin-" + os.urandom(8).hex(), "soak-other-" + os.urandom(8).hex()
        tokens = work / "tokens.json"
        tokens.write_text(json.dumps({"tokens": [
            {"token_sha256": hashlib.sha256(admin_token.encode()).hexdigest(), "name": "platform", "roles": ["score", "admin"]},
            {"token_sha256": hashlib.sha256(refused_token.encode()).hexdigest(), "name": "other-account", "roles": ["score"]},
        ]}))  # fmt: skip
        tally = Tally()
        stop = threading.Event()
        rss: list[tuple[float, int]] = []
        budget: list[dict[str, float]] = []
        options = [("grpc.max_receive_message_length", 64 << 20), ("grpc.max_send_message_length", 64 << 20)]
        auth = (("authorization", f"Bearer {admin_token}"),)
        metrics_port = _free_port()
        server_args = ["--reload-interval", "0", "--tokens-file", str(tokens), "--metrics-port", str(metrics_port)]
        servers = [ServerProcess(work / "models", work, args=server_args)]
        try:
            channel = grpc.insecure_channel(servers[0].target, options=options)
            stub = rpc.ScorecastStub(channel)
            calls = [0]

            def batch_call(rng: random.Random) -> None:
                calls[0] += 1
                account = rng.choices(accounts, weights)[0]
                if calls[0] % args.bad_every == 0:
                    name, request, expected = bad[rng.randrange(len(bad))]
                    try:
                        stub.ScoreBatch(request, timeout=60, metadata=auth, wait_for_ready=True)
                        tally.add(f"bad:{name}:OK", failure=f"{name} was accepted")
                    except grpc.RpcError as exc:
                        ok = exc.code() == expected
                        tally.add(f"bad:{name}:{exc.code().name}", failure=None if ok else f"{name}: {exc.code().name} {exc.details()}")
                    return
                chunk = pb.ContactChunk(tables={"orders": batches[account][rng.randrange(len(batches[account]))]})
                request = pb.ScoreBatchRequest(header=_with_account(header(SCORES, as_of=as_of), account), chunk=chunk)
                start = time.perf_counter()
                try:
                    response = stub.ScoreBatch(request, timeout=60, metadata=auth, wait_for_ready=True)
                    tally.add("batch:OK", contacts=response.rows, latency=time.perf_counter() - start)
                except grpc.RpcError as exc:
                    tally.add(f"batch:{exc.code().name}", failure=f"ScoreBatch: {exc.code().name} {exc.details()}")

            def bulk_pass() -> None:
                """Every account's contacts streamed, account after account, until the end."""
                with ScorecastClient(servers[0].target, timeout=600, token=admin_token) as client:
                    while not stop.is_set():
                        for account in accounts:
                            if stop.is_set():
                                return
                            try:
                                answers = client.score(bulk[account], SCORES, as_of=as_of, **({"account": account} if "account" in pb.ScoreHeader.DESCRIPTOR.fields_by_name else {}))
                                rows = sum(b.num_rows for b in answers)
                                tally.add("bulk:OK", contacts=rows)
                            except (grpc.RpcError, RuntimeError) as exc:
                                tally.add("bulk:FAILED", failure=f"bulk {account}: {exc}")
                        tally.add("bulk:PASS")

            def reloader(rng: random.Random) -> None:
                version = max(int(p.stem) for p in (work / "models" / "rfm").glob("*.onnx")) + 1
                _bump_version(work / "models", "rfm", version)  # the newest is the default: a promotion
                old = sorted((work / "models" / "rfm").glob("*.onnx"), key=lambda p: int(p.stem))[:-3]
                for path in old:
                    path.unlink()
                try:
                    report = stub.ReloadModels(pb.ReloadModelsRequest(), timeout=120, metadata=auth, wait_for_ready=True)
                    tally.add("reload:OK" if not report.failures else "reload:FAILED", failure=None if not report.failures else str(report.failures))
                except grpc.RpcError as exc:
                    tally.add(f"reload:{exc.code().name}", failure=f"ReloadModels: {exc.code().name} {exc.details()}")

            def refused_call(rng: random.Random) -> None:
                try:
                    stub.ReloadModels(pb.ReloadModelsRequest(), timeout=60, metadata=(("authorization", f"Bearer {refused_token}"),), wait_for_ready=True)
                    tally.add("refused:OK", failure="another account's token reloaded the models")
                except grpc.RpcError as exc:
                    ok = exc.code() == grpc.StatusCode.PERMISSION_DENIED
                    tally.add(f"refused:{exc.code().name}", failure=None if ok else f"refused caller: {exc.code().name} {exc.details()}")

            # concurrent callers share the batch rate so one slow call does not stall the pacing
            batch_rate = NOMINAL_BATCH_PER_S * args.load
            callers = 4
            threads = [threading.Thread(target=_paced, args=(batch_rate / callers, stop, batch_call, i), daemon=True) for i in range(callers)]
            threads.append(threading.Thread(target=bulk_pass, daemon=True))
            threads.append(threading.Thread(target=_paced, args=(1 / args.reload_every, stop, reloader, 200), daemon=True))
            threads.append(threading.Thread(target=_paced, args=(1 / 5, stop, refused_call, 300), daemon=True))
            t0 = time.monotonic()
            for t in threads:
                t.start()
            end = t0 + args.minutes * 60
            restart_at = t0 + args.restart_at * args.minutes * 60
            restarted_after = None
            while time.monotonic() < end:
                time.sleep(min(SAMPLE_S, max(0.0, end - time.monotonic()), max(0.05, restart_at - time.monotonic()) if restarted_after is None else SAMPLE_S))
                server = servers[-1]
                if restarted_after is None and time.monotonic() >= restart_at:
                    start = time.monotonic()
                    server.stop()
                    servers.append(ServerProcess(work / "models", work, args=[*server_args, "--port", str(server.port)]))
                    restarted_after = time.monotonic() - t0
                    tally.add("server:RESTARTED")
                    print(f"  restarted the server in {time.monotonic() - start:.1f}s", flush=True)
                    continue
                if server.proc.poll() is not None:
                    tally.add("server:DIED", failure=f"server exited with {server.proc.returncode}")
                    break
                elapsed = time.monotonic() - t0
                rss.append((elapsed, server.memory()["VmRSS"]))
                budget.append(_gauges(metrics_port, BUDGET_GAUGES))
                with tally.lock:
                    done, count = tally.contacts, sum(tally.counts.values())
                print(f"  {elapsed / 60:5.1f} min  RSS {rss[-1][1] / 2**20:7.1f} MiB  calls {count}  contacts {done}", flush=True)
            stop.set()
            for t in threads:
                t.join(120)
            channel.close()
            alive = servers[-1].proc.poll() is None
        finally:
            for server in servers:
                server.stop()

        elapsed = time.monotonic() - t0
        n = len(rss)
        tenth = max(1, n // 10)
        warm = [v for _, v in rss[tenth : 2 * tenth]] or [rss[0][1]]
        last = [v for _, v in rss[-tenth:]]
        lat = sorted(tally.latencies)
        held = [b for b in budget if "scorecast_model_memory_budget_bytes" in b and "scorecast_model_bytes" in b]
        refused = sum(v for k, v in tally.counts.items() if k.startswith("refused:"))
        malformed = sum(v for k, v in tally.counts.items() if k.startswith("bad:"))
        failed = sum(v for k, v in tally.counts.items() if k.split(":")[0] in ("batch", "bulk", "reload") and not k.endswith((":OK", ":PASS")))
        report = {
            "minutes": round(elapsed / 60, 2),
            "load": args.load,
            "accounts": args.accounts,
            "server_restarted_at_min": None if restarted_after is None else round(restarted_after / 60, 2),
            "failed_calls": failed,
            "malformed_calls": malformed,
            "refused_calls": refused,
            "target_batch_per_s": NOMINAL_BATCH_PER_S * args.load,
            "achieved_batch_per_s": round(tally.counts["batch:OK"] / elapsed, 2),
            "bulk_passes": tally.counts["bulk:PASS"],
            "bulk_streams": tally.counts["bulk:OK"],
            "contacts_per_s": round(tally.contacts / elapsed, 1),
            "batch_p50_ms": round(1e3 * lat[len(lat) // 2], 2) if lat else None,
            "batch_p99_ms": round(1e3 * lat[int(len(lat) * 0.99)], 2) if lat else None,
            "counts": dict(sorted(tally.counts.items())),
            "rss_mib": [(round(t / 60, 2), round(v / 2**20, 1)) for t, v in rss],
            "rss_warm_mib": round(statistics.mean(warm) / 2**20, 1),
            "rss_end_mib": round(statistics.mean(last) / 2**20, 1),
            "rss_end_over_warm": round(statistics.mean(last) / statistics.mean(warm), 3),
            "rss_max_mib": round(max(v for _, v in rss) / 2**20, 1),
            "model_budget_held": (
                all(b["scorecast_model_bytes"] <= b["scorecast_model_memory_budget_bytes"] for b in held) if held
                else "not measured: the server exports no model-memory budget (issue 26)"
            ),
            "failures": tally.failures,
            "server_alive": alive,
            "load_average": os.getloadavg(),
        }
        print(json.dumps({k: v for k, v in report.items() if k != "rss_mib"}, indent=1))
        if args.out:
            args.out.write_text(json.dumps(report, indent=1))
        bad_run = bool(tally.failures) or not alive or report["rss_end_over_warm"] > 1.05 or report["model_budget_held"] is False
        print("RESULT:", "FAILED" if bad_run else "OK", f"(RSS end/warm {report['rss_end_over_warm']})")
        return 1 if bad_run else 0


if __name__ == "__main__":
    sys.exit(main())
