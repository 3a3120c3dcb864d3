"""Fuzz a ``scorecast serve`` subprocess with malformed and hostile requests; counts by status.

    python benchmarks/fuzz.py --cases 10000 --seed 0 [--show 20]

The fake models of tests/support/fakes.py are written to a temporary repository and served on
port 0 with small row limits (so RESOURCE_EXHAUSTED is cheap to reach). The cases come from
``generate_cases`` in tests/support/fuzz.py (the one generator; CI runs a few hundred of
them in process). Prints counts by status code and by category, every unexpected outcome
(there must be none: exit status 1 otherwise), and the server's RSS after a warm-up run of
200 cases and after the whole run.
"""

from __future__ import annotations

import argparse
import collections
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import grpc

from scorecast.process import ServerProcess
from scorecast.proto import rpc
from tests.support.fakes import grouped_model, linear_model, segment_model, write_model
from tests.support.fuzz import (
    MAX_DECODED_BYTES_PER_CHUNK,
    MAX_EVENT_ROWS_PER_CHUNK,
    MAX_ROWS_PER_CHUNK,
    MAX_ROWS_PER_REQUEST,
    generate_cases,
    run_case,
    vm_rss_bytes,
)


def start_server(workdir: Path) -> ServerProcess:
    """The fake models in a temp repository, served with the fuzz test's row and decode limits."""
    models = workdir / "models"
    for model in (linear_model(), grouped_model(), segment_model()):
        write_model(models, model)
    env = {
        "SCORECAST_MAX_ROWS_PER_CHUNK": str(MAX_ROWS_PER_CHUNK),
        "SCORECAST_MAX_ROWS_PER_REQUEST": str(MAX_ROWS_PER_REQUEST),
        "SCORECAST_MAX_DECODED_BYTES_PER_CHUNK": str(MAX_DECODED_BYTES_PER_CHUNK),
        "SCORECAST_MAX_EVENT_ROWS_PER_CHUNK": str(MAX_EVENT_ROWS_PER_CHUNK),
        "SCORECAST_RELOAD_INTERVAL_S": "0",
    }
    return ServerProcess(models, workdir, env=env)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", type=int, default=10_000, help="number of cases (default 10000)")
    parser.add_argument("--seed", type=int, default=0, help="generator seed (default 0)")
    parser.add_argument("--show", type=int, default=20, help="unexpected outcomes to print in full (default 20)")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="scorecast-fuzz-") as tmp:
        with start_server(Path(tmp)) as server:
            proc = server.proc
            status_file = f"/proc/{server.pid}/status"
            options = [("grpc.max_receive_message_length", -1), ("grpc.max_send_message_length", -1)]
            with grpc.insecure_channel(server.target, options=options) as channel:
                stub = rpc.ScorecastStub(channel)
                for case in generate_cases(args.seed + 1_000_003, 200):  # warm-up, not counted
                    run_case(stub, case)
                rss_before = vm_rss_bytes(status_file)
                by_code: collections.Counter[str] = collections.Counter()
                by_category: dict[str, collections.Counter[str]] = collections.defaultdict(collections.Counter)
                unexpected = []
                start = time.perf_counter()
                for i, case in enumerate(generate_cases(args.seed, args.cases)):
                    outcome = run_case(stub, case)
                    by_code[outcome.code.name] += 1
                    by_category[case.category][outcome.code.name] += 1
                    if outcome.problem:
                        unexpected.append(f"#{i} {case.category}: {case.description}: {outcome.problem}")
                        by_category[case.category]["unexpected"] += 1
                    if proc.poll() is not None:
                        raise RuntimeError(f"the server died (exit {proc.returncode}) at case #{i}: {case.description}")
                seconds = time.perf_counter() - start
                rss_after = vm_rss_bytes(status_file)

    codes = sorted(by_code, key=lambda c: -by_code[c])
    print(f"{args.cases} cases, seed {args.seed}, {seconds:.1f}s ({args.cases / seconds:.0f} cases/s)\n")
    print(f"{'status':<20}{'count':>8}")
    for code in codes:
        print(f"{code:<20}{by_code[code]:>8}")
    print()
    header = f"{'category':<16}" + "".join(f"{c[:10]:>12}" for c in codes) + f"{'unexpected':>12}"
    print(header)
    for category in sorted(by_category):
        row = by_category[category]
        print(f"{category:<16}" + "".join(f"{row[c]:>12}" for c in codes) + f"{row['unexpected']:>12}")
    print(f"\nunexpected outcomes: {len(unexpected)}")
    for line in unexpected[: args.show]:
        print("  " + line[:400])
    mib = 2**20
    print(f"server RSS: {rss_before / mib:.0f} MiB after warm-up, {rss_after / mib:.0f} MiB after the run "
          f"({(rss_after - rss_before) / mib:+.0f} MiB)")
    return 1 if unexpected else 0


if __name__ == "__main__":
    sys.exit(main())
