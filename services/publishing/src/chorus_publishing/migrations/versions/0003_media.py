"""media assets

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
    op.create_table(
        "media_assets",
        sa.Column("id", UUID(as_uuid=False), primary_key=True),
        sa.Column("workspace_id", UUID(as_uuid=False), nullable=False),
        sa.Column("uploaded_by", UUID(as_uuid=False), nullable=True),
        sa.Column("kind", sa.Text, nullable=False),
        sa.Column("mime_type", sa.Text, nullable=False),
        sa.Column("size_bytes", sa.BigInteger, nullable=False),
        sa.Column("width", sa.Integer, nullable=True),
        sa.Column("height", sa.Integer, nullable=True),
        sa.Column("duration_seconds", sa.Float, nullable=True),
        sa.Column("filename", sa.Text, nullable=True),
        sa.Column("sha256", sa.Text, nullable=False),
        sa.Column("storage", sa.Text, nullable=False),
        sa.Column("storage_key", sa.Text, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
        sa.CheckConstraint("kind IN ('image', 'gif', 'video')", name="ck_media_kind"),
        sa.CheckConstraint("size_bytes > 0", name="ck_media_size"),
    )
    # The library, newest first, keyset-paginated per workspace.
    op.create_index("ix_media_library", "media_assets", ["workspace_id", "created_at", "id"])
    enable_tenant_rls("media_assets")


def downgrade() -> None:
    op.drop_table("media_assets")
