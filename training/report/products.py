"""Sections of the product scores: recommendations and promo_appetence."""

from __future__ import annotations

import re

from scorecast.metadata import ModelMetadata

from .charts import BASELINE, MODEL, Section, fmt, img, line_chart, missing, plt, png, report_data, table

__all__ = ["promo_appetence", "recommendations"]

_RANKING = re.compile(r"^(?:(?P<name>.+)_)?(?P<metric>recall|ndcg)_at_(?P<k>\d+)$")


def recommendations(meta: ModelMetadata) -> Section:
    """recall@K and NDCG@K for the served model and every baseline its metadata lists."""
    found: dict[str, dict[str, dict[int, float]]] = {}
    for key, value in meta.metrics.items():
        match = _RANKING.match(key)
        if match:
            name = match["name"] or "model"
            found.setdefault(name, {}).setdefault(match["metric"], {})[int(match["k"])] = value
    report = report_data(meta).get("curves")  # optional: {name: {"recall": {K: v}, "ndcg": {K: v}}} at several K
    if isinstance(report, dict):
        for name, curves in report.items():
            for metric, points in curves.items():
                found.setdefault(name, {}).setdefault(metric, {}).update({int(k): v for k, v in points.items()})
    names = ["model", *sorted(n for n in found if n != "model")]
    colours = dict(zip(names, [MODEL, BASELINE, "#8250df", "#2f8132", "#f0b429", "#6e7781"], strict=False))
    charts = []
    for metric in ("recall", "ndcg"):
        ks = sorted({k for n in names for k in found[n].get(metric, {})})
        if len(ks) > 1:
            charts.append(line_chart(f"{metric}@K on the holdout", "K", f"{metric}@K", ks,
                                     {n: ([found[n][metric].get(k, float("nan")) for k in ks], colours.get(n, "#555"), "o-") for n in names}))  # fmt: skip
        elif ks:
            fig, ax = plt.subplots(figsize=(5, 3.6))
            values = [found[n].get(metric, {}).get(ks[0], 0.0) for n in names]
            bars = ax.bar(names, values, color=[colours.get(n, "#555") for n in names])
            ax.bar_label(bars, fmt="%.3f", fontsize=8)
            ax.tick_params(axis="x", labelrotation=30)  # five baseline names side by side overlap
            for label in ax.get_xticklabels():
                label.set_horizontalalignment("right")
            ax.set(ylabel=f"{metric}@{ks[0]}", title=f"{metric}@{ks[0]} on the holdout ({int(meta.metrics.get('holdout_days', 0))} days)")
            charts.append(png(fig))
    k = meta.params.get("k", 10)
    rows = [[n, *(found[n].get(metric, {}).get(k, float("nan")) for metric in ("recall", "ndcg"))] for n in names]
    body = f'<div class="charts">{"".join(img(c, "ranking") for c in charts)}</div>' + table(["ranking", f"recall@{k}", f"NDCG@{k}"], rows)
    model = found.get("model", {}).get("recall", {}).get(k, float("nan"))
    baselines = ", ".join(f"{n} {fmt(found[n].get('recall', {}).get(k, float('nan')))}" for n in names if n != "model")
    return Section(f"recall@{k} {fmt(model)} vs {baselines or 'no baseline'}", body)


def promo_appetence(meta: ModelMetadata) -> Section:
    """Qini curves of the R-learner, the two-model baseline and random, and the segment shares."""
    m, report = meta.metrics, report_data(meta)
    qini, shares = report.get("qini"), report.get("segment_shares")
    charts = []
    if qini:
        styles = {"model": (MODEL, "o-"), "two_model": (BASELINE, "s--"), "two_model_lr": ("#9a6700", "^--"), "random": ("#888", ":")}
        xs = [0, *(5 * (i + 1) for i in range(len(qini["model"])))]
        charts.append(line_chart("Qini curves (holdout)", "contacts targeted, best uplift first (%)", "extra buyers per contact", xs,
                                 {n: ([0.0, *v], *styles.get(n, ("#555", "-"))) for n, v in qini.items()}))  # fmt: skip
    if shares:
        fig, ax = plt.subplots(figsize=(5, 3.6))
        ax.bar(list(shares), [100 * v for v in shares.values()], color=["#2f8132", "#1f6feb", "#9aa5b1", "#d1242f"][: len(shares)])
        ax.set(ylabel="holdout contacts (%)", title="Segments")
        ax.tick_params(axis="x", labelsize=8)
        charts.append(png(fig))
    names = (("R-learner (served)", ""), ("two-model, gradient boosting", "two_model_"), ("two-model, logistic regression", "two_model_lr_"), ("random", "random_"))
    rows = [[name, m[f"{prefix}qini"], m.get(f"{prefix}qini_sd", float("nan")), m[f"{prefix}auuc"], m[f"{prefix}uplift_top10"]]
            for name, prefix in names if f"{prefix}qini" in m]  # fmt: skip
    body = (f'<div class="charts">{"".join(img(c, "promo") for c in charts)}</div>' if charts else missing("Qini curves")) + table(
        ["model", "Qini", "bootstrap SD", "AUUC", "uplift in the top 10 %"], rows
    ) + table(["measure", "value"], [["holdout buy rate, treated", m["holdout_buy_rate_treated"]], ["holdout buy rate, control", m["holdout_buy_rate_control"]]])
    if shares:
        body += table(["segment", "share of holdout contacts"], [[k, f"{100 * v:.1f} %"] for k, v in shares.items()])
    return Section(f"Qini {fmt(m['qini'])} vs two-model {fmt(m['two_model_qini'])} and random {fmt(m['random_qini'])}", body)
