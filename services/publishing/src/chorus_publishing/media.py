"""Media assets and how posts reference them (pure, no I/O).

A post names assets by id in `content.media` and, per target, `customContent.media`. An id
that is unknown or another workspace's reads the same (never leak existence): 422 naming
the field. An asset a post still needs — waiting for approval, scheduled, or being
published — cannot be deleted (409); a draft keeps a dangling id and fails validation when
it is scheduled.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from chorus_contracts.events.connector import MediaRef
from chorus_contracts.events.publishing import PostStatus
from chorus_publishing import media_probe, rules
from chorus_publishing.domain import Post
from chorus_runtime.errors import ValidationFailed

IN_USE = (PostStatus.PENDING_APPROVAL, PostStatus.SCHEDULED, PostStatus.PUBLISHING)


@dataclass(frozen=True)
class MediaAsset:
    id: str
    workspace_id: str
    kind: str
    mime_type: str
    size_bytes: int
    sha256: str
    storage: str
    storage_key: str
    width: int | None = None
    height: int | None = None
    duration_seconds: float | None = None
    filename: str | None = None
    uploaded_by: str | None = None
    created_at: datetime | None = None

    def info(self) -> rules.MediaInfo:
        return rules.MediaInfo(
            id=self.id,
            kind=self.kind,
            mime_type=self.mime_type,
            size_bytes=self.size_bytes,
            width=self.width,
            height=self.height,
            duration_seconds=self.duration_seconds,
        )

    def ref(self, url: str) -> MediaRef:
        return MediaRef(
            media_id=uuid.UUID(self.id),
            url=url,
            mime_type=self.mime_type,
            width=self.width,
            height=self.height,
            duration_seconds=self.duration_seconds,
        )


def new_asset(
    *,
    workspace_id: str,
    uploaded_by: str | None,
    probe: media_probe.Probe,
    size_bytes: int,
    sha256: str,
    storage: str,
    filename: str | None,
) -> MediaAsset:
    asset_id = str(uuid.uuid4())
    return MediaAsset(
        id=asset_id,
        workspace_id=workspace_id,
        kind=probe.kind,
        mime_type=probe.mime_type,
        size_bytes=size_bytes,
        sha256=sha256,
        storage=storage,
        storage_key=storage_key(workspace_id, asset_id, probe.mime_type),
        width=probe.width,
        height=probe.height,
        duration_seconds=probe.duration_seconds,
        filename=clean_filename(filename),
        uploaded_by=uploaded_by,
    )


def storage_key(workspace_id: str, asset_id: str, mime_type: str) -> str:
    """Our own ids only: nothing the client sent reaches a path or an object key."""
    return f"{workspace_id}/{asset_id}{media_probe.EXTENSIONS.get(mime_type, '')}"


def clean_filename(name: str | None) -> str | None:
    """The client's file name, for display only: last path part, printable, bounded."""
    if not name:
        return None
    base = name.replace("\\", "/").rsplit("/", 1)[-1]
    base = "".join(ch for ch in base if ch.isprintable()).strip()
    return base[:255] or None


def references(post: Post) -> dict[str, list[str]]:
    """Each field of the post that names media → the ids it names, in order."""
    out: dict[str, list[str]] = {}
    if post.content.media_ids:
        out["content.media"] = list(post.content.media_ids)
    for i, t in enumerate(post.targets):
        custom: dict[str, Any] = t.custom or {}
        ids = custom.get("media_ids")
        if ids:
            out[f"platforms.{i}.customContent.media"] = [str(m) for m in ids]
    return out


def referenced_ids(post: Post) -> list[str]:
    seen: dict[str, None] = {}
    for ids in references(post).values():
        for m in ids:
            seen.setdefault(m, None)
    return list(seen)


def check_known(post: Post, known: set[str]) -> None:
    """422 naming every field that refers to an asset this workspace does not have."""
    details = [
        {
            "field": field,
            "rule": "unknown_media",
            "message": "no such media asset in this workspace",
            "mediaId": m,
        }
        for field, ids in references(post).items()
        for m in ids
        if m not in known
    ]
    if details:
        raise ValidationFailed("the post refers to unknown media", details=details)
