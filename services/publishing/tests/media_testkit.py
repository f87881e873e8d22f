"""Helpers for the media tests: tiny, well-formed files built byte by byte, and the service
run with its media root in a temporary directory."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
from faststream.kafka import TestKafkaBroker
from publishing_testkit import Publishing

from chorus_publishing.main import build as build_publishing
from chorus_publishing.settings import PublishingSettings
from chorus_runtime.service import Role
from chorus_testing.apps import running
from chorus_testing.auth import TestTokens
from chorus_testing.postgres import ServiceDatabase

MEDIA_BASE_URL = "http://publishing.internal:8001"


# -- the service ----------------------------------------------------------------------------


@asynccontextmanager
async def media_service(
    db: ServiceDatabase, tokens: TestTokens, root: Path, **overrides: Any
) -> AsyncIterator[Publishing]:
    """The publishing service (API role, in-memory broker) with its media under `root`."""
    settings = PublishingSettings(
        database_url=db.app_url,
        migrations_database_url=db.owner_url,
        kafka_bootstrap_servers="127.0.0.1:9",  # never dialled: the broker is in memory
        media_root=root,
        media_base_url=MEDIA_BASE_URL,
        **overrides,
    )
    runtime = build_publishing(settings)
    async with (
        TestKafkaBroker(runtime.broker) as broker,
        running(runtime, Role.API, verifier=tokens.verifier()) as svc,
    ):
        yield Publishing(svc.client, db, tokens, runtime=runtime, broker=broker)


async def upload(
    p: Publishing,
    workspace: str,
    data: bytes,
    *,
    filename: str = "file.bin",
    content_type: str = "application/octet-stream",
    role: str = "owner",
    field: str = "file",
) -> httpx.Response:
    return await p.client.post(
        "/api/v1/media",
        files={field: (filename, data, content_type)},
        headers=p.headers(workspace, role),
    )


async def upload_ok(p: Publishing, workspace: str, data: bytes, **kw: Any) -> dict[str, Any]:
    resp = await upload(p, workspace, data, **kw)
    assert resp.status_code == 201, resp.text
    return resp.json()["media"]  # type: ignore[no-any-return]
