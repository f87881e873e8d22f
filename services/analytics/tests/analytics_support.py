"""Helpers shared by the analytics tests (its own module: `conftest` is not importable
reliably when several test folders run in one session)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from chorus_analytics.main import AnalyticsRuntime
from chorus_analytics.settings import AnalyticsSettings
from chorus_testing.auth import TestTokens


def new_database() -> str:
    return f"analytics_{uuid.uuid4().hex[:12]}"


def analytics_settings(chdb_path: Path, database: str, **kw: Any) -> AnalyticsSettings:
    values: dict[str, Any] = {
        "clickhouse_url": f"chdb://{chdb_path}",
        "clickhouse_database": database,
        "kafka_bootstrap_servers": "127.0.0.1:9",  # overridden where a broker is used
        "log_json": False,
        **kw,
    }
    return AnalyticsSettings(**values)


@dataclass
class AnalyticsApp:
    runtime: AnalyticsRuntime
    client: httpx.AsyncClient
    tokens: TestTokens

    def headers(
        self, workspace: uuid.UUID | str, role: str = "viewer", **kw: Any
    ) -> dict[str, str]:
        return self.tokens.headers(str(workspace), role, **kw)

    async def get(
        self, path: str, workspace: uuid.UUID | str, role: str = "viewer", **params: Any
    ) -> httpx.Response:
        return await self.client.get(
            "/api/v1/analytics" + path, params=params, headers=self.headers(workspace, role)
        )

    async def ok(self, path: str, workspace: uuid.UUID | str, **params: Any) -> Any:
        resp = await self.get(path, workspace, **params)
        assert resp.status_code == 200, resp.text
        return resp.json()
