"""Posts and their media (component, real Postgres): the platform rules see the real asset
records, foreign or unknown ids are a 422 naming the field, an asset a scheduled post needs
cannot be deleted, and the dispatcher's commands carry media refs whose signed URL serves
the bytes — and nothing for a tampered or expired signature."""

from __future__ import annotations

import asyncio
import dataclasses
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import pytest
from media_testkit import MEDIA_BASE_URL, media_service, upload_ok
from publishing_testkit import Publishing

from chorus_contracts.events.common import Platform
from chorus_contracts.events.publishing import PostStatus
from chorus_publishing import domain, post_media
from chorus_publishing.media_store import file_signature
from chorus_publishing.repository import PostRepository
from chorus_testing.auth import TestTokens
from chorus_testing.media_files import jpeg, mp4, png
from chorus_testing.postgres import ServiceDatabase

pytestmark = pytest.mark.component


@pytest.fixture
async def media(
    publishing_db: ServiceDatabase, tokens: TestTokens, tmp_path: Path
) -> AsyncIterator[Publishing]:
    async with media_service(publishing_db, tokens, tmp_path / "media") as p:
        yield p


def soon() -> datetime:
    return datetime.now(UTC) + timedelta(minutes=5)


async def post(
    p: Publishing,
    ws: str,
    *platforms: str,
    media_ids: list[str] | None = None,
    custom: dict[int, dict[str, Any]] | None = None,
    at: datetime | None = None,
    **content: Any,
) -> Any:
    body = await p.body(ws, *platforms, **({"scheduledAt": at.isoformat()} if at else {}))
    body["content"].update(content)
    if media_ids is not None:
        body["content"]["media"] = media_ids
    for i, override in (custom or {}).items():
        body["platforms"][i]["customContent"] = override
    return await p.client.post("/api/v1/posts", json=body, headers=p.headers(ws))


def rules_of(resp: Any) -> set[tuple[str | None, str, str]]:
    assert resp.status_code == 422, resp.text
    return {(d.get("platform"), d["field"], d["rule"]) for d in resp.json()["error"]["details"]}


# -- platform rules on real assets --------------------------------------------------------


async def test_instagram_needs_an_image_or_video_asset(media: Publishing) -> None:
    ws = str(uuid.uuid4())
    no_media = await post(media, ws, "instagram", at=soon())
    assert ("instagram", "media", "required") in rules_of(no_media)
    image = await upload_ok(media, ws, jpeg(1080, 1080))
    ok = await post(media, ws, "instagram", media_ids=[image["id"]], at=soon())
    assert ok.status_code == 201, ok.text
    assert ok.json()["post"]["status"] == "scheduled"
    assert ok.json()["post"]["content"]["media"] == [image["id"]]


async def test_tiktok_and_youtube_need_a_video_asset_and_limits_use_its_duration(
    media: Publishing,
) -> None:
    ws = str(uuid.uuid4())
    image = await upload_ok(media, ws, png(720, 1280))
    short = await upload_ok(media, ws, mp4(30, width=720, height=1280))
    long = await upload_ok(media, ws, mp4(601))
    assert ("tiktok", "media", "video_required") in rules_of(
        await post(media, ws, "tiktok", media_ids=[image["id"]], at=soon())
    )
    assert ("tiktok", "media", "max_video_duration") in rules_of(
        await post(media, ws, "tiktok", media_ids=[long["id"]], at=soon())
    )
    tiktok = await post(media, ws, "tiktok", media_ids=[short["id"]], at=soon())
    assert tiktok.status_code == 201, tiktok.text
    youtube = await post(media, ws, "youtube", media_ids=[short["id"]], at=soon(), title="Launch")
    assert youtube.status_code == 201, youtube.text


async def test_count_and_mix_limits_count_real_asset_kinds(media: Publishing) -> None:
    ws = str(uuid.uuid4())
    images = [(await upload_ok(media, ws, png(i + 1, 1)))["id"] for i in range(5)]
    video = (await upload_ok(media, ws, mp4(5)))["id"]
    assert ("x", "media", "max_images") in rules_of(
        await post(media, ws, "x", media_ids=images, at=soon())
    )
    assert ("x", "media", "no_mixed_media") in rules_of(
        await post(media, ws, "x", media_ids=[images[0], video], at=soon())
    )
    ok = await post(media, ws, "x", media_ids=images[:4], at=soon())
    assert ok.status_code == 201, ok.text


# -- unknown and foreign ids ----------------------------------------------------------------


async def test_foreign_and_unknown_media_ids_are_the_same_422_naming_the_field(
    media: Publishing,
) -> None:
    ws, other = str(uuid.uuid4()), str(uuid.uuid4())
    mine = (await upload_ok(media, ws, png(2, 2)))["id"]
    foreign = (await upload_ok(media, other, png(2, 2)))["id"]
    unknown = str(uuid.uuid4())
    answers = []
    for bad in (foreign, unknown):
        resp = await post(media, ws, "x", media_ids=[mine, bad])  # even a draft
        assert resp.status_code == 422, resp.text
        err = resp.json()["error"]
        assert err["details"] == [
            {
                "field": "content.media",
                "rule": "unknown_media",
                "message": "no such media asset in this workspace",
                "mediaId": bad,
            }
        ]
        answers.append((err["message"], [d["message"] for d in err["details"]]))
    assert answers[0] == answers[1], "a foreign id reads exactly like a missing one"
    custom = await post(media, ws, "x", "linkedin", custom={1: {"media": [foreign]}})
    assert {d["field"] for d in custom.json()["error"]["details"]} == {
        "platforms.1.customContent.media"
    }
    assert await media.scalar("SELECT count(*) FROM posts") == 0


async def test_an_update_cannot_point_at_another_workspaces_media(media: Publishing) -> None:
    ws, other = str(uuid.uuid4()), str(uuid.uuid4())
    draft = await post(media, ws, "x")
    assert draft.status_code == 201
    foreign = (await upload_ok(media, other, png(2, 2)))["id"]
    body = await media.body(ws, "x")
    body["content"]["media"] = [foreign]
    resp = await media.client.put(
        f"/api/v1/posts/{draft.json()['post']['id']}", json=body, headers=media.headers(ws)
    )
    assert resp.status_code == 422, resp.text
    assert resp.json()["error"]["details"][0]["field"] == "content.media"


# -- deleting assets posts need --------------------------------------------------------------


async def test_an_asset_a_scheduled_post_uses_cannot_be_deleted(media: Publishing) -> None:
    ws = str(uuid.uuid4())
    in_post = (await upload_ok(media, ws, png(2, 2)))["id"]
    in_custom = (await upload_ok(media, ws, png(3, 3)))["id"]
    scheduled = await post(
        media, ws, "x", "linkedin", media_ids=[in_post], custom={1: {"media": [in_custom]}},
        at=soon(),
    )  # fmt: skip
    assert scheduled.status_code == 201, scheduled.text
    post_id = scheduled.json()["post"]["id"]
    for asset in (in_post, in_custom):
        resp = await media.client.delete(f"/api/v1/media/{asset}", headers=media.headers(ws))
        assert resp.status_code == 409, resp.text
        err = resp.json()["error"]
        assert err["code"] == "CONFLICT" and err["details"] == {"postIds": [post_id]}
    unscheduled = await media.client.post(
        f"/api/v1/posts/{post_id}/unschedule", headers=media.headers(ws)
    )
    assert unscheduled.status_code == 200
    # A draft does not hold its media: the delete goes through, and scheduling it later
    # names the missing asset.
    gone = await media.client.delete(f"/api/v1/media/{in_post}", headers=media.headers(ws))
    assert gone.status_code == 204
    again = await media.client.post(
        f"/api/v1/posts/{post_id}/schedule",
        json={"scheduledAt": soon().isoformat()},
        headers=media.headers(ws),
    )
    assert ("x", "media", "unknown_media") in rules_of(again)


async def test_a_delete_racing_a_schedule_waits_for_it_and_then_refuses(
    media: Publishing,
) -> None:
    """The schedule share-locks the assets it validated; the delete's row lock waits for
    that transaction and then sees the scheduled post."""
    ws = str(uuid.uuid4())
    asset = (await upload_ok(media, ws, png(2, 2)))["id"]
    account = await media.connect(ws, "x")
    assert media.runtime is not None and media.runtime.db is not None
    async with media.runtime.db.unit_of_work(tenant_id=ws) as uow:
        draft = domain.new_post(
            workspace_id=ws,
            author_id=None,
            author_role="owner",
            content=domain.Content(text="race", media_ids=(asset,)),
            targets=[(Platform.X, account, None)],
        )
        assert set(await post_media.infos(uow, draft)) == {asset}  # takes the share lock
        deleting = asyncio.create_task(
            media.client.delete(f"/api/v1/media/{asset}", headers=media.headers(ws))
        )
        await asyncio.sleep(0.5)
        assert not deleting.done(), "the delete waits for the scheduling transaction"
        scheduled = dataclasses.replace(
            draft, status=PostStatus.SCHEDULED, scheduled_at=soon(), timezone="UTC"
        )
        await PostRepository(uow).add(scheduled)
        await uow.commit()
    resp = await asyncio.wait_for(deleting, timeout=10)
    assert resp.status_code == 409, resp.text
    assert resp.json()["error"]["details"] == {"postIds": [scheduled.id]}
    assert await media.scalar("SELECT count(*) FROM media_assets") == 1


# -- commands and the signed file URL --------------------------------------------------------


def refs_of(command: Any) -> list[dict[str, Any]]:
    return [m.model_dump(mode="json", by_alias=True) for m in command.content.media]


async def test_dispatched_commands_carry_media_refs_with_a_fetchable_signed_url(
    media: Publishing,
) -> None:
    ws = str(uuid.uuid4())
    photo_bytes, clip_bytes = jpeg(1080, 1350), mp4(14.5, width=1080, height=1920)
    photo = await upload_ok(media, ws, photo_bytes)
    clip = await upload_ok(media, ws, clip_bytes)
    at = soon()
    created = await post(
        media, ws, "instagram", "x", media_ids=[clip["id"], photo["id"]],
        custom={1: {"media": [photo["id"]]}}, at=at,
    )  # fmt: skip
    assert created.status_code == 201, created.text
    assert await media.tick(now=at) == 1
    commands = {c.platform.value: c for c in await media.publish_commands()}
    carousel = refs_of(commands["instagram"])
    assert [r["mediaId"] for r in carousel] == [clip["id"], photo["id"]], "in the post's order"
    assert {k: carousel[0][k] for k in ("mimeType", "width", "height", "durationSeconds")} == {
        "mimeType": "video/mp4",
        "width": 1080,
        "height": 1920,
        "durationSeconds": 14.5,
    }
    assert {k: carousel[1][k] for k in ("mimeType", "width", "height", "durationSeconds")} == {
        "mimeType": "image/jpeg",
        "width": 1080,
        "height": 1350,
        "durationSeconds": None,
    }
    assert [r["mediaId"] for r in refs_of(commands["x"])] == [photo["id"]], "custom media only"

    expected = [(carousel[0], clip_bytes, "video/mp4"), (carousel[1], photo_bytes, "image/jpeg")]
    for ref, data, mime in expected:
        assert ref["url"].startswith(f"{MEDIA_BASE_URL}/media-files/{ref['mediaId']}?")
        fetched = await media.client.get(ref["url"])  # no token: the signature is the key
        assert fetched.status_code == 200, fetched.text
        assert fetched.content == data
        assert fetched.headers["content-type"].startswith(mime)
    # Large videos can be fetched in ranges (resumable downloads).
    partial = await media.client.get(carousel[0]["url"], headers={"range": "bytes=0-9"})
    assert partial.status_code == 206 and partial.content == clip_bytes[:10]

    url = urlsplit(carousel[1]["url"])
    query = {k: v[0] for k, v in parse_qs(url.query).items()}
    assert int(query["expires"]) > int(datetime.now(UTC).timestamp()) + 3000  # TTL ahead

    def variant(**changes: str) -> str:
        return f"{url.path}?{urlencode({**query, **changes})}"

    tampered = ("0" if query["sig"][0] != "0" else "1") + query["sig"][1:]
    other_id = f"/media-files/{carousel[0]['mediaId']}?{url.query}"  # sig of another asset
    malformed = (variant(sig="é" * 64), variant(expires="²"), variant(expires="-1"))
    for bad in (
        variant(sig=tampered),
        variant(expires=str(int(query["expires"]) + 1)),
        other_id,
        *malformed,
    ):
        resp = await media.client.get(bad)
        assert resp.status_code == 403, (bad, resp.text)
        assert resp.json()["error"]["code"] == "FORBIDDEN"
    missing = await media.client.get(url.path)
    assert missing.status_code == 403

    secret = media.runtime.settings.media_signing_secret  # type: ignore[union-attr]
    past = int(datetime.now(UTC).timestamp()) - 1
    expired = variant(expires=str(past), sig=file_signature(secret, photo["id"], past))
    assert (await media.client.get(expired)).status_code == 403
    nobody = str(uuid.uuid4())
    future = int(datetime.now(UTC).timestamp()) + 60
    signed_unknown = f"/media-files/{nobody}?expires={future}&sig=" + file_signature(
        secret, nobody, future
    )
    assert (await media.client.get(signed_unknown)).status_code == 404


async def test_publish_now_and_retries_also_carry_fresh_media_refs(media: Publishing) -> None:
    ws = str(uuid.uuid4())
    image = await upload_ok(media, ws, png(100, 50))
    draft = await post(media, ws, "x", media_ids=[image["id"]])
    assert draft.status_code == 201
    resp = await media.client.post(
        f"/api/v1/posts/{draft.json()['post']['id']}/publish", headers=media.headers(ws)
    )
    assert resp.status_code == 202, resp.text
    (command,) = await media.publish_commands()
    (ref,) = refs_of(command)
    assert (ref["mediaId"], ref["width"], ref["height"]) == (image["id"], 100, 50)
    fetched = await media.client.get(ref["url"])
    assert fetched.status_code == 200 and fetched.content == png(100, 50)
    # No result by the deadline: the re-sent command gets a URL valid from then on.
    later = datetime.now(UTC) + timedelta(hours=2)
    assert await media.tick(now=later) == 1
    _, second = await media.publish_commands()
    assert second.attempt == 2
    (again,) = refs_of(second)
    assert again["mediaId"] == image["id"]
    assert (await media.client.get(again["url"])).content == png(100, 50)


async def test_one_batch_gives_each_workspaces_posts_their_own_media_only(
    media: Publishing,
) -> None:
    """The scheduler looks up a whole batch's assets with one query; each post still gets
    only assets of its own workspace, even if a row names another's asset id."""
    ws_a, ws_b = str(uuid.uuid4()), str(uuid.uuid4())
    photo_a = await upload_ok(media, ws_a, png(64, 32))
    photo_b = await upload_ok(media, ws_b, png(32, 64))
    at = soon()
    made_a = await post(media, ws_a, "x", media_ids=[photo_a["id"]], at=at)
    made_b = await post(media, ws_b, "x", media_ids=[photo_b["id"]], at=at)
    forged = await post(media, ws_b, "x", media_ids=[photo_b["id"]], at=at)
    for resp in (made_a, made_b, forged):
        assert resp.status_code == 201, resp.text
    # The API refuses a foreign id (422); a row written around it must not leak it either.
    await media.scalar(
        "UPDATE posts SET media_ids = ARRAY[CAST(:a AS uuid), CAST(:b AS uuid)] "
        "WHERE id = :id RETURNING 1",
        a=photo_a["id"],
        b=photo_b["id"],
        id=forged.json()["post"]["id"],
    )

    assert await media.tick(now=at) == 3
    refs = {str(c.post_id): refs_of(c) for c in await media.publish_commands()}
    assert [(r["mediaId"], r["width"]) for r in refs[made_a.json()["post"]["id"]]] == [
        (photo_a["id"], 64)
    ]
    assert [(r["mediaId"], r["width"]) for r in refs[made_b.json()["post"]["id"]]] == [
        (photo_b["id"], 32)
    ]
    assert [r["mediaId"] for r in refs[forged.json()["post"]["id"]]] == [photo_b["id"]]
    for r in refs[made_a.json()["post"]["id"]] + refs[made_b.json()["post"]["id"]]:
        assert (await media.client.get(r["url"])).status_code == 200
