"""Peak memory of whole-base rescoring against the base's size: does RSS follow the chunk, or the base?

    python benchmarks/memory.py --contacts 1000000 --factor 10 --repeats 3 --workdir /tmp/bench-e2e

Uses (or makes) the same 1M-contact base and rfm+affinity models as ``e2e.py``, then a base
``factor`` times larger made by replicating it with new contact ids (streamed batch by batch,
never whole in memory). Each case runs ``scorecast rescore`` in a fresh process under
``/usr/bin/time`` and reads its peak RSS (max resident set) and wall time; the bases take turns
within each round. Prints medians and the ratio large / small: the target is <= 1.2.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from e2e import base_as_of, ensure_base, ensure_models, log
from table import print_columns

SCORES = ("rfm", "affinity")


def replicate(base: Path, out: Path, factor: int) -> Path:
    """``base`` with every contact copied ``factor`` times under new ids (id + k * stride)."""
    meta = json.loads((base / "base.json").read_text())
    marker = out / "base.json"
    if marker.is_file() and json.loads(marker.read_text()).get("replicated") == [str(base), factor]:
        log(f"reusing {out}")
        return out
    log(f"replicating {base} x{factor} into {out}")
    start = time.perf_counter()
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    stride = pc.max(pq.read_table(base / "contacts.parquet", columns=["contact_id"])["contact_id"]).as_py() + 1
    for table in ("contacts", "orders"):
        source = pq.ParquetFile(base / f"{table}.parquet")
        with pq.ParquetWriter(out / f"{table}.parquet", source.schema_arrow, compression="zstd") as writer:
            for k in range(factor):
                for batch in source.iter_batches(batch_size=1_000_000):
                    ids = pc.add(batch.column("contact_id"), pa.scalar(k * stride, pa.int64()))
                    writer.write_batch(batch.set_column(batch.schema.get_field_index("contact_id"), "contact_id", ids))
    meta = {**meta, "n_contacts": meta.get("n_contacts", 0) * factor, "replicated": [str(base), factor]}
    marker.write_text(json.dumps(meta) + "\n")
    log(f"replicated in {time.perf_counter() - start:.1f}s")
    return out


def peak_rescore(models: Path, base: Path, out: Path, as_of: str, chunk_contacts: int) -> tuple[float, float]:
    """(peak RSS in MiB, wall seconds) of one ``scorecast rescore`` process."""
    cmd = [
        "/usr/bin/time", "-f", "%M %e",
        sys.executable, "-m", "scorecast.cli", "rescore", "--models", str(models), "--data", str(base),
        "--scores", ",".join(SCORES), "--out", str(out), "--as-of", as_of, "--chunk-contacts", str(chunk_contacts),
    ]  # fmt: skip
    done = subprocess.run(cmd, capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"rescore failed: {done.stderr[-2000:]}")
    kib, seconds = done.stderr.strip().splitlines()[-1].split()
    return int(kib) / 1024, float(seconds)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--contacts", type=int, default=1_000_000)
    parser.add_argument("--factor", type=int, default=10, help="the large base is this many times the small one (default 10)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--chunk-contacts", type=int, default=50_000)
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/bench-e2e"))
    args = parser.parse_args()

    workdir = args.workdir.resolve()
    workdir.mkdir(parents=True, exist_ok=True)
    small = ensure_base(workdir / f"base-{args.contacts}-seed{args.seed}", args.contacts, args.seed)
    models = ensure_models(workdir / f"models-{args.contacts}-seed{args.seed}", small, args.contacts, args.seed)
    large = replicate(small, workdir / f"base-{args.contacts}-seed{args.seed}-x{args.factor}", args.factor)
    as_of = base_as_of(small).isoformat()
    runs: dict[str, list[tuple[float, float]]] = {"small": [], "large": []}
    for r in range(args.repeats):
        for name, base in (("small", small), ("large", large)):
            out = workdir / f"memory-{name}.parquet"
            runs[name].append(peak_rescore(models, base, out, as_of, args.chunk_contacts))
            out.unlink(missing_ok=True)
            log(f"round {r + 1} {name}: peak {runs[name][-1][0]:.0f} MiB in {runs[name][-1][1]:.1f}s")
    med = {name: (statistics.median(m for m, _ in v), statistics.median(s for _, s in v)) for name, v in runs.items()}
    sizes = {"small": args.contacts, "large": args.contacts * args.factor}
    rows = [
        {"base": f"{sizes[n]:,} contacts", "peak": med[n][0], "seconds": med[n][1], "per_s": sizes[n] / med[n][1]}
        for n in ("small", "large")
    ]
    rows[1]["ratio"] = med["large"][0] / med["small"][0]
    rows[1]["ratio_of"] = "peak RSS of the large base / the small one (target <= 1.2)"
    print_columns(
        rows,
        f"scorecast rescore {','.join(SCORES)}, chunk {args.chunk_contacts:,} contacts: peak RSS (median of {args.repeats})",
        [("base", "base", "<", 18), ("peak", "peak RSS MiB", ".0f", 12), ("seconds", "wall s", ".1f", 8), ("per_s", "contacts/s", ",.0f", 12), ("ratio", "ratio", ".2f", 6)],
    )


if __name__ == "__main__":
    main()
