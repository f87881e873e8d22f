"""Media asset persistence. Request code uses `MediaRepository` (tenant-scoped, RLS behind
it); the scheduler and the signed file route read through the system helpers below, which
filter by workspace or id themselves."""

from __future__ import annotations

import base64
import json
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import and_, insert, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from chorus_publishing.media import IN_USE, MediaAsset
from chorus_publishing.media_tables import media_assets
from chorus_publishing.tables import post_targets, posts
from chorus_runtime.db.repository import TenantRepository


def _to_asset(row: Any) -> MediaAsset:
    return MediaAsset(
        id=row["id"],
        workspace_id=row["workspace_id"],
        kind=row["kind"],
        mime_type=row["mime_type"],
        size_bytes=row["size_bytes"],
        sha256=row["sha256"],
        storage=row["storage"],
        storage_key=row["storage_key"],
        width=row["width"],
        height=row["height"],
        duration_seconds=row["duration_seconds"],
        filename=row["filename"],
        uploaded_by=row["uploaded_by"],
        created_at=row["created_at"],
    )


@dataclass(frozen=True)
class MediaPage:
    items: list[MediaAsset]
    next_cursor: str | None


def encode_cursor(asset: MediaAsset) -> str:
    assert asset.created_at is not None
    key = [asset.created_at.isoformat(), asset.id]
    return base64.urlsafe_b64encode(json.dumps(key).encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[datetime, str]:
    """The keyset a cursor names; ValueError/TypeError when it is not one of ours."""
    raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
    created, asset_id = json.loads(raw)
    created_at = datetime.fromisoformat(created)
    if created_at.tzinfo is None:
        raise ValueError("cursor times must carry an offset")
    return created_at, str(uuid.UUID(str(asset_id)))


class MediaRepository(TenantRepository):
    async def add(self, asset: MediaAsset) -> MediaAsset:
        row = (
            (
                await self.session.execute(
                    insert(media_assets)
                    .values(
                        id=asset.id,
                        workspace_id=self.workspace_id,
                        uploaded_by=asset.uploaded_by,
                        kind=asset.kind,
                        mime_type=asset.mime_type,
                        size_bytes=asset.size_bytes,
                        width=asset.width,
                        height=asset.height,
                        duration_seconds=asset.duration_seconds,
                        filename=asset.filename,
                        sha256=asset.sha256,
                        storage=asset.storage,
                        storage_key=asset.storage_key,
                    )
                    .returning(media_assets)
                )
            )
            .mappings()
            .one()
        )
        return _to_asset(row)

    async def get(self, asset_id: str, *, for_update: bool = False) -> MediaAsset | None:
        q = self.select(media_assets).where(media_assets.c.id == asset_id)
        if for_update:
            q = q.with_for_update()
        row = (await self.session.execute(q)).mappings().first()
        return _to_asset(row) if row else None

    async def lookup(self, ids: Iterable[str], *, lock: bool = False) -> dict[str, MediaAsset]:
        """This workspace's assets among `ids`. `lock` takes a share lock so a concurrent
        delete waits for (and then sees) the post that starts to need them."""
        wanted = list(dict.fromkeys(ids))
        if not wanted:
            return {}
        q = self.select(media_assets).where(media_assets.c.id.in_(wanted))
        if lock:
            q = q.with_for_update(read=True)
        rows = (await self.session.execute(q)).mappings().all()
        return {r["id"]: _to_asset(r) for r in rows}

    async def page(self, *, kind: str | None, cursor: str | None, limit: int) -> MediaPage:
        """The library, newest first."""
        conds = [media_assets.c.workspace_id == self.workspace_id]
        if kind:
            conds.append(media_assets.c.kind == kind)
        if cursor:
            c_created, c_id = decode_cursor(cursor)
            conds.append(
                or_(
                    media_assets.c.created_at < c_created,
                    and_(media_assets.c.created_at == c_created, media_assets.c.id < c_id),
                )
            )
        rows = (
            (
                await self.session.execute(
                    select(media_assets)
                    .where(and_(*conds))
                    .order_by(media_assets.c.created_at.desc(), media_assets.c.id.desc())
                    .limit(limit + 1)
                )
            )
            .mappings()
            .all()
        )
        items = [_to_asset(r) for r in rows[:limit]]
        more = len(rows) > limit
        return MediaPage(items, encode_cursor(items[-1]) if more and items else None)

    async def users(self, asset_id: str) -> list[str]:
        """Posts that still need the asset (waiting for approval, scheduled, publishing)."""
        custom_refs = select(post_targets.c.post_id).where(
            post_targets.c.workspace_id == self.workspace_id,
            post_targets.c.custom_content["media_ids"].contains([asset_id]),
        )
        rows = await self.session.execute(
            self.select(posts, posts.c.id)
            .where(
                posts.c.status.in_([s.value for s in IN_USE]),
                or_(posts.c.media_ids.contains([asset_id]), posts.c.id.in_(custom_refs)),
            )
            .order_by(posts.c.scheduled_at, posts.c.id)
            .limit(20)
        )
        return [str(r) for r in rows.scalars()]

    async def remove(self, asset_id: str) -> None:
        await self.session.execute(self.delete(media_assets).where(media_assets.c.id == asset_id))


async def assets_of(
    session: AsyncSession, workspace_id: str, ids: Iterable[str]
) -> dict[str, MediaAsset]:
    """One workspace's assets among `ids`, in a system unit of work (the scheduler)."""
    wanted = list(dict.fromkeys(ids))
    if not wanted:
        return {}
    rows = (
        (
            await session.execute(
                select(media_assets).where(
                    media_assets.c.workspace_id == workspace_id, media_assets.c.id.in_(wanted)
                )
            )
        )
        .mappings()
        .all()
    )
    return {r["id"]: _to_asset(r) for r in rows}


async def assets_of_many(
    session: AsyncSession, wanted: Iterable[tuple[str, str]]
) -> dict[tuple[str, str], MediaAsset]:
    """`assets_of` for several workspaces at once (the scheduler's batch): keyed by
    (workspace id, asset id), so one workspace never gets another's asset."""
    pairs = list(dict.fromkeys(wanted))
    if not pairs:
        return {}
    rows = (
        (
            await session.execute(
                select(media_assets).where(
                    media_assets.c.workspace_id.in_({w for w, _ in pairs}),
                    media_assets.c.id.in_({a for _, a in pairs}),
                )
            )
        )
        .mappings()
        .all()
    )
    found = {(r["workspace_id"], r["id"]): _to_asset(r) for r in rows}
    return {pair: found[pair] for pair in pairs if pair in found}


async def asset_by_id(session: AsyncSession, asset_id: str) -> MediaAsset | None:
    """An asset by id alone, in a system unit of work (the signed file route: the signature,
    not a tenant, is what grants access)."""
    row = (
        (await session.execute(select(media_assets).where(media_assets.c.id == asset_id)))
        .mappings()
        .first()
    )
    return _to_asset(row) if row else None
