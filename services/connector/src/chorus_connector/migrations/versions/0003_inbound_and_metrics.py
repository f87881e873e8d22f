"""inbound webhook events (dedup keys), per-account metrics collection lease

Revision ID: 0003
Revises: 0002
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import UUID

from chorus_runtime.db.rls import enable_tenant_rls

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column(
        "accounts",
        sa.Column(
            "metrics_collected_at",
            sa.DateTime(timezone=True),
            nullable=True,
            comment="when a collector last claimed the account (one collector per round)",
        ),
    )
    op.create_index(
        "ix_accounts_metrics_due",
        "accounts",
        ["metrics_collected_at"],
        postgresql_where=sa.text("status = 'active'"),
    )
    op.create_table(
        "inbound_events",
        sa.Column("account_id", UUID(as_uuid=False), nullable=False),
        sa.Column("platform_event_id", sa.Text, nullable=False),
        sa.Column("workspace_id", UUID(as_uuid=False), nullable=False),
        sa.Column("kind", sa.Text, nullable=False),
        sa.Column(
            "received_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()
        ),
        sa.PrimaryKeyConstraint("account_id", "platform_event_id"),
    )
    op.create_index("ix_inbound_events_received_at", "inbound_events", ["received_at"])
    enable_tenant_rls("inbound_events")


def downgrade() -> None:
    op.drop_table("inbound_events")
    op.drop_index("ix_accounts_metrics_due", table_name="accounts")
    op.drop_column("accounts", "metrics_collected_at")
