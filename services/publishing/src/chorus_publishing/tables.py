"""Publishing tables: posts and their per-target deliveries (tenant-scoped, RLS)."""

from __future__ import annotations

from sqlalchemy import (
    Column,
    DateTime,
    ForeignKey,
    Integer,
    MetaData,
    Table,
    Text,
    UniqueConstraint,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import ARRAY, UUID

metadata = MetaData()

posts = Table(
    "posts",
    metadata,
    Column("id", UUID(as_uuid=False), primary_key=True),
    Column("workspace_id", UUID(as_uuid=False), nullable=False, index=True),
    Column("author_id", UUID(as_uuid=False), nullable=True),
    Column("status", Text, nullable=False),
    Column("text", Text, nullable=False, server_default=""),
    Column("hashtags", ARRAY(Text), nullable=False, server_default=text("'{}'")),
    Column("scheduled_at", DateTime(timezone=True), nullable=True),
    Column("timezone", Text, nullable=True),
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
    Column("attempts", Integer, nullable=False, server_default=text("0")),
    Column("platform_post_id", Text, nullable=True),
    Column("url", Text, nullable=True),
    Column("last_error", Text, nullable=True),
    Column("published_at", DateTime(timezone=True), nullable=True),
    UniqueConstraint("post_id", "platform", "account_id", name="uq_post_target"),
)
