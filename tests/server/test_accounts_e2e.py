"""Accounts end to end (server/accounts.py through the servers of server/app.py and ``scorecast
serve``): every point of issue 26 shown by calls over gRPC on named accounts, on real model
folders, against servers on port 0."""

from __future__ import annotations

import json
import threading
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import grpc
import pyarrow as pa
import pytest

from scorecast.client import ScorecastClient
from scorecast.process import ServerProcess
from scorecast.proto import oip, oip_rpc
from scorecast.server.accounts import AccountRegistry
from scorecast.server.app import RunningServer, start_server
from scorecast.server.config import ServerSettings
from scorecast.server.repository import LOAD_THREADS
from scorecast.server.security import hash_token

from .conftest import AS_OF_US
from ..support.fakes import linear_model, wide_model, write_model

AS_OF = pa.scalar(AS_OF_US, pa.timestamp("us", tz="UTC")).as_py()
ACCOUNTS = [f"a{i:02d}" for i in range(12)]


def _fleet(root: Path, names: list[str], width: int = 131_072) -> Path:
    """Accounts whose ``spend`` (version 2, the default) weighs total_amount by the account's number
    (a00: 0, a07: 7), so a value tells which account's models scored it, beside ``spend`` version 1,
    a wide model that gives them size: a call loads the scores it names, every version of them."""
    for name in names:
        write_model(root / name, wide_model(score="spend", version="1", width=width))
        write_model(root / name, linear_model(version="2", weights=(1.0, float(int(name[1:])))))
    return root


@pytest.fixture
def fleet(tmp_path: Path) -> Path:
    return _fleet(tmp_path / "models", ACCOUNTS)


@pytest.fixture(scope="module", autouse=True)
def _warm_process(tmp_path_factory: pytest.TempPathFactory) -> None:
    """A server's calls over two accounts, real-time and streamed, before any test: the process's
    first calls leave ~10 MB resident for good (gRPC, Arrow and ONNX Runtime pools), which a
    later server counts in its base, not as surplus against budgets of a few accounts' MB. Every
    test then starts from the same process state, run alone or after the others."""
    orders = pa.table({"contact_id": [1, 2], "ts": pa.array([AS_OF_US - 1, AS_OF_US - 2], pa.timestamp("us", tz="UTC")), "amount": [1.0, 2.0], "product_group": ["g", "h"]})
    root = _fleet(tmp_path_factory.mktemp("warm"), ACCOUNTS[:2])
    with _serving(root) as running, _client(running) as client:
        for name in ACCOUNTS[:2]:
            _spend(client, name, orders)
            list(client.score([{"orders": orders}] * 2, ["spend"], as_of=AS_OF, account=name))


def _size(root: Path) -> int:
    """One account's measured bytes, as the server measures them (the second account loaded: the
    first may carry ONNX Runtime's one-time set-up)."""
    registry = AccountRegistry(root, budget=1 << 40)
    first, second = registry.known()[:2]
    with registry.hold(first, scan=False):
        held = registry.held_bytes
    with registry.hold(second, scan=False):
        return registry.held_bytes - held


@contextmanager
def _serving(root: Path, **settings: Any) -> Iterator[RunningServer]:
    running = start_server(ServerSettings(port=0, models=root, reload_interval_s=0, **settings))
    try:
        yield running
    finally:
        running.stop(0)


def _client(running: RunningServer, **kwargs: Any) -> ScorecastClient:
    return ScorecastClient(f"127.0.0.1:{running.port}", timeout=60, **kwargs)


def _spend(client: ScorecastClient, account: str, orders: pa.Table) -> list[float]:
    batch = client.score_batch({"orders": orders}, ["spend"], as_of=AS_OF, account=account)
    return batch.column(batch.schema.get_field_index("spend.value")).to_pylist()


def _expected(orders: pa.Table, account: str, weight: float | None = None) -> list[float]:
    """spend = frequency + n x total_amount over the orders before AS_OF (n: the account's number),
    contacts in order of first appearance (one with only later orders scores 0)."""
    n = int(account[1:]) if weight is None else weight
    rows: dict[int, list[float]] = {}
    for cid, ts, amount in zip(orders["contact_id"].to_pylist(), orders["ts"].to_pylist(), orders["amount"].to_pylist(), strict=True):
        rows.setdefault(cid, [])
        if ts < AS_OF:
            rows[cid].append(amount)
    return [len(rows[c]) + n * sum(rows[c]) for c in rows]


def _metrics(running: RunningServer) -> str:
    return urllib.request.urlopen(f"http://127.0.0.1:{running.metrics_port}/metrics", timeout=10).read().decode()


def test_an_account_loads_on_its_first_call_and_racing_first_calls_share_the_load(fleet: Path, orders: pa.Table) -> None:
    """Nothing is loaded at start; four ScoreBatch calls racing for a07 (the default cap) cause one load and all get
    a07's values; a03 then loads on its own call with its own models, and both stay listed apart."""
    with _serving(fleet) as running, _client(running) as client:
        assert running.registry.loaded() == []
        barrier, got, errors = threading.Barrier(4), [], []

        def call() -> None:
            barrier.wait()
            try:
                got.append(_spend(client, "a07", orders))
            except grpc.RpcError as exc:  # pragma: no cover (the assertion below shows it)
                errors.append(exc)

        threads = [threading.Thread(target=call) for _ in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert not errors and got == [_expected(orders, "a07")] * 4
        assert running.registry.loaded() == ["a07"] and running.registry.loads == 1
        assert _spend(client, "a03", orders) == _expected(orders, "a03") != got[0]
        assert running.registry.loaded() == ["a03", "a07"]
        assert [(m.score, m.version) for m in client.list_models(account="a03")] == [("spend", "2")]
        assert json.loads(client.get_model("spend", account="a03").params_json)["weights"] == [1.0, 3.0]
        with pytest.raises(grpc.RpcError) as info:
            _spend(client, "nobody", orders)
        assert info.value.code() == grpc.StatusCode.NOT_FOUND and info.value.details() == "account 'nobody' not found"


@pytest.mark.parametrize("eviction", ["lfu", "lru"])
def test_a_bulk_pass_over_grpc_keeps_the_hot_accounts_and_the_budget(fleet: Path, orders: pa.Table, eviction: str) -> None:
    """Room for five accounts; two hot accounts take ScoreBatch calls, then a Score stream goes
    over each of the ten others. LFU: the hot accounts keep taking calls during the pass
    and never reload; plain LRU (no hot calls during the pass, or it would keep them by luck):
    the pass pushes both out. The measured bytes, the load in progress's reservation included,
    never pass the budget."""
    budget = int(_size(fleet) * 5.5)
    with _serving(fleet, model_memory_budget=budget, eviction=eviction) as running, _client(running) as client:
        registry = running.registry
        hot = ["a00", "a01"]
        for _ in range(2):
            for name in hot:
                _spend(client, name, orders)
        stop, peak, hot_calls = threading.Event(), [0], [0]

        def sampler() -> None:
            while not stop.wait(0.002):
                peak[0] = max(peak[0], registry.held_bytes + registry.reserved_bytes)

        def hot_caller() -> None:
            while not stop.is_set():
                for name in hot:
                    assert _spend(client, name, orders) == _expected(orders, name)
                    hot_calls[0] += 1

        threads = [threading.Thread(target=sampler)] + ([threading.Thread(target=hot_caller)] if eviction == "lfu" else [])
        for t in threads:
            t.start()
        try:
            for name in ACCOUNTS[2:]:
                chunks = [{"orders": orders}, {"orders": orders}]
                batches = list(client.score(chunks, ["spend"], as_of=AS_OF, account=name))
                assert batches[0].column("spend.value").to_pylist() == _expected(orders, name)
        finally:
            stop.set()
            for t in threads:
                t.join()
        usage = registry.usage()
        assert peak[0] <= budget and registry.held_bytes <= budget and registry.evictions >= 10 - 5
        assert all(usage[name].loads == 1 for name in ACCOUNTS[2:])  # each scanned account loaded once
        if eviction == "lfu":
            assert hot_calls[0] > 0 and set(hot) <= set(registry.loaded())
            assert [usage[name].loads for name in hot] == [1, 1]  # loaded once, before the pass
        else:
            assert not set(hot) & set(registry.loaded())


def test_a_pinned_account_is_loaded_at_start_and_survives_every_pass(fleet: Path, orders: pa.Table) -> None:
    """pinned_accounts=a11 with room for two accounts: a11 is loaded before any call, and after
    Score streams over every account it is still loaded and never reloaded."""
    with _serving(fleet, model_memory_budget=int(_size(fleet) * 2.5), pinned_accounts=("a11",)) as running, _client(running) as client:
        assert running.registry.loaded() == ["a11"]
        loads = running.registry.loads
        for name in ACCOUNTS:
            list(client.score([{"orders": orders}], ["spend"], as_of=AS_OF, account=name))
        assert "a11" in running.registry.loaded() and running.registry.evictions >= 11 - 2
        assert running.registry.loads == loads + 11  # every other account, never a11 again


def test_a_failed_load_is_visible_counted_retried_and_others_serve(fleet: Path, orders: pa.Table) -> None:
    """Account 'broken' has a corrupt file: UNAVAILABLE naming it and the reason, the failure
    metric counts it, a call during the backoff gets the same answer without a second load, a03
    serves meanwhile; once the file is fixed, ReloadModels retries it at once and it serves."""
    broken = fleet / "broken" / "spend" / "1.onnx"
    broken.parent.mkdir(parents=True)
    broken.write_bytes(b"not a model")
    with _serving(fleet, metrics_port=0, account_retry_s=60) as running, _client(running) as client:
        for _ in range(2):
            with pytest.raises(grpc.RpcError) as info:
                client.score_batch({"orders": orders}, ["spend"], as_of=AS_OF, account="broken")
            assert info.value.code() == grpc.StatusCode.UNAVAILABLE
            assert info.value.details().startswith("account 'broken' could not be loaded: ") and "not an ONNX model" in info.value.details()
        assert "scorecast_account_load_failures_total 1.0" in _metrics(running)
        assert _spend(client, "a03", orders) == _expected(orders, "a03")
        write_model(fleet / "broken", linear_model(weights=(1.0, 0.0)))
        client.reload_models(account="broken")
        assert _spend(client, "broken", orders) == _expected(orders, "broken", weight=0.0)
        assert "scorecast_account_load_failures_total 1.0" in _metrics(running)


A_TOKEN, STAR_TOKEN = "token-for-acme-1", "token-for-all-2"


def test_a_token_for_one_account_learns_nothing_of_another(tmp_path: Path, orders: pa.Table) -> None:
    """Accounts a01 and a02; a token scoped to a01 scores, lists and reloads a01, while for a02
    every call (ScoreBatch, Score, TopN, ListModels, GetModel, ReloadModels, OIP ModelInfer,
    ModelMetadata and ModelReady) answers exactly as for an account that does not exist; a "*"
    token reaches both."""
    root = _fleet(tmp_path / "models", ["a01", "a02"], width=64)
    tokens = tmp_path / "tokens.json"
    entries = [
        {"token_sha256": hash_token(A_TOKEN), "name": "a01-crm", "roles": ["score", "admin"], "accounts": ["a01"]},
        {"token_sha256": hash_token(STAR_TOKEN), "name": "ops", "roles": ["score", "admin"], "accounts": "*"},
    ]
    tokens.write_text(json.dumps({"tokens": entries}))
    with _serving(root, tokens_file=tokens) as running, _client(running, token=A_TOKEN) as mine:
        assert _spend(mine, "a01", orders) == _expected(orders, "a01")
        assert [m.score for m in mine.list_models(account="a01")] == ["spend"]
        mine.reload_models(account="a01")
        with _client(running, token=STAR_TOKEN) as ops:
            assert _spend(ops, "a02", orders) == _expected(orders, "a02")  # a02 is loaded: nothing to hide behind
        channel = grpc.insecure_channel(f"127.0.0.1:{running.port}")
        infer = oip_rpc.GRPCInferenceServiceStub(channel)
        auth = (("authorization", f"Bearer {A_TOKEN}"),)

        def answers(account: str) -> list[tuple[str, str]]:
            calls = {
                "ScoreBatch": lambda: mine.score_batch({"orders": orders}, ["spend"], as_of=AS_OF, account=account),
                "Score": lambda: list(mine.score([{"orders": orders}], ["spend"], as_of=AS_OF, account=account)),
                "TopN": lambda: mine.top("spend.value", 1, chunks=[{"orders": orders}], as_of=AS_OF, account=account),
                "ListModels": lambda: mine.list_models(account=account),
                "GetModel": lambda: mine.get_model("spend", account=account),
                "ReloadModels": lambda: mine.reload_models(account=account),
                "ModelMetadata": lambda: infer.ModelMetadata(oip.ModelMetadataRequest(name=f"{account}/spend"), metadata=auth),
                "ModelInfer": lambda: infer.ModelInfer(oip.ModelInferRequest(model_name=f"{account}/spend"), metadata=auth),
            }
            out = []
            for method, call in calls.items():
                with pytest.raises(grpc.RpcError) as info:
                    call()
                out.append((method, f"{info.value.code().name}: {info.value.details().replace(account, 'X')}"))
            return out

        assert answers("a02") == answers("nobody")
        assert {answer for _, answer in answers("a02")} == {"NOT_FOUND: account 'X' not found"}
        ready = [infer.ModelReady(oip.ModelReadyRequest(name=f"{a}/spend"), metadata=m).ready
                 for a in ("a01", "a02") for m in (auth, ())]  # fmt: skip
        assert ready == [True, False, False, False]  # no token: the default account only
        channel.close()


def test_the_per_account_cap_refuses_one_account_while_another_serves(fleet: Path, orders: pa.Table) -> None:
    """max_calls_per_account=2: with two a01 Score streams open (each waiting for its next
    chunk), a third a01 call is RESOURCE_EXHAUSTED naming a01 and the setting, while a02 serves;
    once the streams end, a01 serves again."""
    with _serving(fleet, max_calls_per_account=2) as running, _client(running) as client:
        opened, release = [threading.Event(), threading.Event()], threading.Event()
        results: list[int] = []

        def stream(k: int) -> None:
            def chunks() -> Iterator[dict[str, pa.Table]]:
                yield {"orders": orders}
                release.wait()

            for batch in client.score(chunks(), ["spend"], as_of=AS_OF, account="a01"):
                opened[k].set()  # the first chunk scored: the call holds a01 until the stream ends
                results.append(batch.num_rows)

        threads = [threading.Thread(target=stream, args=(k,)) for k in range(2)]
        for t in threads:
            t.start()
        try:
            assert all(event.wait(60) for event in opened)
            with pytest.raises(grpc.RpcError) as info:
                _spend(client, "a01", orders)
            assert info.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
            assert "account 'a01'" in info.value.details() and "max_calls_per_account" in info.value.details()
            assert _spend(client, "a02", orders) == _expected(orders, "a02")
        finally:
            release.set()
            for t in threads:
                t.join()
        assert results == [3, 3]
        assert _spend(client, "a01", orders) == _expected(orders, "a01")


def test_metrics_stay_bounded_from_4_to_40_accounts(tmp_path: Path, orders: pa.Table) -> None:
    """The /metrics page has no account label, and as many series after 40 accounts served as
    after 4 (only the values move)."""
    root = _fleet(tmp_path / "models", [f"b{i:02d}" for i in range(40)], width=64)
    with _serving(root, metrics_port=0) as running, _client(running) as client:

        def series() -> list[str]:
            lines = [line for line in _metrics(running).splitlines() if line and not line.startswith("#")]
            assert not any("account=" in line for line in lines)
            return [line.rsplit(" ", 1)[0] for line in lines]

        for name in running.registry.known()[:4]:
            _spend(client, name, orders)
        four = series()
        for name in running.registry.known()[4:]:
            _spend(client, name, orders)
        assert series() == four
        assert "scorecast_accounts_loaded 40.0" in _metrics(running)


@pytest.mark.slow
def test_a_serve_process_keeps_its_thread_count_and_memory_as_accounts_load(tmp_path: Path, orders: pa.Table) -> None:
    """A real ``scorecast serve`` (ONNX Runtime's shared thread pools): after 24 accounts load
    (budget for 6, so 18 evictions) its thread count stays flat, and its RSS, now and at its peak
    while they loaded, is never above the budget plus the server's base (its RSS once ready):
    what the allocator and past calls keep resident counts in the budget (``surplus_bytes``)."""
    root = _fleet(tmp_path / "models", [f"c{i:02d}" for i in range(24)], width=131_072)
    size = _size(root)
    budget = int(size * 6.5)
    env = {"SCORECAST_MODEL_MEMORY_BUDGET": str(budget), "SCORECAST_RELOAD_INTERVAL_S": "0"}

    def status(pid: int) -> dict[str, int]:
        fields = dict(line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines())
        return {"threads": int(fields["Threads"]), "rss": int(fields["VmRSS"].split()[0]) * 1024}

    with ServerProcess(root, tmp_path / "srv", env=env) as server, ScorecastClient(server.target, timeout=60) as client:
        base = status(server.pid)["rss"]  # ready: warmed up, no account loaded
        for _ in range(3):
            assert _spend(client, "c00", orders) == _expected(orders, "c00")
        first = status(server.pid)
        peak = 0
        for i in range(1, 24):
            assert _spend(client, f"c{i:02d}", orders) == _expected(orders, f"c{i:02d}")
            # the server restarts VmHWM as each load begins: after each call, the peak of its load
            peak = max(peak, server.memory()["VmHWM"])
        after = status(server.pid)
    # flat but for pools that start their bounded threads lazily (the model loader's LOAD_THREADS);
    # sessions with pools of their own would add a thread per core for each of 46 sessions
    assert after["threads"] <= first["threads"] + LOAD_THREADS
    assert after["rss"] - base <= budget and peak - base <= budget
