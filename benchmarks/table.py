"""The benchmarks' one table printer: a title line, column titles, a rule, one line per row.

A column is ``(key, title, spec, width)``: ``spec`` formats ``row[key]`` (``",.0f"``, ``".2f"``
…); a spec starting with ``<`` left-aligns text; a missing or None value prints blank. The last
column, ``ratio_of``, is free text saying what the ratio is.
"""

from __future__ import annotations

from collections.abc import Sequence

Column = tuple[str, str, str, int]


def print_columns(rows: Sequence[dict], title: str, columns: Sequence[Column]) -> None:
    """Print ``rows`` under ``title`` with these columns, then each row's ``ratio_of``."""
    print(title)
    heads = [f"{t:<{w}}" if s.startswith("<") else f"{t:>{w}}" for _, t, s, w in columns]
    line = " ".join(heads) + "  ratio is"
    print(line)
    print("-" * len(line))
    for row in rows:
        cells = []
        for key, _, spec, width in columns:
            value = row.get(key)
            if value is None:
                cells.append(" " * width)
            elif spec.startswith("<"):
                cells.append(f"{value:<{width}}")
            else:
                cells.append(f"{value:{spec}}".rjust(width))
        print(" ".join(cells) + f"  {row.get('ratio_of', '')}")
