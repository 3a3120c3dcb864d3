"""Sections of the web and behavioural scores: web_heat and segments."""

from __future__ import annotations

from scorecast.metadata import ModelMetadata

from .charts import MODEL, Section, fmt, img, plt, png, report_data, table

__all__ = ["segments", "web_heat"]

_CATEGORY_COLOURS = {"inactive": "#9aa5b1", "cold": "#54aeff", "warm": "#f0b429", "hot": "#d1242f", "eliminated": "#6e7781"}


def web_heat(meta: ModelMetadata) -> Section:
    """Category shares, quartile thresholds and (when recorded) the conversion rate by heat quartile."""
    m, report = meta.metrics, report_data(meta)
    shares = {k.split(":", 1)[1]: v for k, v in m.items() if k.startswith("share:")}
    charts = []
    fig, ax = plt.subplots(figsize=(5, 3.6))
    ax.bar(list(shares), [100 * v for v in shares.values()], color=[_CATEGORY_COLOURS.get(c, MODEL) for c in shares])
    ax.set(ylabel="contacts (%)", title="Web heat category (last 30 days)")
    charts.append(img(png(fig), "categories"))
    conversion = report.get("conversion_by_quartile")
    headline = f"{100 * m['heated_share']:.1f} % of {fmt(m['n_contacts'])} contacts heated in the last 30 days"
    if conversion:
        fig, ax = plt.subplots(figsize=(5, 3.6))
        ax.bar(["none", "1", "2", "3", "4"], [100 * v for v in conversion], color=MODEL)
        ax.set(xlabel="heat quartile", ylabel="ordered in the next 30 days (%)", title="Conversion by heat quartile")
        charts.append(img(png(fig), "conversion by quartile"))
        headline += f"; quartile 4 converts at {100 * conversion[4]:.1f} % vs {100 * conversion[0]:.1f} % for unheated contacts"
    thresholds = meta.params.get("quartile_thresholds", [])
    body = f'<div class="charts">{"".join(charts)}</div>' + table(
        ["quartile", "heat from"], [[q + 1, t] for q, t in enumerate([0.0, *thresholds])]
    ) + table(["category", "share"], [[c, f"{100 * v:.1f} %"] for c, v in shares.items()])
    return Section(headline, body)


def segments(meta: ModelMetadata) -> Section:
    """Segment sizes and profiles (typical values), and the silhouette that chose k."""
    m, segs = meta.metrics, meta.params.get("segments", [])
    fig, ax = plt.subplots(figsize=(5.5, 0.4 * len(segs) + 1.2))
    ax.barh([s["name"] for s in segs][::-1], [100 * s["share"] for s in segs][::-1], color=MODEL)
    ax.set(xlabel="share of the base (%)", title="Segment sizes")
    features = list(segs[0]["typical"]) if segs else []
    rows = [[s["name"], f"{100 * s['share']:.1f} %", *(s["typical"][f] for f in features)] for s in segs]
    silhouettes = {int(k.split(":", 1)[1]): v for k, v in m.items() if k.startswith("silhouette:")}
    k = int(m["k"])
    others = [v for kk, v in silhouettes.items() if kk != k]
    body = f'<div class="charts">{img(png(fig), "segment sizes")}</div>' + table(["segment", "share", *features], rows) + table(
        ["k", "silhouette"], [[kk, v] for kk, v in sorted(silhouettes.items())]
    ) + "".join(f"<p><b>{s['name']}</b>: {s['description']}</p>" for s in segs)
    headline = f"k = {k} segments, silhouette {fmt(silhouettes.get(k, float('nan')))} vs best other k {fmt(max(others) if others else float('nan'))}"
    return Section(headline, body)
