"""Connector tables: connected accounts (tokens encrypted), OAuth states, the publish
ledger — one row per post target, ever (the idempotency ledger of platform calls) — and the
platform events received by webhook (their dedup keys)."""

from __future__ import annotations

from sqlalchemy import Column, DateTime, Integer, LargeBinary, MetaData, Table, Text, func, text
from sqlalchemy.dialects.postgresql import ARRAY, UUID

metadata = MetaData()

publish_ledger = Table(
    "publish_ledger",
    metadata,
    Column("target_id", UUID(as_uuid=False), primary_key=True),
    Column("workspace_id", UUID(as_uuid=False), nullable=False),
    Column("post_id", UUID(as_uuid=False), nullable=False),
    Column("account_id", UUID(as_uuid=False), nullable=False),
    Column("platform", Text, nullable=False),
    Column("status", Text, nullable=False),  # received | sending | published | failed
    Column("last_command_id", UUID(as_uuid=False), nullable=False),
    Column("commands_received", Integer, nullable=False, server_default=text("1")),
    Column("attempt", Integer, nullable=False, server_default=text("0")),
    Column("platform_post_id", Text, nullable=True),
    Column("url", Text, nullable=True),
    Column("text_hash", Text, nullable=True),
    Column("sent_at", DateTime(timezone=True), nullable=True),
    Column("published_at", DateTime(timezone=True), nullable=True),
    Column("last_error", Text, nullable=True),
    Column("first_received_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("updated_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
)

accounts = Table(
    "accounts",
    metadata,
    Column("id", UUID(as_uuid=False), primary_key=True),
    Column("workspace_id", UUID(as_uuid=False), nullable=False),
    Column("platform", Text, nullable=False),
    Column("platform_account_id", Text, nullable=False),
    Column("username", Text, nullable=False),
    Column("display_name", Text, nullable=True),
    Column("status", Text, nullable=False),
    Column("status_reason", Text, nullable=True),
    Column("scopes", ARRAY(Text), nullable=False, server_default=text("'{}'")),
    Column("tokens", LargeBinary, nullable=False),
    Column("token_expires_at", DateTime(timezone=True), nullable=True),
    Column("last_refreshed_at", DateTime(timezone=True), nullable=True),
    Column("connected_by", UUID(as_uuid=False), nullable=True),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("updated_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("metrics_collected_at", DateTime(timezone=True), nullable=True),
)

# One row per (connected account, platform event): a webhook delivered twice emits once.
inbound_events = Table(
    "inbound_events",
    metadata,
    Column("account_id", UUID(as_uuid=False), primary_key=True),
    Column("platform_event_id", Text, primary_key=True),
    Column("workspace_id", UUID(as_uuid=False), nullable=False),
    Column("kind", Text, nullable=False),
    Column("received_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
)

oauth_states = Table(
    "oauth_states",
    metadata,
    Column("id", Text, primary_key=True),
    Column("workspace_id", UUID(as_uuid=False), nullable=False),
    Column("user_id", Text, nullable=False),
    Column("platform", Text, nullable=False),
    Column("redirect_uri", Text, nullable=False),
    Column("code_verifier", LargeBinary, nullable=True),
    Column("expires_at", DateTime(timezone=True), nullable=False),
    Column("used_at", DateTime(timezone=True), nullable=True),
)
