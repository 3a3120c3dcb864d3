"""The report page: one section per score, in the order of ``SECTIONS``, written atomically."""

from __future__ import annotations

import html
from collections.abc import Callable, Sequence
from pathlib import Path

import onnx

from scorecast.atomic import write_text
from scorecast.metadata import ModelMetadata
from scorecast.model_store import find_model, model_files

from ..onnx_export import read_metadata
from . import email_scores, lead, products, retail, web
from .charts import Section, fmt, table

__all__ = ["SECTIONS", "render_page", "write_report"]

SECTIONS: dict[str, Callable[[ModelMetadata], Section]] = {
    "rfm": retail.rfm,
    "affinity": retail.affinity,
    "cross_sell": retail.cross_sell,
    "clv": retail.clv,
    "churn": retail.churn,
    "recommendations": products.recommendations,
    "promo_appetence": products.promo_appetence,
    "engagement": email_scores.engagement,
    "pressure": email_scores.pressure,
    "interests": email_scores.interests,
    "web_heat": web.web_heat,
    "segments": web.segments,
    "lead": lead.lead,
}

_STYLE = """
body { font-family: system-ui, sans-serif; max-width: 1150px; margin: 2em auto; color: #1f2328; line-height: 1.45; }
table { border-collapse: collapse; margin: 0.5em 0 1.2em; font-size: 0.9em; }
th, td { border: 1px solid #d0d7de; padding: 3px 9px; text-align: right; }
th { background: #f6f8fa; } td:first-child, th:first-child, td.t { text-align: left; }
.charts { display: flex; flex-wrap: wrap; gap: 1em; } .charts img { max-width: 100%; border: 1px solid #eee; }
pre { background: #f6f8fa; padding: 1em; overflow-x: auto; } .muted { color: #656d76; }
section { border-top: 2px solid #d0d7de; margin-top: 2em; } .headline { font-size: 1.05em; background: #ddf4ff; padding: 0.4em 0.8em; }
"""


def _generic(meta: ModelMetadata) -> Section:
    return Section("no report section for this score yet: its holdout metrics follow", table(["metric", "value"], sorted(meta.metrics.items())))


def render_page(metas: Sequence[ModelMetadata]) -> tuple[str, dict[str, str]]:
    """One HTML page with a section per model (headline against the baseline, charts, tables),
    and each score's headline."""
    if not metas:
        raise ValueError("no models to report on")
    parts, index, headlines = [], [], {}
    for meta in metas:
        section = SECTIONS.get(meta.score, _generic)(meta)
        headlines[meta.score] = section.headline
        anchor = html.escape(meta.score)
        index.append(f'<tr><td><a href="#{anchor}">{anchor}</a></td><td>{html.escape(section.headline)}</td></tr>')
        parts.append(f"""<section id="{anchor}"><h2>{anchor} v{html.escape(meta.version)} <span class="muted">({html.escape(meta.model_type)})</span></h2>
<p class="headline">{html.escape(section.headline)}</p>
<p class="muted">{html.escape(meta.description)}. Trained {html.escape(meta.trained_at)}; data as of {html.escape(meta.data_as_of)};
{len(meta.features)} features{f"; horizon {fmt(meta.horizon_days)} days" if meta.horizon_days else ""}.</p>
{section.body}</section>""")
    title = "scorecast validation report" if len(metas) > 1 else f"{metas[0].score} v{metas[0].version}: validation report"
    page = f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title><style>{_STYLE}</style></head><body>
<h1>{html.escape(title)}</h1>
<table><thead><tr><th>score</th><th>headline (holdout, against its baseline)</th></tr></thead><tbody>{"".join(index)}</tbody></table>
{"".join(parts)}
</body></html>
"""
    return page, headlines


def write_report(models: Path, out: Path, score: str | None = None, version: str | None = None) -> dict[str, str]:
    """Render the report of ``score`` (newest version unless given), or of every score's newest
    version in the repository, to ``out`` atomically; returns each score's headline."""
    if version is not None and score is None:
        raise ValueError("a version needs its score (--score)")
    scores = [score] if score is not None else sorted({s for s, _, _ in model_files(models)}, key=lambda s: (list(SECTIONS) + [s]).index(s))
    if not scores:
        raise FileNotFoundError(f"no models in {models}")
    metas = [read_metadata(onnx.load(find_model(models, s, version), load_external_data=False)) for s in scores]
    page, headlines = render_page(metas)
    if not out.parent.is_dir():
        raise FileNotFoundError(f"output folder {out.parent} does not exist")
    write_text(out, page)
    return headlines
