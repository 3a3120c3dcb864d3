"""The reference time of a request when the caller gives none: the base's own, else now; and the
one warning a caller needs when windowed scores would come out empty.

A base written by ``scorecast simulate`` carries its as-of in ``base.json`` (a B2B base also in
``truth/metadata.json``); a platform's export may too. Scores that look back over a window
(``WINDOWED``) are empty when the newest event is older than the window before the as-of.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TextIO

import pyarrow.compute as pc
import pyarrow.parquet as pq

__all__ = ["WINDOWED", "base_as_of", "default_as_of", "newest_event", "warn_if_stale"]

# score -> the days its outputs look back over (web_heat: visits; pressure: sends)
WINDOWED = {"web_heat": 30, "pressure": 30}
_EVENT_TABLES = ("orders", "email_events", "web_events", "interactions")


def base_as_of(data: Path) -> datetime | None:
    """The as-of a base folder declares (``base.json``, else ``truth/metadata.json``), or None."""
    for name in ("base.json", "truth/metadata.json"):
        path = Path(data) / name
        if path.is_file():
            value = json.loads(path.read_text()).get("as_of")
            if value:
                stamp = datetime.fromisoformat(value)
                return stamp if stamp.tzinfo else stamp.replace(tzinfo=UTC)
    return None


def newest_event(data: Path, tables: Iterable[str] = _EVENT_TABLES) -> datetime | None:
    """The latest ``ts`` over the base's event tables (orders, e-mail, web, interactions), or None."""
    newest = None
    for name in tables:
        path = Path(data) / f"{name}.parquet"
        if not path.is_file() or "ts" not in pq.read_schema(path).names:
            continue
        value = pc.max(pq.read_table(path, columns=["ts"])["ts"]).as_py()
        if value is not None:
            value = value if value.tzinfo else value.replace(tzinfo=UTC)
            newest = value if newest is None else max(newest, value)
    return newest


def default_as_of(given: datetime | None, data: Path | None, err: TextIO | None = None) -> datetime:
    """``given`` if set; else the base's own as-of (said once on ``err``); else now."""
    if given is not None:
        return given
    declared = base_as_of(data) if data is not None else None
    if declared is not None:
        print(f"as of {declared.isoformat()}, the as-of the base declares; pass --as-of to choose another", file=err or sys.stderr)
        return declared
    return datetime.now(UTC)


def warn_if_stale(scores: Iterable[str], as_of: datetime, data: Path | None, err: TextIO | None = None) -> bool:
    """Say once on ``err`` when the windowed scores among ``scores`` would be empty as of ``as_of``
    (the newest event is older than their window); True when it warned."""
    windows = {s: WINDOWED[s] for s in scores if s in WINDOWED}
    if not windows or data is None:
        return False
    newest = newest_event(data)
    if newest is None:
        return False
    stale = sorted(s for s, days in windows.items() if newest < as_of - timedelta(days=days))
    if stale:
        print(
            f"warning: the newest event in {data} is {newest.date().isoformat()}, more than {max(windows[s] for s in stale)} days "
            f"before as-of {as_of.date().isoformat()}: {', '.join(stale)} will come out empty; "
            f"pass --as-of {newest.date().isoformat()} to score the base as of its data",
            file=err or sys.stderr,
        )
    return bool(stale)
