"""Connector tables. `publish_ledger`: one row per post target, ever (idempotency ledger)."""

from __future__ import annotations

from sqlalchemy import Column, DateTime, Integer, MetaData, Table, Text, func, text
from sqlalchemy.dialects.postgresql import UUID

metadata = MetaData()

publish_ledger = Table(
    "publish_ledger",
    metadata,
    Column("target_id", UUID(as_uuid=False), primary_key=True),
    Column("workspace_id", UUID(as_uuid=False), nullable=False),
    Column("post_id", UUID(as_uuid=False), nullable=False),
    Column("account_id", UUID(as_uuid=False), nullable=False),
    Column("platform", Text, nullable=False),
    Column("status", Text, nullable=False),
    Column("last_command_id", UUID(as_uuid=False), nullable=False),
    Column("commands_received", Integer, nullable=False, server_default=text("1")),
    Column("platform_post_id", Text, nullable=True),
    Column("first_received_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("updated_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
)
