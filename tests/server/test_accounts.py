"""Accounts (server/accounts.py, repository.account_folders): on-demand loads within a measured
budget, scan resistance, pins, failed loads, holds, the per-account cap, token scopes, bounded
metrics and the usage file, on real model folders and servers on port 0."""

from __future__ import annotations

import json
import threading
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import grpc
import numpy as np
import pyarrow as pa
import pytest

from scorecast.accounts import DEFAULT_ACCOUNT
from scorecast.client import ScorecastClient
from scorecast.server.accounts import AccountRegistry, LoadGate
from scorecast.server.app import RunningServer, start_server
from scorecast.server.config import ServerSettings
from scorecast.server.errors import AccountNotFound, AccountUnavailable, ResourceExhausted
from scorecast.server.metrics import ServerMetrics
from scorecast.server.repository import account_folders
from scorecast.server.security import hash_token

from .conftest import AS_OF_US
from ..support.fakes import linear_model, segment_model, wide_model, write_model

AS_OF = pa.scalar(AS_OF_US, pa.timestamp("us", tz="UTC")).as_py()


def _accounts(root: Path, names: list[str], width: int = 16_384) -> Path:
    for name in names:
        write_model(root / name, wide_model(width=width))
        write_model(root / name, linear_model())
    return root


@pytest.fixture
def root(tmp_path: Path) -> Path:
    return _accounts(tmp_path / "models", [f"a{i:02d}" for i in range(12)])


def _size(root: Path) -> int:
    """One account's measured bytes."""
    registry = AccountRegistry(root, budget=1 << 40)
    with registry.hold("a00", scan=False):
        return registry.held_bytes


def test_layout_tells_score_folders_from_account_folders(tmp_path: Path) -> None:
    """Top-level folders holding .onnx files are the default account's scores; others are accounts;
    an empty repository is the default account; bad names are skipped."""
    legacy = tmp_path / "legacy"
    write_model(legacy, linear_model())
    assert account_folders(legacy, DEFAULT_ACCOUNT) == {DEFAULT_ACCOUNT: legacy}
    mixed = tmp_path / "mixed"
    write_model(mixed, linear_model())
    write_model(mixed / "acme", linear_model())
    (mixed / "-bad").mkdir()
    assert account_folders(mixed, DEFAULT_ACCOUNT) == {DEFAULT_ACCOUNT: mixed, "acme": mixed / "acme"}
    (tmp_path / "empty").mkdir()
    assert account_folders(tmp_path / "empty", DEFAULT_ACCOUNT) == {DEFAULT_ACCOUNT: tmp_path / "empty"}


def test_accounts_load_on_first_call_and_concurrent_first_calls_share_one_load(root: Path) -> None:
    """Nothing loads at start; eight calls racing for one account cause one load and all get
    the same models."""
    registry = AccountRegistry(root, budget=1 << 40)
    assert registry.loaded() == [] and len(registry.known()) == 12
    barrier, got = threading.Barrier(8), []

    def call() -> None:
        barrier.wait()
        with registry.hold("a03", scan=False) as repository:
            got.append(repository)

    threads = [threading.Thread(target=call) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert registry.loads == 1 and registry.loaded() == ["a03"]
    assert len({id(r) for r in got}) == 1 and got[0].scores == ["spend", "wide"]
    assert registry.usage()["a03"].loads >= 1


def test_a_real_time_load_goes_before_the_scan_loads_waiting() -> None:
    """While a load runs, a scan load and then a real-time load wait: the real-time one goes next."""
    gate, order = LoadGate(), []

    def load(name: str, scan: bool) -> None:
        with gate.hold(scan):
            order.append(name)

    pause = threading.Event()
    with gate.hold(scan=True):
        threads = []
        for name, scan in (("scan", True), ("real-time", False)):
            threads.append(threading.Thread(target=load, args=(name, scan)))
            threads[-1].start()
            while gate.waiting < len(threads):  # queued in this order
                pause.wait(0.001)
    for t in threads:
        t.join()
    assert order == ["real-time", "scan"] and gate.waiting == 0


def test_a_call_loads_only_the_scores_it_names(root: Path) -> None:
    """A call naming one of an account's two scores loads that one, measured; a later call naming
    the other adds it to the loaded account (one load, the bytes grown); a call naming none wants all."""
    registry = AccountRegistry(root, budget=1 << 40)
    with registry.hold("a00", scan=False, scores=["spend"]) as repository:
        assert repository.scores == ["spend"]
    small = registry.held_bytes
    with registry.hold("a00", scan=False, scores=["spend", "wide"]) as repository:
        assert repository.scores == ["spend", "wide"]
    assert registry.loads == 1 and registry.held_bytes > small + 100_000  # the wide model's weights (128 KB)
    with registry.hold("a01", scan=True, scores=[]) as repository:
        assert repository.scores == ["spend", "wide"]


def test_growing_accounts_keep_the_budget(root: Path) -> None:
    """Accounts loaded for one score, then grown to two by callers on several threads: the
    measured bytes stay within a budget of three whole accounts throughout, evicting others."""
    size = _size(root)
    registry = AccountRegistry(root, budget=int(size * 3.5))
    names = registry.known()
    over = []

    def call(name: str) -> None:
        for scores in (["spend"], ["spend", "wide"]):
            with registry.hold(name, scan=False, scores=scores) as repository:
                assert set(scores) <= set(repository.scores)
                if registry.held_bytes > registry.budget:  # three calls hold at most three accounts
                    over.append(name)

    threads = [threading.Thread(target=lambda k=k: [call(n) for n in names[k::3]]) for k in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not over and registry.held_bytes <= registry.budget and registry.evictions >= 12 - 3


def test_budget_holds_while_every_account_is_called(root: Path) -> None:
    """A budget of three accounts: after each of twelve calls the measured bytes stay within it,
    and the accounts beyond it were evicted."""
    size = _size(root)
    registry = AccountRegistry(root, budget=int(size * 3.5))
    for name in registry.known():
        with registry.hold(name, scan=False):
            pass
        assert registry.held_bytes <= registry.budget
    assert len(registry.loaded()) <= 3 and registry.evictions >= 12 - 3


@pytest.mark.parametrize(("eviction", "kept"), [("lfu", True), ("lru", False)])
def test_a_bulk_pass_keeps_real_time_accounts_loaded(root: Path, eviction: str, kept: bool) -> None:
    """Two accounts with real-time calls, then a scan over the ten others with room for five:
    the LFU policy keeps both hot accounts loaded, plain LRU does not."""
    registry = AccountRegistry(root, budget=int(_size(root) * 5.5), eviction=eviction)
    hot = ["a00", "a01"]
    for _ in range(2):
        for name in hot:
            with registry.hold(name, scan=False):
                pass
    loads = registry.loads
    for name in registry.known()[2:]:
        with registry.hold(name, scan=True):
            pass
    assert (set(hot) <= set(registry.loaded())) is kept
    assert registry.loads == loads + 10


@pytest.mark.parametrize(("eviction", "kept"), [("lfu", True), ("lru", False)])
def test_the_most_called_account_outlasts_the_tail(root: Path, eviction: str, kept: bool) -> None:
    """a00 takes three real-time calls, then each of the eleven others one (the long tail) with
    room for three: LFU keeps a00 loaded throughout (loaded once), plain LRU evicts it."""
    _size(root)  # a first load in the process may carry ONNX Runtime's one-time set-up
    registry = AccountRegistry(root, budget=int(_size(root) * 3.5), eviction=eviction)
    for _ in range(3):
        with registry.hold("a00", scan=False):
            pass
    for name in registry.known()[1:]:
        with registry.hold(name, scan=False):
            pass
    assert ("a00" in registry.loaded()) is kept and registry.evictions >= 11 - 3
    assert registry.usage()["a00"].loads == 1


def test_pinned_accounts_load_at_start_and_never_leave(root: Path) -> None:
    """A pinned account is loaded before any call and survives a pass over every other account."""
    registry = AccountRegistry(root, budget=int(_size(root) * 2.5), pinned=["a11"])
    assert registry.loaded() == ["a11"]
    for name in registry.known():
        with registry.hold(name, scan=True):
            pass
    assert "a11" in registry.loaded() and registry.evictions > 0


def test_a_held_account_is_never_evicted_until_its_call_ends(root: Path) -> None:
    """A call holding an account keeps it (and its models working) through loads that would
    evict it (the budget is met by evicting the others); once the call ends, the next load evicts it."""
    registry = AccountRegistry(root, budget=int(_size(root) * 1.5))
    with registry.hold("a00", scan=True) as repository:
        for name in registry.known()[1:5]:
            with registry.hold(name, scan=True):
                pass
        assert "a00" in registry.loaded()
        assert repository.get("spend").run(np.array([[1.0, 2.0]], dtype=np.float32))["value"].tolist() == [[21.0]]
    assert registry.held_bytes <= registry.budget
    with registry.hold("a05", scan=True):
        pass
    assert "a00" not in registry.loaded() and registry.held_bytes <= registry.budget


def test_a_failed_load_is_visible_retried_and_leaves_others_serving(root: Path) -> None:
    """Every file of account 'broken' is corrupt: UNAVAILABLE naming the account and the reason,
    counted; calls during the backoff get the same answer without a new load; the others serve;
    once the file is fixed and the backoff passed, the account loads."""
    broken = root / "broken" / "spend" / "1.onnx"
    broken.parent.mkdir(parents=True)
    broken.write_bytes(b"not a model")
    metrics = ServerMetrics()
    registry = AccountRegistry(root, budget=1 << 40, retry_s=0.2, metrics=metrics)
    with pytest.raises(AccountUnavailable) as info:
        with registry.hold("broken", scan=False):
            pass
    assert info.value.status == grpc.StatusCode.UNAVAILABLE
    assert "'broken'" in str(info.value) and "not an ONNX model" in str(info.value) and "tries again in" in str(info.value)
    with pytest.raises(AccountUnavailable):
        with registry.hold("broken", scan=False):
            pass
    assert registry.load_failures == 1
    assert metrics.registry.get_sample_value("scorecast_account_load_failures_total") == 1
    with registry.hold("a00", scan=False) as repository:
        assert repository.scores == ["spend", "wide"]
    write_model(root / "broken", linear_model())
    done = threading.Event()
    while not done.wait(0.05):  # until the backoff has passed
        try:
            with registry.hold("broken", scan=False) as repository:
                done.set()
        except AccountUnavailable:
            continue
    assert repository.scores == ["spend"] and registry.load_failures == 1


def test_per_account_cap_refuses_the_next_call_naming_the_account(root: Path) -> None:
    """With two calls of a00 in flight the third is RESOURCE_EXHAUSTED naming a00 and the
    setting; a01 is still served."""
    registry = AccountRegistry(root, budget=1 << 40, max_calls=2)
    with registry.hold("a00", scan=False), registry.hold("a00", scan=False):
        with pytest.raises(ResourceExhausted, match=r"account 'a00'.*max_calls_per_account"):
            with registry.hold("a00", scan=False):
                pass
        with registry.hold("a01", scan=False):
            pass
    with registry.hold("a00", scan=False):
        pass


def test_unknown_and_out_of_scope_accounts_get_the_same_answer(root: Path) -> None:
    """A missing account and an existing one outside the token's scope: the same NOT_FOUND text."""
    registry = AccountRegistry(root, budget=1 << 40)
    answers = []
    for account, scope in (("nobody", None), ("a01", frozenset({"a00"})), ("nobody", frozenset({"a00"}))):
        with pytest.raises(AccountNotFound) as info:
            registry.visible(account, scope)
        answers.append(str(info.value).replace(account, "X"))
    assert len(set(answers)) == 1
    registry.visible("a00", frozenset({"a00"}))
    registry.visible("a01", None)


def test_metrics_are_bounded_however_many_accounts_load(tmp_path: Path) -> None:
    """The server's metrics have no account label and as many series after 40 accounts as after 4."""
    root = _accounts(tmp_path / "models", [f"b{i:02d}" for i in range(40)], width=64)
    metrics = ServerMetrics()
    registry = AccountRegistry(root, budget=1 << 40, metrics=metrics)

    def series() -> int:
        samples = [s for family in metrics.registry.collect() for s in family.samples]
        assert not any("account" in s.labels for s in samples)
        return len(samples)

    for name in registry.known()[:4]:
        with registry.hold(name, scan=False):
            pass
    before = series()
    for name in registry.known()[4:]:
        with registry.hold(name, scan=False):
            pass
    assert series() == before
    assert metrics.registry.get_sample_value("scorecast_accounts_loaded") == 40
    assert metrics.registry.get_sample_value("scorecast_accounts_known") == 40
    assert metrics.registry.get_sample_value("scorecast_account_loads_total") == 40
    assert metrics.registry.get_sample_value("scorecast_model_bytes_held") == registry.held_bytes > 0


# -- against a running server -----------------------------------------------------------------

SCOPED, OTHER = "scoped-token-1", "other-token-2"


@pytest.fixture
def scoped_server(tmp_path: Path) -> Iterator[RunningServer]:
    """A repository without account folders (the default account), tokens scoped to accounts,
    a usage file."""
    models = tmp_path / "models"
    write_model(models, linear_model())
    write_model(models, segment_model())
    tokens = tmp_path / "tokens.json"
    entries = [
        {"token_sha256": hash_token(SCOPED), "name": "mine", "roles": ["score", "admin"], "accounts": [DEFAULT_ACCOUNT]},
        {"token_sha256": hash_token(OTHER), "name": "theirs", "roles": ["score", "admin"], "accounts": ["acme"]},
    ]
    tokens.write_text(json.dumps({"tokens": entries}))
    settings = ServerSettings(
        port=0, models=models, tokens_file=tokens, reload_interval_s=0, usage_file=tmp_path / "usage.jsonl", metrics_port=0
    )
    running = start_server(settings)
    yield running
    running.stop(0)


def _client(running: RunningServer, token: str) -> ScorecastClient:
    return ScorecastClient(f"127.0.0.1:{running.port}", timeout=30, token=token)


def test_token_scope_hides_accounts_outside_it(scoped_server: RunningServer, orders: pa.Table) -> None:
    """A token for 'acme' cannot score with, list, read or reload the default account: each call
    is NOT_FOUND with the text a missing account gets; the default account's own token can."""
    with _client(scoped_server, SCOPED) as mine:
        assert mine.score_batch({"orders": orders}, ["spend"], as_of=AS_OF).num_rows == 3
        assert {m.score for m in mine.list_models()} == {"spend", "segments"}
    with _client(scoped_server, OTHER) as theirs:
        calls = {
            "score": lambda: theirs.score_batch({"orders": orders}, ["spend"], as_of=AS_OF),
            "list": theirs.list_models,
            "get": lambda: theirs.get_model("spend"),
            "reload": theirs.reload_models,
        }
        for what, call in calls.items():
            with pytest.raises(grpc.RpcError) as info:
                call()
            assert info.value.code() == grpc.StatusCode.NOT_FOUND, what
            assert info.value.details() == f"account {DEFAULT_ACCOUNT!r} not found", what


def test_usage_file_counts_each_accounts_calls(scoped_server: RunningServer, orders: pa.Table) -> None:
    """Two scoring calls and one refused one: the usage file, written at stop, has the default
    account's calls, contacts and errors; the metrics endpoint names no account."""
    with _client(scoped_server, SCOPED) as mine:
        mine.score_batch({"orders": orders}, ["spend"], as_of=AS_OF)
        mine.score_batch({"orders": orders}, ["spend", "segments"], as_of=AS_OF)
        with pytest.raises(grpc.RpcError):
            mine.score_batch({"orders": orders}, ["nope"], as_of=AS_OF)
    text = urllib.request.urlopen(f"http://127.0.0.1:{scoped_server.metrics_port}/metrics", timeout=10).read().decode()
    assert "scorecast_accounts_known 1.0" in text and 'account="' not in text
    scoped_server.stop(0)
    assert scoped_server._usage is not None
    lines = [json.loads(line) for line in scoped_server._usage.path.read_text().splitlines()]
    assert [(u["account"], u["calls"], u["contacts"], u["errors"]) for u in lines] == [(DEFAULT_ACCOUNT, 3, 6, 1)]
