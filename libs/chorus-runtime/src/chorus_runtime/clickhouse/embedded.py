"""Embedded backend: the ClickHouse engine in this process (chdb), data on disk.

Rules chdb imposes (all enforced by the engine, documented here so nobody is surprised):

* **One process per path.** A data directory can be open in one OS process at a time; a
  second process fails to start its engine (raised here as :class:`ClickHouseUnavailable`,
  since it clears once the owner exits). In Chorus only the analytics process opens it.
* **One path per process.** The engine is process-wide; clients on the same path share it,
  but opening a different path while any client is open is an error. The engine stops when
  the last client closes, and another path may then be opened.
* **Blocking calls.** chdb releases the GIL while it works, but its calls block; each client
  runs every call (open, queries, inserts, close) on its own single worker thread, so calls
  on one client run in submission order and never overlap.
* **Cost.** ``import chdb`` maps a 0.55 GB shared library and boots an in-memory engine:
  about 0.2-0.6 s and ~230 MB RSS, plus ~50 MB and ~0.4 s for the on-disk session. The
  import is deferred to the first call. It also ``chdir``s briefly while loading, so import
  it early (in ``main``) if other threads use relative paths.

Differences from a server that this backend smooths over: chdb defaults ``async_insert=1``
(inserts here pin ``async_insert=0``, the server default, so a batch is one part, visible
when the call returns, and dedup follows the synchronous rules on every version), it would
run ``a; b`` (rejected here, as the server's HTTP interface does), and its zone is the
host's (the session zone is pinned, UTC by default).
"""

from __future__ import annotations

import asyncio
import os
import re
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

from chorus_runtime.clickhouse._codec import (
    RESULT_SETTINGS,
    decode_json_compact,
    encode_json_columns,
    format_params,
    zone_for,
)
from chorus_runtime.clickhouse._sql import (
    checked_params,
    declared_param_types,
    ensure_single_statement,
)
from chorus_runtime.clickhouse.base import (
    ClickHouseClient,
    ClickHouseError,
    ClickHouseUnavailable,
    Params,
    Rows,
    error_from_message,
    quote_identifier,
    quote_string,
    quote_table,
    rows_as_sequences,
)

__all__ = ["EmbeddedClickHouseClient"]

T = TypeVar("T")

_SETTING_NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_MEMORY = ":memory:"


def _open_error(message: str, path: str) -> ClickHouseError:
    if "already initialized with path" in message:
        # A programming/config error, not transient: the process already serves another path.
        return ClickHouseError(
            f"chdb can serve one data path per process; {path!r} requested while another is "
            f"open ({message.strip()})"
        )
    return ClickHouseUnavailable(
        f"cannot open chdb data at {path!r}; is another process using it? Only one process "
        f"may open a chdb path ({message.strip()})"
    )


class EmbeddedClickHouseClient(ClickHouseClient):
    """:class:`ClickHouseClient` over chdb, with data under ``path`` (or ``":memory:"``).

    ``database`` is created if missing and made current. ``timezone`` pins the session zone
    (``session_timezone``) so results don't depend on the host's zone. ``settings`` are extra
    session settings applied with ``SET`` when the engine opens.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        database: str | None = None,
        timezone: str = "UTC",
        settings: Mapping[str, Any] | None = None,
    ) -> None:
        raw = os.fspath(path)
        if raw != _MEMORY:
            if "?" in raw:
                raise ValueError("a chdb path can't contain '?' (chdb reads it as options)")
            # chdb compares engine paths literally, so one directory must have one spelling.
            raw = os.path.realpath(raw)
        extra = {k: str(v) for k, v in (settings or {}).items()}
        bad = [k for k in extra if not _SETTING_NAME_RE.match(k)]
        if bad:
            raise ValueError(f"invalid setting names {bad}")
        self._path = raw
        self._database = database
        self._zone = zone_for(timezone)
        self._session_settings = {**RESULT_SETTINGS, "session_timezone": timezone, **extra}
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="chdb")
        self._session: Any = None  # chdb.session.Session; touched only on the worker thread
        self._closed = False

    @property
    def path(self) -> str:
        return self._path

    @property
    def database(self) -> str | None:
        return self._database

    def __repr__(self) -> str:
        return f"EmbeddedClickHouseClient(path={self._path!r}, database={self._database!r})"

    # ------------------------------------------------------------------ worker-thread side

    def _open_session(self) -> Any:
        try:
            from chdb import session as chdb_session
        except ImportError as exc:  # pragma: no cover - chdb is a dependency
            raise ClickHouseError("the embedded ClickHouse backend needs the chdb package") from exc
        if self._path != _MEMORY:
            os.makedirs(self._path, exist_ok=True)
        try:
            session = chdb_session.Session(self._path)
        except Exception as exc:
            raise _open_error(str(exc), self._path) from exc
        try:
            assignments = ", ".join(
                f"{k} = {quote_string(v)}" for k, v in self._session_settings.items()
            )
            self._execute(session, f"SET {assignments}")
            if self._database:
                db = quote_identifier(self._database)
                self._execute(session, f"CREATE DATABASE IF NOT EXISTS {db}")
                self._execute(session, f"USE {db}")
        except BaseException:
            session.close()
            raise
        return session

    @staticmethod
    def _execute(
        session: Any, sql: str, params: Mapping[str, str] | None = None, fmt: str = "JSONCompact"
    ) -> bytes:
        try:
            result = session.query(sql, fmt, params=dict(params) if params else None)
        except Exception as exc:  # chdb raises ChdbError/RuntimeError carrying the server text
            raise error_from_message(str(exc)) from exc
        if hasattr(result, "has_error") and result.has_error():
            raise error_from_message(result.error_message())
        return bytes(result.bytes())

    def _column_types(self, session: Any, table: str) -> dict[str, str]:
        # Re-read per batch (about a millisecond) so an ALTER is never served stale.
        rows = decode_json_compact(self._execute(session, f"DESCRIBE TABLE {quote_table(table)}"))
        return {row["name"]: row["type"] for row in rows}

    @staticmethod
    def _insert_text(
        session: Any, head: str, payload: str, fmt: str = "JSONCompactColumns"
    ) -> None:
        send_insert = getattr(session, "send_insert", None)
        if send_insert is None:  # older chdb: data follows the FORMAT clause in one query
            EmbeddedClickHouseClient._execute(session, f"{head} FORMAT {fmt}\n{payload}")
            return
        try:
            inserter = send_insert(head, fmt)
        except Exception as exc:
            raise error_from_message(str(exc)) from exc
        try:
            inserter.append(payload)
            inserter.finish()
        except Exception as exc:
            inserter.cancel()  # no-op once finish() ran; otherwise nothing is committed
            raise error_from_message(str(exc)) from exc

    def _in_worker(self, fn: Callable[[Any], T]) -> T:
        if self._session is None:
            if self._closed:
                raise ClickHouseUnavailable(f"chdb client for {self._path!r} is closed")
            self._session = self._open_session()
        return fn(self._session)

    def _close_session(self) -> None:
        session, self._session = self._session, None
        if session is not None:
            session.close()

    # ------------------------------------------------------------------ event-loop side

    async def _run(self, fn: Callable[[Any], T]) -> T:
        if self._closed:
            raise ClickHouseUnavailable(f"chdb client for {self._path!r} is closed")
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, self._in_worker, fn)

    async def connect(self) -> None:
        await self._run(lambda _session: None)

    async def command(self, sql: str, params: Params | None = None) -> None:
        ensure_single_statement(sql)
        bound = format_params(checked_params(sql, params), declared_param_types(sql), self._zone)
        await self._run(lambda session: self._execute(session, sql, bound))

    async def query(self, sql: str, params: Params | None = None) -> list[dict[str, Any]]:
        ensure_single_statement(sql)
        bound = format_params(checked_params(sql, params), declared_param_types(sql), self._zone)
        return await self._run(
            lambda session: decode_json_compact(self._execute(session, sql, bound))
        )

    async def insert(
        self,
        table: str,
        rows: Rows,
        column_names: Sequence[str],
        *,
        dedup_token: str | None = None,
    ) -> None:
        columns = list(column_names)
        data = rows_as_sequences(rows, columns)
        if not data:
            return
        # chdb defaults to async_insert=1; pin the server default (see the module docstring).
        settings = "async_insert = 0"
        if dedup_token is not None:
            settings += f", insert_deduplication_token = {quote_string(dedup_token)}"
        column_list = ", ".join(quote_identifier(c) for c in columns)
        head = f"INSERT INTO {quote_table(table)} ({column_list}) SETTINGS {settings}"

        def work(session: Any) -> None:
            # Column-oriented text: one JSON encode per batch, not per row (see _codec).
            payload = encode_json_columns(
                data, columns, self._column_types(session, table), self._zone
            )
            self._insert_text(session, head, payload)

        await self._run(work)

    async def ping(self) -> bool:
        try:
            await self._run(lambda session: self._execute(session, "SELECT 1"))
        except ClickHouseError:
            return False
        return True

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        loop = asyncio.get_running_loop()
        try:
            # Queued behind any calls already submitted, so they finish first.
            await loop.run_in_executor(self._executor, self._close_session)
        finally:
            self._executor.shutdown(wait=False)
