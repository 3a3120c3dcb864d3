"""Cold start: seconds from ``scorecast serve`` to health SERVING with every score's model loaded.

    python benchmarks/cold_start.py --repeats 5 --workdir /tmp/bench-cold

Trains every score once (cached in the workdir): the retail, web, e-mail and product scores on
a small simulated base and ``lead`` on a simulated B2B base, into one repository. Then starts a
server process ``repeats`` times and times it until it reports SERVING (it writes its port file
only then), and splits each start from its own log: model loading (file checks, session,
parity probe), the warm-up (every kernel compiled or loaded from numba's cache, every model run
once), and the rest (interpreter, imports, gRPC). The first start may fill numba's disk cache;
the median is over the starts after it (a warm cache, as a restarted container has). Target
<= 3 s.
"""

from __future__ import annotations

import argparse
import re
import shutil
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from table import print_columns  # noqa: E402

from scorecast.process import ServerProcess  # noqa: E402
from scorecast.training.simulate.b2b import B2BConfig, simulate_b2b, write_b2b  # noqa: E402
from scorecast.training.simulate.retail import SimulationConfig, simulate_base, write_base  # noqa: E402
from scorecast.training.train import SCORES, train  # noqa: E402

_LOADED = re.compile(r"loaded (\S+) version \S+ from \S+ in ([0-9.]+)s")
_WARM = re.compile(r"warmed up \d+ models in ([0-9.]+)s")


def ensure_models(workdir: Path, contacts: int) -> Path:
    """A repository with every score of ``train.SCORES``, trained once per workdir."""
    models = workdir / "models"
    if all(any((models / s).glob("*.onnx")) for s in SCORES):
        return models
    shutil.rmtree(models, ignore_errors=True)
    base, b2b = workdir / "base", workdir / "b2b"
    write_base(simulate_base(SimulationConfig(n_contacts=contacts, seed=3)), base, overwrite=True)
    write_b2b(simulate_b2b(B2BConfig(n_contacts=max(contacts, 3000), seed=3)), b2b, overwrite=True)
    train(base, models, scores=[s for s in SCORES if s != "lead"])
    train(b2b, models, scores=["lead"])
    return models


def one_start(models: Path, workdir: Path) -> dict[str, float]:
    """Seconds to SERVING, and the log's model-load and warm-up seconds."""
    shutil.rmtree(workdir, ignore_errors=True)
    start = time.perf_counter()
    with ServerProcess(models, workdir, verbose=True) as server:
        seconds = time.perf_counter() - start
        del server
    text = (workdir / "server.log").read_text()
    loads = [float(m.group(2)) for m in _LOADED.finditer(text)]
    warm = _WARM.search(text)
    return {"serving_s": seconds, "models": len(loads), "load_s": sum(loads), "warm_s": float(warm.group(1)) if warm else float("nan")}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=5, help="starts after the first (default 5)")
    parser.add_argument("--contacts", type=int, default=5000, help="contacts of the training base (default 5000)")
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/bench-cold"))
    args = parser.parse_args()
    workdir = args.workdir.resolve()
    workdir.mkdir(parents=True, exist_ok=True)
    models = ensure_models(workdir, args.contacts)
    first = one_start(models, workdir / "run")
    warm = [one_start(models, workdir / "run") for _ in range(args.repeats)]
    rows = [{"case": "first start (may fill numba's cache)", **first}]
    med = {k: statistics.median(r[k] for r in warm) for k in warm[0]}
    rows.append({"case": f"warm cache, median of {args.repeats}", **med})
    for row in rows:
        row["rest_s"] = row["serving_s"] - row["load_s"] - row["warm_s"]
    rows[1]["ratio"] = med["serving_s"] / 3.0
    rows[1]["ratio_of"] = "seconds to SERVING / the 3 s target"
    print_columns(
        rows,
        f"scorecast serve: seconds to SERVING with {int(med['models'])} models ({', '.join(SCORES)})",
        [
            ("case", "case", "<", 38),
            ("serving_s", "SERVING s", ".2f", 9),
            ("load_s", "load s", ".2f", 7),
            ("warm_s", "warm-up s", ".2f", 9),
            ("rest_s", "rest s", ".2f", 7),
            ("ratio", "ratio", ".2f", 6),
        ],
    )


if __name__ == "__main__":
    main()
