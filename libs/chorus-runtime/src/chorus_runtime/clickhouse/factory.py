"""Build a :class:`ClickHouseClient` from one URL (the ``CLICKHOUSE_URL`` of a service).

* ``chdb:///abs/dir`` or ``chdb://relative/dir`` (or ``chdb://:memory:``) -> embedded chdb
* ``clickhouse://user:pass@host:8123/db`` -> server over HTTP; ``clickhouses://`` -> HTTPS
* ``http://user:pass@host:8123/db`` / ``https://...`` -> the same

Query-string options: ``database`` and ``timezone``; any other key is a ClickHouse setting
(``?max_execution_time=30``). Keyword arguments win over the URL. Clients open lazily, so
building one does no I/O.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

from chorus_runtime.clickhouse.base import ClickHouseClient

__all__ = ["create_clickhouse_client", "redact_url"]

_SERVER_SCHEMES = {"clickhouse": False, "clickhouses": True, "http": False, "https": True}


def _split_query(query: str) -> tuple[dict[str, str], dict[str, str]]:
    options: dict[str, str] = {}
    settings: dict[str, str] = {}
    for key, value in parse_qsl(query, keep_blank_values=True):
        (options if key in ("database", "timezone") else settings)[key] = value
    return options, settings


def create_clickhouse_client(
    url: str,
    *,
    database: str | None = None,
    settings: Mapping[str, Any] | None = None,
    **kwargs: Any,
) -> ClickHouseClient:
    """The backend ``url`` names; ``kwargs`` go to that backend's constructor."""
    scheme, sep, rest = url.partition("://")
    scheme = scheme.lower()
    if not sep:
        raise ValueError(
            f"ClickHouse URL needs a scheme (chdb://, clickhouse://, http://): {url!r}"
        )

    if scheme == "chdb":
        from chorus_runtime.clickhouse.embedded import EmbeddedClickHouseClient

        location, _, query = rest.partition("?")
        options, url_settings = _split_query(query)
        path = unquote(location)
        if not path:
            raise ValueError("chdb URL needs a path: chdb:///abs/dir or chdb://relative/dir")
        if "timezone" in options:
            kwargs.setdefault("timezone", options["timezone"])
        return EmbeddedClickHouseClient(
            path,
            database=database if database is not None else options.get("database") or None,
            settings={**url_settings, **dict(settings or {})},
            **kwargs,
        )

    if scheme in _SERVER_SCHEMES:
        from chorus_runtime.clickhouse.server import ServerClickHouseClient

        parts = urlsplit(url)
        options, url_settings = _split_query(parts.query)
        url_database = unquote(parts.path.strip("/")) or options.get("database") or None
        if "timezone" in options:
            kwargs.setdefault("timezone", options["timezone"] or None)
        if parts.username is not None:
            kwargs.setdefault("username", unquote(parts.username))
        if parts.password is not None:
            kwargs.setdefault("password", unquote(parts.password))
        return ServerClickHouseClient(
            parts.hostname or "localhost",
            parts.port,
            secure=_SERVER_SCHEMES[scheme],
            database=database if database is not None else url_database,
            settings={**url_settings, **dict(settings or {})},
            **kwargs,
        )

    raise ValueError(f"unsupported ClickHouse URL scheme {scheme!r} in {redact_url(url)!r}")


def redact_url(url: str) -> str:
    """The URL with its password masked, for logs."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
    return parts._replace(netloc=netloc).geturl()
