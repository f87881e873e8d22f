"""connected accounts with encrypted tokens, OAuth states, ledger outcome columns

Revision ID: 0002
Revises: 0001
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import ARRAY, UUID

from chorus_runtime.db.rls import enable_tenant_rls

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

NOW = sa.func.now()


def upgrade() -> None:
    op.create_table(
        "accounts",
        sa.Column("id", UUID(as_uuid=False), primary_key=True),
        sa.Column("workspace_id", UUID(as_uuid=False), nullable=False, index=True),
        sa.Column("platform", sa.Text, nullable=False),
        sa.Column("platform_account_id", sa.Text, nullable=False),
        sa.Column("username", sa.Text, nullable=False),
        sa.Column("display_name", sa.Text, nullable=True),
        sa.Column("status", sa.Text, nullable=False),
        sa.Column("status_reason", sa.Text, nullable=True),
        sa.Column("scopes", ARRAY(sa.Text), nullable=False, server_default=sa.text("'{}'")),
        sa.Column("tokens", sa.LargeBinary, nullable=False, comment="AES-256-GCM, key id inside"),
        sa.Column("token_expires_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_refreshed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("connected_by", UUID(as_uuid=False), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=NOW),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False, server_default=NOW),
        sa.UniqueConstraint("workspace_id", "platform", "platform_account_id", name="uq_account"),
    )
    op.create_index(
        "ix_accounts_refresh_due", "accounts", ["token_expires_at"],
        postgresql_where=sa.text("status = 'active'"),
    )
    op.create_table(
        "oauth_states",
        sa.Column("id", sa.Text, primary_key=True),
        sa.Column("workspace_id", UUID(as_uuid=False), nullable=False),
        sa.Column("user_id", sa.Text, nullable=False),
        sa.Column("platform", sa.Text, nullable=False),
        sa.Column("redirect_uri", sa.Text, nullable=False),
        sa.Column("code_verifier", sa.LargeBinary, nullable=True),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("used_at", sa.DateTime(timezone=True), nullable=True),
    )
    with op.batch_alter_table("publish_ledger") as t:
        t.add_column(sa.Column("attempt", sa.Integer, nullable=False, server_default=sa.text("0")))
        t.add_column(sa.Column("url", sa.Text, nullable=True))
        t.add_column(sa.Column("text_hash", sa.Text, nullable=True))
        t.add_column(sa.Column("sent_at", sa.DateTime(timezone=True), nullable=True))
        t.add_column(sa.Column("published_at", sa.DateTime(timezone=True), nullable=True))
        t.add_column(sa.Column("last_error", sa.Text, nullable=True))
    for table in ("accounts", "oauth_states"):
        enable_tenant_rls(table)


def downgrade() -> None:
    with op.batch_alter_table("publish_ledger") as t:
        for c in ("attempt", "url", "text_hash", "sent_at", "published_at", "last_error"):
            t.drop_column(c)
    op.drop_table("oauth_states")
    op.drop_table("accounts")
