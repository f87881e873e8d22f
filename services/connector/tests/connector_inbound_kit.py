"""Helpers for the connector's webhook and metrics tests: accounts put straight into its
database, and the events it staged in its outbox (what the relay would publish)."""

from __future__ import annotations

import json
import uuid

import asyncpg

from chorus_contracts.envelope import CloudEvent, decode
from chorus_runtime.db.database import to_asyncpg_dsn


async def insert_account(
    owner_url: str,
    *,
    workspace: str,
    platform: str,
    platform_account_id: str,
    status: str = "active",
) -> str:
    """A connected account row (its tokens are never read by the webhook path)."""
    account_id = str(uuid.uuid4())
    conn = await asyncpg.connect(to_asyncpg_dsn(owner_url))
    try:
        await conn.execute(
            "INSERT INTO accounts (id, workspace_id, platform, platform_account_id, username, "
            "status, tokens) VALUES ($1, $2, $3, $4, $5, $6, $7)",
            account_id,
            workspace,
            platform,
            platform_account_id,
            f"{platform}_{platform_account_id}",
            status,
            b"\x00",
        )
    finally:
        await conn.close()
    return account_id


async def outbox_events(owner_url: str, topic: str) -> list[CloudEvent]:
    """Events staged for `topic`, oldest first (read as the owner: RLS does not apply)."""
    conn = await asyncpg.connect(to_asyncpg_dsn(owner_url))
    try:
        rows = await conn.fetch(
            "SELECT key, headers, value FROM outbox WHERE topic = $1 ORDER BY id", topic
        )
    finally:
        await conn.close()
    events = []
    for row in rows:
        event = decode(json.loads(row["headers"]), bytes(row["value"]))
        assert row["key"] == event.data.get("accountId"), "keyed by the account id"
        events.append(event)
    return events
