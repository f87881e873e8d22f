"""Posts ↔ media assets: the real asset records behind validation, and the media refs (with
fetchable, expiring URLs) that go into publish commands."""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass

from fastapi import Request
from sqlalchemy.ext.asyncio import AsyncSession

from chorus_contracts.events.connector import MediaRef
from chorus_publishing import media, rules
from chorus_publishing.domain import Post
from chorus_publishing.media_repository import MediaRepository, assets_of, assets_of_many
from chorus_publishing.media_store import MediaStore
from chorus_runtime.db.database import UnitOfWork


async def check_known(uow: UnitOfWork, post: Post) -> None:
    """422 naming each field that refers to media this workspace does not have."""
    found = await MediaRepository(uow).lookup(media.referenced_ids(post))
    media.check_known(post, set(found))


async def infos(uow: UnitOfWork, post: Post) -> dict[str, rules.MediaInfo]:
    """The post's assets for the platform rules, share-locked until the transaction ends
    so a concurrent delete cannot slip between the check and the schedule."""
    found = await MediaRepository(uow).lookup(media.referenced_ids(post), lock=True)
    return {k: a.info() for k, a in found.items()}


@dataclass(frozen=True)
class MediaLinks:
    store: MediaStore
    url_ttl_seconds: int

    async def refs(self, session: AsyncSession, post: Post) -> dict[str, MediaRef]:
        """Media refs for the post's commands, each with a URL valid for the TTL."""
        ids = media.referenced_ids(post)
        if not ids:
            return {}
        found = await assets_of(session, post.workspace_id, ids)
        expires_at = int(time.time()) + self.url_ttl_seconds
        return {
            k: a.ref(self.store.fetch_url(a.id, a.storage_key, expires_at=expires_at))
            for k, a in found.items()
        }

    async def refs_many(
        self, session: AsyncSession, posts: Sequence[Post]
    ) -> dict[str, dict[str, MediaRef]]:
        """`refs` for a batch of posts (any workspaces) with one query: post id → refs."""
        wanted = {p.id: media.referenced_ids(p) for p in posts}
        found = await assets_of_many(
            session, ((p.workspace_id, m) for p in posts for m in wanted[p.id])
        )
        expires_at = int(time.time()) + self.url_ttl_seconds
        out: dict[str, dict[str, MediaRef]] = {}
        for p in posts:
            assets = [found[k] for m in wanted[p.id] if (k := (p.workspace_id, m)) in found]
            out[p.id] = {
                a.id: a.ref(self.store.fetch_url(a.id, a.storage_key, expires_at=expires_at))
                for a in assets
            }
        return out


def links(request: Request) -> MediaLinks:
    return request.app.state.runtime.media  # type: ignore[no-any-return]
