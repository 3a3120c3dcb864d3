"""The ``scorecast`` command line, end to end: simulate, train, serve, score, rescore."""

from __future__ import annotations

import os
import signal
from collections.abc import Iterator
from pathlib import Path

import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

from scorecast.cli import build_parser, main
from scorecast.process import ServerProcess

AS_OF = "2026-01-01"


def test_every_command_has_help(capsys: pytest.CaptureFixture[str]) -> None:
    """Each command prints --help and exits 0."""
    commands = build_parser()._subparsers._group_actions[0].choices  # type: ignore[union-attr]
    assert set(commands) == {"simulate", "simulate-b2b", "cdnow", "train", "serve", "score", "rescore", "top", "report", "lead-rules", "demo", "import"}
    for name in commands:
        with pytest.raises(SystemExit) as info:
            main([name, "--help"])
        assert info.value.code == 0
        assert "usage: scorecast" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["train", "--data", "/nowhere", "--out", "/tmp/x"], "no orders"),
        (["rescore", "--models", "/nowhere", "--data", "/nowhere", "--scores", "rfm", "--out", "/tmp/x.parquet"], "/nowhere"),
        (["simulate", "--contacts", "-5", "--out", "/tmp/never"], "n_contacts must be > 0, got -5"),
        (["rescore", "--models", "MODELS", "--data", "/nowhere", "--scores", "spend", "--out", "/tmp/x.parquet", "--churn-threshold", "2"], "options.churn_threshold"),
    ],
    ids=["train-no-data", "rescore-no-models", "simulate-negative", "rescore-bad-option"],
)
def test_bad_input_is_one_line_and_exit_2(argv: list[str], message: str, capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    """Bad input exits 2 with a one-line reason, no traceback."""
    from .support.fakes import linear_model, write_model

    write_model(tmp_path, linear_model())
    assert main([str(tmp_path) if a == "MODELS" else a for a in argv]) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("cli")
    assert main(["simulate", "--contacts", "6000", "--seed", "3", "--out", str(root / "base")]) == 0
    assert main(["train", "--data", str(root / "base"), "--out", str(root / "models")]) == 0
    return root / "base", root / "models"


@pytest.fixture(scope="module")
def server(trained: tuple[Path, Path], tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    with ServerProcess(trained[1], tmp_path_factory.mktemp("srv")) as running:
        yield running


@pytest.mark.slow
def test_score_over_grpc_equals_rescore(trained: tuple[Path, Path], server: ServerProcess, tmp_path: Path) -> None:
    """`score` through the server and `rescore` in process write the same scores for every contact."""
    base, models = trained
    port = server.port
    common = ["--data", str(base), "--scores", "rfm,affinity,clv,churn", "--as-of", AS_OF, "--chunk-contacts", "1000"]
    assert main(["score", "--server", f"127.0.0.1:{port}", "--out", str(tmp_path / "grpc.parquet"), *common]) == 0
    assert main(["rescore", "--models", str(models), "--out", str(tmp_path / "local.parquet"), *common]) == 0
    grpc_table, local = pq.read_table(tmp_path / "grpc.parquet"), pq.read_table(tmp_path / "local.parquet")
    assert grpc_table.num_rows == local.num_rows == pq.read_table(base / "contacts.parquet").num_rows
    assert grpc_table.equals(local)
    assert "affinity.shoes" in grpc_table.column_names and "rfm.segment" in grpc_table.column_names
    prospects = pc.equal(grpc_table["rfm.segment"].combine_chunks().dictionary_decode(), "prospect")
    assert pc.all(pc.is_null(pc.filter(grpc_table["rfm.r"], prospects))).as_py()


@pytest.mark.slow
def test_score_error_from_server_is_one_line(server: ServerProcess, trained: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """An unknown score is the server's NOT_FOUND, printed as one line; no output file is left."""
    port = server.port
    out = tmp_path / "x.parquet"
    argv = ["score", "--server", f"127.0.0.1:{port}", "--data", str(trained[0]), "--scores", "nope", "--out", str(out)]
    assert main(argv) == 2
    assert "NOT_FOUND" in capsys.readouterr().err
    assert not out.exists() and not list(tmp_path.iterdir())


@pytest.mark.slow
def test_top_equals_sorted_rescore(trained: tuple[Path, Path], server: ServerProcess, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """`top` over gRPC (base streamed) writes the first N of the rescored base filtered and sorted
    (score desc, contact_id asc); a path read on a server with no base roots is refused."""
    base, models = trained
    common = ["--data", str(base), "--as-of", AS_OF]
    assert main(["rescore", "--models", str(models), "--scores", "affinity,rfm", "--out", str(tmp_path / "all.parquet"), *common]) == 0
    scores = pq.read_table(tmp_path / "all.parquet")
    group = next(c for c in scores.column_names if c.startswith("affinity."))
    argv = ["top", "--server", server.target, "--by", group, "--n", "300", "--where", 'rfm.segment != "prospect"', "--out", str(tmp_path / "top.parquet")]
    assert main([*argv, *common, "--chunk-contacts", "700"]) == 0
    top = pq.read_table(tmp_path / "top.parquet")
    kept = scores.filter(pc.not_equal(scores["rfm.segment"].combine_chunks().dictionary_decode(), "prospect"))
    expected = kept.sort_by([(group, "descending"), ("contact_id", "ascending")]).slice(0, 300)
    assert top.column_names == ["contact_id", group, "rfm.segment"]
    assert top["contact_id"].to_pylist() == expected["contact_id"].to_pylist()
    assert top[group].to_pylist() == expected[group].to_pylist()
    assert "top 300 by" in capsys.readouterr().out
    assert main(["top", "--server", server.target, "--by", group, "--n", "5", "--base-path", str(base), "--out", str(tmp_path / "x.parquet")]) == 2
    assert "PERMISSION_DENIED" in capsys.readouterr().err and not (tmp_path / "x.parquet").exists()
    assert main([*argv[:-4], "--where", "rfm.segment ~ 1", "--data", str(base), "--out", str(tmp_path / "y.parquet")]) == 2
    assert "where[0] 'rfm.segment ~ 1'" in capsys.readouterr().err


@pytest.mark.slow
def test_sigterm_stops_the_server_cleanly(server: ServerProcess) -> None:
    """SIGTERM makes `serve` shut down gracefully and exit 0."""
    os.kill(server.pid, signal.SIGTERM)
    assert server.proc.wait(timeout=60) == 0


@pytest.mark.slow
def test_cdnow_train_and_rescore(tmp_path: Path) -> None:
    """CDNOW as a base: train clv/churn on the calibration weeks, serve and score it (and
    rescore: the same result), and the served expected repeat purchases over the 39 holdout weeks beat the naive rate on the real holdout."""
    import numpy as np

    from scorecast.training.clv.validation import repeat_summary
    from scorecast.training.simulate.cdnow import CALIBRATION_END, HOLDOUT_END, load_cdnow_transactions

    base, models, out = tmp_path / "cdnow", tmp_path / "models", tmp_path / "scores.parquet"
    assert main(["cdnow", "--out", str(base)]) == 0
    assert main(["train", "--data", str(base), "--out", str(models), "--scores", "rfm,clv,churn", "--as-of", "1997-09-30"]) == 0
    horizon = (HOLDOUT_END - CALIBRATION_END).days
    options = ["--data", str(base), "--scores", "clv,churn", "--as-of", "1997-09-30", "--horizon-days", str(horizon)]
    assert main(["rescore", "--models", str(models), "--out", str(out), *options]) == 0
    with ServerProcess(models, tmp_path / "srv") as cdnow_server:
        assert main(["score", "--server", cdnow_server.target, "--out", str(tmp_path / "grpc.parquet"), *options]) == 0
    scores = pq.read_table(out)
    assert pq.read_table(tmp_path / "grpc.parquet").equals(scores)  # served over gRPC = in process
    assert scores.num_rows == 2357
    orders = load_cdnow_transactions()
    ids = scores["contact_id"].combine_chunks()
    cal = repeat_summary(orders, CALIBRATION_END, ids)
    actual = repeat_summary(orders, HOLDOUT_END, ids)[:, 0] - cal[:, 0]
    predicted = scores["clv.expected_orders"].to_numpy(zero_copy_only=False)
    naive = cal[:, 0] / np.maximum(cal[:, 2], 1) * horizon
    model_mae, naive_mae = np.mean(np.abs(predicted - actual)), np.mean(np.abs(naive - actual))
    assert model_mae < 0.8 * naive_mae
    assert abs(predicted.sum() - actual.sum()) < abs(naive.sum() - actual.sum())
    assert pc.all(pc.is_valid(scores["churn.decisive_date"])).as_py()


def test_option_and_account_flags_of_every_scoring_command() -> None:
    """score, rescore and top take every request option (scorecast.options) and --account."""
    from scorecast.options import OPTIONS, option_values

    parser = build_parser()
    flags = ["--as-of", AS_OF, "--horizon-days", "30", "--product-groups", "shoes,books", "--model-versions", "affinity=3",
             "--churn-threshold", "0.25", "--include-bought", "--uplift-threshold", "0.1", "--buy-threshold", "0.7",
             "--account", "acme", "--out", "/tmp/x.parquet"]  # fmt: skip
    commands = {
        "score": ["score", "--server", "h:1", "--data", "/d", "--scores", "affinity"],
        "rescore": ["rescore", "--models", "/m", "--data", "/d", "--scores", "affinity"],
        "top": ["top", "--server", "h:1", "--by", "affinity.shoes", "--n", "5", "--data", "/d"],
    }
    for name, argv in commands.items():
        args = parser.parse_args([*argv, *flags])
        values = option_values(args)
        assert set(values) == {o.name for o in OPTIONS}, name
        assert (values["horizon_days"], values["product_groups"], values["model_versions"]) == (30, ["shoes", "books"], {"affinity": "3"})
        assert (values["exclude_bought"], values["buy_threshold"], args.account) == (False, 0.7, "acme"), name
        assert parser.parse_args(argv + ["--out", "/tmp/x.parquet"]).account == "", name


def test_a_bad_account_name_is_refused_before_any_work(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(["train", "--data", "/nowhere", "--out", "/tmp/never", "--account", "../up"])
    assert info.value.code == 2
    assert "account '../up' is not a valid name" in capsys.readouterr().err


@pytest.mark.slow
def test_train_and_rescore_use_the_accounts_folder(tmp_path: Path) -> None:
    """`train --account acme` writes MODELS/acme/<score>/<version>.onnx; `rescore --account acme` reads it."""
    assert main(["cdnow", "--out", str(tmp_path / "base")]) == 0
    models = tmp_path / "models"
    assert main(["train", "--data", str(tmp_path / "base"), "--out", str(models), "--scores", "rfm", "--account", "acme"]) == 0
    assert sorted(p.relative_to(models).as_posix() for p in models.rglob("*.onnx")) == ["acme/rfm/1.onnx"]
    out = tmp_path / "rfm.parquet"
    common = ["rescore", "--models", str(models), "--data", str(tmp_path / "base"), "--scores", "rfm", "--out", str(out), "--as-of", "1998-07-01"]
    assert main([*common, "--account", "acme"]) == 0
    assert pq.read_table(out).num_rows == 2357
    assert main(common) == 2  # the default account: the root holds no model
