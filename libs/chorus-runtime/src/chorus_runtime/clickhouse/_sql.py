"""SQL text helpers both backends share: statement splitting and parameter checks."""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from chorus_runtime.clickhouse.base import ClickHouseError, utc_if_naive

# {name:Type}; a type never contains braces.
PLACEHOLDER_RE = re.compile(r"\{\s*([A-Za-z_][A-Za-z0-9_]*)\s*:\s*([^{}]+?)\s*\}")

_QUOTES = "'\"`"


def _skip_quoted(sql: str, i: int) -> int:
    """Index just past the quoted token starting at ``i`` (backslash and doubled-quote escapes)."""
    quote, n, j = sql[i], len(sql), i + 1
    while j < n:
        ch = sql[j]
        if ch == "\\":
            j += 2
            continue
        if ch == quote:
            if j + 1 < n and sql[j + 1] == quote:
                j += 2
                continue
            return j + 1
        j += 1
    return n


def split_statements(sql: str) -> list[str]:
    """Split on ``;`` outside quotes and comments; drop empty and comment-only pieces."""
    statements: list[str] = []
    start, i, n = 0, 0, len(sql)
    has_code = False
    while i < n:
        ch = sql[i]
        if ch in _QUOTES:
            i = _skip_quoted(sql, i)
            has_code = True
        elif sql.startswith("--", i):
            nl = sql.find("\n", i)
            i = n if nl == -1 else nl + 1
        elif sql.startswith("/*", i):
            end = sql.find("*/", i + 2)
            i = n if end == -1 else end + 2
        elif ch == ";":
            if has_code:
                statements.append(sql[start:i].strip())
            start, i, has_code = i + 1, i + 1, False
        else:
            has_code = has_code or not ch.isspace()
            i += 1
    if has_code:
        statements.append(sql[start:].strip())
    return statements


def ensure_single_statement(sql: str) -> None:
    """Reject ``a; b`` the way the server's HTTP interface does (chdb would run both)."""
    if len(split_statements(sql)) > 1:
        raise ClickHouseError(
            "Code: 62. Syntax error (Multi-statements are not allowed)",
            code=62,
            name="SYNTAX_ERROR",
        )


def declared_param_types(sql: str) -> dict[str, str]:
    """Placeholder name -> declared ClickHouse type, first occurrence wins."""
    types: dict[str, str] = {}
    for name, type_name in PLACEHOLDER_RE.findall(sql):
        types.setdefault(name, type_name)
    return types


def _normalize(value: Any) -> Any:
    if isinstance(value, datetime):
        return utc_if_naive(value)
    if isinstance(value, list | tuple):
        return type(value)(_normalize(v) for v in value)
    if isinstance(value, dict):
        return {k: _normalize(v) for k, v in value.items()}
    if isinstance(value, bytes | bytearray | memoryview):
        # clickhouse-connect routes bytes into a different (binary, in-SQL) binding path.
        raise TypeError("bytes query parameters are not supported; bind a String and unhex()")
    return value


def checked_params(sql: str, params: Mapping[str, Any] | None) -> dict[str, Any]:
    """Validate that every parameter is a ``{name:Type}`` placeholder of ``sql``.

    An unused key is a typo, and on the server backend a dict without placeholders would
    make clickhouse-connect fall back to client-side %-formatting, which we never want.
    Naive datetimes become UTC-aware so both backends bind the same instant.
    """
    if not params:
        return {}
    declared = declared_param_types(sql)
    unknown = sorted(set(params) - set(declared))
    if unknown:
        raise ValueError(f"parameters {unknown} have no {{name:Type}} placeholder in the SQL")
    return {name: _normalize(value) for name, value in params.items()}
