"""The default as-of of score / rescore / top: the base's own, else now; and the stale-window warning."""

from __future__ import annotations

import io
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from scorecast.as_of import base_as_of, default_as_of, newest_event, warn_if_stale

NEWEST = datetime(2025, 6, 30, 12, tzinfo=UTC)


def _base(tmp_path: Path, declared: str | None = "2025-07-01T00:00:00+00:00", where: str = "base.json") -> Path:
    (tmp_path / "truth").mkdir(exist_ok=True)
    if declared is not None:
        (tmp_path / where).write_text(json.dumps({"as_of": declared}))
    ts = pa.array([NEWEST - timedelta(days=40), NEWEST], pa.timestamp("us", "UTC"))
    pq.write_table(pa.table({"contact_id": [1, 2], "ts": ts}), tmp_path / "web_events.parquet")
    pq.write_table(pa.table({"contact_id": [1], "ts": pa.array([NEWEST - timedelta(days=99)], pa.timestamp("us", "UTC"))}), tmp_path / "orders.parquet")
    return tmp_path


def test_the_base_declares_its_as_of(tmp_path: Path) -> None:
    assert base_as_of(_base(tmp_path)) == datetime(2025, 7, 1, tzinfo=UTC)
    err = io.StringIO()
    assert default_as_of(None, tmp_path, err) == datetime(2025, 7, 1, tzinfo=UTC)
    assert err.getvalue().count("\n") == 1 and "2025-07-01" in err.getvalue()
    given = datetime(2024, 1, 1, tzinfo=UTC)
    err = io.StringIO()
    assert default_as_of(given, tmp_path, err) == given and err.getvalue() == ""


def test_a_b2b_base_keeps_it_in_its_truth(tmp_path: Path) -> None:
    assert base_as_of(_base(tmp_path, "2026-01-01T00:00:00", where="truth/metadata.json")) == datetime(2026, 1, 1, tzinfo=UTC)


def test_without_one_it_is_now(tmp_path: Path) -> None:
    assert base_as_of(_base(tmp_path, None)) is None
    before = datetime.now(UTC)
    assert before <= default_as_of(None, tmp_path, io.StringIO()) <= datetime.now(UTC)


def test_stale_windowed_scores_are_said_once(tmp_path: Path) -> None:
    base = _base(tmp_path, None)
    assert newest_event(base) == NEWEST
    err = io.StringIO()
    assert warn_if_stale(["rfm", "web_heat", "pressure"], datetime(2026, 1, 1, tzinfo=UTC), base, err)
    text = err.getvalue()
    assert text.count("\n") == 1 and "2025-06-30" in text and "--as-of 2025-06-30" in text and "pressure, web_heat" in text
    quiet = io.StringIO()
    assert not warn_if_stale(["web_heat"], NEWEST + timedelta(days=29), base, quiet)  # within the window
    assert not warn_if_stale(["rfm", "clv"], datetime(2026, 1, 1, tzinfo=UTC), base, quiet)  # no windowed score
    assert quiet.getvalue() == ""
