"""Publishing tables (tenant-scoped, RLS). Migrations spell them out; these are for queries."""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Column,
    DateTime,
    ForeignKey,
    Identity,
    Integer,
    MetaData,
    SmallInteger,
    Table,
    Text,
    Time,
    UniqueConstraint,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import ARRAY, JSONB, UUID

metadata = MetaData()

posts = Table(
    "posts",
    metadata,
    Column("id", UUID(as_uuid=False), primary_key=True),
    Column("workspace_id", UUID(as_uuid=False), nullable=False, index=True),
    Column("author_id", UUID(as_uuid=False), nullable=True),
    Column("author_role", Text, nullable=True),
    Column("status", Text, nullable=False),
    Column("status_reason", Text, nullable=True),
    Column("text", Text, nullable=False, server_default=""),
    Column("title", Text, nullable=True),
    Column("link", Text, nullable=True),
    Column("first_comment", Text, nullable=True),
    Column("hashtags", ARRAY(Text), nullable=False, server_default=text("'{}'")),
    Column("mentions", ARRAY(Text), nullable=False, server_default=text("'{}'")),
    Column("media_ids", ARRAY(UUID(as_uuid=False)), nullable=False, server_default=text("'{}'")),
    Column("options", JSONB, nullable=False, server_default=text("'{}'")),
    Column("campaign", Text, nullable=True),
    Column("tags", ARRAY(Text), nullable=False, server_default=text("'{}'")),
    Column("scheduled_at", DateTime(timezone=True), nullable=True),
    Column("timezone", Text, nullable=True),
    Column("dispatched_at", DateTime(timezone=True), nullable=True),
    Column("completed_at", DateTime(timezone=True), nullable=True),
    Column("version", Integer, nullable=False, server_default=text("1")),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("updated_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
)

post_targets = Table(
    "post_targets",
    metadata,
    Column("id", UUID(as_uuid=False), primary_key=True),
    Column(
        "post_id", UUID(as_uuid=False), ForeignKey("posts.id", ondelete="CASCADE"), nullable=False
    ),
    Column("workspace_id", UUID(as_uuid=False), nullable=False),
    Column("platform", Text, nullable=False),
    Column("account_id", UUID(as_uuid=False), nullable=False),
    Column("status", Text, nullable=False),
    Column("custom_content", JSONB, nullable=True),
    Column("attempts", Integer, nullable=False, server_default=text("0")),
    Column("platform_post_id", Text, nullable=True),
    Column("url", Text, nullable=True),
    Column("last_error", Text, nullable=True),
    Column("last_error_code", Text, nullable=True),
    Column("last_command_id", UUID(as_uuid=False), nullable=True),
    Column("next_attempt_at", DateTime(timezone=True), nullable=True),
    Column("deadline_at", DateTime(timezone=True), nullable=True),
    Column("dispatched_at", DateTime(timezone=True), nullable=True),
    Column("published_at", DateTime(timezone=True), nullable=True),
    UniqueConstraint("post_id", "platform", "account_id", name="uq_post_target"),
)

post_history = Table(
    "post_history",
    metadata,
    Column("id", BigInteger, Identity(always=True), primary_key=True),
    Column(
        "post_id", UUID(as_uuid=False), ForeignKey("posts.id", ondelete="CASCADE"), nullable=False
    ),
    Column("workspace_id", UUID(as_uuid=False), nullable=False),
    Column("action", Text, nullable=False),
    Column("from_status", Text, nullable=True),
    Column("to_status", Text, nullable=True),
    Column("actor_id", Text, nullable=True),
    Column("comment", Text, nullable=True),
    Column("at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("step", Text, nullable=True),  # the approval step an "approved" entry completes
)

accounts = Table(
    "accounts",
    metadata,
    Column("id", UUID(as_uuid=False), primary_key=True),
    Column("workspace_id", UUID(as_uuid=False), nullable=False, index=True),
    Column("platform", Text, nullable=False),
    Column("username", Text, nullable=False),
    Column("status", Text, nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
)

workspace_settings = Table(
    "workspace_settings",
    metadata,
    Column("workspace_id", UUID(as_uuid=False), primary_key=True),
    Column("timezone", Text, nullable=False, server_default="UTC"),
    Column("approval_required_for", ARRAY(Text), nullable=False, server_default=text("'{}'")),
    Column("updated_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
)

approval_workflows = Table(
    "approval_workflows",
    metadata,
    Column("workspace_id", UUID(as_uuid=False), primary_key=True),
    Column("required_for", ARRAY(Text), nullable=False, server_default=text("'{}'")),
    Column("steps", JSONB, nullable=False),
    Column("updated_by", Text, nullable=True),
    Column("updated_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
)

post_approvals = Table(
    "post_approvals",
    metadata,
    Column("id", BigInteger, Identity(always=True), primary_key=True),
    Column(
        "post_id", UUID(as_uuid=False), ForeignKey("posts.id", ondelete="CASCADE"), nullable=False
    ),
    Column("workspace_id", UUID(as_uuid=False), nullable=False),
    Column("step", Integer, nullable=False),
    Column("step_name", Text, nullable=False),
    Column("approver_id", Text, nullable=False),
    Column("comment", Text, nullable=True),
    Column("at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    UniqueConstraint("post_id", "step", name="uq_post_approval_step"),
    UniqueConstraint("post_id", "approver_id", name="uq_post_approval_approver"),
)

posting_slots = Table(
    "posting_slots",
    metadata,
    Column("id", BigInteger, Identity(always=True), primary_key=True),
    Column("workspace_id", UUID(as_uuid=False), nullable=False),
    Column("account_id", UUID(as_uuid=False), nullable=False),
    Column("weekday", SmallInteger, nullable=False),
    Column("local_time", Time, nullable=False),
    UniqueConstraint("workspace_id", "account_id", "weekday", "local_time", name="uq_slot"),
)
