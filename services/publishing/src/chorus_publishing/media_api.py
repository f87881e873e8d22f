"""`/api/v1/media` (the workspace's media library) and `/media-files/{id}` (the bytes, for
the connector, behind an expiring HMAC signature; the gateway does not route it).

Reading needs post:read; uploading post:create; deleting post:update (whoever edits posts
manages the assets they use — viewers can do neither).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from datetime import datetime
from pathlib import Path
from typing import Annotated, Literal
from uuid import UUID

from fastapi import APIRouter, Query, Request, Response
from fastapi.responses import FileResponse

from chorus_publishing import media, media_probe
from chorus_publishing.media_repository import MediaRepository, asset_by_id
from chorus_publishing.media_store import (
    FILES_PATH,
    LocalMediaStore,
    build_store,
    verify_file_signature,
)
from chorus_publishing.media_upload import FILE_FIELD, Limits, receive
from chorus_publishing.permissions import Creator, Reader, Updater
from chorus_publishing.post_media import MediaLinks, links
from chorus_publishing.schemas import ApiModel
from chorus_publishing.settings import PublishingSettings
from chorus_runtime.auth import Principal
from chorus_runtime.db.database import Database
from chorus_runtime.errors import (
    Conflict,
    Forbidden,
    NotFound,
    ServiceUnavailable,
    ValidationFailed,
)
from chorus_runtime.service import ServiceRuntime

log = logging.getLogger("chorus.publishing.media")

router = APIRouter(prefix="/api/v1/media", tags=["media"])
files_router = APIRouter(tags=["media files (service to service)"])
STAGING = ".incoming"
STALE_STAGING_SECONDS = 24 * 3600

_UPLOAD_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "required": [FILE_FIELD],
                    "properties": {FILE_FIELD: {"type": "string", "format": "binary"}},
                }
            }
        },
    }
}


class MediaOut(ApiModel):
    id: UUID
    workspace_id: UUID
    kind: str
    mime_type: str
    size_bytes: int
    width: int | None
    height: int | None
    duration_seconds: float | None
    filename: str | None
    sha256: str
    uploaded_by: UUID | None
    created_at: datetime | None

    @classmethod
    def of(cls, a: media.MediaAsset) -> MediaOut:
        return cls(
            id=UUID(a.id),
            workspace_id=UUID(a.workspace_id),
            kind=a.kind,
            mime_type=a.mime_type,
            size_bytes=a.size_bytes,
            width=a.width,
            height=a.height,
            duration_seconds=a.duration_seconds,
            filename=a.filename,
            sha256=a.sha256,
            uploaded_by=UUID(a.uploaded_by) if a.uploaded_by else None,
            created_at=a.created_at,
        )


class MediaEnvelope(ApiModel):
    media: MediaOut


class MediaPageOut(ApiModel):
    media: list[MediaOut]
    next_cursor: str | None


def _runtime(request: Request) -> ServiceRuntime:
    return request.app.state.runtime  # type: ignore[no-any-return]


def _db(request: Request) -> Database:
    db = _runtime(request).db
    assert db is not None
    return db


def _settings(request: Request) -> PublishingSettings:
    return _runtime(request).settings  # type: ignore[return-value]


def _uploader(p: Principal) -> str | None:
    if p.token_type != "user":
        return None  # API-key principals have no user id
    try:
        return str(UUID(p.subject))
    except ValueError:
        return None


def _probe(path: Path, mime_type: str) -> media_probe.Probe:
    with path.open("rb") as f:
        return media_probe.probe(f, mime_type)


@router.post(
    "",
    status_code=201,
    response_model=MediaEnvelope,
    response_model_by_alias=True,
    summary="Upload an image or video (multipart/form-data, field `file`)",
    openapi_extra=_UPLOAD_BODY,
)
async def upload_media(request: Request, principal: Creator) -> MediaEnvelope:
    try:
        return await _upload(request, principal)
    except OSError as exc:  # an unwritable or full media disk is an outage, not a 500
        log.error("media storage failed", extra={"fields": {"error": repr(exc)}})
        raise ServiceUnavailable("media storage is unavailable") from None


async def _upload(request: Request, principal: Principal) -> MediaEnvelope:
    settings = _settings(request)
    store = links(request).store
    staged = await receive(
        request.stream(),
        request.headers.get("content-type"),
        request.headers.get("content-length"),
        staging=settings.media_root / STAGING,
        limits=Limits(settings.media_max_image_bytes, settings.media_max_video_bytes),
    )
    try:
        try:
            probe = await asyncio.to_thread(_probe, staged.path, staged.mime_type)
        except media_probe.ProbeError as exc:
            raise ValidationFailed(
                f"the {staged.mime_type} file cannot be read: {exc}",
                details=[{"field": FILE_FIELD, "rule": "unreadable", "message": str(exc)}],
            ) from None
        asset = media.new_asset(
            workspace_id=principal.workspace_id,
            uploaded_by=_uploader(principal),
            probe=probe,
            size_bytes=staged.size,
            sha256=staged.sha256,
            storage=store.kind,
            filename=staged.filename,
        )
        await store.put(
            asset.storage_key, staged.path, mime_type=asset.mime_type, sha256=asset.sha256
        )
    finally:
        await asyncio.to_thread(staged.path.unlink, missing_ok=True)  # no-op once moved
    try:
        async with _db(request).unit_of_work(tenant_id=principal.workspace_id) as uow:
            stored = await MediaRepository(uow).add(asset)
            await uow.commit()
    except BaseException:
        await store.delete(asset.storage_key)  # no record, no bytes
        raise
    return MediaEnvelope(media=MediaOut.of(stored))


@router.get(
    "",
    response_model=MediaPageOut,
    response_model_by_alias=True,
    summary="The media library, newest first (cursor pagination)",
)
async def list_media(
    request: Request,
    principal: Reader,
    kind: Literal["image", "gif", "video"] | None = None,
    cursor: Annotated[str | None, Query(max_length=512)] = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
) -> MediaPageOut:
    async with _db(request).unit_of_work(tenant_id=principal.workspace_id) as uow:
        try:
            page = await MediaRepository(uow).page(kind=kind, cursor=cursor, limit=limit)
        except (ValueError, TypeError):
            raise ValidationFailed(
                "malformed cursor",
                details=[{"field": "cursor", "message": "malformed cursor", "type": "cursor"}],
            ) from None
    return MediaPageOut(media=[MediaOut.of(a) for a in page.items], next_cursor=page.next_cursor)


@router.get("/{media_id}", response_model=MediaEnvelope, response_model_by_alias=True)
async def get_media(media_id: UUID, request: Request, principal: Reader) -> MediaEnvelope:
    async with _db(request).unit_of_work(tenant_id=principal.workspace_id) as uow:
        asset = await MediaRepository(uow).get(str(media_id))
    if asset is None:
        raise NotFound("media asset not found")
    return MediaEnvelope(media=MediaOut.of(asset))


@router.delete(
    "/{media_id}",
    status_code=204,
    summary="Delete an asset (409 while a pending, scheduled or publishing post uses it)",
)
async def delete_media(media_id: UUID, request: Request, principal: Updater) -> Response:
    async with _db(request).unit_of_work(tenant_id=principal.workspace_id) as uow:
        repo = MediaRepository(uow)
        # The row lock orders this after any schedule that share-locked the asset.
        asset = await repo.get(str(media_id), for_update=True)
        if asset is None:
            raise NotFound("media asset not found")
        users = await repo.users(asset.id)
        if users:
            raise Conflict(
                "the asset is used by posts waiting to be published; "
                "remove it from them or unschedule them first",
                details={"postIds": users},
            )
        await repo.remove(asset.id)
        await uow.commit()
    try:
        await links(request).store.delete(asset.storage_key)
    except Exception:  # the record is gone; stray bytes are only a storage cost
        log.warning("media bytes not deleted", extra={"fields": {"mediaId": asset.id}})
    return Response(status_code=204)


@files_router.get(
    f"{FILES_PATH}/{{media_id}}",
    summary="An asset's bytes for a signed, unexpired URL (local storage only)",
    response_class=FileResponse,
)
async def media_file(
    media_id: UUID,
    request: Request,
    expires: Annotated[str | None, Query(max_length=20)] = None,
    sig: Annotated[str | None, Query(max_length=128)] = None,
) -> FileResponse:
    store = links(request).store
    if not isinstance(store, LocalMediaStore):
        raise NotFound("media files are served by the object store")
    # The signature is checked before anything is looked up: no existence oracle.
    if (
        not expires
        or not (expires.isascii() and expires.isdigit())  # "²".isdigit() is True
        or not sig
        or not verify_file_signature(store.secret, str(media_id), int(expires), sig)
    ):
        raise Forbidden("invalid or expired media signature")
    async with _db(request).unit_of_work(system=True) as uow:
        asset = await asset_by_id(uow.session, str(media_id))
    if asset is None or asset.storage != store.kind:
        raise NotFound("media asset not found")
    path = store.path(asset.storage_key)
    if not await asyncio.to_thread(path.is_file):
        raise NotFound("media asset not found")
    max_age = max(0, int(expires) - int(time.time()))
    return FileResponse(
        path,
        media_type=asset.mime_type,
        headers={"Cache-Control": f"private, max-age={max_age}"},
    )


def _sweep_staging(staging: Path) -> None:
    """Staged uploads a crash left behind (a normal upload moves or removes its own)."""
    cutoff = time.time() - STALE_STAGING_SECONDS
    for part in staging.glob("*.part") if staging.is_dir() else ():
        with contextlib.suppress(OSError):
            if part.stat().st_mtime < cutoff:
                part.unlink()


def install(runtime: ServiceRuntime, settings: PublishingSettings) -> MediaLinks:
    """Wire media into the service: the store, the routes, and `runtime.media` (used by the
    posts API and the dispatcher)."""
    store = build_store(settings)
    media_links = MediaLinks(store, settings.media_url_ttl_seconds)
    runtime.media = media_links  # type: ignore[attr-defined]
    runtime.include_router(router)
    runtime.include_router(files_router)

    async def sweep() -> None:
        await asyncio.to_thread(_sweep_staging, settings.media_root / STAGING)

    runtime.on_startup(sweep)
    runtime.on_shutdown(store.close)
    return media_links
