"""Dynamic batching: small scoring calls that arrive together are scored in one pipeline pass.

A real-time call is one contact, and alone it pays the whole per-chunk Python path (a dozen
kernel calls, one ONNX Runtime run per model, assembly) for one row. Calls that ask the same
thing (``BatchKey``: the account, the scores, every option, ``as_of``, the model versions they
resolved to)
and arrive within ``batch_max_delay_ms`` of each other are scored together: each call is
decoded and checked in its own handler thread, then the calls' tables are concatenated, scored
in one pass, and the result is cut back into one batch per call.

Isolation, call by call:
- Contact ids: two callers may send the same contact_id with different data. Each call's rows
  get synthetic int64 ids (its own dense row codes plus an offset) before concatenation, so no
  two calls share an id, and its own ids are put back on its slice of the result; its rows
  keep the order a solo call gives them.
- Errors: a call whose own rows are bad (duplicate ids, events of unknown contacts) fails alone
  before the pass; calls whose tables differ in columns or types are scored in separate passes;
  if a combined pass still fails, every member is rescored alone, so each gets its own answer
  or its own error.
- Deadlines and cancellation: a waiting call whose caller has gone (cancelled, deadline passed)
  leaves its batch, or ignores the batch's result if the pass has started.

When batches form: the first call of a key opens a batch and leads it; the batch starts once
no pass of its key is running and either no other call is on its way (decoding) or
``batch_max_delay_ms`` has passed since it opened, or at once when it holds ``batch_max_rows``
contacts. So a lone caller never waits, and under load a batch collects the calls that arrived
while the previous pass ran (the batch size follows the load). A call of more contacts than
``batch_max_rows``, or with a table not keyed by contact (``campaigns``), is scored alone.
Unset ``as_of`` ("now") batches too: the pass takes the latest-arrived member's now, which is
within ``batch_max_delay_ms`` plus a pass of every member's.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import grpc
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from scorecast.kernels import FeatureFrame
from scorecast.kernels.features import EVENT_TABLES

from .config import ServerSettings
from .errors import ScorecastError
from .pipeline import ScoringPipeline

__all__ = ["BatchKey", "Batcher", "batch_key"]

BatchKey = tuple[tuple[str, tuple[int, ...]], int | None]
"""What calls must share to be scored together: their spec (``scorecast.options.ScoreSpec``:
account, scores, every option) but ``as_of``, and the identities of the model versions they
resolved to (a reload between two calls splits them), both ``ScoringPipeline.plan_key``; and
their ``as_of`` (None: unset, now)."""

_BATCHABLE_TABLES = frozenset(EVENT_TABLES)
"""Tables keyed by contact_id, which renumbering keeps apart; a reference table (campaigns,
looked up by campaign_id) could mix two callers' rows, so a call with one is scored alone."""

_POLL_S = 0.05
"""How often a waiting call checks that its caller is still there (cancellation, deadline)."""


def batch_key(pipeline: ScoringPipeline, as_of_given: bool) -> BatchKey:
    """The key of a call scored by ``pipeline``; ``as_of_given``: whether the caller set as_of."""
    return pipeline.plan_key, pipeline.spec.as_of_us if as_of_given else None


class CallerGone(ScorecastError):
    """The caller cancelled, or its deadline passed, while its call waited in a batch."""

    def __init__(self, status: grpc.StatusCode) -> None:
        super().__init__("the call ended (cancelled or past its deadline) while it waited in a batch")
        self.status = status


@dataclass(eq=False)
class _Member:
    pipeline: ScoringPipeline
    tables: Mapping[str, pa.Table]
    rows: int
    context: grpc.ServicerContext
    done: threading.Event = field(default_factory=threading.Event)
    lead: bool = False  # set when this member is handed the batch to run
    result: pa.RecordBatch | None = None
    error: BaseException | None = None


@dataclass(eq=False)
class _Batch:
    key: BatchKey
    members: list[_Member]
    rows: int
    opened: float
    started: bool = False


class Incoming:
    """A call on its way to the batcher (decoding): a batch waits for it rather than leaving without it."""

    def __init__(self, batcher: Batcher) -> None:
        self._batcher = batcher
        self.pending = True

    def score(
        self, key: BatchKey, pipeline: ScoringPipeline, tables: Mapping[str, pa.Table], context: grpc.ServicerContext
    ) -> pa.RecordBatch:
        """Score this call's decoded ``tables`` with ``pipeline``, alone or batched with others of ``key``."""
        return self._batcher._score(self, key, pipeline, tables, context)


class Batcher:
    """Scores calls alone or in batches (see the module docstring); one per server."""

    def __init__(self, max_delay_s: float, max_rows: int, observe: Callable[[int, int], None] | None = None) -> None:
        self.max_delay_s = max_delay_s
        self.max_rows = max_rows
        self._observe = observe  # (calls, rows) of every pass, for the metrics
        self._cond = threading.Condition(threading.Lock())
        self._open: dict[BatchKey, _Batch] = {}
        self._running: dict[BatchKey, int] = {}
        self._arriving = 0

    @classmethod
    def from_settings(cls, settings: ServerSettings, observe: Callable[[int, int], None] | None = None) -> Batcher:
        """The batcher ``batch_max_delay_ms`` and ``batch_max_rows`` of ``settings`` describe."""
        return cls(settings.batch_max_delay_ms / 1e3, settings.batch_max_rows, observe)

    @property
    def enabled(self) -> bool:
        """Whether calls are batched at all (``batch_max_delay_ms`` > 0)."""
        return self.max_delay_s > 0

    def waiting(self) -> int:
        """Calls waiting in batches not yet started."""
        with self._cond:
            return sum(len(b.members) for b in self._open.values())

    def running(self) -> int:
        """Passes running now."""
        with self._cond:
            return sum(self._running.values())

    @contextmanager
    def incoming(self) -> Iterator[Incoming]:
        """Mark a call as on its way while it is decoded; ``score`` it from within."""
        call = Incoming(self)
        if self.enabled:
            with self._cond:
                self._arriving += 1
        try:
            yield call
        finally:
            if self.enabled and call.pending:
                with self._cond:
                    self._arrived(call)

    def _arrived(self, call: Incoming) -> None:  # under the lock
        call.pending = False
        self._arriving -= 1
        if self._arriving == 0:
            self._cond.notify_all()  # a leader waiting for the calls on their way may start

    def _score(
        self, call: Incoming, key: BatchKey, pipeline: ScoringPipeline, tables: Mapping[str, pa.Table], context: grpc.ServicerContext
    ) -> pa.RecordBatch:
        if not self.enabled:
            return pipeline.score(tables)
        rows = _rows(tables)
        if rows > self.max_rows or not tables or not _BATCHABLE_TABLES.issuperset(tables):
            with self._cond:
                self._arrived(call)
            return pipeline.score(tables)
        member = _Member(pipeline, tables, rows, context)
        with self._cond:
            self._arrived(call)
            batch = self._open.get(key)
            if batch is not None and batch.rows + rows <= self.max_rows:
                batch.members.append(member)
                batch.rows += rows
                if batch.rows >= self.max_rows:
                    self._cond.notify_all()  # full: its leader starts now
            else:
                batch = self._open[key] = _Batch(key, [member], rows, time.monotonic())
                member.lead = True
        while True:
            if member.lead:
                self._lead(batch, member)
                break
            if self._follow(batch, member):
                break
        if member.error is not None:
            raise member.error
        assert member.result is not None
        return member.result

    def _follow(self, batch: _Batch, member: _Member) -> bool:
        """Wait for the batch's result (True) or to be handed the lead (False)."""
        while not member.done.wait(_POLL_S):
            if member.context.is_active():
                continue
            with self._cond:
                if member.done.is_set():
                    break
                if not batch.started:
                    batch.members.remove(member)
                    batch.rows -= member.rows
            member.error = CallerGone(_gone(member.context))
            return True
        if member.lead:
            member.done.clear()
            return False
        return True

    def _lead(self, batch: _Batch, leader: _Member) -> None:
        """Wait until the batch may start (module docstring), then run it and answer every member."""
        with self._cond:
            while True:
                now = time.monotonic()
                free = not self._running.get(batch.key)
                if batch.rows >= self.max_rows or (free and (self._arriving == 0 or now >= batch.opened + self.max_delay_s)):
                    break
                if not leader.context.is_active():
                    batch.members.remove(leader)
                    batch.rows -= leader.rows
                    leader.error = CallerGone(_gone(leader.context))
                    if batch.members:  # the next member leads
                        batch.members[0].lead = True
                        batch.members[0].done.set()
                    elif self._open.get(batch.key) is batch:
                        del self._open[batch.key]
                    return
                wait = _POLL_S if not free else min(_POLL_S, batch.opened + self.max_delay_s - now)
                self._cond.wait(max(wait, 0.0))
            batch.started = True
            if self._open.get(batch.key) is batch:
                del self._open[batch.key]
            self._running[batch.key] = self._running.get(batch.key, 0) + 1
        members = []
        for m in batch.members:
            if m is leader or m.context.is_active():
                members.append(m)
            else:
                m.error = CallerGone(_gone(m.context))
        try:
            self._run(members)
        finally:
            with self._cond:
                self._running[batch.key] -= 1
                if not self._running[batch.key]:
                    del self._running[batch.key]
                    self._cond.notify_all()
            for m in batch.members:
                if m is not leader:
                    m.done.set()

    def _run(self, members: Sequence[_Member]) -> None:
        """Score the members: alone if one, else in combined passes; each gets a result or an error."""
        if self._observe is not None:
            self._observe(len(members), sum(m.rows for m in members))
        if len(members) == 1:
            _alone(members[0])
            return
        groups: dict[tuple[Any, ...], list[tuple[_Member, pa.Array, dict[str, pa.Table]]]] = {}
        for m in members:
            try:
                ids, renumbered = _renumber(m)
            except Exception as exc:  # its own bad rows: its own error, before any pass
                m.error = exc
                continue
            signature = tuple((name, table.schema) for name, table in sorted(renumbered.items()))
            groups.setdefault(signature, []).append((m, ids, renumbered))
        for group in groups.values():
            if len(group) == 1:
                _alone(group[0][0])
            else:
                _together(group)


def _rows(tables: Mapping[str, pa.Table]) -> int:
    """The call's contacts, or a bound on them (its largest event table) without a contacts table."""
    contacts = tables.get("contacts")
    if contacts is not None:
        return contacts.num_rows
    return max((t.num_rows for t in tables.values()), default=0)


def _gone(context: grpc.ServicerContext) -> grpc.StatusCode:
    remaining = context.time_remaining()
    return grpc.StatusCode.DEADLINE_EXCEEDED if remaining is not None and remaining <= 0 else grpc.StatusCode.CANCELLED


def _alone(member: _Member) -> None:
    try:
        member.result = member.pipeline.score(member.tables)
    except Exception as exc:
        member.error = exc


def _renumber(member: _Member) -> tuple[pa.Array, dict[str, pa.Table]]:
    """The call's rows (its contact ids, in the order a solo call answers them) and its tables
    with every contact_id replaced by the row's code: 0..n-1, offset later per batch."""
    frame = FeatureFrame(member.tables, member.pipeline.spec.as_of_us)
    tables = {}
    for name, table in member.tables.items():
        codes = frame.codes(name)
        assert codes is not None  # every batchable table is an event table of the frame
        at = table.schema.get_field_index("contact_id")
        tables[name] = table.set_column(at, "contact_id", pa.array(codes.astype(np.int64))).replace_schema_metadata(None)
    return frame.contact_ids, tables


def _together(group: list[tuple[_Member, pa.Array, dict[str, pa.Table]]]) -> None:
    """One pass over the group's calls, renumbered apart; on failure, each call alone."""
    names = list(group[0][2])
    parts: dict[str, list[pa.Table]] = {name: [] for name in names}
    offset = 0
    spans = []
    for _, ids, tables in group:
        for name in names:
            table = tables[name]
            at = table.schema.get_field_index("contact_id")
            shifted = pc.add(table.column(at), pa.scalar(offset, pa.int64()))
            parts[name].append(table.set_column(at, "contact_id", shifted))
        spans.append((offset, len(ids)))
        offset += len(ids)
    # the latest-arrived member's pipeline: for an unset as_of its "now" is the latest
    runner = group[-1][0].pipeline
    try:
        combined = {name: pa.concat_tables(tables) for name, tables in parts.items()}
        out = runner.score(combined, contact_ids=pa.array(np.arange(offset, dtype=np.int64)))
    except Exception:  # whose input it was is not known: each call alone, each its own answer
        for member, _, _ in group:
            _alone(member)
        return
    for (member, ids, _), (start, n) in zip(group, spans, strict=True):
        member.result = out.slice(start, n).set_column(0, "contact_id", ids)
