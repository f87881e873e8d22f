"""`/api/v1/media` (component, real Postgres, files on a temporary disk): upload with the
type read from the bytes and dimensions/duration recorded, list/get/delete, every bad input
a 4xx, roles, and tenant isolation."""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from media_testkit import media_service, upload, upload_ok
from publishing_testkit import Publishing

from chorus_testing.auth import TestTokens
from chorus_testing.media_files import gif, jpeg, mp4, png, webp_vp8x
from chorus_testing.postgres import ServiceDatabase

pytestmark = pytest.mark.component

IMAGE_LIMIT = 64 * 1024
VIDEO_LIMIT = 256 * 1024


@pytest.fixture
async def media(
    publishing_db: ServiceDatabase, tokens: TestTokens, tmp_path: Path
) -> AsyncIterator[Publishing]:
    async with media_service(
        publishing_db,
        tokens,
        tmp_path / "media",
        media_max_image_bytes=IMAGE_LIMIT,
        media_max_video_bytes=VIDEO_LIMIT,
    ) as p:
        yield p


def stored_files(p: Publishing) -> list[Path]:
    root = p.runtime.settings.media_root  # type: ignore[union-attr]
    return sorted(f for f in root.rglob("*") if f.is_file())


def error(resp: object) -> dict[str, object]:
    body = resp.json()  # type: ignore[attr-defined]
    assert set(body["error"]) >= {"code", "message", "details", "timestamp", "requestId"}
    return body["error"]  # type: ignore[no-any-return]


# -- upload -------------------------------------------------------------------------------


async def test_png_upload_records_type_dimensions_size_and_checksum(media: Publishing) -> None:
    ws = str(uuid.uuid4())
    data = png(64, 48)
    asset = await upload_ok(media, ws, data, filename="dir/../logo.png", content_type="image/png")
    assert asset["kind"] == "image"
    assert asset["mimeType"] == "image/png"
    assert (asset["width"], asset["height"]) == (64, 48)
    assert asset["durationSeconds"] is None
    assert asset["sizeBytes"] == len(data)
    assert asset["sha256"] == hashlib.sha256(data).hexdigest()
    assert asset["filename"] == "logo.png", "display name only, never a path"
    assert asset["workspaceId"] == ws
    (path,) = stored_files(media)
    assert path.read_bytes() == data
    assert path.parent.name == ws and path.name == f"{asset['id']}.png", "our ids, not theirs"


async def test_jpeg_gif_and_webp_uploads_record_their_dimensions(media: Publishing) -> None:
    ws = str(uuid.uuid4())
    photo = await upload_ok(media, ws, jpeg(1080, 1350, exif_bytes=2000), content_type="image/jpg")
    assert (photo["mimeType"], photo["width"], photo["height"]) == ("image/jpeg", 1080, 1350)
    anim = await upload_ok(media, ws, gif(320, 240))
    assert (anim["kind"], anim["width"], anim["height"]) == ("gif", 320, 240)
    web = await upload_ok(media, ws, webp_vp8x(1200, 628), content_type="image/webp")
    assert (web["mimeType"], web["width"], web["height"]) == ("image/webp", 1200, 628)


async def test_mp4_and_quicktime_uploads_record_duration_and_frame_size(media: Publishing) -> None:
    ws = str(uuid.uuid4())
    clip = await upload_ok(
        media, ws, mp4(42.5, width=1080, height=1920, moov_last=True), content_type="video/mp4"
    )
    assert clip["kind"] == "video" and clip["mimeType"] == "video/mp4"
    assert clip["durationSeconds"] == 42.5
    assert (clip["width"], clip["height"]) == (1080, 1920)
    # A browser labels .mov files video/quicktime whatever their brand: same container.
    mov = await upload_ok(media, ws, mp4(3, brand=b"qt  "), content_type="video/mp4")
    assert (mov["mimeType"], mov["durationSeconds"]) == ("video/quicktime", 3.0)


@pytest.mark.parametrize(
    ("data", "content_type", "rule"),
    [
        (b"%PDF-1.7 not an image at all", "image/png", "unsupported_type"),
        (b"<svg xmlns='http://www.w3.org/2000/svg'/>", "image/svg+xml", "unsupported_type"),
        (mp4(1, brand=b"heic"), "image/heic", "unsupported_type"),
        (png(4, 4), "image/jpeg", "type_mismatch"),
        (jpeg(4, 4), "video/mp4", "type_mismatch"),
        (b"", "image/png", "empty"),
        (b"\x89PNG\r\n\x1a\n" + b"\x00" * 30, "image/png", "unreadable"),  # no IHDR
        # A forged header: 4294967295 px wide (would overflow the integer column).
        (png(1, 1)[:16] + b"\xff\xff\xff\xff" + png(1, 1)[20:], "image/png", "unreadable"),
        (b"\x00\x00\x00\x10ftypisom\x00\x00\x02\x00" + b"\x00" * 20, "video/mp4", "unreadable"),
    ],
)
async def test_bytes_that_are_not_an_allowed_readable_type_are_422(
    media: Publishing, data: bytes, content_type: str, rule: str
) -> None:
    ws = str(uuid.uuid4())
    resp = await upload(media, ws, data, content_type=content_type)
    assert resp.status_code == 422, resp.text
    err = error(resp)
    assert err["code"] == "VALIDATION_ERROR"
    (detail,) = err["details"]  # type: ignore[misc]
    assert detail["field"] == "file" and detail["rule"] == rule
    assert stored_files(media) == [], "nothing kept, staging cleaned"
    assert await media.scalar("SELECT count(*) FROM media_assets") == 0


async def test_files_over_the_limit_for_their_type_are_413(media: Publishing) -> None:
    ws = str(uuid.uuid4())
    big_png = png(8, 8) + b"\x00" * IMAGE_LIMIT  # trailing bytes: still a PNG by its magic
    resp = await upload(media, ws, big_png)
    assert resp.status_code == 413, resp.text
    err = error(resp)
    assert err["code"] == "PAYLOAD_TOO_LARGE"
    assert err["details"] == {"field": "file", "limitBytes": IMAGE_LIMIT, "mimeType": "image/png"}
    # The same size is fine for a video, whose limit is larger.
    ok = await upload(media, ws, mp4(1, mdat_bytes=IMAGE_LIMIT + 1))
    assert ok.status_code == 201, ok.text
    too_long = await upload(media, ws, mp4(1, mdat_bytes=VIDEO_LIMIT))
    assert too_long.status_code == 413
    assert error(too_long)["details"]["limitBytes"] == VIDEO_LIMIT  # type: ignore[index]
    assert len(stored_files(media)) == 1, "refused uploads leave nothing behind"


async def test_a_declared_body_beyond_every_limit_is_refused_before_reading(
    media: Publishing,
) -> None:
    resp = await media.client.post(
        "/api/v1/media",
        content=b"--b\r\n",
        headers={
            **media.headers(str(uuid.uuid4())),
            "content-type": "multipart/form-data; boundary=b",
            "content-length": str(VIDEO_LIMIT * 4),
        },
    )
    assert resp.status_code == 413
    assert error(resp)["code"] == "PAYLOAD_TOO_LARGE"


async def test_missing_file_field_and_wrong_encodings_are_4xx(media: Publishing) -> None:
    ws = str(uuid.uuid4())
    headers = media.headers(ws)
    no_file = await media.client.post(
        "/api/v1/media", data={"caption": "hello"}, files={"other": ("a.png", png(2, 2))},
        headers=headers,
    )  # fmt: skip
    assert no_file.status_code == 422, no_file.text
    assert error(no_file)["details"] == [
        {"field": "file", "rule": "required", "message": "a file is required"}
    ]
    two = await media.client.post(
        "/api/v1/media",
        files=[("file", ("a.png", png(2, 2))), ("file", ("b.png", png(2, 2)))],
        headers=headers,
    )
    assert two.status_code == 422 and error(two)["details"][0]["rule"] == "single_file"  # type: ignore[index]
    raw = await media.client.post(
        "/api/v1/media", content=png(2, 2), headers={**headers, "content-type": "image/png"}
    )
    assert raw.status_code == 415 and error(raw)["code"] == "UNSUPPORTED_MEDIA_TYPE"
    broken = await media.client.post(
        "/api/v1/media",
        content=b"--b\r\nno headers end here",
        headers={**headers, "content-type": "multipart/form-data; boundary=b"},
    )
    assert broken.status_code == 422, broken.text
    assert await media.scalar("SELECT count(*) FROM media_assets") == 0


# -- list / get / delete ------------------------------------------------------------------


async def test_list_is_newest_first_with_a_cursor_and_a_kind_filter(media: Publishing) -> None:
    ws = str(uuid.uuid4())
    ids = [(await upload_ok(media, ws, png(i + 1, 1)))["id"] for i in range(5)]
    video = (await upload_ok(media, ws, mp4(2)))["id"]
    headers = media.headers(ws, "viewer")  # viewers may read the library
    seen: list[str] = []
    cursor = None
    for _ in range(4):
        params = {"limit": 2, **({"cursor": cursor} if cursor else {})}
        page = (await media.client.get("/api/v1/media", params=params, headers=headers)).json()
        seen += [m["id"] for m in page["media"]]
        cursor = page["nextCursor"]
        if cursor is None:
            break
    assert seen == [video, *reversed(ids)]
    videos = await media.client.get("/api/v1/media", params={"kind": "video"}, headers=headers)
    assert [m["id"] for m in videos.json()["media"]] == [video]
    bad = await media.client.get("/api/v1/media", params={"cursor": "garbage"}, headers=headers)
    assert bad.status_code == 422 and error(bad)["details"][0]["field"] == "cursor"  # type: ignore[index]
    bad_kind = await media.client.get("/api/v1/media", params={"kind": "pdf"}, headers=headers)
    assert bad_kind.status_code == 422


async def test_get_and_delete_remove_the_record_and_the_bytes(media: Publishing) -> None:
    ws = str(uuid.uuid4())
    asset = await upload_ok(media, ws, png(10, 10))
    url = f"/api/v1/media/{asset['id']}"
    got = await media.client.get(url, headers=media.headers(ws, "viewer"))
    assert got.status_code == 200 and got.json()["media"] == asset
    assert len(stored_files(media)) == 1
    gone = await media.client.delete(
        f"/api/v1/media/{asset['id']}", headers=media.headers(ws, "editor")
    )
    assert gone.status_code == 204, gone.text
    assert stored_files(media) == []
    again = await media.client.get(f"/api/v1/media/{asset['id']}", headers=media.headers(ws))
    assert again.status_code == 404 and error(again)["code"] == "NOT_FOUND"
    twice = await media.client.delete(f"/api/v1/media/{asset['id']}", headers=media.headers(ws))
    assert twice.status_code == 404
    not_a_uuid = await media.client.get("/api/v1/media/not-a-uuid", headers=media.headers(ws))
    assert not_a_uuid.status_code == 422


async def test_viewers_cannot_upload_or_delete(media: Publishing) -> None:
    ws = str(uuid.uuid4())
    denied = await upload(media, ws, png(2, 2), role="viewer")
    assert denied.status_code == 403 and error(denied)["code"] == "FORBIDDEN"
    asset = await upload_ok(media, ws, png(2, 2), role="editor")
    no = await media.client.delete(
        f"/api/v1/media/{asset['id']}", headers=media.headers(ws, "viewer")
    )
    assert no.status_code == 403
    assert await media.scalar("SELECT count(*) FROM media_assets") == 1
    anonymous = await media.client.get("/api/v1/media")
    assert anonymous.status_code == 401


async def test_another_workspace_sees_nothing_and_deletes_nothing(media: Publishing) -> None:
    mine, theirs = str(uuid.uuid4()), str(uuid.uuid4())
    asset = await upload_ok(media, mine, png(3, 3))
    await upload_ok(media, theirs, gif(1, 1))
    for method in ("GET", "DELETE"):
        resp = await media.client.request(
            method, f"/api/v1/media/{asset['id']}", headers=media.headers(theirs)
        )
        assert resp.status_code == 404, (method, resp.text)
    listed = await media.client.get("/api/v1/media", headers=media.headers(theirs))
    assert [m["kind"] for m in listed.json()["media"]] == ["gif"]
    mine_listed = await media.client.get("/api/v1/media", headers=media.headers(mine))
    assert [m["id"] for m in mine_listed.json()["media"]] == [asset["id"]]
    assert len(stored_files(media)) == 2, "the other workspace's delete removed nothing"
