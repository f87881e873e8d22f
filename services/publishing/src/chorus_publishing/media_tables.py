"""The media asset table (tenant-scoped, RLS; migration 0003 spells it out)."""

from __future__ import annotations

from sqlalchemy import BigInteger, Column, DateTime, Float, Integer, Table, Text, func
from sqlalchemy.dialects.postgresql import UUID

from chorus_publishing.tables import metadata

media_assets = Table(
    "media_assets",
    metadata,
    Column("id", UUID(as_uuid=False), primary_key=True),
    Column("workspace_id", UUID(as_uuid=False), nullable=False),
    Column("uploaded_by", UUID(as_uuid=False), nullable=True),
    Column("kind", Text, nullable=False),
    Column("mime_type", Text, nullable=False),
    Column("size_bytes", BigInteger, nullable=False),
    Column("width", Integer, nullable=True),
    Column("height", Integer, nullable=True),
    Column("duration_seconds", Float, nullable=True),
    Column("filename", Text, nullable=True),
    Column("sha256", Text, nullable=False),
    Column("storage", Text, nullable=False),
    Column("storage_key", Text, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
)
