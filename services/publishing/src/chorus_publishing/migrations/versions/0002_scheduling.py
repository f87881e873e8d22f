"""content fields, scheduling and retries, projections of accounts and workspace settings

Revision ID: 0002
Revises: 0001
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import ARRAY, JSONB, UUID

from chorus_runtime.db.rls import enable_tenant_rls

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

NOW = sa.func.now()


def upgrade() -> None:
    with op.batch_alter_table("posts") as t:
        t.add_column(sa.Column("title", sa.Text, nullable=True))
        t.add_column(sa.Column("link", sa.Text, nullable=True))
        t.add_column(sa.Column("first_comment", sa.Text, nullable=True))
        t.add_column(sa.Column("mentions", ARRAY(sa.Text), nullable=False, server_default=sa.text("'{}'")))
        t.add_column(sa.Column("media_ids", ARRAY(UUID(as_uuid=False)), nullable=False, server_default=sa.text("'{}'")))
        t.add_column(sa.Column("options", JSONB, nullable=False, server_default=sa.text("'{}'")))
        t.add_column(sa.Column("campaign", sa.Text, nullable=True))
        t.add_column(sa.Column("tags", ARRAY(sa.Text), nullable=False, server_default=sa.text("'{}'")))
        t.add_column(sa.Column("author_role", sa.Text, nullable=True))
        t.add_column(sa.Column("status_reason", sa.Text, nullable=True))
        t.add_column(sa.Column("dispatched_at", sa.DateTime(timezone=True), nullable=True))
        t.add_column(sa.Column("completed_at", sa.DateTime(timezone=True), nullable=True))
        t.add_column(sa.Column("version", sa.Integer, nullable=False, server_default=sa.text("1")))
    # The scheduler's due-queue: only scheduled posts, ordered by time.
    op.create_index(
        "ix_posts_due", "posts", ["scheduled_at"], postgresql_where=sa.text("status = 'scheduled'")
    )
    op.create_index("ix_posts_calendar", "posts", ["workspace_id", "scheduled_at", "id"])
    with op.batch_alter_table("post_targets") as t:
        t.add_column(sa.Column("custom_content", JSONB, nullable=True))
        t.add_column(sa.Column("next_attempt_at", sa.DateTime(timezone=True), nullable=True))
        t.add_column(sa.Column("deadline_at", sa.DateTime(timezone=True), nullable=True))
        t.add_column(sa.Column("dispatched_at", sa.DateTime(timezone=True), nullable=True))
        t.add_column(sa.Column("last_error_code", sa.Text, nullable=True))
        t.add_column(sa.Column("last_command_id", UUID(as_uuid=False), nullable=True))
    op.create_index(
        "ix_targets_retry_due", "post_targets", ["next_attempt_at"],
        postgresql_where=sa.text("status = 'retrying'"),
    )
    op.create_index(
        "ix_targets_deadline", "post_targets", ["deadline_at"],
        postgresql_where=sa.text("status = 'dispatched'"),
    )
    op.create_index("ix_targets_post", "post_targets", ["post_id"])
    op.create_table(
        "accounts",
        sa.Column("id", UUID(as_uuid=False), primary_key=True),
        sa.Column("workspace_id", UUID(as_uuid=False), nullable=False, index=True),
        sa.Column("platform", sa.Text, nullable=False),
        sa.Column("username", sa.Text, nullable=False),
        sa.Column("status", sa.Text, nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False, server_default=NOW),
    )
    op.create_table(
        "workspace_settings",
        sa.Column("workspace_id", UUID(as_uuid=False), primary_key=True),
        sa.Column("timezone", sa.Text, nullable=False, server_default="UTC"),
        sa.Column("approval_required_for", ARRAY(sa.Text), nullable=False, server_default=sa.text("'{}'")),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False, server_default=NOW),
    )
    op.create_table(
        "post_history",
        sa.Column("id", sa.BigInteger, sa.Identity(always=True), primary_key=True),
        sa.Column("post_id", UUID(as_uuid=False), sa.ForeignKey("posts.id", ondelete="CASCADE"), nullable=False, index=True),
        sa.Column("workspace_id", UUID(as_uuid=False), nullable=False),
        sa.Column("action", sa.Text, nullable=False),
        sa.Column("from_status", sa.Text, nullable=True),
        sa.Column("to_status", sa.Text, nullable=True),
        sa.Column("actor_id", sa.Text, nullable=True),
        sa.Column("comment", sa.Text, nullable=True),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False, server_default=NOW),
    )
    for table in ("accounts", "post_history"):
        enable_tenant_rls(table)
    enable_tenant_rls("workspace_settings")


def downgrade() -> None:
    op.drop_table("post_history")
    op.drop_table("workspace_settings")
    op.drop_table("accounts")
    op.drop_index("ix_targets_post", "post_targets")
    op.drop_index("ix_targets_deadline", "post_targets")
    op.drop_index("ix_targets_retry_due", "post_targets")
    with op.batch_alter_table("post_targets") as t:
        for c in ("custom_content", "next_attempt_at", "deadline_at", "dispatched_at",
                  "last_error_code", "last_command_id"):
            t.drop_column(c)
    op.drop_index("ix_posts_calendar", "posts")
    op.drop_index("ix_posts_due", "posts")
    with op.batch_alter_table("posts") as t:
        for c in ("title", "link", "first_comment", "mentions", "media_ids", "options", "campaign",
                  "tags", "author_role", "status_reason", "dispatched_at", "completed_at", "version"):
            t.drop_column(c)
