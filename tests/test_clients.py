"""Clients other than ours against a running server: tritonclient over the Open Inference
Protocol and the Node.js client (clients/node) over scorecast.v1, each giving the native
Python client's values on a simulated base."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import grpc
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

from scorecast.base import BaseChunks
from scorecast.cli import main
from scorecast.client import ScorecastClient
from scorecast.process import ServerProcess
from scorecast.proto import oip, oip_rpc

ROOT = Path(__file__).resolve().parents[1]
TRITON_PYTHON = ROOT / ".venv-triton" / "bin" / "python"
NODE_CLIENT = ROOT / "clients" / "node"
AS_OF = datetime(2026, 1, 1, tzinfo=UTC)
AS_OF_US = int(AS_OF.timestamp() * 1_000_000)


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("clients")
    assert main(["simulate", "--contacts", "3000", "--seed", "5", "--out", str(root / "base")]) == 0
    assert main(["train", "--data", str(root / "base"), "--out", str(root / "models")]) == 0
    return root / "base", root / "models"


@pytest.fixture(scope="module")
def server(trained: tuple[Path, Path], tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    with ServerProcess(trained[1], tmp_path_factory.mktemp("srv")) as running:
        yield running


def _tables(base: Path, contacts: int) -> dict[str, pa.Table]:
    """The event tables of the base's first ``contacts`` contacts."""
    ids = pq.read_table(base / "contacts.parquet", columns=["contact_id"])["contact_id"].slice(0, contacts)
    tables = {}
    for path in sorted(base.glob("*.parquet")):
        table = pq.read_table(path)
        if "contact_id" in table.column_names and path.stem != "contacts":
            tables[path.stem] = table.filter(pc.is_in(table["contact_id"], value_set=ids.combine_chunks()))
    return tables


def _numpy(column: pa.ChunkedArray) -> np.ndarray:
    if pa.types.is_timestamp(column.type):
        return column.cast(pa.int64()).to_numpy()
    if pa.types.is_string(column.type) or pa.types.is_large_string(column.type):
        return np.array([v.encode() for v in column.to_pylist()], dtype=object)
    return column.to_numpy()


@pytest.mark.slow
@pytest.mark.parametrize("score", ["rfm", "clv"])
def test_tritonclient_gets_the_native_scores(score: str, trained: tuple[Path, Path], server: ServerProcess, tmp_path: Path) -> None:
    """tritonclient.grpc (its own venv, protobuf < 7) gets Score's values, categories included."""
    if not TRITON_PYTHON.exists():
        pytest.skip(f"{TRITON_PYTHON} is absent: `make test` (or `make .venv-triton`) creates it")
    tables = _tables(trained[0], 300)
    with grpc.insecure_channel(server.target) as channel:
        metadata = oip_rpc.GRPCInferenceServiceStub(channel).ModelMetadata(oip.ModelMetadataRequest(name=score))
    arrays = {}
    for tensor in metadata.inputs:
        table, column = tensor.name.split(".", 1)
        arrays[tensor.name] = _numpy(tables[table][column])
    np.savez(tmp_path / "inputs.npz", **arrays)
    run = subprocess.run(
        [str(TRITON_PYTHON), str(ROOT / "tests" / "clients" / "tritonclient_infer.py"), server.target, score, str(AS_OF_US),
         str(tmp_path / "inputs.npz"), str(tmp_path / "outputs.npz")],
        capture_output=True, text=True, timeout=120,
    )
    assert run.returncode == 0, run.stderr
    got = dict(np.load(tmp_path / "outputs.npz", allow_pickle=True))
    sent = {t.split(".", 1)[0] for t in arrays}
    with ScorecastClient(server.target, timeout=60) as client:
        native = pa.Table.from_batches(list(client.score([{name: tables[name] for name in sent}], [score], as_of=AS_OF)))
    assert list(got) == native.column_names
    assert native.num_rows > 100
    categorical = 0
    for name in native.column_names:
        column = native[name].combine_chunks()
        if pa.types.is_dictionary(column.type):
            categorical += 1
            assert [v.decode() for v in got[name]] == column.cast(pa.string()).fill_null("").to_pylist(), name
        elif pa.types.is_floating(column.type):
            np.testing.assert_array_equal(got[name], column.to_numpy(zero_copy_only=False), err_msg=name)
        else:  # ids, timestamps (µs) and counts: nulls arrive as the type's minimum
            ints = column.cast(pa.int64()) if pa.types.is_timestamp(column.type) else column
            assert got[name].tolist() == ints.fill_null(np.iinfo(got[name].dtype).min).to_pylist(), name
    if score == "rfm":
        assert categorical >= 1  # rfm.segment


@pytest.mark.slow
def test_node_client_gets_the_python_clients_scores(trained: tuple[Path, Path], server: ServerProcess, tmp_path: Path) -> None:
    """clients/node/example.js streams a simulated base's chunks (Arrow IPC) to Score and gets
    what the Python client gets, chunk by chunk."""
    node = shutil.which("node")
    if node is None:
        pytest.skip("node is not installed: the Node.js client is not tested (CI installs it: apt-get install nodejs npm)")
    if not (NODE_CLIENT / "node_modules").is_dir():
        pytest.skip(f"{NODE_CLIENT}/node_modules is absent: `make test` runs `npm ci` there")
    base, scores = trained[0], ["rfm", "clv", "churn"]
    with ScorecastClient(server.target, timeout=120) as client:
        columns: dict[str, list[str]] = {"contacts": ["contact_id"]}
        for score in scores:
            for name in client.get_model(score).input_columns:
                table, column = name.split(".", 1)
                columns.setdefault(table, []).append(column)
        chunks = list(BaseChunks(base, columns, chunk_contacts=1000))
        python = [pa.Table.from_batches([b]) for b in client.score(chunks, scores, as_of=AS_OF)]
    for k, chunk in enumerate(chunks):
        (tmp_path / "chunks" / f"{k:03d}").mkdir(parents=True)
        for name, table in chunk.items():
            with pa.ipc.new_file(tmp_path / "chunks" / f"{k:03d}" / f"{name}.arrow", table.schema) as writer:
                writer.write_table(table)
    run = subprocess.run(
        [node, "example.js", "--target", server.target, "--scores", ",".join(scores), "--as-of", "2026-01-01T00:00:00Z",
         "--chunks", str(tmp_path / "chunks"), "--out", str(tmp_path / "out")],
        cwd=NODE_CLIENT, capture_output=True, text=True, timeout=300,
    )
    assert run.returncode == 0, run.stderr
    assert f"scored {sum(t.num_rows for t in python)} contacts in {len(chunks)} chunks" in run.stderr
    node_tables = [pa.ipc.open_file(path).read_all() for path in sorted((tmp_path / "out").glob("*.arrow"))]
    assert len(node_tables) == len(python) == 3
    for got, expected in zip(node_tables, python, strict=True):
        assert got.column_names == expected.column_names
        for name in expected.column_names:
            assert got[name].combine_chunks().equals(expected[name].combine_chunks()), name


def test_node_example_fails_in_one_line_without_a_server(tmp_path: Path) -> None:
    """The example's error path: a server that is not there is a one-line failure, exit 1."""
    node = shutil.which("node")
    if node is None or not (NODE_CLIENT / "node_modules").is_dir():
        pytest.skip("node or clients/node/node_modules is absent (`make test` runs `npm ci` when node is installed)")
    run = subprocess.run(
        [node, "example.js", "--target", "127.0.0.1:1", "--token", "t", "--retries", "0"], cwd=NODE_CLIENT, capture_output=True, text=True, timeout=60
    )
    assert run.returncode == 1 and run.stderr.startswith("scorecast: gave up after 0 retries") and len(run.stderr.splitlines()) == 1


def test_node_client_names_its_account(tmp_path: Path) -> None:
    """The Node.js client sends its account in the header: the default one scores, another is
    NOT_FOUND naming it (one line, exit 1)."""
    from .support.fakes import linear_model, write_model

    node = shutil.which("node")
    if node is None or not (NODE_CLIENT / "node_modules").is_dir():
        pytest.skip("node or clients/node/node_modules is absent (`make test` runs `npm ci` when node is installed)")
    write_model(tmp_path / "models", linear_model())
    with ServerProcess(tmp_path / "models", tmp_path / "srv") as running:
        example = [node, "example.js", "--target", running.target, "--scores", "spend"]
        served = subprocess.run(example, cwd=NODE_CLIENT, capture_output=True, text=True, timeout=60)
        assert served.returncode == 0 and "scored 3 contacts in 1 chunks" in served.stderr, served.stderr
        refused = subprocess.run([*example, "--account", "acme"], cwd=NODE_CLIENT, capture_output=True, text=True, timeout=60)
    assert refused.returncode == 1 and refused.stderr.strip() == "scorecast: account 'acme' not found"


@pytest.mark.slow
@pytest.mark.parametrize("fault", ["failover", "restart"])
def test_node_client_survives_a_server_killed_mid_stream(fault: str, trained: tuple[Path, Path], tmp_path: Path) -> None:
    """kill -9 the server the Node client streams to after chunk 2 is answered; the stream
    goes on on the second target (failover) or on the server started again on its port
    (restart), and every chunk's scores equal the Python client's, each chunk once."""
    node = shutil.which("node")
    if node is None or not (NODE_CLIENT / "node_modules").is_dir():
        pytest.skip("node or clients/node/node_modules is absent (`make test` runs `npm ci` when node is installed)")
    base, models = trained
    first = ServerProcess(models, tmp_path / "a")
    servers = [first]
    try:
        if fault == "failover":
            servers.append(ServerProcess(models, tmp_path / "b"))
        with ScorecastClient(first.target, timeout=120) as client:
            columns: dict[str, list[str]] = {"contacts": ["contact_id"]}
            for name in client.get_model("rfm").input_columns:
                table, column = name.split(".", 1)
                columns.setdefault(table, []).append(column)
            chunks = list(BaseChunks(base, columns, chunk_contacts=200))
            python = [pa.Table.from_batches([b]) for b in client.score(chunks, ["rfm"], as_of=AS_OF)]
        for k, chunk in enumerate(chunks):
            (tmp_path / "chunks" / f"{k:03d}").mkdir(parents=True)
            for name, table in chunk.items():
                with pa.ipc.new_file(tmp_path / "chunks" / f"{k:03d}" / f"{name}.arrow", table.schema) as writer:
                    writer.write_table(table)
        targets = ",".join(s.target for s in servers)
        run = subprocess.Popen(
            [node, "example.js", "--target", targets, "--scores", "rfm", "--as-of", "2026-01-01T00:00:00Z", "--chunks", str(tmp_path / "chunks"),
             "--out", str(tmp_path / "out"), "--pause-after", "2", "--retries", "8"],
            cwd=NODE_CLIENT, stdin=subprocess.PIPE, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True,
        )  # fmt: skip
        assert run.stderr is not None and run.stdin is not None
        assert run.stderr.readline().strip() == "paused after chunk 2"
        first.proc.kill()
        first.proc.wait()
        if fault == "restart":
            servers.append(ServerProcess(models, tmp_path / "b", args=["--port", str(first.port)]))
        run.stdin.write("go\n")
        run.stdin.close()
        stderr = run.stderr.read()
        run.stderr.close()
        assert run.wait(180) == 0, stderr
    finally:
        for s in servers:
            s.stop()
    assert f"the stream to {first.target} failed (UNAVAILABLE" in stderr
    assert f"scored {sum(t.num_rows for t in python)} contacts in {len(chunks)} chunks" in stderr
    node_tables = [pa.ipc.open_file(path).read_all() for path in sorted((tmp_path / "out").glob("*.arrow"))]
    assert len(node_tables) == len(python) == len(chunks) > 5
    for got, expected in zip(node_tables, python, strict=True):
        assert got.column_names == expected.column_names
        for name in expected.column_names:
            assert got[name].combine_chunks().equals(expected[name].combine_chunks()), name


# -- named accounts: every client reaches the models of the account it names ------------------


@pytest.fixture(scope="module")
def accounts_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """``scorecast serve`` over two accounts whose ``spend`` differ: acme = frequency + total,
    beta = frequency + 10 x total (so a value tells which account's model scored it)."""
    from .support.fakes import linear_model, write_model

    root = tmp_path_factory.mktemp("accounts")
    write_model(root / "models" / "acme", linear_model(weights=(1.0, 1.0)))
    write_model(root / "models" / "beta", linear_model(weights=(1.0, 10.0)))
    with ServerProcess(root / "models", root / "srv", env={"SCORECAST_RELOAD_INTERVAL_S": "0"}) as running:
        yield running


def _orders(contacts: int) -> pa.Table:
    rng = np.random.default_rng(3)
    ids = np.repeat(np.arange(1, contacts + 1, dtype=np.int64), 2)
    return pa.table({
        "contact_id": ids,
        "ts": pa.array(AS_OF_US - rng.integers(1, 300, ids.size) * 86_400_000_000, pa.timestamp("us", tz="UTC")),
        "amount": rng.uniform(5, 100, ids.size),
    })  # fmt: skip


def test_cli_score_names_its_account(accounts_server: ServerProcess, tmp_path: Path) -> None:
    """`scorecast score --account beta` writes beta's scores (the Python client's, with
    account="beta"); --account acme writes acme's, which differ; an unknown account is one line."""
    base = tmp_path / "base"
    base.mkdir()
    orders = _orders(50)
    pq.write_table(orders, base / "orders.parquet")
    pq.write_table(pa.table({"contact_id": pa.array(np.arange(1, 51, dtype=np.int64))}), base / "contacts.parquet")
    written = {}
    for account in ("beta", "acme"):
        out = tmp_path / f"{account}.parquet"
        argv = ["score", "--server", accounts_server.target, "--data", str(base), "--scores", "spend", "--as-of", "2026-01-01T00:00:00Z",
                "--account", account, "--out", str(out)]  # fmt: skip
        assert main(argv) == 0
        written[account] = pq.read_table(out)
    with ScorecastClient(accounts_server.target, timeout=60, account="beta") as client:
        native = client.score_batch({"orders": orders}, ["spend"], as_of=AS_OF)
    beta = dict(zip(written["beta"]["contact_id"].to_pylist(), written["beta"]["spend.value"].to_pylist(), strict=True))
    assert beta == dict(zip(native.column(0).to_pylist(), native.column(1).to_pylist(), strict=True)) and len(beta) == 50
    acme = dict(zip(written["acme"]["contact_id"].to_pylist(), written["acme"]["spend.value"].to_pylist(), strict=True))
    assert all(beta[c] > acme[c] for c in beta)
    assert main(["score", "--server", accounts_server.target, "--data", str(base), "--scores", "spend", "--account", "nobody",
                 "--out", str(tmp_path / "x.parquet")]) == 2  # fmt: skip


def test_node_client_scores_with_a_named_account(accounts_server: ServerProcess) -> None:
    """clients/node/example.js --account beta gets beta's values (frequency + 10 x total), acme acme's."""
    node = shutil.which("node")
    if node is None or not (NODE_CLIENT / "node_modules").is_dir():
        pytest.skip("node or clients/node/node_modules is absent (`make test` runs `npm ci` when node is installed)")
    # example.js's three contacts: orders of (20, 35), (12) and (80, 15, 40)
    expected = {"acme": [["1", "57"], ["2", "13"], ["3", "138"]], "beta": [["1", "552"], ["2", "121"], ["3", "1353"]]}
    for account, rows in expected.items():
        run = subprocess.run(
            [node, "example.js", "--target", accounts_server.target, "--scores", "spend", "--as-of", "2026-01-01T00:00:00Z", "--account", account],
            cwd=NODE_CLIENT, capture_output=True, text=True, timeout=120,
        )  # fmt: skip
        assert run.returncode == 0, run.stderr
        lines = [line.split("\t") for line in run.stdout.strip().splitlines()]
        assert lines[0] == ["contact_id", "spend.value"] and lines[1:] == rows, account


@pytest.mark.slow
def test_tritonclient_names_the_model_account_slash_score(accounts_server: ServerProcess, tmp_path: Path) -> None:
    """tritonclient.grpc infers `beta/spend` (the OIP model name <account>/<score>) and gets what
    the Python client gets with account="beta"."""
    if not TRITON_PYTHON.exists():
        pytest.skip(f"{TRITON_PYTHON} is absent: `make test` (or `make .venv-triton`) creates it")
    orders = _orders(20)
    with ScorecastClient(accounts_server.target, timeout=60) as client:  # loads beta: ModelReady never loads
        native = client.score_batch({"orders": orders}, ["spend"], as_of=AS_OF, account="beta")
    with grpc.insecure_channel(accounts_server.target) as channel:
        metadata = oip_rpc.GRPCInferenceServiceStub(channel).ModelMetadata(oip.ModelMetadataRequest(name="beta/spend"))
    np.savez(tmp_path / "inputs.npz", **{t.name: _numpy(orders[t.name.split(".", 1)[1]]) for t in metadata.inputs})
    run = subprocess.run(
        [str(TRITON_PYTHON), str(ROOT / "tests" / "clients" / "tritonclient_infer.py"), accounts_server.target, "beta/spend", str(AS_OF_US),
         str(tmp_path / "inputs.npz"), str(tmp_path / "outputs.npz")],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr
    got = dict(np.load(tmp_path / "outputs.npz", allow_pickle=True))
    assert got["contact_id"].tolist() == native.column(0).to_pylist()
    np.testing.assert_array_equal(got["spend.value"], native.column(1).to_numpy())
