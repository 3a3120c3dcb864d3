"""The ``lead`` section: the scorecard's holdout validation (``params["validation"]``)."""

from __future__ import annotations

import html
import json
from typing import Any

from scorecast.metadata import ModelMetadata

from .charts import Section, fmt, img, plt, png, table

__all__ = ["lead"]

_TIER_COLOURS = {"low": "#9aa5b1", "medium": "#f0b429", "high": "#2f8132"}


def _charts(validation: dict[str, Any]) -> dict[str, str]:
    """The report's charts as base64 PNGs: reliability, tiers, score distribution, gains."""
    out = {}
    rel = validation["reliability"]
    fig, ax = plt.subplots(figsize=(5, 4))
    top = max(max(r["predicted"] for r in rel), max(r["observed"] for r in rel)) * 1.05
    ax.plot([0, top], [0, top], "--", color="#888", label="perfect calibration")
    ax.plot([r["predicted"] for r in rel], [r["observed"] for r in rel], "o-", color="#1f6feb", label="holdout deciles")
    ax.set(xlabel="mean predicted probability", ylabel="observed conversion rate", title="Calibration (reliability)")
    ax.legend(loc="upper left")
    out["reliability"] = png(fig)

    tiers = validation["tiers"]
    fig, ax = plt.subplots(figsize=(5, 4))
    names = [t["tier"] for t in tiers]
    rates = [100 * t["rate"] if t["rate"] == t["rate"] else 0.0 for t in tiers]
    bars = ax.bar(names, rates, color=[_TIER_COLOURS.get(n, "#555") for n in names])
    for bar, t in zip(bars, tiers, strict=True):
        ax.annotate(f"{100 * t['rate']:.1f} %\n({t['conversions']}/{t['count']})", (bar.get_x() + bar.get_width() / 2, bar.get_height()),
                    ha="center", va="bottom", fontsize=9)  # fmt: skip
    ax.set(ylabel="conversion rate (%)", title="Conversion rate by tier (holdout)")
    ax.set_ylim(0, max(rates) * 1.3 + 0.1)
    out["tiers"] = png(fig)

    hist = validation["score_histogram"]
    fig, ax = plt.subplots(figsize=(6, 4))
    bottom = [0] * len(hist["bins"])
    for name in names:
        ax.bar(hist["bins"], hist[name], bottom=bottom, label=name, color=_TIER_COLOURS.get(name, "#555"))
        bottom = [b + v for b, v in zip(bottom, hist[name], strict=True)]
    ax.set(xlabel="score", ylabel="holdout leads", title="Score distribution by tier")
    ax.tick_params(axis="x", labelrotation=45)
    ax.set_ylim(0, max(bottom) * 1.25 + 1)
    ax.legend(ncol=3, loc="upper center")
    out["scores"] = png(fig)

    gains = validation["gains"]
    fig, ax = plt.subplots(figsize=(5, 4))
    xs = [0.0] + [100 * g["fraction"] for g in gains]
    ax.plot(xs, [0.0] + [100 * g["captured"] for g in gains], "o-", color="#1f6feb", label="model")
    ax.plot([0, 100], [0, 100], "--", color="#888", label="random")
    ax.set(xlabel="leads contacted, best first (%)", ylabel="conversions captured (%)", title="Cumulative gains")
    ax.legend(loc="lower right")
    out["gains"] = png(fig)
    return out


def lead(meta: ModelMetadata) -> Section:
    """Headline metrics, the model comparison, reliability, tiers, score distribution, gains and rules."""
    validation = meta.params.get("validation")
    if not isinstance(validation, dict):
        raise ValueError(f"{meta.score} version {meta.version} has no validation report in its metadata (params.validation)")
    m = meta.metrics
    png_ = _charts(validation)
    comparison = validation.get("model_comparison", {})
    headline = [
        ["AUC (holdout)", m["auc"]],
        ["lift in the top 10 %", m["lift10"]],
        ["calibration error (ECE, 10 bins)", m["ece"]],
        ["Brier score", m["brier"]],
        ["high / low tier conversion ratio", m["tier_ratio:high_low"]],
        ["holdout leads / conversions", f"{m['holdout_leads']:,.0f} / {m['holdout_conversions']:,.0f}"],
    ]
    models = [[k.split(":", 1)[1], v] for k, v in sorted(m.items()) if k.startswith("auc:")]
    others = ", ".join(f"{name} {fmt(v)}" for name, v in models if v != m["auc"])
    tiers = [[t["tier"], t["count"], t["conversions"], f"{100 * t['rate']:.2f} %"] for t in validation["tiers"]]
    rel = [[i + 1, r["count"], f"{r['predicted']:.4f}", f"{r['observed']:.4f}"] for i, r in enumerate(validation["reliability"])]
    rules = meta.params.get("rules")
    rules_html = ""
    if isinstance(rules, dict):
        rows = [[i, n, p] for i, (n, p) in enumerate(zip(rules["names"], rules["points"], strict=True))]
        rules_html = "<h3>Rules (configuration)</h3>" + table(["bit", "rule", "points (weighted)"], rows)
        rules_html += f"<pre>{html.escape(json.dumps(rules['config'], indent=2))}</pre>"
    body = f"""<h3>Headline (held-out leads)</h3>
{table(["metric", "value"], headline)}
<h3>Model comparison (same holdout)</h3>
{table(["model", "AUC"], models)}
<p class="muted">Served: {html.escape(str(comparison.get("served", meta.model_type)))} — {html.escape(str(comparison.get("why", "")))}</p>
<div class="charts">{img(png_["reliability"], "reliability")}{img(png_["tiers"], "tiers")}{img(png_["scores"], "scores")}{img(png_["gains"], "gains")}</div>
<h3>Tiers</h3>
{table(["tier", "leads", "conversions", "conversion rate"], tiers)}
<h3>Reliability table (deciles of predicted probability)</h3>
{table(["decile", "leads", "mean predicted", "observed rate"], rel)}
{rules_html}"""
    return Section(f"holdout AUC {fmt(m['auc'])} vs {others or 'no other model'} on the same leads; lift at 10 % {fmt(m['lift10'])} vs 1 at random", body)
