"""Sections of the retail scores: rfm, affinity, cross_sell, clv and churn."""

from __future__ import annotations

import html
from typing import Any

import numpy as np

from scorecast.metadata import ModelMetadata

from .charts import BASELINE, MODEL, Section, fmt, img, line_chart, missing, plt, png, report_data, table

__all__ = ["affinity", "churn", "clv", "cross_sell", "rfm"]

_FRACTIONS = [5 * (i + 1) for i in range(20)]  # the gains points' x, in % of contacts (5 % steps)
_MEANING = {
    "r": "shape of the purchase-rate heterogeneity (Gamma over customers)",
    "alpha": "scale of the purchase rates (days): mean rate r / alpha per day",
    "a": "Beta shape of the drop-out probability after each purchase (a / (a + b) its mean)",
    "b": "Beta shape of the drop-out probability after each purchase",
    "s": "shape of the drop-out-rate heterogeneity (Pareto/NBD: Gamma over customers)",
    "beta": "scale of the drop-out rates (days): mean lifetime beta / (s - 1)",
    "p": "Gamma-Gamma: shape of a customer's spend per order",
    "q": "Gamma-Gamma: shape of the spend heterogeneity over customers",
    "gamma": "Gamma-Gamma: scale of the spend heterogeneity (mean spend ~ p gamma / (q - 1))",
}


def rfm(meta: ModelMetadata) -> Section:
    """Segment shares and the R x FM grid of buyers with counts and mean spend."""
    m, report = meta.metrics, report_data(meta)
    shares = {k.split(":", 1)[1]: v for k, v in m.items() if k.startswith("share:")}
    segment_map = meta.params.get("segment_map", [])
    body = [table(["segment", "share of contacts"], [[k, f"{100 * v:.1f} %"] for k, v in sorted(shares.items(), key=lambda kv: -kv[1])])]
    headline = f"{100 * m['buyer_share']:.1f} % of {fmt(m['n_contacts'])} contacts are buyers"
    if "grid_counts" in report:
        counts, value = np.array(report["grid_counts"], float), np.array(report["grid_mean_monetary"], float)
        fig, ax = plt.subplots(figsize=(8.5, 5.5))
        ax.imshow(counts, origin="lower", cmap="Blues")
        for r in range(5):
            for fm in range(5):
                name = segment_map[r][fm].replace("_", " ") if segment_map else ""
                ax.text(fm, r, f"{name}\n{counts[r, fm]:,.0f} buyers\nspend {value[r, fm]:,.0f}", ha="center", va="center", fontsize=7,
                        color="white" if counts[r, fm] > counts.max() / 2 else "black")  # fmt: skip
        ax.set_xticks(range(5), [str(i) for i in range(1, 6)])
        ax.set_yticks(range(5), [str(i) for i in range(1, 6)])
        ax.set(xlabel="FM = (F + M) // 2", ylabel="R (5 = most recent)", title="Buyers by R x FM: segment, count, mean spend")
        body.insert(0, f'<div class="charts">{img(png(fig), "rfm grid")}</div>')
        buyers = counts.sum()
        overall = float((counts * value).sum() / max(buyers, 1))
        headline += f"; the R5 x FM5 cell spends {fmt(value[4, 4])} on average vs {fmt(overall)} over all buyers"
    else:
        body.insert(0, missing("R x FM grid"))
    return Section(headline, "\n".join(body))


def _gains_chart(title: str, series: dict[str, tuple[list[float], str, str]]) -> str:
    return line_chart(title, "contacts targeted, best first (%)", "buyers captured (%)", [0, *_FRACTIONS],
                      {k: ([0.0, *(100 * v for v in vs)], c, s) for k, (vs, c, s) in series.items()}, diagonal=True)  # fmt: skip


def _lift(gains: list[float], percent: int) -> float:
    return gains[percent // 5 - 1] / (percent / 100)


def affinity(meta: ModelMetadata) -> Section:
    """Per group: holdout AUC and lift at 5 and 10 % vs the baseline, and the gains curves."""
    m, gains = meta.metrics, report_data(meta).get("gains", {})
    groups = list(meta.params.groups or ())
    rows = []
    for g in groups:
        row: list[Any] = [g, m.get(f"auc:{g}", float("nan")), m.get(f"baseline_auc:{g}", float("nan"))]
        if g in gains:
            row += [_lift(gains[g]["model"], 5), _lift(gains[g]["baseline"], 5)]
        row += [m.get(f"lift10:{g}", float("nan")), m.get(f"baseline_lift10:{g}", float("nan")), m.get(f"base_rate:{g}", float("nan"))]
        rows.append(row)
    headers = ["group", "AUC", "baseline AUC", *(["lift 5 %", "baseline lift 5 %"] if gains else []), "lift 10 %", "baseline lift 10 %", "base rate"]
    charts = [
        _gains_chart(f"Gains: {g}", {"model": (gains[g]["model"], MODEL, "o-"), "baseline": (gains[g]["baseline"], BASELINE, "s--")})
        for g in groups[:4] if g in gains  # fmt: skip
    ]
    chart_html = f'<div class="charts">{"".join(img(c, "gains") for c in charts)}</div>' if charts else missing("gains curves")
    more = f'<p class="muted">Gains drawn for the first {len(charts)} of {len(groups)} groups; the table lists every group.</p>' if len(groups) > len(charts) and charts else ""
    body = f'{chart_html}{more}{table(headers, rows)}<p class="muted">Baseline: {html.escape(str(meta.params.get("baseline", "")))}</p>'
    headline = f"mean holdout AUC {fmt(m['auc_mean'])} vs baseline {fmt(m['baseline_auc_mean'])}; lift at 10 % {fmt(m['lift10_mean'])} vs {fmt(m['baseline_lift10_mean'])}"
    return Section(headline, body)


def cross_sell(meta: ModelMetadata) -> Section:
    """Per group: AUC and lift at 5 % (and 10 %) among contacts new to it; pooled gains vs group popularity."""
    m, gains = meta.metrics, report_data(meta).get("gains", {})
    rows = []
    for g in meta.params.groups or ():
        row: list[Any] = [g, m.get(f"auc:{g}", float("nan")), m.get(f"lift_top5:{g}", float("nan"))]
        row += [_lift(gains[g], 10) if g in gains else float("nan"), m.get(f"base_rate:{g}", float("nan"))]
        rows.append(row)
    rows.append(["pooled (model)", m.get("pooled_auc", float("nan")), m.get("pooled_lift_top5", float("nan")),
                 _lift(gains["pooled"], 10) if "pooled" in gains else float("nan"), ""])  # fmt: skip
    rows.append(["pooled (group popularity)", m.get("group_popularity_auc", float("nan")), m.get("group_popularity_lift_top5", float("nan")),
                 _lift(gains["group_popularity"], 10) if "group_popularity" in gains else float("nan"), ""])  # fmt: skip
    if "pooled" in gains:
        chart = _gains_chart("Gains, all groups pooled", {"model": (gains["pooled"], MODEL, "o-"), "group popularity": (gains["group_popularity"], BASELINE, "s--")})
        per_group = {g: (v, c, "-") for (g, v), c in zip(((g, v) for g, v in gains.items() if g not in ("pooled", "group_popularity")),
                                                          plt.cm.tab10.colors, strict=False)}  # fmt: skip
        charts = img(chart, "pooled gains") + img(_gains_chart("Gains per group (model)", per_group), "group gains")
        chart_html = f'<div class="charts">{charts}</div>'
    else:
        chart_html = missing("gains curves")
    body = f'{chart_html}{table(["group", "AUC", "lift 5 %", "lift 10 %", "base rate"], rows)}<p class="muted">Baseline: {html.escape(str(meta.params.get("baseline", "")))}</p>'
    headline = (f"pooled AUC {fmt(m['pooled_auc'])} vs group popularity {fmt(m['group_popularity_auc'])}; "
                f"lift at 5 % {fmt(m['pooled_lift_top5'])} vs {fmt(m['group_popularity_lift_top5'])}")  # fmt: skip
    return Section(headline, body)


def _params_table(params: dict[str, float], model: str) -> str:
    rows = [[f"{model}: {k}" if k in ("r", "alpha", "a", "b", "s", "beta") else k, v, _MEANING.get(k, "")] for k, v in params.items()]
    return table(["parameter", "value", "meaning"], rows)


def clv(meta: ModelMetadata) -> Section:
    """Fader-Hardie holdout views: orders by calibration frequency, the weekly cumulative curve, parameters."""
    m, report, chosen = meta.metrics, report_data(meta), meta.model_type
    candidates = sorted({k.split(":", 1)[0] for k in m if k.endswith(":mae") and not k.startswith("naive")})
    rows = [[name + (" (served)" if name == chosen else ""), m[f"{name}:mae"], m[f"{name}:spearman"], m[f"{name}:total_error"]] for name in [*candidates, "naive"]]
    body = [table(["model (calibration fit)", "holdout MAE", "Spearman", "total error"], rows)]
    charts = []
    if "by_frequency" in report:
        rows_f = report["by_frequency"]
        fig, ax = plt.subplots(figsize=(5, 3.6))
        xs = np.arange(len(rows_f))
        ax.plot(xs, [r["actual"] for r in rows_f], "o-", color="black", label="actual")
        ax.plot(xs, [r["model"] for r in rows_f], "s--", color=MODEL, label=chosen)
        ax.plot(xs, [r["naive"] for r in rows_f], "^:", color=BASELINE, label="naive x/T·t")
        ax.set_xticks(xs, [r["label"] for r in rows_f])
        ax.set(xlabel="repeat purchases in calibration", ylabel="mean holdout purchases", title="Holdout purchases by calibration frequency")
        ax.legend(fontsize=8)
        ax.grid(alpha=0.3)
        charts.append(img(png(fig), "by frequency"))
        body.append(table(["calibration repeat purchases", "customers", "actual", chosen, "naive"],
                          [[r["label"], r["count"], r["actual"], r["model"], r["naive"]] for r in rows_f]))  # fmt: skip
    if "weekly" in report:
        w = report["weekly"]
        weeks = list(range(1, len(w["days"]) + 1))
        charts.append(img(line_chart("Cumulative repeat purchases in the holdout", "week of the holdout", "repeat purchases", weeks,
                                 {"actual": (w["actual"], "black", "-"), chosen: (w["model"], MODEL, "--"), "naive": (w["naive"], BASELINE, ":")}), "weekly"))  # fmt: skip
    if charts:
        body.insert(0, f'<div class="charts">{"".join(charts)}</div>')
    else:
        body.insert(0, missing("holdout views"))
    served = meta.params.get("value_rule", {}).get("rule")
    if served:  # the value ranking, cross-fitted on the spend after a cut inside the training data
        window = fmt(m.get("value:window_days", float("nan")))
        body.append(table([f"value rule (spend of the last {window} days)", "top-10 % capture", "Spearman"],
                          [[rule + (" (served)" if rule == served else ""), m[f"value:{rule}:top10_capture"], m[f"value:{rule}:spearman"]]
                           for rule in ("calibrated", "BTYD", "naive") if f"value:{rule}:spearman" in m]))  # fmt: skip
    body.append(_params_table(meta.params.get("purchase_params", {}), chosen) + _params_table(meta.params.get("spend_params", {}), "Gamma-Gamma"))
    headline = (f"{chosen} holdout MAE {fmt(m[f'{chosen}:mae'])} vs naive {fmt(m['naive:mae'])} repeat purchases per customer "
                f"over {fmt(m['holdout_days'])} days (Spearman {fmt(m[f'{chosen}:spearman'])} vs {fmt(m['naive:spearman'])})")  # fmt: skip
    return Section(headline, "\n".join(body))


def churn(meta: ModelMetadata) -> Section:
    """MBG/NBD's holdout fit vs naive, the P(alive) distribution and the parameters."""
    m, report = meta.metrics, report_data(meta)
    body = []
    if "p_alive_histogram" in report:
        counts = report["p_alive_histogram"]
        fig, ax = plt.subplots(figsize=(5, 3.6))
        ax.bar([(i + 0.5) / len(counts) for i in range(len(counts))], counts, width=0.9 / len(counts), color=MODEL)
        ax.set(xlabel="P(alive) as of the training date", ylabel="customers (fit sample)", title="P(alive) distribution")
        body.append(f'<div class="charts">{img(png(fig), "p alive")}</div>')
    else:
        body.append(missing("P(alive) distribution"))
    date_text = ""
    if "decisive:precision" in m:
        threshold = meta.params.get("request_defaults", {}).get("churn_threshold")
        body.append(f"<p>The decisive date is where, with no new order, P(any order in the next "
                    f"{meta.params.get('lapse_window_days', 365):.0f} days) falls below the threshold {threshold}: the largest "
                    f"whose dates keep a projected 90 % of the dated customers buying nothing after their date over the next "
                    f"{m.get('decisive:horizon_days', float('nan')):.0f} days (the model's own forecast, with its errors measured "
                    f"on the last {m.get('decisive:window_days', float('nan')):.0f} days of the history, fitted on what came "
                    f"before; below, that holdout's figures).</p>")  # fmt: skip
        body.append(table(["decisive date on the holdout", "value"], [
            [f"projected precision over the next {m.get('decisive:horizon_days', float('nan')):.0f} days (chose the threshold)",
             m.get("decisive:projected_precision", float("nan"))],
            ["customers dated before the holdout's end", m["decisive:dated_share"]],
            ["their median days from the cut to the date", m.get("decisive:median_days_to_date", float("nan"))],
            ["of them, bought nothing after their date (precision)", m["decisive:precision"]],
            ["customers who bought nothing, dated in time (recall)", m["decisive:recall"]]]))  # fmt: skip
        date_text = f"; {100 * m['decisive:precision']:.0f} % of dated customers bought nothing after their date"
    body.append(_params_table(meta.params.get("params", {}), "MBG/NBD"))
    headline = f"MBG/NBD holdout MAE {fmt(m['MBG/NBD:mae'])} vs naive {fmt(m['naive:mae'])} repeat purchases per customer{date_text}"
    return Section(headline, "\n".join(body))


