"""The ClickHouse access contract shared by the embedded (chdb) and server backends.

Both backends run the same SQL. Values are always bound server-side with ClickHouse's
``{name:Type}`` placeholders, never formatted into the SQL text, so a hostile string
can't change a statement's meaning.
"""

from __future__ import annotations

import re
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from types import TracebackType
from typing import Any, Self

__all__ = [
    "TRANSIENT_ERROR_CODES",
    "ClickHouseClient",
    "ClickHouseError",
    "ClickHouseUnavailable",
    "Params",
    "Rows",
    "error_from_message",
    "quote_identifier",
    "quote_string",
    "quote_table",
    "rows_as_sequences",
    "utc_if_naive",
]

Params = Mapping[str, Any]
Rows = Sequence[Sequence[Any]] | Sequence[Mapping[str, Any]]

# Server error codes worth retrying: the statement was fine, the server was not ready for it.
# (ClickHouse's src/Common/ErrorCodes.cpp.)
TRANSIENT_ERROR_CODES: frozenset[int] = frozenset(
    {
        159,  # TIMEOUT_EXCEEDED
        164,  # READONLY (replica temporarily read-only)
        202,  # TOO_MANY_SIMULTANEOUS_QUERIES
        203,  # NO_FREE_CONNECTION
        209,  # SOCKET_TIMEOUT
        210,  # NETWORK_ERROR
        241,  # MEMORY_LIMIT_EXCEEDED
        242,  # TABLE_IS_READ_ONLY
        252,  # TOO_MANY_PARTS
        279,  # ALL_CONNECTION_TRIES_FAILED
        319,  # UNKNOWN_STATUS_OF_INSERT
        425,  # SYSTEM_ERROR
        999,  # KEEPER_EXCEPTION
    }
)

_CODE_RE = re.compile(r"\bCode:\s*(\d+)")
# The symbolic name is the last "(UPPER_CASE)" group: "... (UNKNOWN_TABLE) (version 26.9.2.1)".
_NAME_RE = re.compile(r"\(([A-Z][A-Z0-9]*_[A-Z0-9_]*|[A-Z]{4,})\)")


class ClickHouseError(Exception):
    """A statement failed. ``code``/``name`` are ClickHouse's error code and symbol when known."""

    def __init__(self, message: str, *, code: int | None = None, name: str | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.name = name


class ClickHouseUnavailable(ClickHouseError):
    """Transient: the store can't be reached right now (refused, timed out, closed, locked).

    Callers may retry with backoff; nothing about the statement itself was wrong.
    """


def error_from_message(message: str, *, default_transient: bool = False) -> ClickHouseError:
    """Build the typed error from a ClickHouse exception text (``Code: N. DB::Exception: ...``)."""
    text = message.strip()
    # chdb prefixes its own context ("Streaming insert finish failed: ..."); keep ClickHouse's part.
    start = text.find("Code: ")
    if start > 0:
        text = text[start:]
    code_match = _CODE_RE.search(text)
    code = int(code_match.group(1)) if code_match else None
    names = _NAME_RE.findall(text) if code is not None else []
    name = names[-1] if names else None
    transient = code in TRANSIENT_ERROR_CODES if code is not None else default_transient
    cls = ClickHouseUnavailable if transient else ClickHouseError
    return cls(text, code=code, name=name)


def quote_identifier(name: str) -> str:
    """Backtick-quote one identifier (identifiers can't be bound as values in INSERT)."""
    return "`" + name.replace("\\", "\\\\").replace("`", "\\`") + "`"


def quote_table(table: str) -> str:
    """Quote ``table`` or ``database.table``; an already-quoted name passes through as written."""
    if "`" in table or '"' in table:
        return table
    return ".".join(quote_identifier(part) for part in table.split("."))


def quote_string(value: str) -> str:
    """A single-quoted SQL string literal, for SETTINGS values that can't be bound."""
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def utc_if_naive(value: datetime) -> datetime:
    """Naive datetimes are taken as UTC, the platform's storage zone, in both backends."""
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value


_PLAIN_ROWS = frozenset({list, tuple})


def rows_as_sequences(rows: Rows, column_names: Sequence[str]) -> list[Sequence[Any]]:
    """Rows as positional sequences in ``column_names`` order; mappings must hold every column."""
    width = len(column_names)
    # The common batch (plain lists or tuples, all of the right width) is checked in bulk.
    if rows and set(map(type, rows)) <= _PLAIN_ROWS and set(map(len, rows)) == {width}:
        return list(rows)  # type: ignore[arg-type]
    out: list[Sequence[Any]] = []
    for index, row in enumerate(rows):
        if isinstance(row, Mapping):
            missing = [c for c in column_names if c not in row]
            if missing:
                raise ValueError(f"row {index} has no value for columns {missing}")
            out.append([row[c] for c in column_names])
        else:
            if isinstance(row, str | bytes) or len(row) != width:
                raise ValueError(f"row {index} has {len(row)} values for {width} columns")
            out.append(row)
    return out


class ClickHouseClient(ABC):
    """Async access to one ClickHouse database (embedded chdb or a server).

    Every method may raise :class:`ClickHouseError`; :class:`ClickHouseUnavailable` means
    retrying later can succeed. Backends open lazily on first use; ``await client.connect()``
    (or ``async with``) opens eagerly so a service fails fast at start-up.
    """

    @abstractmethod
    async def connect(self) -> None:
        """Open the connection/engine now instead of on the first call."""

    @abstractmethod
    async def command(self, sql: str, params: Params | None = None) -> None:
        """Run a statement that returns no rows (DDL, INSERT ... SELECT, OPTIMIZE, ...)."""

    @abstractmethod
    async def query(self, sql: str, params: Params | None = None) -> list[dict[str, Any]]:
        """Run a SELECT (without a FORMAT clause); rows as dicts of typed Python values.

        Types follow clickhouse-connect: ints, floats, ``Decimal``, ``str``, ``bytes``
        (FixedString), ``bool``, ``UUID``, ``date``, tz-aware ``datetime``, ``list`` (Array),
        ``dict`` (Map, JSON, named Tuple), ``tuple``, ``ipaddress`` objects, ``None`` for NULL.
        """

    @abstractmethod
    async def insert(
        self,
        table: str,
        rows: Rows,
        column_names: Sequence[str],
        *,
        dedup_token: str | None = None,
    ) -> None:
        """Insert one batch as one INSERT.

        ``dedup_token`` becomes ``insert_deduplication_token``: re-sending a batch with the same
        token adds nothing on a MergeTree table with a deduplication window (replicated tables,
        or ``SETTINGS non_replicated_deduplication_window = N`` on plain MergeTree). The token
        names the batch: a different batch under a used token is dropped too. Materialized
        views still run on a dropped resend; their target tables need a window of their own
        (the view's block carries a token derived from ours).

        Rows are sequences in ``column_names`` order or mappings holding every column. Naive
        datetimes are taken as UTC. JSON columns take dicts or JSON text, named tuples dicts
        or sequences, but one form per batch (clickhouse-connect picks it from the first row).
        """

    @abstractmethod
    async def ping(self) -> bool:
        """True when the store answers; never raises."""

    @abstractmethod
    async def close(self) -> None:
        """Release the connection/engine; idempotent. Later calls raise ClickHouseUnavailable."""

    async def __aenter__(self) -> Self:
        await self.connect()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()
