"""Soak: one multi-account ``scorecast serve`` under an hour of mixed traffic; reports failed
calls, RSS over time and the model-memory budget.

    python benchmarks/soak.py --minutes 60 [--accounts 300] [--budget-mb 128] [--rate 20] [--out soak.json]

The repository: ``--accounts`` accounts x 5 scores (``MODELS/<account>/<score>/1.onnx``), each
account's files hard links to one of ``--model-sets`` trained sets (``benchmarks/accounts.py``
trains and caches them in ``--workdir``): every account is loaded, measured and evicted on its
own. The server runs with ``model_memory_budget`` = ``--budget-mb``, well under what all the
accounts need, so the bulk pass keeps loading and evicting. Mixed in, all at once:

- **Real-time calls**: ``--rate`` one-contact ``ScoreBatch`` calls a second (open loop, Poisson
  arrivals over 4 callers), the account drawn by a Zipf law (rank r: weight 1/r^``--zipf``,
  ranks on random accounts), through ``ScorecastClient`` (``header(account=...)``; they wait
  for the connection while the server restarts, as a platform's caller would).
- **Malformed**: every ``--bad-every``-th real-time call is malformed (garbage Arrow IPC, a
  missing column, a wrong type, an unknown score, an unknown version) and must get its own
  status.
- **A bulk pass over every account**: each account's ``--bulk-contacts`` contacts streamed
  with ``ScorecastClient.score`` (the resuming client: a stream cut by the restart is resumed),
  account after account, pass after pass (``--bulk-pause`` s between passes).
- **Reloads and promotions**: every ``--reload-every`` seconds an account (drawn by the same
  Zipf law, so mostly loaded ones) gets a new version of one score, alternately written into
  its folder and promoted from its candidates (``scorecast fleet promote``'s
  ``promote_candidate``), then ``ReloadModels`` for that account; old versions are removed
  (three kept).
- **A scoped caller**: a token scoped to the first account scores it every 5 s (must answer)
  and asks for another account in between (must be NOT_FOUND: counted as refused, not failed).
- **A restart**: at ``--restart-at`` of the run the server is stopped (SIGTERM: it drains) and
  started again on the same port.

Every ``SAMPLE_S`` seconds the server's /metrics (``scorecast_model_bytes_held`` against
``scorecast_model_memory_budget_bytes``, accounts loaded, loads, evictions, load failures) and
its RSS are sampled. "RSS end/warm" is the mean of the run's last tenth over that of its second
tenth (the first is warm-up; goal <= 1.05); the same ratio is given for each server process
(before and after the restart) on its own. Exit status 1 if a good call failed, a malformed or
refused one got the wrong status, the budget was exceeded in any sample, RSS grew past 1.05, or
the server died.
"""

from __future__ import annotations

import argparse
import collections
import hashlib
import json
import os
import random
import socket
import statistics
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent
sys.path.insert(0, str(ROOT))

import grpc
import numpy as np
import onnx
import pyarrow as pa

from accounts import AS_OF_US, SCORES, model_sets, orders, repository
from scorecast.client import ScorecastClient, encode_table, header
from scorecast.metadata import METADATA_KEY, ModelMetadata
from scorecast.model_store import candidate_path, next_version, promote_candidate, versions, write_model
from scorecast.process import ServerProcess
from scorecast.proto import pb
from scorecast.retry import RetryPolicy

SAMPLE_S = 2.0
CALLERS = 4
METRICS = (
    "scorecast_model_bytes_held",
    "scorecast_model_memory_budget_bytes",
    "scorecast_accounts_known",
    "scorecast_accounts_loaded",
    "scorecast_account_loads_total",
    "scorecast_account_evictions_total",
    "scorecast_account_load_failures_total",
)


class Tally:
    """Thread-safe counts of outcomes, real-time latencies and the first failures."""

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
                self.failures.append(f"{time.strftime('%H:%M:%S')} {failure}")


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


def _bad_requests(table: pa.Table) -> list[tuple[str, dict[str, bytes], list[str], dict, grpc.StatusCode]]:
    """Malformed requests (name, tables, scores, options) and the status each must get."""
    wrong_ts = table.set_column(table.schema.get_field_index("ts"), "ts", pa.array([str(v) for v in table["ts"].to_pylist()]))
    invalid, missing = grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.NOT_FOUND
    good = {"orders": encode_table(table)}
    return [
        ("garbage-ipc", {"orders": b"\xff\xff\xff\xff" + os.urandom(200)}, list(SCORES), {}, invalid),
        ("missing-column", {"orders": encode_table(table.drop_columns(["ts"]))}, list(SCORES), {}, invalid),
        ("wrong-type", {"orders": encode_table(wrong_ts)}, list(SCORES), {}, invalid),
        ("unknown-score", good, ["nope"], {}, missing),
        ("unknown-version", good, ["rfm"], {"model_versions": {"rfm": "999999"}}, missing),
    ]


def _new_version(folder: Path, score: str, target: Path) -> Path:
    """The newest version of ``score`` in account ``folder``, its metadata saying it is ``target``'s
    version, written atomically to ``target`` (a new file: the hard-linked ones are never changed)."""
    model = onnx.load(folder / score / f"{versions(folder, score)[-1]}.onnx")
    prop = next(p for p in model.metadata_props if p.key == METADATA_KEY)
    meta = ModelMetadata.from_json(prop.value)
    prop.value = ModelMetadata(**{**meta.__dict__, "version": target.stem}).to_json()
    target.parent.mkdir(parents=True, exist_ok=True)
    return write_model(model, target)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _metrics(port: int) -> dict[str, float]:
    """The unlabelled series of ``METRICS`` on the server's /metrics ({} while it is down)."""
    try:
        text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
    except OSError:
        return {}
    out = {}
    for line in text.splitlines():
        name, _, value = line.partition(" ")
        if name in METRICS:
            out[name] = float(value)
    return out


def _percentile(values: list[float], q: float) -> float | None:
    return round(float(np.percentile(values, q)) * 1e3, 2) if values else None


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=60.0, help="duration (default 60)")
    parser.add_argument("--accounts", type=int, default=300, help="accounts in the repository (default 300)")
    parser.add_argument("--model-sets", type=int, default=3, help="trained model sets hard-linked across the accounts (default 3)")
    parser.add_argument("--budget-mb", type=float, default=128.0, help="model_memory_budget in MB (default 128: a small share of the accounts)")
    parser.add_argument("--rate", type=float, default=20.0, help="real-time calls per second (default 20)")
    parser.add_argument("--zipf", type=float, default=1.1, help="Zipf exponent of real-time calls over accounts (default 1.1)")
    parser.add_argument("--bulk-contacts", type=int, default=2000, help="contacts per account in the bulk pass (default 2000)")
    parser.add_argument("--bulk-pause", type=float, default=5.0, help="seconds between two bulk passes (default 5)")
    parser.add_argument("--bad-every", type=int, default=20, help="one malformed real-time call in this many (default 20)")
    parser.add_argument("--reload-every", type=float, default=60.0, help="seconds between a new version or promotion + reload (default 60)")
    parser.add_argument("--restart-at", type=float, default=0.5, help="share of the run after which the server restarts (default 0.5)")
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/scorecast-bench-accounts"), help="where the trained sets are cached")
    parser.add_argument("--out", type=Path, default=None, help="write the report as JSON here")
    args = parser.parse_args()
    args.workdir.mkdir(parents=True, exist_ok=True)

    print(f"training (or reusing) {args.model_sets} model sets of {SCORES} in {args.workdir} ...", flush=True)
    sets = model_sets(args.workdir, args.model_sets)
    with tempfile.TemporaryDirectory(prefix="scorecast-soak-") as tmp:
        work = Path(tmp)
        models = repository(work, sets, args.accounts)
        accounts = sorted(p.name for p in models.iterdir())
        ranked = random.Random(7).sample(accounts, len(accounts))  # Zipf ranks fall on random accounts
        weights = [1 / (k + 1) ** args.zipf for k in range(len(ranked))]
        rng0 = np.random.default_rng(0)
        ones = [{"orders": encode_table(orders(1, rng0))} for _ in range(50)]  # one-contact tables
        bulk_table = orders(args.bulk_contacts, np.random.default_rng(1))
        bulk_chunks = [{"orders": bulk_table.slice(lo, 3 * 1000)} for lo in range(0, bulk_table.num_rows, 3 * 1000)]  # 1000 contacts a chunk
        bad = _bad_requests(orders(5, rng0))
        scoped_account, other_account = ranked[0], ranked[1]
        admin_token, scoped_token = "soak-admin-" + os.urandom(8).hex(), "soak-scoped-" + os.urandom(8).hex()
        tokens = work / "tokens.json"
        tokens.write_text(json.dumps({"tokens": [
            {"token_sha256": hashlib.sha256(admin_token.encode()).hexdigest(), "name": "platform", "roles": ["score", "admin"], "accounts": "*"},
            {"token_sha256": hashlib.sha256(scoped_token.encode()).hexdigest(), "name": "one-brand", "roles": ["score"], "accounts": [scoped_account]},
        ]}))  # fmt: skip
        metrics_port = _free_port()
        server_args = ["--reload-interval", "0", "--tokens-file", str(tokens), "--metrics-port", str(metrics_port)]
        env = {"SCORECAST_MODEL_MEMORY_BUDGET": str(int(args.budget_mb * 1e6))}
        tally = Tally()
        stop = threading.Event()
        samples: list[tuple[float, int, dict[str, float]]] = []  # (seconds, RSS, metrics)
        servers = [ServerProcess(models, work, args=server_args, env=env)]
        target = servers[0].target
        print(f"serving {len(accounts)} accounts x {len(SCORES)} scores on {target}, budget {args.budget_mb:.0f} MB", flush=True)
        clients = [ScorecastClient(target, timeout=60, token=admin_token) for _ in range(CALLERS)]
        scoped = ScorecastClient(target, timeout=60, token=scoped_token)
        counter = iter(range(1, 1 << 62))

        def score_batch(client: ScorecastClient, account: str, tables: dict[str, bytes], scores: list[str], **options: object) -> pb.ScoreBatchResponse:
            request = pb.ScoreBatchRequest(header=header(scores, account=account, as_of=AS_OF_US, **options), chunk=pb.ContactChunk(tables=tables))
            # a real-time caller waits for the connection while the server restarts
            return client.stub.ScoreBatch(request, timeout=60, wait_for_ready=True)

        def realtime(client: ScorecastClient) -> callable:  # type: ignore[valid-type]
            def call(rng: random.Random) -> None:
                account = rng.choices(ranked, weights)[0]
                if next(counter) % args.bad_every == 0:
                    name, tables, scores, options, expected = bad[rng.randrange(len(bad))]
                    try:
                        score_batch(client, account, tables, scores, **options)
                        tally.add(f"malformed:{name}:OK", failure=f"malformed {name} was accepted")
                    except grpc.RpcError as exc:
                        ok = exc.code() == expected
                        tally.add(f"malformed:{name}:{exc.code().name}", failure=None if ok else f"malformed {name}: {exc.code().name} {exc.details()}")
                    return
                start = time.perf_counter()
                try:
                    response = score_batch(client, account, ones[rng.randrange(len(ones))], list(SCORES))
                    tally.add("realtime:OK", contacts=response.rows, latency=time.perf_counter() - start)
                except grpc.RpcError as exc:
                    tally.add(f"realtime:{exc.code().name}", failure=f"ScoreBatch {account}: {exc.code().name} {exc.details()}")

            return call

        def bulk_pass() -> None:
            """Every account's contacts streamed, account after account, pass after pass."""
            policy = RetryPolicy(retries=8, max_backoff_s=8.0)
            with ScorecastClient(target, timeout=600, token=admin_token, retry=policy) as client:
                while not stop.is_set():
                    for account in accounts:
                        if stop.is_set():
                            return

                        def event(e: object) -> None:
                            if e.kind == "failed":  # type: ignore[attr-defined]
                                tally.add("bulk-stream:RESUMED")

                        try:
                            rows = sum(b.num_rows for b in client.score(bulk_chunks, SCORES, account=account, as_of=AS_OF_US, on_event=event))
                            tally.add("bulk:OK", contacts=rows, failure=None if rows == args.bulk_contacts else f"bulk {account}: {rows} rows")
                        except (grpc.RpcError, RuntimeError) as exc:
                            tally.add("bulk:FAILED", failure=f"bulk {account}: {exc}")
                    tally.add("bulk:PASS")
                    stop.wait(args.bulk_pause)

        promotions = [0]

        def reloader(rng: random.Random) -> None:
            account = rng.choices(ranked, weights)[0]
            folder = models / account
            score = SCORES[promotions[0] % len(SCORES)]
            version = next_version(folder, score)
            kind = "promote" if promotions[0] % 2 else "new-version"
            promotions[0] += 1
            if kind == "promote":  # a candidate the gate kept back, then promoted by the operator
                _new_version(folder, score, candidate_path(folder, score, version))
                promote_candidate(folder, score, version)
            else:
                _new_version(folder, score, folder / score / f"{version}.onnx")
            for old in versions(folder, score)[:-3]:
                (folder / score / f"{old}.onnx").unlink()
            try:
                report = clients[0].stub.ReloadModels(pb.ReloadModelsRequest(account=account), timeout=120, wait_for_ready=True)
                tally.add(f"{kind}:OK" if not report.failures else f"{kind}:FAILED", failure=None if not report.failures else f"reload {account}: {report.failures}")
            except grpc.RpcError as exc:
                tally.add(f"{kind}:{exc.code().name}", failure=f"ReloadModels {account}: {exc.code().name} {exc.details()}")

        def scoped_caller(rng: random.Random) -> None:
            """The one-brand token: its own account answers, another is NOT_FOUND (refused)."""
            own = rng.random() < 0.5
            try:
                score_batch(scoped, scoped_account if own else other_account, ones[0], list(SCORES))
                tally.add("scoped-own:OK" if own else "refused:OK", failure=None if own else "a token scoped to one account scored another")
            except grpc.RpcError as exc:
                if own:
                    tally.add(f"scoped-own:{exc.code().name}", failure=f"scoped caller, own account: {exc.code().name} {exc.details()}")
                else:
                    ok = exc.code() == grpc.StatusCode.NOT_FOUND
                    tally.add(f"refused:{exc.code().name}", failure=None if ok else f"refused caller: {exc.code().name} {exc.details()}")

        def sampler() -> None:
            while not stop.wait(SAMPLE_S):
                server = servers[-1]
                try:
                    rss = server.memory()["VmRSS"]
                except (OSError, KeyError):
                    continue  # restarting
                samples.append((time.monotonic() - t0, rss, _metrics(metrics_port)))

        threads = [threading.Thread(target=_paced, args=(args.rate / CALLERS, stop, realtime(c), i), daemon=True) for i, c in enumerate(clients)]
        threads.append(threading.Thread(target=bulk_pass, daemon=True))
        threads.append(threading.Thread(target=_paced, args=(1 / args.reload_every, stop, reloader, 200), daemon=True))
        threads.append(threading.Thread(target=_paced, args=(1 / 5, stop, scoped_caller, 300), daemon=True))
        threads.append(threading.Thread(target=sampler, daemon=True))
        t0 = time.monotonic()
        for t in threads:
            t.start()
        end = t0 + args.minutes * 60
        restart_at = t0 + args.restart_at * args.minutes * 60
        restarted_after = restart_s = None
        alive = True
        try:
            while time.monotonic() < end:
                wait = min(30.0, end - time.monotonic(), restart_at - time.monotonic() if restarted_after is None else 30.0)
                time.sleep(max(0.05, wait))
                server = servers[-1]
                if restarted_after is None and time.monotonic() >= restart_at:
                    start = time.monotonic()
                    code = server.stop()
                    servers.append(ServerProcess(models, work, args=[*server_args, "--port", str(server.port)], env=env))
                    restarted_after, restart_s = time.monotonic() - t0, time.monotonic() - start
                    tally.add("server:RESTARTED")
                    print(f"  restarted the server (SIGTERM exit {code}) in {restart_s:.1f}s", flush=True)
                    continue
                if server.proc.poll() is not None:
                    tally.add("server:DIED", failure=f"server exited with {server.proc.returncode}")
                    alive = False
                    break
                last = samples[-1] if samples else (0.0, 0, {})
                with tally.lock:
                    count, failures = sum(tally.counts.values()), len(tally.failures)
                held = last[2].get("scorecast_model_bytes_held", float("nan")) / 1e6
                print(f"  {(time.monotonic() - t0) / 60:5.1f} min  RSS {last[1] / 2**20:6.1f} MiB  held {held:5.1f} MB  "
                      f"loaded {last[2].get('scorecast_accounts_loaded', 0):.0f}  calls {count}  failures {failures}", flush=True)  # fmt: skip
            stop.set()
            for t in threads:
                t.join(120)
            alive = alive and servers[-1].proc.poll() is None
        finally:
            stop.set()
            for client in [*clients, scoped]:
                client.close()
            for server in servers:
                server.stop()

    elapsed = time.monotonic() - t0
    rss = [(t, v) for t, v, _ in samples]
    tenth = max(1, len(rss) // 10)
    warm = [v for _, v in rss[tenth : 2 * tenth]] or [rss[0][1]]
    last_tenth = [v for _, v in rss[-tenth:]]


    def ratio(first: list[int], then: list[int]) -> float | None:
        return round(statistics.mean(then) / statistics.mean(first), 3) if first and then else None

    # each process on its own too (the restart resets RSS): its second tenth against its last
    cut = len(rss) if restarted_after is None else sum(1 for t, _ in rss if t < restarted_after)
    halves = [[v for _, v in rss[:cut]], [v for _, v in rss[cut:]]]
    per_process = [ratio(h[len(h) // 10 : 2 * len(h) // 10], h[-max(1, len(h) // 10) :]) if len(h) >= 10 else None for h in halves]
    budgeted = [m for _, _, m in samples if "scorecast_model_bytes_held" in m and "scorecast_model_memory_budget_bytes" in m]
    budget = budgeted[0]["scorecast_model_memory_budget_bytes"] if budgeted else None
    max_held = max((m["scorecast_model_bytes_held"] for m in budgeted), default=None)
    counters = {}  # the last value before and after the restart, summed: counters restart at 0
    for name in ("scorecast_account_loads_total", "scorecast_account_evictions_total", "scorecast_account_load_failures_total"):
        before = [m[name] for t, _, m in samples if name in m and (restarted_after is None or t < restarted_after)]
        after = [m[name] for t, _, m in samples if name in m and restarted_after is not None and t >= restarted_after]
        counters[name] = (before[-1] if before else 0) + (after[-1] if after else 0)
    counts = dict(sorted(tally.counts.items()))
    kinds = collections.Counter()
    for key, n in counts.items():
        kinds[key.split(":")[0]] += n
    malformed = kinds["malformed"]
    refused = sum(n for k, n in counts.items() if k == "refused:NOT_FOUND")
    failed = sum(n for k, n in counts.items() if k.split(":")[0] in ("realtime", "bulk", "new-version", "promote", "scoped-own") and not k.endswith((":OK", ":PASS")))
    lat = tally.latencies
    expected = {name: code.name for name, *_, code in bad}
    report = {
        "minutes": round(elapsed / 60, 2),
        "accounts": len(accounts),
        "scores": len(SCORES),
        "model_sets": args.model_sets,
        "server_restarted_at_min": None if restarted_after is None else round(restarted_after / 60, 2),
        "restart_s": None if restart_s is None else round(restart_s, 1),
        "failed_calls": failed,
        "malformed_calls": malformed,
        "malformed_wrong_status": sum(n for k, n in counts.items() if k.startswith("malformed:") and k.split(":")[2] != expected[k.split(":")[1]]),
        "refused_calls": refused,
        "calls_by_kind": dict(sorted(kinds.items())),
        "target_realtime_per_s": args.rate,
        "achieved_realtime_per_s": round(counts.get("realtime:OK", 0) / elapsed, 2),
        "realtime_p50_ms": _percentile(lat, 50),
        "realtime_p99_ms": _percentile(lat, 99),
        "bulk_passes": counts.get("bulk:PASS", 0),
        "bulk_streams": counts.get("bulk:OK", 0),
        "bulk_streams_resumed": counts.get("bulk-stream:RESUMED", 0),
        "contacts_scored": tally.contacts,
        "budget_mb": None if budget is None else round(budget / 1e6, 1),
        "max_held_mb": None if max_held is None else round(max_held / 1e6, 1),
        "budget_samples": len(budgeted),
        "budget_held": (max_held <= budget) if budgeted else "not measured: no scorecast_model_bytes_held on /metrics",
        "account_loads": counters["scorecast_account_loads_total"],
        "account_evictions": counters["scorecast_account_evictions_total"],
        "account_load_failures": counters["scorecast_account_load_failures_total"],
        "rss_warm_mib": round(statistics.mean(warm) / 2**20, 1),
        "rss_end_mib": round(statistics.mean(last_tenth) / 2**20, 1),
        "rss_end_over_warm": round(statistics.mean(last_tenth) / statistics.mean(warm), 3),
        "rss_max_mib": round(max(v for _, v in rss) / 2**20, 1),
        "rss_end_over_warm_before_restart": per_process[0],
        "rss_end_over_warm_after_restart": per_process[1],
        "counts": counts,
        "failures": tally.failures,
        "server_alive": alive,
        "load_average": [round(x, 1) for x in os.getloadavg()],
        "cores": os.cpu_count(),
        "rss_mib": [(round(t / 60, 2), round(v / 2**20, 1)) for t, v in rss[:: max(1, len(rss) // 200)]],
    }
    print(json.dumps({k: v for k, v in report.items() if k != "rss_mib"}, indent=1))
    if args.out:
        args.out.write_text(json.dumps(report, indent=1))
    bad_run = bool(tally.failures) or not alive or report["rss_end_over_warm"] > 1.05 or report["budget_held"] is not True
    print("RESULT:", "FAILED" if bad_run else "OK", f"(failed {failed}, RSS end/warm {report['rss_end_over_warm']}, budget held {report['budget_held']})")
    return 1 if bad_run else 0


if __name__ == "__main__":
    sys.exit(main())
