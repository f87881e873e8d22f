"""Server backend: a ClickHouse server over HTTP(S) through clickhouse-connect.

clickhouse-connect's async client needs ``aiohttp``; when it is not installed the sync
client (thread-safe: pooled HTTP, no server session) runs on a small thread pool instead.
Values bind server-side (``{name:Type}`` placeholders become ``param_*`` request fields).
"""

from __future__ import annotations

import asyncio
import importlib.util
import inspect
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from functools import partial
from typing import Any

from chorus_runtime.clickhouse._sql import checked_params, ensure_single_statement
from chorus_runtime.clickhouse.base import (
    TRANSIENT_ERROR_CODES,
    ClickHouseClient,
    ClickHouseError,
    ClickHouseUnavailable,
    Params,
    Rows,
    error_from_message,
    rows_as_sequences,
    utc_if_naive,
)

__all__ = ["ServerClickHouseClient", "map_connect_error"]


def map_connect_error(exc: BaseException) -> BaseException:
    """clickhouse-connect / transport exception -> our typed error (others pass through)."""
    if isinstance(exc, ClickHouseError):
        return exc
    from clickhouse_connect.driver import exceptions as cc

    if isinstance(exc, cc.Error):
        code = getattr(exc, "code", None)
        name = getattr(exc, "name", None)
        if code is None:
            parsed = error_from_message(str(exc))
            code, name = parsed.code, parsed.name
        # OperationalError without a server code is the transport: refused, reset, timed out.
        transient = code in TRANSIENT_ERROR_CODES or (
            isinstance(exc, cc.OperationalError) and code is None
        )
        cls = ClickHouseUnavailable if transient else ClickHouseError
        return cls(str(exc), code=code, name=name)
    if isinstance(exc, ConnectionError | TimeoutError | OSError):
        return ClickHouseUnavailable(f"{type(exc).__name__}: {exc}")
    if _is_aiohttp_error(exc):
        return ClickHouseUnavailable(f"{type(exc).__name__}: {exc}")
    return exc


def _is_aiohttp_error(exc: BaseException) -> bool:
    module = type(exc).__module__ or ""
    return module.startswith("aiohttp")


def _normalize_cell(value: Any) -> Any:
    # Naive datetimes are UTC in both backends (clickhouse-connect would use the server zone).
    if isinstance(value, datetime):
        return utc_if_naive(value)
    if isinstance(value, list):
        return [_normalize_cell(v) for v in value]
    return value


class ServerClickHouseClient(ClickHouseClient):
    """:class:`ClickHouseClient` over clickhouse-connect (HTTP interface, port 8123/8443).

    ``client`` injects an already-built clickhouse-connect client (sync or async), e.g. one
    with custom TLS; the connection arguments are then ignored. ``timezone`` pins
    ``session_timezone`` like the embedded backend does (None keeps the server's zone).
    """

    def __init__(
        self,
        host: str = "localhost",
        port: int | None = None,
        *,
        username: str = "default",
        password: str = "",
        database: str | None = None,
        secure: bool = False,
        timezone: str | None = "UTC",
        settings: Mapping[str, Any] | None = None,
        connect_timeout: float = 10,
        send_receive_timeout: float = 300,
        use_async: bool | None = None,
        max_workers: int = 4,
        client: Any = None,
    ) -> None:
        self._connect_kwargs: dict[str, Any] = {
            "host": host,
            "port": port if port is not None else (8443 if secure else 8123),
            "username": username,
            "password": password,
            "database": database,
            "secure": secure,
            "settings": {
                **({"session_timezone": timezone} if timezone else {}),
                **dict(settings or {}),
            },
            "connect_timeout": connect_timeout,
            "send_receive_timeout": send_receive_timeout,
            # Aware datetimes for every DateTime column, as the embedded backend returns.
            "tz_mode": "aware",
        }
        if use_async is None:
            use_async = importlib.util.find_spec("aiohttp") is not None
        self._use_async = use_async
        self._database = database
        self._client: Any = client
        self._is_async = client is not None and inspect.iscoroutinefunction(client.query)
        self._executor = ThreadPoolExecutor(max_workers=max_workers, thread_name_prefix="ch-http")
        self._open_lock = asyncio.Lock()
        self._closed = False

    @property
    def database(self) -> str | None:
        return self._database

    def __repr__(self) -> str:
        kw = self._connect_kwargs
        return (
            f"ServerClickHouseClient(host={kw['host']!r}, port={kw['port']!r}, "
            f"db={self._database!r})"
        )

    async def _open(self) -> Any:
        import clickhouse_connect

        if self._use_async:
            self._is_async = True
            return await clickhouse_connect.get_async_client(**self._connect_kwargs)
        self._is_async = False
        loop = asyncio.get_running_loop()
        factory = partial(
            clickhouse_connect.get_client, autogenerate_session_id=False, **self._connect_kwargs
        )
        return await loop.run_in_executor(self._executor, factory)

    async def _get_client(self) -> Any:
        if self._closed:
            raise ClickHouseUnavailable("ClickHouse client is closed")
        if self._client is None:
            async with self._open_lock:
                if self._client is None:
                    try:
                        self._client = await self._open()
                    except Exception as exc:
                        raise map_connect_error(exc) from exc
        return self._client

    async def _call(self, method: str, *args: Any, **kwargs: Any) -> Any:
        client = await self._get_client()
        fn: Callable[..., Any] = getattr(client, method)
        try:
            if self._is_async:
                return await fn(*args, **kwargs)
            loop = asyncio.get_running_loop()
            return await loop.run_in_executor(self._executor, partial(fn, *args, **kwargs))
        except Exception as exc:
            raise map_connect_error(exc) from exc

    async def connect(self) -> None:
        await self._get_client()

    async def command(self, sql: str, params: Params | None = None) -> None:
        ensure_single_statement(sql)  # the server refuses too; fail the same way everywhere
        bound = checked_params(sql, params)
        await self._call("command", sql, parameters=bound or None)

    async def query(self, sql: str, params: Params | None = None) -> list[dict[str, Any]]:
        ensure_single_statement(sql)
        bound = checked_params(sql, params)
        result = await self._call("query", sql, parameters=bound or None)
        return list(result.named_results())

    async def insert(
        self,
        table: str,
        rows: Rows,
        column_names: Sequence[str],
        *,
        dedup_token: str | None = None,
    ) -> None:
        columns = list(column_names)
        data = [[_normalize_cell(v) for v in row] for row in rows_as_sequences(rows, columns)]
        if not data:
            return
        # We batch client-side; a server profile enabling async inserts must not re-batch ours
        # (older servers ignore insert_deduplication_token for async inserts).
        settings: dict[str, Any] = {"async_insert": 0}
        if dedup_token is not None:
            settings["insert_deduplication_token"] = dedup_token
        await self._call("insert", table, data, column_names=columns, settings=settings)

    async def ping(self) -> bool:
        try:
            return bool(await self._call("ping"))
        except ClickHouseError:
            return False

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        client, self._client = self._client, None
        try:
            if client is not None and self._is_async:
                await client.close()
            elif client is not None:
                await asyncio.get_running_loop().run_in_executor(self._executor, client.close)
        finally:
            self._executor.shutdown(wait=False)
