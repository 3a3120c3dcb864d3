"""PostgreSQL in and out (scorecast/postgres.py, scorecast/sources.py) against a real server."""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from threadpoolctl import threadpool_limits

from scorecast import postgres
from scorecast.base import read_table, table_names
from scorecast.cli import main
from scorecast.postgres import PostgresError
from scorecast.sources import local_base, score_writer
from tests.support.services import PG_OS_USER, PostgresServer, free_port, load_base

AS_OF = "2026-01-01"



@pytest.fixture(scope="module")
def base(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("pgbase")
    assert main(["simulate", "--contacts", "3000", "--seed", "5", "--out", str(root / "base")]) == 0
    return root / "base"


@pytest.fixture(scope="module")
def loaded(postgres: PostgresServer, base: Path) -> str:
    """The base in schema ``acme``; its URL."""
    load_base(postgres, base, "acme")
    return postgres.url(schema="acme")


def test_a_schema_reads_back_as_the_base(loaded: str, base: Path) -> None:
    """Every table staged from the schema equals the Parquet table it was loaded from: rows, types, values."""
    with local_base(loaded) as folder:
        assert table_names(folder) == table_names(base)
        for name in table_names(base):
            mine, theirs = read_table(folder, name), read_table(base, name)
            assert mine.schema == theirs.schema, name
            assert mine.equals(theirs), name


def test_reads_stream_in_bounded_batches(loaded: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """A table comes as several batches of about BATCH_BYTES, not as one table."""
    monkeypatch.setattr(postgres, "BATCH_BYTES", 64 * 1024)
    batches = list(postgres.read_table(postgres.parse_url(loaded), "email_events", ["ts", "event"]))
    assert len(batches) > 5
    assert max(b.nbytes for b in batches) < 4 * 64 * 1024
    assert batches[0].schema.names == ["contact_id", "ts", "event"]


@pytest.mark.slow
def test_train_and_rescore_postgres_to_postgres_equal_parquet(postgres: PostgresServer, loaded: str, base: Path, tmp_path: Path) -> None:
    """train --data postgresql:// and rescore into a table give the scores the Parquet path gives, typed columns, categories as text."""
    with threadpool_limits(1):  # small fits: threads only add barrier waits on a busy machine
        assert main(["train", "--data", loaded, "--out", str(tmp_path / "models"), "--scores", "rfm,affinity", "--as-of", AS_OF]) == 0
    common = ["--models", str(tmp_path / "models"), "--scores", "rfm,affinity", "--as-of", AS_OF, "--chunk-contacts", "1000"]
    out = postgres.url(schema="acme_scores", table="nightly")
    assert main(["rescore", "--data", loaded, "--out", out, *common]) == 0
    assert main(["rescore", "--data", str(base), "--out", str(tmp_path / "s.parquet"), *common]) == 0
    parquet = pq.read_table(tmp_path / "s.parquet").sort_by("contact_id")
    columns = dict(postgres.query("SELECT column_name, data_type FROM information_schema.columns WHERE table_name = 'nightly'"))
    assert columns["rfm.segment"] == "text" and columns["rfm.r"] in ("smallint", "integer", "bigint", "real")
    assert columns["affinity.shoes"] == "real" and columns["contact_id"] == "bigint"
    names = ", ".join(f'"{c}"' for c in parquet.column_names)
    rows = postgres.query(f'SELECT {names} FROM acme_scores.nightly ORDER BY contact_id')
    assert len(rows) == parquet.num_rows == 3000
    expected = parquet.to_pylist()
    for got, want in zip(rows[::97], expected[::97], strict=True):
        for value, wanted in zip(got, want.values(), strict=True):
            assert value == (pytest.approx(wanted, rel=1e-6) if isinstance(wanted, float) else wanted)
    assert postgres.query("SELECT count(*) FROM pg_tables WHERE tablename LIKE '%staging%'") == [(0,)]


def _scores(n: int, value: float) -> pa.RecordBatch:
    return pa.record_batch({"contact_id": pa.array(range(n), pa.int64()), "x.p": pa.array([value] * n, pa.float32())})


def test_readers_see_old_or_new_scores_never_half(postgres: PostgresServer) -> None:
    """While new scores are written, a reader counts the old table's rows until one commit swaps in all the new ones."""
    url = postgres.url(schema="swap", table="scores")
    with score_writer(url) as writer:
        writer.write(_scores(1000, 0.5))
    seen: set[tuple] = set()
    stop = threading.Event()
    errors: list[BaseException] = []

    def read() -> None:
        try:
            while not stop.is_set():
                seen.update(postgres.query('SELECT count(*), min("x.p") FROM swap.scores'))
        except BaseException as exc:  # noqa: BLE001 (reported below)
            errors.append(exc)

    reader = threading.Thread(target=read)
    reader.start()
    try:
        with score_writer(url) as writer:
            for _ in range(5):
                writer.write(_scores(600, 0.25))
            assert postgres.query("SELECT count(*) FROM swap.scores") == [(1000,)]  # nothing visible yet
    finally:
        stop.set()
        reader.join()
    assert not errors
    assert seen <= {(1000, 0.5), (3000, 0.25)}
    assert postgres.query("SELECT count(*) FROM swap.scores") == [(3000,)]


def test_a_failed_write_leaves_the_old_table_and_no_staging(postgres: PostgresServer) -> None:
    """An error before the end rolls everything back: old scores intact, no staging table."""
    url = postgres.url(schema="failed", table="scores")
    with score_writer(url) as writer:
        writer.write(_scores(10, 1.0))
    with pytest.raises(RuntimeError, match="scoring broke"), score_writer(url) as writer:
        writer.write(_scores(20, 2.0))
        raise RuntimeError("scoring broke")
    assert postgres.query('SELECT count(*), max("x.p") FROM failed.scores') == [(10, 1.0)]
    assert postgres.query("SELECT count(*) FROM pg_tables WHERE schemaname = 'failed'") == [(1,)]


SMALL_TABLESPACE = "small_disk"


@pytest.fixture
def small_tablespace(postgres: PostgresServer) -> Iterator[Path]:
    """A tablespace on a 4 MiB tmpfs this test mounts (PostgreSQL's own WAL and catalogs stay on
    its data folder, so only the tables placed there meet the full disk); its folder."""
    import adbc_driver_postgresql.dbapi as pg

    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs for a full PostgreSQL tablespace needs root (CI runs as root)")
    owner = pwd.getpwnam(PG_OS_USER)
    folder = Path(tempfile.mkdtemp(prefix="scorecast-pgfull-"))  # under /tmp: reachable by the server's user
    mount = ["mount", "-t", "tmpfs", "-o", f"size=4m,mode=0700,uid={owner.pw_uid},gid={owner.pw_gid}", "tmpfs", str(folder)]
    run = subprocess.run(mount, capture_output=True, text=True)
    if run.returncode != 0:
        folder.rmdir()
        pytest.skip(f"cannot mount a tmpfs for a full tablespace ({run.stderr.strip() or run.returncode})")
    try:
        with pg.connect(postgres.url(), autocommit=True) as conn, conn.cursor() as cur:  # CREATE TABLESPACE cannot run in a transaction
            cur.execute(f"CREATE TABLESPACE {SMALL_TABLESPACE} LOCATION '{folder}'")
        yield folder
    finally:
        (folder / "filler").unlink(missing_ok=True)
        with pg.connect(postgres.url(), autocommit=True) as conn, conn.cursor() as cur:
            cur.execute("DROP SCHEMA IF EXISTS diskfull CASCADE")
            cur.execute(f"DROP TABLESPACE IF EXISTS {SMALL_TABLESPACE}")
        subprocess.run(["umount", "-l", str(folder)], check=False)
        folder.rmdir()


def test_a_full_disk_leaves_the_old_table_and_no_staging(postgres: PostgresServer, small_tablespace: Path) -> None:
    """The server's disk fills while the staging table is written: one line naming the table, the
    full disk and the server's file; the old scores stay, no staging table is left."""
    # the connection's tables go to the small tablespace (libpq's options parameter)
    url = postgres.url(schema="diskfull", table="scores", options=quote(f"-c default_tablespace={SMALL_TABLESPACE}"))
    with score_writer(url) as writer:
        writer.write(_scores(1000, 1.0))
    with (small_tablespace / "filler").open("wb") as f:  # the disk to its last byte
        try:
            f.write(b"\0" * shutil.disk_usage(small_tablespace).free)
        except OSError:
            pass
    with pytest.raises(PostgresError) as info, score_writer(url) as writer:
        for _ in range(20):
            writer.write(_scores(100_000, 0.25))
    message = str(info.value)
    assert len(message.splitlines()) == 1, message
    assert "write scores to diskfull.scores (staging table scores__staging_" in message, message
    assert "the database server's disk is full" in message and "No space left on device" in message, message
    assert postgres.password not in message
    assert postgres.query('SELECT count(*), max("x.p") FROM diskfull.scores') == [(1000, 1.0)]
    assert postgres.query("SELECT tablename FROM pg_tables WHERE schemaname = 'diskfull'") == [("scores",)]


@pytest.fixture(scope="module")
def broken(postgres: PostgresServer) -> None:
    """Schemas with a table missing a column, one with a column of the wrong type, a role with no rights."""
    postgres.execute(
        "CREATE SCHEMA nots",
        "CREATE TABLE nots.orders (contact_id bigint, amount double precision)",
        "CREATE SCHEMA badtype",
        "CREATE TABLE badtype.orders (contact_id bigint, ts integer, amount double precision)",
        "CREATE SCHEMA empty",
        "CREATE TABLE empty.notes (x int)",
        "CREATE ROLE outsider LOGIN PASSWORD 'outsider-pw-9'",
        "REVOKE ALL ON SCHEMA acme FROM PUBLIC",
    )


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("URL?schema=missing", "schema 'missing' does not exist"),
        ("URL?schema=empty", "has none of the base tables"),
        ("URL?schema=nots", "table nots.orders has no column ts"),
        ("URL?schema=badtype", "column badtype.orders.ts is integer; a timestamp column must be one of"),
        ("REFUSED", "cannot connect: the server refused"),
        ("WRONGPW", "authentication failed"),
        ("OUTSIDER", "permission denied"),
    ],
    ids=["missing-schema", "missing-table", "missing-column", "wrong-type", "connection-refused", "wrong-password", "permission-denied"],
)
def test_errors_name_the_problem_never_the_password(
    postgres: PostgresServer, loaded: str, broken: None, url: str, message: str, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    """train --data on a bad location exits 2 with one line naming the problem; the password never shows."""
    urls = {
        "REFUSED": postgres.url(schema="acme").replace(f":{postgres.port}/", f":{free_port()}/"),
        "WRONGPW": postgres.url(schema="acme", password="not-the-password-7"),
        "OUTSIDER": postgres.url(user="outsider", password="outsider-pw-9", schema="acme"),
    }
    data = urls.get(url) or postgres.url() + url.removeprefix("URL")
    assert main(["train", "--data", data, "--out", str(tmp_path / "m")]) == 2
    err = capsys.readouterr().err
    assert message in err, err
    assert len(err.strip().splitlines()) == 1
    for secret in (postgres.password, "not-the-password-7", "outsider-pw-9"):
        assert secret not in err
    assert "***" in err


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("mysql://u:sekret@h/db", "unsupported URL scheme 'mysql'"),
        ("postgresql://u:sekret@h:notaport/db", "bad PostgreSQL URL"),
        ("postgresql://u:sekret@h:5432/", "give one database name"),
        ("postgresql://u:sekret@h:5432/db?schema=a;drop", "is not a plain name"),
    ],
    ids=["other-scheme", "bad-port", "no-database", "bad-schema"],
)
def test_a_bad_url_is_refused_before_any_work(url: str, message: str, capsys: pytest.CaptureFixture[str]) -> None:
    """A malformed URL fails at argument parsing, naming the fault, without the password."""
    with pytest.raises(SystemExit):
        main(["rescore", "--models", "m", "--data", url, "--scores", "rfm", "--out", "x.parquet"])
    err = capsys.readouterr().err
    assert message in err and "sekret" not in err


def test_redact_hides_only_the_password() -> None:
    """A URL keeps its user, host, port and database; the password becomes ***."""
    location = postgres.parse_url("postgresql://crm:p%40ss@db.internal:6543/brands?schema=acme&sslmode=disable")
    assert location.schema == "acme" and location.table == "scores"
    assert location.redacted() == "postgresql://crm:***@db.internal:6543/brands?sslmode=disable (schema acme)"
    assert "p@ss" not in location.scrub("failed for p@ss and p%40ss") and location.scrub("p@ss") == "***"
