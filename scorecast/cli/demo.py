"""``scorecast demo``: simulate a base, train, serve it, score it over gRPC, print a summary;
then every other score on smaller simulated bases, and the validation report of all of them.

Every figure printed is measured in this run: wall-clock seconds per step, contacts/s, the
affinity score's AUC against the simulator's ground truth (each contact's real purchases per
group in the 90 days after the base's as-of) beside a frequency baseline, clv and churn against
the simulator's truth, each other score's holdout headline against its baseline, and lead's
holdout AUC beside the Bayes-optimal AUC of the simulator's true probabilities.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from datetime import datetime
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

__all__ = ["run_demo"]

SCORES = ["rfm", "affinity", "clv", "churn"]
# The e-mail, web and product scores train on a smaller base with every table (the e-mail
# events alone are ~27 rows per contact), lead on a simulated B2B base; same model repository.
OTHER_SCORES = ["segments", "web_heat", "engagement", "pressure", "interests", "recommendations", "cross_sell", "promo_appetence"]
OTHER_CONTACTS = 30_000
LEAD_CONTACTS = 20_000
# The demo runs the retail core at 1M contacts in about a minute; the e-mail (~27 events per
# contact) and web tables would triple its time, so it leaves them out. Their scores have
# their own end-to-end paths (README: Scores; tests/test_email_grpc.py, tests/test_web_cli.py).
DEMO_TABLES = {"email": False, "web": False}


def _step(name: str) -> float:
    print(f"[demo] {name} ...", flush=True)
    return time.perf_counter()


def _truth_auc(scores_path: Path, base: Path, groups: list[str]) -> list[tuple[str, float, float]]:
    """Per group: AUC of affinity.<g> and of the past-frequency baseline vs the true next 90 days."""
    from sklearn.metrics import roc_auc_score

    from scorecast.kernels import FeatureFrame

    scores = pq.read_table(scores_path)
    truth = pq.read_table(base / "truth" / "contacts.parquet")
    as_of = datetime.fromisoformat(json.loads((base / "base.json").read_text())["as_of"])
    orders = pq.read_table(base / "orders.parquet", columns=["contact_id", "ts", "product_group"])
    frame = FeatureFrame({"orders": orders}, int(as_of.timestamp() * 1_000_000), contact_ids=scores["contact_id"].combine_chunks())
    counts = frame.matrix([f"group_count:{g}" for g in groups])
    rows = pc.index_in(scores["contact_id"], value_set=truth["contact_id"]).to_numpy(zero_copy_only=False)
    out = []
    for i, g in enumerate(groups):
        y = truth[f"future_orders_90d:{g}"].to_numpy()[rows] > 0
        model = scores[f"affinity.{g}"].to_numpy()
        out.append((g, float(roc_auc_score(y, model)), float(roc_auc_score(y, counts[:, i]))))
    return out


def _truth_value(scores_path: Path, base: Path, as_of: datetime) -> list[tuple[str, float, float]]:
    """clv and churn against the simulator's truth, each beside a naive baseline."""
    from scipy.stats import spearmanr
    from sklearn.metrics import roc_auc_score

    from scorecast.kernels import FeatureFrame

    scores = pq.read_table(scores_path, columns=["contact_id", "clv.value", "clv.expected_orders", "churn.p_alive"])
    truth = pq.read_table(base / "truth" / "contacts.parquet")
    orders = pq.read_table(base / "orders.parquet", columns=["contact_id", "ts", "amount"])
    ids = scores["contact_id"].combine_chunks()
    frame = FeatureFrame({"orders": orders}, int(as_of.timestamp() * 1_000_000), contact_ids=ids)
    past = frame.matrix(["repeat_frequency", "age_days", "recency_days", "monetary"]).astype(np.float64)
    rows = pc.index_in(ids, value_set=truth["contact_id"]).to_numpy(zero_copy_only=False)
    customers = np.isfinite(past[:, 1])
    future_orders = truth["n_future_orders_365d"].to_numpy()[rows][customers]
    future_spend = truth["future_spend_365d"].to_numpy()[rows][customers]
    alive = truth["alive_at_end"].to_numpy(zero_copy_only=False)[rows][customers]
    naive_orders = (past[customers, 0] / np.maximum(past[customers, 1], 1.0)) * 365.0
    naive_value = naive_orders * np.nan_to_num(past[customers, 3])
    col = {name: scores[name].to_numpy(zero_copy_only=False)[customers] for name in ("clv.value", "clv.expected_orders", "churn.p_alive")}
    return [
        ("clv.expected_orders: MAE vs true orders (365 d)", float(np.mean(np.abs(col["clv.expected_orders"] - future_orders))), float(np.mean(np.abs(naive_orders - future_orders)))),
        ("clv.value: Spearman vs true spend (365 d)", float(spearmanr(col["clv.value"], future_spend).statistic), float(spearmanr(naive_value, future_spend).statistic)),
        ("churn.p_alive: AUC vs truly alive", float(roc_auc_score(alive, col["churn.p_alive"])), float(roc_auc_score(alive, -past[customers, 2]))),
    ]


def run_demo(n_contacts: int, seed: int, workdir: Path) -> None:
    """Run the whole path on simulated data and print what it measured."""
    from scorecast.atomic import AtomicParquetWriter
    from scorecast.base import BaseChunks
    from scorecast.client import ScorecastClient
    from scorecast.process import ServerProcess
    from scorecast.server.rescore import input_columns
    from scorecast.training.simulate.retail import SimulationConfig, simulate_base, write_base
    from scorecast.training.train import train

    workdir.mkdir(parents=True, exist_ok=True)
    base, models, out = workdir / "base", workdir / "models", workdir / "scores.parquet"
    timings: list[tuple[str, int, float]] = []

    t = _step(f"simulating {n_contacts:,} contacts")
    marker = base / "base.json"
    if marker.exists() and json.loads(marker.read_text()).get("n_contacts") == n_contacts and json.loads(marker.read_text()).get("seed") == seed:
        print(f"[demo] reusing the base in {base}")
    else:
        write_base(simulate_base(SimulationConfig(n_contacts=n_contacts, seed=seed, **DEMO_TABLES)), base, overwrite=True, progress=True)
    meta = json.loads(marker.read_text())
    as_of = datetime.fromisoformat(meta["as_of"])
    n_orders = pq.ParquetFile(base / "orders.parquet").metadata.num_rows if (base / "orders.parquet").is_file() else 0
    timings.append(("simulate (or reuse)", n_contacts, time.perf_counter() - t))

    t = _step("training rfm, affinity, clv and churn")
    shutil.rmtree(models, ignore_errors=True)
    train(base, models, scores=SCORES, progress=True)
    timings.append(("train", n_contacts, time.perf_counter() - t))

    t = _step("starting the gRPC server")
    with ServerProcess(models, workdir) as server:
        timings.append(("serve: load + warm-up", 0, time.perf_counter() - t))
        with ScorecastClient(server.target) as client:
            info = {m.score: m for m in client.list_models()}
            features = [f for m in info.values() for f in m.features if not f.startswith("request:")]
            t = _step(f"scoring the whole base over gRPC (Score stream), as of {as_of.date()}")
            chunks = BaseChunks(base, input_columns(features))
            with AtomicParquetWriter(out) as writer:
                for batch in client.score(chunks, SCORES, as_of=as_of):
                    writer.write(batch)
            timings.append(("score over gRPC (4 scores)", writer.rows, time.perf_counter() - t))

    groups = list(json.loads(info["affinity"].params_json)["groups"])
    aucs = _truth_auc(out, base, groups)
    print()
    print(f"scorecast demo: {n_contacts:,} contacts, {n_orders:,} orders, as of {as_of.date()}, {os.cpu_count()} cores")
    print(f"{'step':<34}{'rows':>12}{'seconds':>10}{'contacts/s':>14}")
    for name, rows, seconds in timings:
        rate = f"{rows / seconds:,.0f}" if rows else ""
        print(f"{name:<34}{rows:>12,}{seconds:>10.1f}{rate:>14}")
    metrics = info["affinity"].metrics
    print()
    print("affinity: AUC for a purchase in the group within 90 days after as-of")
    print(f"{'group':<14}{'vs truth':>10}{'baseline':>10}{'holdout':>10}")
    for g, auc, base_auc in aucs:
        print(f"{g:<14}{auc:>10.3f}{base_auc:>10.3f}{metrics.get(f'auc:{g}', float('nan')):>10.3f}")
    mean = np.mean([a for _, a, _ in aucs]), np.mean([b for _, _, b in aucs])
    print(f"{'mean':<14}{mean[0]:>10.3f}{mean[1]:>10.3f}{metrics.get('auc_mean', float('nan')):>10.3f}")
    print("(vs truth: the simulator's real next-90-day purchases; baseline: past purchases in the group;")
    print(" holdout: AUC on the contacts held out at training time)")
    segments = pq.read_table(out, columns=["rfm.segment"])["rfm.segment"]
    counts = pc.value_counts(segments.combine_chunks().dictionary_decode() if pa.types.is_dictionary(segments.type) else segments)
    top = sorted(((c["values"].as_py(), c["counts"].as_py()) for c in counts), key=lambda x: -x[1])[:5]
    print("rfm segments (top 5): " + ", ".join(f"{name} {count:,}" for name, count in top))
    print()
    print(f"clv ({info['clv'].model_type}, chosen on the holdout) and churn vs the simulator's truth, customers only")
    print(f"{'check':<50}{'model':>8}{'naive':>8}")
    for name, model_value, naive_value in _truth_value(out, base, as_of):
        print(f"{name:<50}{model_value:>8.3f}{naive_value:>8.3f}")
    print("(naive: past repeat rate x 365 days, times mean order value; for churn: -recency)")
    print(f"scores written to {out}")
    _other_scores(workdir, models, seed, timings)


def _other_scores(workdir: Path, models: Path, seed: int, timings: list[tuple[str, int, float]]) -> None:
    """The e-mail, web, product and lead scores on their own simulated bases, then the report of all."""
    from scorecast.training.report import write_report
    from scorecast.training.simulate.b2b import B2BConfig, simulate_b2b, write_b2b
    from scorecast.training.simulate.retail import SimulationConfig, simulate_base, write_base
    from scorecast.training.train import train

    t = _step(f"e-mail, web and product scores on {OTHER_CONTACTS:,} contacts with every table")
    base = workdir / "base_all_tables"
    write_base(simulate_base(SimulationConfig(n_contacts=OTHER_CONTACTS, seed=seed + 1)), base, overwrite=True)
    train(base, models, scores=OTHER_SCORES)
    timings.append((f"simulate + train {len(OTHER_SCORES)} scores", OTHER_CONTACTS, time.perf_counter() - t))

    t = _step(f"lead on {LEAD_CONTACTS:,} simulated B2B leads")
    b2b = workdir / "base_b2b"
    leads = simulate_b2b(B2BConfig(n_contacts=LEAD_CONTACTS, seed=seed))
    write_b2b(leads, b2b, overwrite=True)
    train(b2b, models, scores=["lead"])
    timings.append(("simulate + train lead", LEAD_CONTACTS, time.perf_counter() - t))

    t = _step("writing the validation report")
    report = workdir / "report.html"
    headlines = write_report(models, report)
    timings.append(("report (13 sections)", 0, time.perf_counter() - t))

    print()
    print("every score's holdout check against its baseline (the report's headlines)")
    for score, headline in headlines.items():
        print(f"{score:<16} {headline}")
    print(f"{'lead truth':<16} Bayes-optimal AUC on the same held-out leads (the simulator's true probabilities) {leads.bayes_auc_holdout:.3f}")
    print()
    print(f"{'step':<34}{'rows':>12}{'seconds':>10}")
    for name, rows, seconds in timings:
        print(f"{name:<34}{rows:>12,}{seconds:>10.1f}")
    print(f"{'total':<34}{'':>12}{sum(s for _, _, s in timings):>10.1f}")
    print(f"report: {report}")
