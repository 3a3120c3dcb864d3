"""Per-score cost over gRPC: each score set streamed for the whole base, ratio to affinity.

    python benchmarks/scores.py --contacts 1000000 --repeats 3 --workdir /tmp/bench-e2e

One `scorecast serve` process serves every model (rfm, affinity, clv, churn); the client
streams the Parquet base once per case with `BaseChunks`. The cases take turns in each round,
so load drift on a shared machine hits them alike; the table shows medians and each case's
contacts/s relative to `affinity` (the spine's score) in the same run.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from e2e import Server, base_as_of, ensure_base, ensure_models, log, print_table, stream_base  # noqa: E402

from scorecast.client import ScorecastClient  # noqa: E402

ALL_SCORES = ("rfm", "affinity", "clv", "churn")
CASES = (("affinity",), ("clv", "churn"), ("clv",), ("churn",), ("rfm",), ALL_SCORES)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--contacts", type=int, default=1_000_000, help="contacts in the base (default 1M)")
    parser.add_argument("--repeats", type=int, default=3, help="rounds; medians are shown (default 3)")
    parser.add_argument("--seed", type=int, default=0, help="simulation seed (default 0)")
    parser.add_argument("--workdir", type=Path, default=Path("bench-data"), help="bases and models, reused")
    parser.add_argument("--chunk-contacts", type=int, default=50_000, help="contacts per chunk (default 50000)")
    args = parser.parse_args()
    args.workdir.mkdir(parents=True, exist_ok=True)
    base = ensure_base(args.workdir / f"base-{args.contacts}-seed{args.seed}", args.contacts, args.seed)
    models = ensure_models(args.workdir / f"models-all-{args.contacts}-seed{args.seed}", base, args.contacts, args.seed, ALL_SCORES)
    as_of = base_as_of(base)
    seconds: dict[tuple[str, ...], list[float]] = {case: [] for case in CASES}
    with Server(models, args.workdir) as server:
        with ScorecastClient(server.target) as client:
            columns: dict[str, list[str]] = {}
            for info in client.list_models():
                for qualified in info.input_columns:
                    table, column = qualified.split(".", 1)
                    columns.setdefault(table, []).append(column)
        for case in CASES:  # untimed warm pass: page cache, allocator, ORT arenas
            stream_base(server.target, base, columns, as_of, args.chunk_contacts, case)
        for round_ in range(args.repeats):
            for case in CASES:
                start = time.perf_counter()
                rows = stream_base(server.target, base, columns, as_of, args.chunk_contacts, case)
                seconds[case].append(time.perf_counter() - start)
                log(f"round {round_ + 1}: {','.join(case)} {rows:,} rows in {seconds[case][-1]:.2f}s")
    reference = statistics.median(seconds[("affinity",)])
    rows = []
    for case in CASES:
        median = statistics.median(seconds[case])
        rows.append(
            {
                "case": f"gRPC Score stream: {','.join(case)}",
                "contacts": args.contacts,
                "median_s": median,
                "contacts_per_s": args.contacts / median,
                "ratio": reference / median,
                "ratio_of": "contacts/s vs affinity, same run",
            }
        )
    print_table(rows, f"scorecast per-score cost: {args.contacts:,} contacts, median of {args.repeats}")


if __name__ == "__main__":
    main()
