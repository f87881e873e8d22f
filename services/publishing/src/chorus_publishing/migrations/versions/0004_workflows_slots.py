"""approval workflows, posting slots, bulk and import bookkeeping

Revision ID: 0004
Revises: 0003
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import ARRAY, JSONB, UUID

from chorus_runtime.db.rls import enable_tenant_rls

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

NOW = sa.func.now()


def upgrade() -> None:
    # The workspace's own multi-step approval workflow; without a row the policy comes
    # from the identity settings projection (workspace_settings.approval_required_for).
    op.create_table(
        "approval_workflows",
        sa.Column("workspace_id", UUID(as_uuid=False), primary_key=True),
        sa.Column("required_for", ARRAY(sa.Text), nullable=False, server_default=sa.text("'{}'")),
        sa.Column("steps", JSONB, nullable=False),
        sa.Column("updated_by", sa.Text, nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False, server_default=NOW),
    )
    # One row per approved step of the current approval round; the unique keys make a
    # step count once and keep one approver from approving two steps of the same round.
    op.create_table(
        "post_approvals",
        sa.Column("id", sa.BigInteger, sa.Identity(always=True), primary_key=True),
        sa.Column(
            "post_id",
            UUID(as_uuid=False),
            sa.ForeignKey("posts.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("workspace_id", UUID(as_uuid=False), nullable=False),
        sa.Column("step", sa.Integer, nullable=False),
        sa.Column("step_name", sa.Text, nullable=False),
        sa.Column("approver_id", sa.Text, nullable=False),
        sa.Column("comment", sa.Text, nullable=True),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False, server_default=NOW),
        sa.UniqueConstraint("post_id", "step", name="uq_post_approval_step"),
        sa.UniqueConstraint("post_id", "approver_id", name="uq_post_approval_approver"),
    )
    with op.batch_alter_table("post_history") as t:
        t.add_column(sa.Column("step", sa.Text, nullable=True))
    op.create_table(
        "posting_slots",
        sa.Column("id", sa.BigInteger, sa.Identity(always=True), primary_key=True),
        sa.Column("workspace_id", UUID(as_uuid=False), nullable=False),
        sa.Column("account_id", UUID(as_uuid=False), nullable=False),
        sa.Column("weekday", sa.SmallInteger, nullable=False),
        sa.Column("local_time", sa.Time, nullable=False),
        sa.CheckConstraint("weekday BETWEEN 0 AND 6", name="ck_slot_weekday"),
        sa.UniqueConstraint("workspace_id", "account_id", "weekday", "local_time", name="uq_slot"),
    )
    # Finding the taken slot instants of some accounts (queue) without scanning every target.
    op.create_index("ix_targets_account", "post_targets", ["workspace_id", "account_id"])
    for table in ("approval_workflows", "post_approvals", "posting_slots"):
        enable_tenant_rls(table)


def downgrade() -> None:
    op.drop_index("ix_targets_account", "post_targets")
    op.drop_table("posting_slots")
    with op.batch_alter_table("post_history") as t:
        t.drop_column("step")
    op.drop_table("post_approvals")
    op.drop_table("approval_workflows")
