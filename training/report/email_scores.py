"""Sections of the e-mail scores: engagement, pressure and interests."""

from __future__ import annotations

from scorecast.metadata import ModelMetadata

from .charts import BASELINE, MODEL, Section, fmt, img, missing, plt, png, report_data, table

__all__ = ["engagement", "interests", "pressure"]


def engagement(meta: ModelMetadata) -> Section:
    """Reliability diagrams of P(open) and P(click) on the holdout, AUC vs the recency baseline."""
    m, reliability = meta.metrics, report_data(meta).get("reliability", {})
    charts = []
    for what in ("open", "click"):
        bins = reliability.get(what)
        if not bins:
            continue
        fig, ax = plt.subplots(figsize=(5, 3.6))
        top = max(max(b["predicted"] for b in bins), max(b["observed"] for b in bins)) * 1.1
        ax.plot([0, top], [0, top], ":", color="#888", label="perfect calibration")
        ax.plot([b["predicted"] for b in bins], [b["observed"] for b in bins], "o-", color=MODEL, label="holdout deciles")
        ax.set(xlabel=f"mean predicted P({what})", ylabel=f"observed {what} rate", title=f"Reliability: P({what}) (ECE {m[f'ece_{what}']:.4f})")
        ax.legend(fontsize=8)
        ax.grid(alpha=0.3)
        charts.append(img(png(fig), f"reliability {what}"))
    rows = [[f"P({w})", m[f"auc_{w}"], m[f"baseline_auc_{w}"], m[f"ece_{w}"], m[f"mean_p_{w}"], m[f"rate_{w}"]] for w in ("open", "click")]
    body = (f'<div class="charts">{"".join(charts)}</div>' if charts else missing("reliability diagrams")) + table(
        ["model", "AUC", "recency baseline AUC", "ECE", "mean predicted", "observed rate"], rows
    ) + f'<p class="muted">Label: {meta.params.get("label", "")}; points: deciles of the predicted probability on the holdout.</p>'
    headline = (f"holdout AUC P(open) {fmt(m['auc_open'])} vs recency baseline {fmt(m['baseline_auc_open'])}, "
                f"P(click) {fmt(m['auc_click'])} vs {fmt(m['baseline_auc_click'])}")  # fmt: skip
    return Section(headline, body)


def pressure(meta: ModelMetadata) -> Section:
    """The open rate by days since the previous send (the learned comfortable gap) and the fatigue rate."""
    m, p = meta.metrics, meta.params
    rates = p.get("open_rate_by_gap_days", [])
    fig, ax = plt.subplots(figsize=(5.5, 3.6))
    days = [d for d, r in enumerate(rates) if r is not None]
    ax.bar(days, [100 * rates[d] for d in days], color=MODEL)
    ax.axvline(p["min_gap_days"] - 0.5, color=BASELINE, linestyle="--", label=f"comfortable gap: {p['min_gap_days']} days")
    ax.set(xlabel="days since the previous send", ylabel="open rate (%)", title="Open rate by gap between sends")
    ax.legend(fontsize=8)
    rested = [rates[d] for d in days if d >= 7]
    rested_rate = sum(rested) / len(rested) if rested else float("nan")
    body = f'<div class="charts">{img(png(fig), "open rate by gap")}</div>' + table(
        ["measure", "value"],
        [["fatigued contacts", f"{100 * m['fatigue_share']:.2f} %"], ["mean recommended wait (days)", m["mean_wait_days"]],
         ["comfortable gap (days)", m["min_gap_days"]], ["fatigue rule", f"≥ {p['min_sends_30d']} sends in 30 days and opens < {p['ratio']} × the earlier rate"]],
    )  # fmt: skip
    close = [rates[d] for d in days if d < p["min_gap_days"]]
    close_rate = sum(close) / len(close) if close else float("nan")
    headline = (f"{100 * m['fatigue_share']:.1f} % of contacts fatigued; sends closer than {p['min_gap_days']} days open at "
                f"{100 * close_rate:.1f} % vs {100 * rested_rate:.1f} % after a week's pause")  # fmt: skip
    return Section(headline, body)


def interests(meta: ModelMetadata) -> Section:
    """Keyword coverage: the share of contacts whose first interest is each keyword."""
    m = meta.metrics
    shares = sorted(((k.split(":", 1)[1], v) for k, v in m.items() if k.startswith("top_share:")), key=lambda kv: -kv[1])
    fig, ax = plt.subplots(figsize=(5.5, 0.25 * len(shares) + 1.2))
    ax.barh([k for k, _ in shares][::-1], [100 * v for _, v in shares][::-1], color=MODEL)
    ax.set(xlabel="contacts whose first interest it is (%)", title="Keyword coverage")
    body = f'<div class="charts">{img(png(fig), "keyword coverage")}</div>' + table(
        ["keyword", "first interest of"], [[k, f"{100 * v:.2f} %"] for k, v in shares]
    )
    top = shares[0] if shares else ("none", 0.0)
    headline = (f"{100 * m['with_interest']:.1f} % of contacts have an interest (the rest never reacted); most common first "
                f"interest {top[0]} ({100 * top[1]:.1f} %, vs {100 * m['with_interest'] / max(len(shares), 1):.1f} % if keywords were even)")  # fmt: skip
    return Section(headline, body)
