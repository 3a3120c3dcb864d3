"""What every report section draws with: matplotlib figures as base64 PNGs, tables, numbers."""

from __future__ import annotations

import base64
import html
import io
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from scorecast.metadata import ModelMetadata

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402 (after the backend is chosen)

__all__ = ["Section", "fmt", "img", "line_chart", "missing", "plt", "png", "report_data", "table"]

MODEL, BASELINE, RANDOM = "#1f6feb", "#d1242f", "#888888"


@dataclass(frozen=True)
class Section:
    """One score's part of the page: the headline (one line, against the baseline) and its HTML."""

    headline: str
    body: str


def png(fig: Any) -> str:
    """The figure as a base64 PNG (the figure is closed)."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100, bbox_inches="tight")
    plt.close(fig)
    return base64.b64encode(buf.getvalue()).decode("ascii")


def img(b64: str, alt: str) -> str:
    """An inline <img> of a base64 PNG."""
    return f'<img alt="{html.escape(alt)}" src="data:image/png;base64,{b64}">'


def line_chart(title: str, xlabel: str, ylabel: str, x: Sequence[float], series: dict[str, tuple[Sequence[float], str, str]],
               diagonal: bool = False) -> str:  # fmt: skip
    """A line chart of ``series`` (label -> (y values, colour, style)) over ``x`` as a base64 PNG."""
    fig, ax = plt.subplots(figsize=(5, 3.6))
    if diagonal:
        top = max(max(x), max(max(v) for v, _, _ in series.values()))
        ax.plot([0, top], [0, top], ":", color=RANDOM, label="random / perfect")
    for label, (values, colour, style) in series.items():
        ax.plot(x[: len(values)], values, style, color=colour, label=label, markersize=3)
    ax.set(title=title, xlabel=xlabel, ylabel=ylabel)
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    return png(fig)


def fmt(value: Any) -> str:
    """A number as the report shows it: thousands separators for counts, 4 significant digits otherwise."""
    if not isinstance(value, (int, float)):
        return str(value)
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    return f"{value:,.0f}" if float(value).is_integer() and abs(value) >= 10 else f"{value:.4g}"


def table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """An HTML table; cells formatted with :func:`fmt` and escaped."""
    head = "".join(f"<th>{html.escape(h)}</th>" for h in headers)
    def cell(c: Any) -> str:  # numbers right-aligned, text left
        return f"<td>{html.escape(fmt(c))}</td>" if isinstance(c, (int, float)) else f'<td class="t">{html.escape(str(c))}</td>'

    body = "".join("<tr>" + "".join(cell(c) for c in row) + "</tr>" for row in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def report_data(meta: ModelMetadata) -> dict[str, Any]:
    """What training recorded for the report (``params["report"]``); empty for older versions."""
    report = meta.params.get("report")
    return report if isinstance(report, dict) else {}


def missing(what: str) -> str:
    """The note shown where an older version's metadata lacks a chart's data."""
    return f'<p class="muted">No {html.escape(what)} in this version\'s metadata (trained before the report recorded it): retrain to draw it.</p>'
