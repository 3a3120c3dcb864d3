"""``scorecast report``: a model's validation report as one self-contained HTML page.

Everything comes from the model's metadata (``metrics`` and ``params["validation"]``), so a
report can be written for any version in a repository without the training data. Charts are
matplotlib PNGs embedded as base64; the page is written to a temporary file and renamed.
"""

from __future__ import annotations

import base64
import html
import io
import json
import math
from pathlib import Path
from typing import Any

import onnx

from scorecast.atomic import write_text
from scorecast.metadata import ModelMetadata
from scorecast.model_store import find_model

from .onnx_export import read_metadata

__all__ = ["render_report", "write_report"]

_TIER_COLOURS = {"low": "#9aa5b1", "medium": "#f0b429", "high": "#2f8132"}


def _png(fig: Any) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    import matplotlib.pyplot as plt

    plt.close(fig)
    return base64.b64encode(buf.getvalue()).decode("ascii")


def charts(validation: dict[str, Any]) -> dict[str, str]:
    """The report's charts as base64 PNGs: reliability, tiers, score distribution, gains."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out = {}
    rel = validation["reliability"]
    fig, ax = plt.subplots(figsize=(5, 4))
    top = max(max(r["predicted"] for r in rel), max(r["observed"] for r in rel)) * 1.05
    ax.plot([0, top], [0, top], "--", color="#888", label="perfect calibration")
    ax.plot([r["predicted"] for r in rel], [r["observed"] for r in rel], "o-", color="#1f6feb", label="holdout deciles")
    ax.set(xlabel="mean predicted probability", ylabel="observed conversion rate", title="Calibration (reliability)")
    ax.legend(loc="upper left")
    out["reliability"] = _png(fig)

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
    out["tiers"] = _png(fig)

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
    out["scores"] = _png(fig)

    gains = validation["gains"]
    fig, ax = plt.subplots(figsize=(5, 4))
    xs = [0.0] + [100 * g["fraction"] for g in gains]
    ax.plot(xs, [0.0] + [100 * g["captured"] for g in gains], "o-", color="#1f6feb", label="model")
    ax.plot([0, 100], [0, 100], "--", color="#888", label="random")
    ax.set(xlabel="leads contacted, best first (%)", ylabel="conversions captured (%)", title="Cumulative gains")
    ax.legend(loc="lower right")
    out["gains"] = _png(fig)
    return out


def _fmt(value: float) -> str:
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    return f"{value:,.0f}" if float(value).is_integer() and abs(value) >= 10 else f"{value:.4g}"


def _table(headers: list[str], rows: list[list[Any]]) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in headers)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in row) + "</tr>" for row in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def render_report(meta: ModelMetadata) -> str:
    """The HTML page of one model's validation report."""
    validation = meta.params.get("validation")
    if not isinstance(validation, dict):
        raise ValueError(f"{meta.score} version {meta.version} has no validation report in its metadata (params.validation)")
    m = meta.metrics
    png = charts(validation)
    comparison = validation.get("model_comparison", {})
    headline = [
        ["AUC (holdout)", _fmt(m["auc"])],
        ["lift in the top 10 %", _fmt(m["lift10"])],
        ["calibration error (ECE, 10 bins)", _fmt(m["ece"])],
        ["Brier score", _fmt(m["brier"])],
        ["high / low tier conversion ratio", _fmt(m["tier_ratio:high_low"])],
        ["holdout leads / conversions", f"{m['holdout_leads']:,.0f} / {m['holdout_conversions']:,.0f}"],
    ]
    models = [[k.split(":", 1)[1], _fmt(v)] for k, v in sorted(m.items()) if k.startswith("auc:")]
    tiers = [[t["tier"], t["count"], t["conversions"], f"{100 * t['rate']:.2f} %"] for t in validation["tiers"]]
    rel = [[i + 1, r["count"], f"{r['predicted']:.4f}", f"{r['observed']:.4f}"] for i, r in enumerate(validation["reliability"])]
    rules = meta.params.get("rules")
    rules_html = ""
    if isinstance(rules, dict):
        rows = [[i, n, _fmt(p)] for i, (n, p) in enumerate(zip(rules["names"], rules["points"], strict=True))]
        rules_html = "<h2>Rules (configuration)</h2>" + _table(["bit", "rule", "points (weighted)"], rows)
        rules_html += f"<pre>{html.escape(json.dumps(rules['config'], indent=2))}</pre>"
    title = f"{meta.score} v{meta.version}: validation report"
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title>
<style>
body {{ font-family: system-ui, sans-serif; max-width: 1100px; margin: 2em auto; color: #1f2328; line-height: 1.45; }}
table {{ border-collapse: collapse; margin: 0.5em 0 1.5em; }}
th, td {{ border: 1px solid #d0d7de; padding: 4px 10px; text-align: right; }}
th {{ background: #f6f8fa; }} td:first-child, th:first-child {{ text-align: left; }}
.charts {{ display: flex; flex-wrap: wrap; gap: 1.5em; }} .charts img {{ max-width: 100%; border: 1px solid #eee; }}
pre {{ background: #f6f8fa; padding: 1em; overflow-x: auto; }} .muted {{ color: #656d76; }}
</style></head><body>
<h1>{html.escape(title)}</h1>
<p class="muted">{html.escape(meta.description)}<br>model type {html.escape(meta.model_type)}; trained {html.escape(meta.trained_at)};
data as of {html.escape(meta.data_as_of)}; horizon {meta.horizon_days} days; {len(meta.features)} features.</p>
<h2>Headline (held-out leads)</h2>
{_table(["metric", "value"], headline)}
<h2>Model comparison (same holdout)</h2>
{_table(["model", "AUC"], models)}
<p class="muted">Served: {html.escape(str(comparison.get("served", meta.model_type)))} — {html.escape(str(comparison.get("why", "")))}</p>
<div class="charts">
<img alt="reliability" src="data:image/png;base64,{png["reliability"]}">
<img alt="tiers" src="data:image/png;base64,{png["tiers"]}">
<img alt="scores" src="data:image/png;base64,{png["scores"]}">
<img alt="gains" src="data:image/png;base64,{png["gains"]}">
</div>
<h2>Tiers</h2>
{_table(["tier", "leads", "conversions", "conversion rate"], tiers)}
<h2>Reliability table (deciles of predicted probability)</h2>
{_table(["decile", "leads", "mean predicted", "observed rate"], rel)}
{rules_html}
</body></html>
"""


def write_report(models: Path, score: str, out: Path, version: str | None = None) -> Path:
    """Render the report of ``score`` (newest version unless given) to ``out``, atomically."""
    meta = read_metadata(onnx.load(find_model(models, score, version), load_external_data=False))
    page = render_report(meta)
    if not out.parent.is_dir():
        raise FileNotFoundError(f"output folder {out.parent} does not exist")
    write_text(out, page)
    return out
