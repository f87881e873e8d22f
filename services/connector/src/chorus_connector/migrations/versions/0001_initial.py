"""publish ledger, outbox, processed events

Revision ID: 0001
Revises:
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import UUID

from chorus_runtime.db.ops import create_runtime_tables, drop_runtime_tables
from chorus_runtime.db.rls import enable_tenant_rls

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    create_runtime_tables()
    op.create_table(
        "publish_ledger",
        sa.Column("target_id", UUID(as_uuid=False), primary_key=True),
        sa.Column("workspace_id", UUID(as_uuid=False), nullable=False),
        sa.Column("post_id", UUID(as_uuid=False), nullable=False),
        sa.Column("account_id", UUID(as_uuid=False), nullable=False),
        sa.Column("platform", sa.Text, nullable=False),
        sa.Column("status", sa.Text, nullable=False),
        sa.Column("last_command_id", UUID(as_uuid=False), nullable=False),
        sa.Column("commands_received", sa.Integer, nullable=False, server_default=sa.text("1")),
        sa.Column("platform_post_id", sa.Text, nullable=True),
        sa.Column("first_received_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
    )
    enable_tenant_rls("publish_ledger")


def downgrade() -> None:
    op.drop_table("publish_ledger")
    drop_runtime_tables()
