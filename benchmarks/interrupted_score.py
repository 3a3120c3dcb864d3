"""An interrupted ``scorecast score`` writes the bytes of an uninterrupted one (issue 30).

    python benchmarks/interrupted_score.py [--contacts 1000000] [--seed 7] [--workdir DIR]

Simulates a retail base (kept in --workdir for reruns), trains ``rfm`` on it, serves it, then
scores the base twice with the CLI: once uninterrupted, once with the server killed (SIGKILL)
when half the chunks are answered and started again on the same port. Prints both outputs'
sha256 and what the interrupted client reported; exit 1 if they differ.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from scorecast.process import ServerProcess
from scorecast.resume import state_folder


def _cli(*argv: str) -> list[str]:
    return [sys.executable, "-m", "scorecast.cli", *argv]


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--contacts", type=int, default=1_000_000)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--chunk-contacts", type=int, default=50_000)
    parser.add_argument("--workdir", type=Path, default=Path("interrupted-score"))
    args = parser.parse_args()
    work = args.workdir
    base, models = work / "base", work / "models"
    if not base.exists():
        subprocess.run(_cli("simulate", "--contacts", str(args.contacts), "--seed", str(args.seed), "--out", str(base)), check=True)
    if not models.exists():
        subprocess.run(_cli("train", "--data", str(base), "--out", str(models), "--scores", "rfm"), check=True)
    chunks = -(-args.contacts // args.chunk_contacts)
    score = ["score", "--data", str(base), "--scores", "rfm", "--chunk-contacts", str(args.chunk_contacts)]
    report: dict[str, object] = {"contacts": args.contacts, "seed": args.seed, "chunks": chunks}
    server = ServerProcess(models, work / "srv")
    try:
        clean, cut = work / "uninterrupted.parquet", work / "interrupted.parquet"
        start = time.perf_counter()
        subprocess.run(_cli(*score, "--server", server.target, "--out", str(clean)), check=True, stderr=subprocess.DEVNULL)
        report["uninterrupted_s"] = round(time.perf_counter() - start, 1)
        start = time.perf_counter()
        client = subprocess.Popen(_cli(*score, "--server", server.target, "--out", str(cut)), stderr=subprocess.PIPE, text=True)
        manifest = state_folder(cut) / "manifest.json"
        while True:  # the client's own record of answered chunks, replaced atomically
            try:
                answered = json.loads(manifest.read_text())["chunks"]
            except (FileNotFoundError, ValueError):
                answered = 0
            if answered >= chunks // 2 or client.poll() is not None:
                break
            time.sleep(0.01)
        os.kill(server.pid, signal.SIGKILL)
        server.proc.wait()
        report["killed_after_chunks"] = answered
        server = ServerProcess(models, work / "srv", args=["--port", str(server.port)])
        _, stderr = client.communicate(timeout=1800)
        report["interrupted_s"] = round(time.perf_counter() - start, 1)
        report["interrupted_exit"] = client.returncode
        report["client_reported"] = [line for line in stderr.replace("\r", "\n").splitlines() if "failed (" in line]
        report["sha256_uninterrupted"] = _sha(clean)
        report["sha256_interrupted"] = _sha(cut) if cut.exists() else None
    finally:
        server.stop()
    report["identical"] = report["sha256_uninterrupted"] == report["sha256_interrupted"]
    print(json.dumps(report, indent=1))
    return 0 if report["identical"] else 1


if __name__ == "__main__":
    sys.exit(main())
