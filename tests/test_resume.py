"""``scorecast score`` across faults, end to end (scorecast.resume, scorecast.retry): the server
killed with SIGKILL and restarted on its port, a server that never comes back (the job stops
with its answers kept, ``--resume`` finishes it), the client itself killed. Each finished
output has the bytes of an uninterrupted run."""

from __future__ import annotations

import hashlib
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from scorecast.cli import main
from scorecast.process import ServerProcess
from scorecast.resume import ResumeState, state_folder

from .support.fakes import served_base

CHUNK = "300"


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    return served_base(tmp_path_factory.mktemp("resume"))


def _argv(base: Path, target: str, out: Path, *extra: str) -> list[str]:
    return ["score", "--server", target, "--data", str(base), "--scores", "spend,segments", "--as-of", "2026-01-01",
            "--chunk-contacts", CHUNK, "--out", str(out), *extra]  # fmt: skip


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def expected(setup: tuple[Path, Path], tmp_path_factory: pytest.TempPathFactory) -> str:
    """The sha256 of an uninterrupted run's output."""
    root = tmp_path_factory.mktemp("ref")
    with ServerProcess(setup[1], root) as server:
        assert main(_argv(setup[0], server.target, root / "scores.parquet")) == 0
    assert not state_folder(root / "scores.parquet").exists()
    return _sha(root / "scores.parquet")


class Client:
    """``scorecast score`` in a child process; its stderr lines (split at tqdm's carriage
    returns too) are collected, and ``retried`` counts the failed streams it reports."""

    def __init__(self, argv: list[str]) -> None:
        self.proc = subprocess.Popen([sys.executable, "-m", "scorecast.cli", *argv], stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True)
        self.lines: list[str] = []
        self.retried = threading.Semaphore(0)
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            for part in re.split(r"\r", line.rstrip("\n")):
                self.lines.append(part)
                if "failed (UNAVAILABLE" in part:
                    self.retried.release()

    def wait(self) -> int:
        code = self.proc.wait(180)
        self.reader.join(10)
        assert self.proc.stderr is not None
        self.proc.stderr.close()
        return code

    @property
    def stderr(self) -> str:
        return "\n".join(self.lines)


def _answered(out: Path) -> int:
    try:
        return json.loads((state_folder(out) / "manifest.json").read_text())["chunks"]
    except (FileNotFoundError, ValueError):
        return 0


def _stop_mid_job(client: Client, out: Path, chunks: int = 3) -> int:
    """SIGSTOP the client once ``chunks`` chunks are kept (so the job is frozen mid-stream);
    returns how many were kept then. The manifest is the client's own record, read as it
    is replaced (atomically)."""
    deadline = time.monotonic() + 120
    while _answered(out) < chunks:
        assert client.proc.poll() is None, client.stderr
        assert time.monotonic() < deadline, client.stderr
        time.sleep(0.005)
    client.proc.send_signal(signal.SIGSTOP)
    return _answered(out)


def _kill(server: ServerProcess) -> None:
    os.kill(server.pid, signal.SIGKILL)
    server.proc.wait()


@pytest.mark.slow
@pytest.mark.parametrize("slow_restart", [False, True], ids=["restart", "restart-slower-than-a-retry"])
def test_score_survives_a_server_killed_and_restarted(slow_restart: bool, setup: tuple[Path, Path], expected: str, tmp_path: Path) -> None:
    """kill -9 the server mid-stream and start it again on its port: the job completes, the
    output hash is the uninterrupted run's, and the kept state is gone."""
    base, models = setup
    out = tmp_path / "scores.parquet"
    server = ServerProcess(models, tmp_path / "a")
    servers = [server]
    try:
        client = Client(_argv(base, server.target, out))
        kept = _stop_mid_job(client, out)
        assert kept < 12_000 // int(CHUNK)  # mid-job
        _kill(server)
        if slow_restart:  # the client retries (and fails once more) before the server is back
            client.proc.send_signal(signal.SIGCONT)
            assert client.retried.acquire(timeout=60) and client.retried.acquire(timeout=60), client.stderr
            servers.append(ServerProcess(models, tmp_path / "b", args=["--port", str(server.port)]))
        else:
            servers.append(ServerProcess(models, tmp_path / "b", args=["--port", str(server.port)]))
            client.proc.send_signal(signal.SIGCONT)
        assert client.wait() == 0, client.stderr
    finally:
        for s in servers:
            s.stop()
    assert "failed (UNAVAILABLE" in client.stderr
    assert _sha(out) == expected
    assert not state_folder(out).exists()


@pytest.mark.slow
def test_score_gives_up_after_its_retries_and_resume_finishes_the_job(setup: tuple[Path, Path], expected: str, tmp_path: Path) -> None:
    """A server that never comes back: after --retries the command fails in one line naming
    the contacts scored and where they are kept, leaving no output; --resume against another
    server streams the rest and writes the uninterrupted run's bytes."""
    base, models = setup
    out = tmp_path / "scores.parquet"
    with ServerProcess(models, tmp_path / "a") as server:
        client = Client(_argv(base, server.target, out, "--retries", "1"))
        _stop_mid_job(client, out)
        _kill(server)
        client.proc.send_signal(signal.SIGCONT)
        assert client.wait() == 2
    error = client.lines[-1]
    kept = json.loads((state_folder(out) / "manifest.json").read_text())
    assert error.startswith("scorecast score: error: gave up after 1 retries"), client.stderr
    assert f"{kept['chunks']} chunks ({kept['contacts']:,} contacts) were scored" in error
    assert f"kept in {state_folder(out)}: run the same command with --resume" in error
    assert not out.exists() and kept["chunks"] >= 3
    with ServerProcess(models, tmp_path / "b") as other:
        resumed = Client(_argv(base, other.target, out, "--resume"))
        assert resumed.wait() == 0, resumed.stderr
    assert f"resuming from {state_folder(out)}: {kept['chunks']} chunks ({kept['contacts']:,} contacts) already scored" in resumed.stderr
    assert _sha(out) == expected
    assert not state_folder(out).exists()


@pytest.mark.slow
def test_a_client_killed_mid_job_resumes(setup: tuple[Path, Path], expected: str, tmp_path: Path) -> None:
    """kill -9 the client itself: no output file, the state it kept is consistent, and
    --resume finishes with the same bytes."""
    base, models = setup
    out = tmp_path / "scores.parquet"
    with ServerProcess(models, tmp_path / "a") as server:
        client = Client(_argv(base, server.target, out))
        _stop_mid_job(client, out)
        client.proc.kill()
        client.wait()
        assert not out.exists() and _answered(out) >= 3
        resumed = Client(_argv(base, server.target, out, "--resume"))
        assert resumed.wait() == 0, resumed.stderr
    assert _sha(out) == expected


def test_resume_refuses_another_jobs_state(tmp_path: Path) -> None:
    """--resume on the state of another job names what differs; a run without --resume removes it."""
    import pyarrow as pa

    out = tmp_path / "scores.parquet"
    job = {"data": "/base", "scores": ["rfm"], "as_of": None}
    state, note = ResumeState.open(out, job, resume=True)
    assert note.startswith("nothing to resume")
    state.add(pa.RecordBatch.from_pydict({"contact_id": [1, 2]}))
    with pytest.raises(ValueError, match=r"of another job \(scores differ\); run without --resume"):
        ResumeState.open(out, {**job, "scores": ["rfm", "clv"]}, resume=True)
    again, note = ResumeState.open(out, job, resume=True)
    assert (again.chunks, again.contacts) == (1, 2) and [b.num_rows for b in again.batches()] == [2]
    fresh, note = ResumeState.open(out, job, resume=False)
    assert fresh.chunks == 0 and "removed the partial state" in note and not state_folder(out).exists()


def test_resume_keeps_the_readable_parts_before_a_lost_one(tmp_path: Path) -> None:
    """Parts are not fsynced: one lost in a machine crash is scored again, with those after it."""
    import pyarrow as pa

    out = tmp_path / "scores.parquet"
    state, _ = ResumeState.open(out, {"scores": ["rfm"]}, resume=False)
    for n in (2, 3, 4):
        state.add(pa.RecordBatch.from_pydict({"contact_id": list(range(n))}))
    (state_folder(out) / "part-000001.arrow").write_bytes(b"\0" * 10)
    again, note = ResumeState.open(out, {"scores": ["rfm"]}, resume=True)
    assert (again.chunks, again.contacts) == (1, 2) and "1 chunks (2 contacts) already scored" in note
