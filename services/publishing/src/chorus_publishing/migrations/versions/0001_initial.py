"""posts, post targets, outbox, processed events

Revision ID: 0001
Revises:
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import ARRAY, UUID

from chorus_runtime.db.ops import create_runtime_tables, drop_runtime_tables
from chorus_runtime.db.rls import enable_tenant_rls

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    create_runtime_tables()
    op.create_table(
        "posts",
        sa.Column("id", UUID(as_uuid=False), primary_key=True),
        sa.Column("workspace_id", UUID(as_uuid=False), nullable=False, index=True),
        sa.Column("author_id", UUID(as_uuid=False), nullable=True),
        sa.Column("status", sa.Text, nullable=False),
        sa.Column("text", sa.Text, nullable=False, server_default=""),
        sa.Column("hashtags", ARRAY(sa.Text), nullable=False, server_default=sa.text("'{}'")),
        sa.Column("scheduled_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("timezone", sa.Text, nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
    )
    op.create_table(
        "post_targets",
        sa.Column("id", UUID(as_uuid=False), primary_key=True),
        sa.Column("post_id", UUID(as_uuid=False), sa.ForeignKey("posts.id", ondelete="CASCADE"), nullable=False),
        sa.Column("workspace_id", UUID(as_uuid=False), nullable=False),
        sa.Column("platform", sa.Text, nullable=False),
        sa.Column("account_id", UUID(as_uuid=False), nullable=False),
        sa.Column("status", sa.Text, nullable=False),
        sa.Column("attempts", sa.Integer, nullable=False, server_default=sa.text("0")),
        sa.Column("platform_post_id", sa.Text, nullable=True),
        sa.Column("url", sa.Text, nullable=True),
        sa.Column("last_error", sa.Text, nullable=True),
        sa.Column("published_at", sa.DateTime(timezone=True), nullable=True),
        sa.UniqueConstraint("post_id", "platform", "account_id", name="uq_post_target"),
    )
    enable_tenant_rls("posts")
    enable_tenant_rls("post_targets")


def downgrade() -> None:
    op.drop_table("post_targets")
    op.drop_table("posts")
    drop_runtime_tables()
