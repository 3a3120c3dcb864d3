"""PostgreSQL in and out through ADBC (Arrow-native): a base's tables from a schema, scores into a table.

A location is a URL ``postgresql://user:password@host:port/database?schema=NAME[&table=NAME]``:

- ``schema`` names the schema that holds a base's tables (``orders``, ``contacts``, ...; the
  names and columns of ``scorecast.tables``), or the schema of the scores table; default
  ``public``. A fleet's database has one schema per account.
- ``table`` names the scores table an output goes to (default ``scores``).
- Any other query parameter goes to libpq as it is (``sslmode``, ``connect_timeout``...).

Reads stream: ``read_table`` gives a ``RecordBatchReader`` over PostgreSQL's binary COPY,
batches of about ``BATCH_BYTES``, each column cast in SQL to the Arrow type the kernels take
(ids bigint or text, times timestamp, amounts double precision, strings text), after checking
that the table and its required columns exist with a usable type.

``ScoreTableWriter`` writes scores as ``AtomicParquetWriter`` writes a file: every batch is
bulk-ingested (COPY) into a staging table, and at the end the old table is dropped and the
staging table renamed in its place, all in the one transaction that created it. Readers see
the old scores or the new ones, never part of them; a failure or a killed process leaves the
old table as it was and no staging table (PostgreSQL rolls the transaction back). Score columns
keep their types (real, double precision, bigint, date, boolean); category columns
(dictionary-encoded) become text. The new table has the owner's default privileges, not the
old table's grants.

Every error is a ``PostgresError`` (or ``ValueError`` for a bad URL) whose message names the
problem, the schema, table or column, and the URL with its password replaced by ``***``.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import Any
from urllib.parse import parse_qsl, quote, unquote, urlencode, urlsplit, urlunsplit

import pyarrow as pa

from .tables import CONTACT_ID, TABLES

__all__ = [
    "BATCH_BYTES",
    "PostgresError",
    "PostgresLocation",
    "ScoreTableWriter",
    "is_postgres_url",
    "list_schemas",
    "parse_url",
    "read_table",
    "table_columns",
    "write_table",
]

SCHEMES = ("postgresql", "postgres")
DEFAULT_SCHEMA = "public"
DEFAULT_TABLE = "scores"
BATCH_BYTES = 16 * 2**20
"""Bytes per Arrow batch a read asks the driver for (ADBC's own default): the memory a table's
read holds at once, whatever its size."""
_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_$-]{0,62}$")

# PostgreSQL types accepted for each column kind of scorecast.tables, and the cast that gives the
# Arrow type the kernels read (ids: bigint stays an integer, any text an id string)
_KINDS: dict[str, tuple[frozenset[str], str]] = {
    "id": (frozenset({"bigint", "integer", "smallint", "text", "character varying", "character", "uuid"}), ""),
    "timestamp": (frozenset({"timestamp without time zone", "timestamp with time zone", "date"}), ""),
    "float": (frozenset({"double precision", "real", "numeric", "bigint", "integer", "smallint"}), "double precision"),
    "string": (frozenset({"text", "character varying", "character"}), "text"),
    "bool": (frozenset({"boolean"}), ""),
    "list<string>": (frozenset({"ARRAY"}), "text[]"),
}
_INTEGERS = frozenset({"bigint", "integer", "smallint"})
_NATIVE = frozenset(
    {"double precision", "real", "bigint", "integer", "smallint", "boolean", "text", "date", "timestamp without time zone", "timestamp with time zone"}
)


class PostgresError(RuntimeError):
    """A PostgreSQL operation failed; the message names what and where, never the password."""


def is_postgres_url(text: object) -> bool:
    """Whether ``text`` is a ``postgresql://`` (or ``postgres://``) URL rather than a path."""
    return isinstance(text, str) and text.split("://", 1)[0].lower() in SCHEMES and "://" in text


@dataclass(frozen=True)
class PostgresLocation:
    """A parsed location: the libpq URI (without our parameters), the schema, the table."""

    uri: str
    schema: str
    table: str
    password: str | None

    def redacted(self) -> str:
        """The URL as a message may show it: the password as ``***``."""
        return redact(self.uri) + f" (schema {self.schema})"

    def scrub(self, text: str) -> str:
        """``text`` with the password and the full URI replaced (driver messages may quote them)."""
        text = text.replace(self.uri, redact(self.uri))
        if self.password:
            text = text.replace(self.password, "***").replace(quote(self.password, safe=""), "***")
        return text


def redact(url: str) -> str:
    """``url`` with its password, if any, replaced by ``***``."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.rsplit("@", 1)
    user = netloc[0].split(":", 1)[0]
    return urlunsplit(parts._replace(netloc=f"{user}:***@{netloc[1]}"))


def parse_url(url: str) -> PostgresLocation:
    """Parse a location URL; ValueError naming what is wrong (the password is never shown)."""
    if not is_postgres_url(url):
        raise ValueError(f"not a PostgreSQL URL: {redact(url)!r}; expected postgresql://user:password@host:port/database?schema=NAME")
    try:
        parts = urlsplit(url)
        _ = parts.port  # raises on a port that is not a number
    except ValueError as exc:
        raise ValueError(f"bad PostgreSQL URL {_safe(url)}: {exc}") from None
    if not parts.hostname:
        raise ValueError(f"bad PostgreSQL URL {_safe(url)}: no host (postgresql://user:password@host:port/database)")
    database = unquote(parts.path.lstrip("/"))
    if not database or "/" in database:
        raise ValueError(f"bad PostgreSQL URL {_safe(url)}: give one database name after the host, e.g. postgresql://host:5432/crm")
    query = parse_qsl(parts.query, keep_blank_values=True)
    ours = {k: v for k, v in query if k in ("schema", "table")}
    rest = [(k, v) for k, v in query if k not in ("schema", "table")]
    # percent-encoded as libpq decodes it ("+" is no space there: options=-c%20name%3Dvalue)
    uri = urlunsplit(parts._replace(scheme="postgresql", query=urlencode(rest, quote_via=quote)))
    schema = _identifier("schema", ours.get("schema", DEFAULT_SCHEMA), url)
    table = _identifier("table", ours.get("table", DEFAULT_TABLE), url)
    return PostgresLocation(uri, schema, table, unquote(parts.password) if parts.password else None)


def _safe(url: str) -> str:
    """A bad URL as a message shows it: redacted when it parses that far, else scheme and host only."""
    try:
        return repr(redact(url))
    except ValueError:
        return repr(url.split("://", 1)[0] + "://***")


def _identifier(what: str, value: str, url: str) -> str:
    if not _IDENTIFIER.match(value):
        raise ValueError(f"bad PostgreSQL URL {_safe(url)}: {what} {value!r} is not a plain name (letters, digits, _ $ -, at most 63)")
    return value


def quote_identifier(name: str) -> str:
    """``name`` as a quoted SQL identifier."""
    return '"' + name.replace('"', '""') + '"'


def _qualified(schema: str, table: str) -> str:
    return f"{quote_identifier(schema)}.{quote_identifier(table)}"


def _explain(location: PostgresLocation, exc: BaseException, doing: str) -> PostgresError:
    """A driver error as a ``PostgresError`` saying what failed, in plain words where we know the case."""
    message = location.scrub(str(exc)).strip()
    sqlstate = getattr(exc, "sqlstate", None) or ""
    found = re.search(r"SQLSTATE: (\w{5})", message)
    sqlstate = sqlstate or (found.group(1) if found else "")
    lowered = message.lower()
    if "connection refused" in lowered or "could not translate host name" in lowered or "timeout expired" in lowered:
        reason = "cannot connect: the server refused or did not answer"
    elif sqlstate == "28P01" or "password authentication failed" in lowered:
        reason = "authentication failed: wrong user name or password"
    elif sqlstate == "3D000" or ("database" in lowered and "does not exist" in lowered):
        reason = "the database does not exist"
    elif sqlstate == "42501" or "permission denied" in lowered:
        reason = "permission denied"
    elif sqlstate == "42P01":
        reason = "a table does not exist"
    elif sqlstate == "42703":
        reason = "a column does not exist"
    elif sqlstate == "53100" or "no space left on device" in lowered:
        # the server's disk: its free space is not visible from here, the server's own words
        # (the file it could not extend) are kept
        reason = "the database server's disk is full (no space left where it writes this table; nothing was committed)"
    else:
        reason = "failed"
    detail = message.split("\n")[0] if reason == "failed" else message.replace("\n", " ").replace("\t", " ")
    return PostgresError(f"PostgreSQL {location.redacted()}: {doing}: {reason} ({detail})")


def connect(location: PostgresLocation) -> Any:
    """An ADBC DB-API connection (not autocommitting); ``PostgresError`` naming why not."""
    try:
        import adbc_driver_postgresql.dbapi as pg
    except ImportError:
        raise PostgresError("PostgreSQL needs the ADBC driver: pip install adbc-driver-postgresql adbc-driver-manager") from None
    try:
        return pg.connect(location.uri)
    except Exception as exc:  # the driver's errors carry no common base we can name before import
        raise _explain(location, exc, "connect") from None


def _fetch(cursor: Any, sql: str, params: Sequence[Any] | None = None) -> list[tuple]:
    cursor.execute(sql, params)
    return cursor.fetchall()


def list_schemas(location: PostgresLocation) -> list[str]:
    """Schemas of the database holding at least one known base table, sorted (a fleet's accounts)."""
    with connect(location) as conn, conn.cursor() as cur:
        try:
            rows = _fetch(
                cur,
                "SELECT DISTINCT table_schema FROM information_schema.tables WHERE table_name = ANY($1) "
                "AND table_schema NOT IN ('pg_catalog', 'information_schema') ORDER BY 1",
                [list(TABLES)],
            )
        except Exception as exc:
            raise _explain(location, exc, "list the schemas") from None
    return [r[0] for r in rows if _IDENTIFIER.match(r[0])]


def table_columns(location: PostgresLocation) -> dict[str, dict[str, str]]:
    """The known tables of the location's schema: table -> column -> PostgreSQL type.

    ``PostgresError`` when the schema does not exist, the role may not use it, or it holds
    none of the known tables. Read from pg_catalog, which shows what information_schema hides
    from a role without rights (so that the error says "permission denied", not "missing")."""
    with connect(location) as conn, conn.cursor() as cur:
        try:
            access = _fetch(cur, "SELECT has_schema_privilege(oid, 'USAGE'), current_user FROM pg_namespace WHERE nspname = $1", [location.schema])
            if not access:
                schemas = [r[0] for r in _fetch(cur, "SELECT nspname FROM pg_namespace WHERE nspname !~ '^pg_' AND nspname <> 'information_schema' ORDER BY 1")]
                raise PostgresError(f"PostgreSQL {location.redacted()}: schema {location.schema!r} does not exist (schemas: {schemas})")
            if not access[0][0]:
                raise PostgresError(f"PostgreSQL {location.redacted()}: permission denied: role {access[0][1]!r} may not use schema {location.schema!r} (GRANT USAGE)")
            rows = _fetch(
                cur,
                "SELECT c.relname, a.attname, format_type(a.atttypid, NULL) FROM pg_class c "
                "JOIN pg_namespace n ON n.oid = c.relnamespace JOIN pg_attribute a ON a.attrelid = c.oid "
                "WHERE n.nspname = $1 AND c.relkind IN ('r', 'v', 'm', 'p', 'f') AND a.attnum > 0 AND NOT a.attisdropped "
                "ORDER BY c.relname, a.attnum",
                [location.schema],
            )
        except PostgresError:
            raise
        except Exception as exc:
            raise _explain(location, exc, f"read the columns of schema {location.schema}") from None
    found: dict[str, dict[str, str]] = {}
    for table, column, kind in rows:
        if table in TABLES:
            found.setdefault(table, {})[column] = "ARRAY" if kind.endswith("[]") else kind
    if not found:
        there = sorted({r[0] for r in rows})
        raise PostgresError(
            f"PostgreSQL {location.redacted()}: schema {location.schema!r} has none of the base tables {sorted(TABLES)} (tables there: {there})"
        )
    return found


def _select_list(location: PostgresLocation, table: str, types: dict[str, str], columns: Sequence[str] | None) -> list[str]:
    """``SELECT`` expressions for ``columns`` of ``table`` (every column when None), checked and cast."""
    spec = TABLES[table]
    missing = [c for c in spec.required if c not in types]
    if missing:
        raise PostgresError(
            f"PostgreSQL {location.redacted()}: table {location.schema}.{table} has no column {', '.join(missing)} "
            f"(required; it has {list(types)})"
        )
    key = [CONTACT_ID] if CONTACT_ID in spec.required else []  # with its rows' contact, as base.read_table
    wanted = list(types) if columns is None else [c for c in dict.fromkeys([*key, *columns]) if c in types]
    expressions = []
    for column in wanted:
        kind = spec.columns.get(column)
        pg_type = types[column]
        name = quote_identifier(column)
        if kind is None:  # an attribute of contacts: Arrow's own type where the driver has one
            cast = "double precision" if pg_type == "numeric" else "" if pg_type in _NATIVE else "text"
        else:
            accepted, cast = _KINDS[kind]
            if pg_type not in accepted:
                raise PostgresError(
                    f"PostgreSQL {location.redacted()}: column {location.schema}.{table}.{column} is {pg_type}; "
                    f"a {kind} column must be one of {sorted(accepted)}"
                )
            if kind == "id":
                cast = "bigint" if pg_type in _INTEGERS else "text"
            elif kind == "timestamp" and pg_type == "date":
                cast = "timestamp"
        expressions.append(f"{name}::{cast} AS {name}" if cast else name)
    return expressions


def read_table(
    location: PostgresLocation, table: str, columns: Sequence[str] | None = None, types: dict[str, str] | None = None
) -> Iterator[pa.RecordBatch]:
    """Stream ``table`` of the location's schema as Arrow batches of about ``BATCH_BYTES``.

    ``columns``: those to read (the ones present, plus contact_id; None: all); ``types``: the table's column
    types when already known (``table_columns``). ``PostgresError`` on a missing table or
    column, a column of the wrong type, or a failed read."""
    if types is None:
        types = table_columns(location).get(table)
        if types is None:
            raise PostgresError(f"PostgreSQL {location.redacted()}: table {location.schema}.{table} does not exist")
    select = ", ".join(_select_list(location, table, types, columns))
    sql = f"SELECT {select} FROM {_qualified(location.schema, table)}"
    with connect(location) as conn, conn.cursor() as cur:
        try:
            cur.adbc_statement.set_options(**{"adbc.postgresql.batch_size_hint_bytes": str(BATCH_BYTES)})
            cur.execute(sql)
            reader = cur.fetch_record_batch()
            schema = pa.schema([pa.field(f.name, f.type, f.nullable) for f in reader.schema])  # without the driver's field metadata
            for batch in reader:
                yield pa.RecordBatch.from_arrays(batch.columns, schema=schema)
        except PostgresError:
            raise
        except Exception as exc:
            raise _explain(location, exc, f"read {location.schema}.{table}") from None


class ScoreTableWriter:
    """``with ScoreTableWriter(location) as w: w.write(batch)`` — the table ``schema.table``
    holds the new scores at the end, swapped in whole (see the module docstring)."""

    def __init__(self, location: PostgresLocation) -> None:
        self.location = location
        self.rows = 0
        self._staging = f"{location.table[:40]}__staging_{uuid.uuid4().hex[:12]}"
        self._conn = connect(location)  # before any scoring: a bad URL or password fails at once
        self._cursor = self._conn.cursor()
        self._created = False
        try:
            self._cursor.execute(f"CREATE SCHEMA IF NOT EXISTS {quote_identifier(location.schema)}")
        except Exception as exc:
            self._close()
            raise _explain(location, exc, f"create schema {location.schema}") from None

    @property
    def target(self) -> str:
        """``schema.table`` as messages name it."""
        return f"{self.location.schema}.{self.location.table}"

    def __enter__(self) -> ScoreTableWriter:
        return self

    def write(self, batch: pa.RecordBatch) -> None:
        """Append one batch to the staging table (its schema must match the first batch's)."""
        batch = _plain(batch)
        try:
            self._cursor.adbc_ingest(
                self._staging, batch, mode="append" if self._created else "create", db_schema_name=self.location.schema
            )
        except Exception as exc:
            raise _explain(self.location, exc, f"write scores to {self.target} (staging table {self._staging})") from None
        self._created = True
        self.rows += batch.num_rows

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        try:
            if exc_type is not None:
                self._conn.rollback()  # the staging table goes with the transaction
                return
            if not self._created:
                raise ValueError(f"nothing to write to {self.target}: no batch was scored")
            target = _qualified(self.location.schema, self.location.table)
            try:
                self._cursor.execute(f"DROP TABLE IF EXISTS {target}")
                self._cursor.execute(
                    f"ALTER TABLE {_qualified(self.location.schema, self._staging)} RENAME TO {quote_identifier(self.location.table)}"
                )
                self._conn.commit()
            except Exception as exc:
                self._conn.rollback()
                raise _explain(self.location, exc, f"swap the new scores into {self.target}") from None
        finally:
            self._close()

    def _close(self) -> None:
        try:
            self._cursor.close()
        finally:
            self._conn.close()


def _plain(batch: pa.RecordBatch) -> pa.RecordBatch:
    """The batch with dictionary (category) columns as plain strings: text in PostgreSQL."""
    if not any(pa.types.is_dictionary(f.type) for f in batch.schema):
        return batch
    columns = [c.dictionary_decode() if pa.types.is_dictionary(c.type) else c for c in batch.columns]
    fields = [pa.field(f.name, c.type, f.nullable) for f, c in zip(batch.schema, columns, strict=True)]
    return pa.RecordBatch.from_arrays(columns, schema=pa.schema(fields))



def write_table(location: PostgresLocation, name: str, batches: Iterator[pa.RecordBatch] | pa.Table) -> int:
    """Create (or replace) ``schema.name`` from Arrow data, committed; returns the rows.

    Loads a base's table into a schema (tests, benchmarks, a platform's first import):
    categories as text, types kept."""
    rows = 0
    with connect(location) as conn, conn.cursor() as cur:
        try:
            cur.execute(f"CREATE SCHEMA IF NOT EXISTS {quote_identifier(location.schema)}")
            cur.execute(f"DROP TABLE IF EXISTS {_qualified(location.schema, name)}")
            source = batches.to_batches() if isinstance(batches, pa.Table) else batches
            mode = "create"
            for batch in source:
                rows += cur.adbc_ingest(name, _plain(batch), mode=mode, db_schema_name=location.schema) or batch.num_rows
                mode = "append"
            conn.commit()
        except Exception as exc:
            conn.rollback()
            raise _explain(location, exc, f"write {location.schema}.{name}") from None
    return rows
