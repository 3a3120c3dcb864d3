"""Tree ensembles served natively (ONNX Runtime's TreeEnsemble) vs in GEMM form (server/tree_gemm.py).

    python benchmarks/trees.py --device cpu --rows 1000,10000,100000 --repeats 5

Trains an affinity model like the served one (one HistGradientBoostingClassifier per product
group, 8 groups, ``--max-iter`` trees of up to 31 leaves each, merged into one graph) on
synthetic contacts, then loads it twice through the server's ``OnnxModel.load``, with
``tree_form="native"`` and ``tree_form="gemm"`` (so the GEMM form is parity-checked and sliced
exactly as served; on ``--device cuda`` with IO binding above ``IO_BINDING_MIN_ROWS``). For
each batch size, both forms run once untimed, then take turns for ``--repeats`` rounds; the
table shows median rows/s and the ratio gemm / native. Both forms' outputs are compared
(max |diff|) before any figure is printed.

On the CPU the GEMM form does more arithmetic than tree traversal (every node of every tree
is evaluated for every row): it is expected to be slower there; it exists for CUDA, where
the native form falls back to the CPU.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import onnxruntime as ort

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.support.affinity_base import synthetic_base

from scorecast.model_store import write_model
from scorecast.server.runtime import OnnxModel, SessionOptions
from scorecast.training.scores.affinity import fit_affinity

GROUPS = ("apparel", "beauty", "books", "electronics", "garden", "grocery", "shoes", "toys")
TIMES = {"trained_at": "2026-01-02T00:00:00+00:00", "data_as_of": "2026-01-01T00:00:00+00:00"}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    parser.add_argument("--rows", default="1000,10000,100000", help="comma-separated batch sizes")
    parser.add_argument("--repeats", type=int, default=5, help="timed rounds per case (medians shown)")
    parser.add_argument("--train-rows", type=int, default=40_000, help="synthetic contacts to fit on")
    parser.add_argument("--max-iter", type=int, default=100, help="boosting iterations (trees) per group")
    parser.add_argument("--threads", type=int, default=0, help="ONNX Runtime intra-op threads (0: all cores)")
    args = parser.parse_args()
    sizes = [int(r) for r in args.rows.split(",")]

    start = time.perf_counter()
    X, names, labels = synthetic_base(args.train_rows + max(sizes), GROUPS, seed=7)
    fit_rows = slice(0, args.train_rows)
    model = fit_affinity(X[fit_rows], names, {g: y[fit_rows] for g, y in labels.items()}, max_iter=args.max_iter, random_state=0)
    trees = sum(int(e.n_iter_) for e in model.estimators_.values())
    print(f"fitted {len(GROUPS)} groups, {trees} trees in {time.perf_counter() - start:.1f}s; onnxruntime {ort.__version__}, device {args.device}")
    holdout = X[args.train_rows :]

    with tempfile.TemporaryDirectory(prefix="scorecast-trees-") as tmp:
        path = write_model(model.to_onnx(version="1", **TIMES), Path(tmp) / "affinity.onnx")
        forms = {form: OnnxModel.load(path, SessionOptions(args.device, args.threads, tree_form=form)) for form in ("native", "gemm")}
    if forms["gemm"].tree_form != "gemm":
        raise SystemExit("the GEMM form was refused at load (see the log): nothing to compare")
    print(f"providers {forms['gemm'].providers}; gemm slices of {forms['gemm'].rows_per_run:,} rows")

    rows = []
    for n in sizes:
        x = np.ascontiguousarray(holdout[:n])
        outputs = {form: m.run(x)["probabilities"] for form, m in forms.items()}  # untimed: warm-up
        diff = float(np.abs(outputs["gemm"] - outputs["native"]).max())
        seconds: dict[str, list[float]] = {form: [] for form in forms}
        for _ in range(args.repeats):
            for form, m in forms.items():
                t0 = time.perf_counter()
                m.run(x)
                seconds[form].append(time.perf_counter() - t0)
        native, gemm = (n / statistics.median(seconds[f]) for f in ("native", "gemm"))
        rows.append((n, native, gemm, gemm / native, diff))

    print(f"\n| rows | native rows/s | gemm rows/s | gemm / native | max abs diff |  (medians of {args.repeats})")
    print("|---:|---:|---:|---:|---:|")
    for n, native, gemm, ratio, diff in rows:
        print(f"| {n:,} | {native:,.0f} | {gemm:,.0f} | {ratio:.2f} | {diff:.1e} |")


if __name__ == "__main__":
    main()
