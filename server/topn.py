"""Top-N selection: the N contacts with the highest value of one column among those matching a filter.

``RunningTopN`` is the selection alone, over any batches (no pipeline, no gRPC): per batch it
drops rows below the N-th value of its last cut, appends the rest to the rows it keeps and,
past 2N rows, cuts back to N with ``np.partition`` (linear), so it holds O(N + batch) rows
whatever the base size.
Order of the result: the column descending, then ``contact_id`` ascending (ties are broken
by the smallest contact id, deterministically, whatever the chunking); rows whose value is
null or NaN are never selected.

``TopNScan`` feeds it from chunks of contacts: it scores each chunk with the one
``ScoringPipeline``, adds the ``contacts.<attribute>`` and ``features.<name>`` columns the
filter reads, applies the compiled filter (``scorecast.filters``) and keeps the running top N.
It reads a base folder itself (``scan_base``, after ``resolve_base`` checked the path) or takes
chunks from its caller. The servicer's ``TopN`` and in-process callers (benchmarks) both use it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from scorecast.base import BaseChunks
from scorecast.filters import CONTACTS, FEATURES, Clause, FilterError, compile_filter, parse_column, parse_filter
from scorecast.kernels import FeatureFrame, InputError, required_columns
from scorecast.options import ScoreSpec
from scorecast.tables import CONTACT_ID, TABLES

from .errors import BaseNotFound, InvalidArgument, PathNotAllowed, ScorecastError
from .limits import DecodeBudget, check_base_bytes
from .pipeline import ScoringPipeline
from .repository import ModelRepository
from .rescore import input_columns

__all__ = ["BASE_CHUNK_CONTACTS", "RunningTopN", "TopNQuery", "TopNScan", "resolve_base", "top_n"]

BASE_CHUNK_CONTACTS = 50_000
"""Contacts per chunk when a base is read by path and the caller does not say."""


class RunningTopN:
    """The best ``n`` rows seen so far by ``by`` (desc), ties by ``contact_id`` (asc).

    Rows that may still enter are appended (as chunks, no copy) and cut back to ``n`` only when
    more than ``2n`` are held: one linear cut per ``n`` new rows, not per batch, so large N
    costs about what small N does. Memory: at most ``2n`` rows plus one batch.
    """

    def __init__(self, n: int, by: str) -> None:
        if n <= 0:
            raise ValueError(f"n must be > 0, got {n}")
        self.n, self.by = n, by
        self.kept: pa.Table | None = None
        self.schema: pa.Schema | None = None
        self.threshold: float | int | None = None
        """The n-th best value at the last cut: a row below it can never enter."""

    def add(self, batch: pa.Table | pa.RecordBatch) -> None:
        """Merge one batch (columns ``contact_id``, ``by`` and any others, same schema each time)."""
        table = batch if isinstance(batch, pa.Table) else pa.Table.from_batches([batch])
        if self.schema is None:
            self.schema = table.schema
        values = _rank_values(table[self.by])
        keep = ~np.isnan(values) if values.dtype.kind == "f" else np.ones(len(values), dtype=bool)
        if table[self.by].null_count:
            keep &= table[self.by].is_valid().to_numpy(zero_copy_only=False)
        if self.threshold is not None:
            keep &= values >= self.threshold  # ties at the threshold may still win on contact_id
        if not keep.all():
            table = table.filter(pa.array(keep))
        if table.num_rows == 0:
            return
        merged = table if self.kept is None else pa.concat_tables([self.kept, table.cast(self.kept.schema)])
        if merged.num_rows > 2 * self.n:
            merged = self._cut(merged)
        self.kept = merged

    def _cut(self, table: pa.Table) -> pa.Table:
        best = _best(table, self.by, self.n)
        self.threshold = _rank_values(best[self.by]).min()
        return best

    def result(self) -> pa.Table:
        """The selected rows, best first; empty (with the batches' schema) if none."""
        if self.kept is None:
            schema = self.schema or pa.schema([(CONTACT_ID, pa.int64()), (self.by, pa.float32())])
            return schema.empty_table()
        kept = self._cut(self.kept) if self.kept.num_rows > self.n else self.kept
        return kept.sort_by([(self.by, "descending"), (CONTACT_ID, "ascending")]).combine_chunks()


def _rank_values(column: pa.ChunkedArray | pa.Array) -> np.ndarray:
    """The column as NumPy numbers (nulls as NaN or 0: callers mask them); timestamps as int64."""
    if pa.types.is_timestamp(column.type):
        column = column.cast(pa.int64())
    if column.null_count and pa.types.is_integer(column.type):
        column = column.fill_null(0)
    return column.to_numpy() if isinstance(column, pa.Array) else column.to_numpy()


def _best(table: pa.Table, by: str, n: int) -> pa.Table:
    """The ``n`` best rows of ``table`` (more than n rows, no nulls in ``by``), in table order."""
    values = _rank_values(table[by])
    kth = np.partition(values, len(values) - n)[len(values) - n]  # the n-th largest value
    above = np.flatnonzero(values > kth)
    tied = np.flatnonzero(values == kth)
    need = n - len(above)
    if len(tied) > need:  # ties at the cut: the smallest contact ids win
        order = pc.sort_indices(table[CONTACT_ID].take(pa.array(tied))).to_numpy()
        tied = tied[order[:need]]
    return table.take(pa.array(np.sort(np.concatenate([above, tied]))))


def top_n(batches: Iterable[pa.Table | pa.RecordBatch], by: str, n: int) -> pa.Table:
    """The ``n`` rows of all batches with the highest ``by``, best first (ties: contact_id asc)."""
    running = RunningTopN(n, by)
    for batch in batches:
        running.add(batch)
    return running.result()


@dataclass(frozen=True)
class TopNQuery:
    """What to select: rank by ``by`` (``<score>.<output>``), keep ``n``, rows matching ``where``."""

    by: str
    n: int
    where: tuple[Clause, ...]

    @classmethod
    def parse(cls, by: str, n: int, where: Sequence[str], max_n: int | None = None) -> TopNQuery:
        """Check and parse; InvalidArgument naming the field (``by``, ``n``, ``where[i]``)."""
        try:
            parse_column(by, "by")
            clauses = parse_filter(where)
        except FilterError as exc:
            raise InvalidArgument(exc.field, exc.clause, exc.reason) from None
        if by.split(".", 1)[0] in (CONTACTS, FEATURES):
            raise InvalidArgument("by", by, "rank by a score column <score>.<output> (filters may use contacts. and features.)")
        if n <= 0:
            raise InvalidArgument("n", n, "must be > 0")
        if max_n is not None and n > max_n:
            raise InvalidArgument("n", n, f"at most {max_n} (setting max_topn_n)")
        for clause in clauses:
            if clause.namespace == FEATURES:
                name = clause.column.split(".", 1)[1]
                try:
                    required_columns([name])
                except ValueError as exc:
                    raise InvalidArgument(clause.field, clause.text, str(exc)) from None
        return cls(by, n, clauses)

    @property
    def scores(self) -> tuple[str, ...]:
        """The scores to compute: ``by``'s, then those the filter reads."""
        names = [self.by.split(".", 1)[0], *(c.namespace for c in self.where)]
        return tuple(dict.fromkeys(n for n in names if n not in (CONTACTS, FEATURES)))

    @property
    def attributes(self) -> list[str]:
        """``contacts`` columns the filter reads."""
        return list(dict.fromkeys(c.column.split(".", 1)[1] for c in self.where if c.namespace == CONTACTS))

    @property
    def features(self) -> list[str]:
        """Pipeline features the filter reads."""
        return list(dict.fromkeys(c.column.split(".", 1)[1] for c in self.where if c.namespace == FEATURES))

    @property
    def columns(self) -> list[str]:
        """Columns of the result: contact_id, ``by``, then each column the filter reads."""
        return list(dict.fromkeys([CONTACT_ID, self.by, *(c.column for c in self.where)]))

    def where_of(self, column: str) -> str:
        """The field to blame for a column: ``by`` or the first clause reading it."""
        if column == self.by:
            return "by"
        return next(c.field for c in self.where if c.column == column)


class TopNScan:
    """Score chunks, filter them and keep the running top N (one per request)."""

    def __init__(self, repository: ModelRepository, query: TopNQuery, spec: ScoreSpec, max_rows: int | None = None) -> None:
        self.query = query
        self.pipeline = ScoringPipeline(repository, spec, max_rows)
        self.running = RunningTopN(query.n, query.by)
        self.scanned = 0
        self.matched = 0
        self._compiled: tuple[pa.Schema, pc.Expression | None] | None = None

    def input_columns(self) -> dict[str, list[str]]:
        """Table -> columns to read from a base (``BaseChunks``): the models', the features', the attributes."""
        features = [f for m in self.pipeline.models for f in m.meta.features] + self.query.features
        columns = input_columns(features)
        columns.setdefault(CONTACTS, [CONTACT_ID]).extend(self.query.attributes)
        return columns

    def add(self, tables: Mapping[str, pa.Table]) -> int:
        """Score one chunk of contacts and merge its matching rows into the running top N; the
        number of contacts scored."""
        scored = self.pipeline.score(tables)
        self.scanned += scored.num_rows
        table = self._columns(scored, tables)
        expression = self._expression(table.schema)
        if expression is not None:
            table = table.filter(expression)
        valid = pc.is_valid(table[self.query.by])
        if pa.types.is_floating(table.schema.field(self.query.by).type):
            valid = pc.and_(valid, pc.invert(pc.is_nan(table[self.query.by])))
        self.matched += pc.sum(valid.cast(pa.int64())).as_py() or 0
        self.running.add(table)
        return scored.num_rows

    def result(self) -> pa.Table:
        """The selected rows, best first."""
        return self.running.result()

    def _columns(self, scored: pa.RecordBatch, tables: Mapping[str, pa.Table]) -> pa.Table:
        """contact_id, ``by`` and every filter column, categories decoded to strings."""
        query = self.query
        arrays: dict[str, pa.Array | pa.ChunkedArray] = {}
        for column in query.columns:
            namespace, name = column.split(".", 1) if "." in column else ("", column)
            if column == CONTACT_ID or namespace in (CONTACTS, FEATURES):
                continue
            if column not in scored.schema.names:
                outputs = [n for n in scored.schema.names if n.startswith(f"{namespace}.")]
                raise InvalidArgument(query.where_of(column), column, f"{namespace} has the columns {outputs}")
            arrays[column] = scored[column]
        if query.attributes:
            contacts = tables.get(CONTACTS)
            if contacts is None:
                raise InvalidArgument(
                    query.where_of(f"{CONTACTS}.{query.attributes[0]}"), query.attributes[0], "the chunk has no contacts table"
                )
            # The pipeline's rows are the contacts table's rows, in its order.
            for name in query.attributes:
                if name not in contacts.column_names:
                    where = query.where_of(f"{CONTACTS}.{name}")
                    raise InvalidArgument(
                        where, f"{CONTACTS}.{name}", f"the contacts table has the columns {contacts.column_names}"
                    )
                arrays[f"{CONTACTS}.{name}"] = contacts[name]
        if query.features:
            matrix = FeatureFrame(tables, self.pipeline.spec.as_of_us, contact_ids=scored[CONTACT_ID]).matrix(query.features)
            for k, name in enumerate(query.features):
                arrays[f"{FEATURES}.{name}"] = pa.array(matrix[:, k])
        out = {CONTACT_ID: scored[CONTACT_ID]}
        for column in query.columns[1:]:
            array = arrays[column]
            out[column] = array.dictionary_decode() if pa.types.is_dictionary(array.type) else array
        return pa.table(out)

    def _expression(self, schema: pa.Schema) -> pc.Expression | None:
        if self._compiled is None or self._compiled[0] != schema:
            try:
                self._compiled = (schema, compile_filter(self.query.where, schema))
            except FilterError as exc:
                raise InvalidArgument(exc.field, exc.clause, exc.reason) from None
        return self._compiled[1]

    def scan_base(
        self,
        base: Path,
        chunk_contacts: int = BASE_CHUNK_CONTACTS,
        *,
        named: str | None = None,
        where: str = "",
        active: Callable[[], bool] = lambda: True,
        budget: DecodeBudget | None = None,
        max_base_bytes: int | None = None,
    ) -> bool:
        """Add every chunk of a base folder (``BaseChunks``) while ``active()``; False if it stopped early.

        A base that cannot be read is InvalidArgument on ``{where}base_path`` (shown as ``named``);
        one over ``max_base_bytes`` on disk, or a chunk over ``budget``, is RESOURCE_EXHAUSTED.
        """
        limit = self.pipeline.max_rows
        if not 0 < chunk_contacts <= (chunk_contacts if limit is None else limit):
            raise InvalidArgument(f"{where}chunk_contacts", chunk_contacts, f"must be in 1..{limit} (max_rows_per_chunk)")
        field = f"{where}base_path"
        try:
            if max_base_bytes is not None:
                check_base_bytes(base, self.input_columns(), max_base_bytes, field)
            for tables in BaseChunks(base, self.input_columns(), chunk_contacts=chunk_contacts):
                if not active():
                    return False
                if budget is not None:
                    budget.check_read(tables, field)
                self.add(tables)
        except (InputError, ScorecastError):
            raise
        except (ValueError, OSError, pa.ArrowException) as exc:  # a base that is no valid base
            raise InvalidArgument(field, named or str(base), f"cannot be read as a base: {exc}") from None
        return True


def resolve_base(path: str, roots: Sequence[Path], field: str = "base_path") -> Path:
    """The real base folder ``path`` names, if it and every table file lie under one of ``roots``.

    PathNotAllowed (PERMISSION_DENIED) if not, or if no root is configured; BaseNotFound
    (NOT_FOUND) if it is allowed but missing or holds no known table. Symlinks are followed
    before the check, so a link cannot lead outside the roots.
    """
    if not roots:
        raise PathNotAllowed(
            field,
            path,
            "cannot be read: this server reads no base by path (setting base_roots is empty); stream the base instead",
        )
    if any(not ch.isprintable() for ch in path) or len(path.encode("utf-8", "surrogatepass")) > 4096:
        raise InvalidArgument(field, path[:200], "must be a printable path of at most 4096 bytes (no NUL or control characters)")
    given = Path(path)
    if not given.is_absolute():
        raise InvalidArgument(field, path, "must be an absolute path on the server")
    real = given.resolve()
    real_roots = [Path(r).resolve() for r in roots]

    def allowed(p: Path) -> bool:
        return any(p == r or p.is_relative_to(r) for r in real_roots)

    if not allowed(real):
        raise PathNotAllowed(field, path, "is outside the folders this server may read (setting base_roots)")
    if not real.is_dir():
        raise BaseNotFound(field, path, "is not a folder on the server")
    tables = [real / f"{name}.parquet" for name in TABLES if (real / f"{name}.parquet").exists()]
    if not tables:
        raise BaseNotFound(field, path, f"holds none of {[f'{n}.parquet' for n in TABLES]}")
    for table in tables:
        files = [table] if not table.is_dir() else [table, *table.rglob("*")]
        for file in files:
            if not allowed(file.resolve()):
                raise PathNotAllowed(
                    field, path, f"has {file.relative_to(real)} leading outside the folders this server may read"
                )
    return real
