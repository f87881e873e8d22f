"""The calendar, GET /api/v1/posts (component): filters by status, platform, dates, campaign
and tag; keyset pagination that neither skips nor repeats; bad input is a 422 naming the
parameter; another workspace's posts never appear."""

from __future__ import annotations

import base64
import json
import os
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from publishing_testkit import Publishing

pytestmark = pytest.mark.component

BASE = (datetime.now(UTC) + timedelta(days=3)).replace(microsecond=0)


def day(n: float) -> datetime:
    return BASE + timedelta(days=n)


async def make(
    p: Publishing, workspace: str, *platforms: str, at: datetime | None = None, **extra: Any
) -> dict[str, Any]:
    if at is not None:
        extra["scheduledAt"] = at.isoformat()
    resp = await p.client.post(
        "/api/v1/posts",
        json=await p.body(workspace, *platforms, **extra),
        headers=p.headers(workspace),
    )
    assert resp.status_code == 201, resp.text
    return resp.json()["post"]  # type: ignore[no-any-return]


async def listing(p: Publishing, workspace: str, **params: Any) -> Any:
    return await p.client.get(
        "/api/v1/posts", params=params, headers=p.headers(workspace, "viewer")
    )


async def ids(p: Publishing, workspace: str, **params: Any) -> list[str]:
    resp = await listing(p, workspace, **params)
    assert resp.status_code == 200, resp.text
    body = resp.json()
    assert body["nextCursor"] is None
    assert {post["workspaceId"] for post in body["posts"]} <= {workspace}
    return [post["id"] for post in body["posts"]]


async def all_pages(p: Publishing, workspace: str, limit: int) -> list[list[str]]:
    pages: list[list[str]] = []
    cursor: str | None = None
    while True:
        params: dict[str, Any] = {"limit": limit}
        if cursor:
            params["cursor"] = cursor
        resp = await listing(p, workspace, **params)
        assert resp.status_code == 200, resp.text
        body = resp.json()
        pages.append([post["id"] for post in body["posts"]])
        cursor = body["nextCursor"]
        if cursor is None:
            return pages
        assert len(pages) < 10, "pagination does not end"


def cursor_of(key: Any) -> str:
    return base64.urlsafe_b64encode(json.dumps(key).encode()).decode().rstrip("=")


def assert_invalid(resp: Any, field: str, kind: str | None = None) -> None:
    assert resp.status_code == 422, resp.text
    err = resp.json()["error"]
    assert err["code"] == "VALIDATION_ERROR"
    fields = [(d["field"], d.get("type")) for d in err["details"]]
    assert any(f == field and (kind is None or k == kind) for f, k in fields), fields


@contextmanager
def local_timezone(name: str) -> Iterator[None]:
    """The process's local zone (what naive `datetime` calls use), restored afterwards."""
    previous = os.environ.get("TZ")
    os.environ["TZ"] = name
    time.tzset()
    try:
        yield
    finally:
        if previous is None:
            del os.environ["TZ"]
        else:
            os.environ["TZ"] = previous
        time.tzset()


@pytest.fixture
async def calendar(publishing: Publishing) -> dict[str, Any]:
    """A workspace with a small, varied calendar, and a neighbour with look-alike posts."""
    ws = str(uuid.uuid4())
    other = str(uuid.uuid4())
    posts = {
        "a": await make(publishing, ws, "x", at=day(1), campaign="spring", tags=["launch"]),
        "b": await make(publishing, ws, "linkedin", at=day(2), campaign="spring", tags=["promo"]),
        "c": await make(
            publishing, ws, "x", "linkedin", campaign="autumn", tags=["launch", "promo"]
        ),
        "d": await make(publishing, ws, "threads", at=day(10)),
        "e": await make(publishing, ws, "x", tags=["launch"]),
    }
    now = await publishing.client.post(
        f"/api/v1/posts/{posts['e']['id']}/publish", headers=publishing.headers(ws)
    )
    assert now.status_code == 202, now.text
    for platform in ("x", "linkedin", "threads"):
        await make(publishing, other, platform, at=day(1), campaign="spring", tags=["launch"])
        await make(publishing, other, platform, campaign="autumn", tags=["promo"])
    return {"ws": ws, "other": other, **{k: v["id"] for k, v in posts.items()}}


async def test_the_whole_calendar_in_order(
    publishing: Publishing, calendar: dict[str, Any]
) -> None:
    c = calendar
    # Scheduled by time, then unscheduled ones (drafts, published-now) by creation.
    assert await ids(publishing, c["ws"]) == [c["a"], c["b"], c["d"], c["c"], c["e"]]
    assert len(await ids(publishing, c["other"])) == 6


FILTERS: list[tuple[dict[str, str], list[str]]] = [
    ({"status": "scheduled"}, ["a", "b", "d"]),
    ({"status": "draft"}, ["c"]),
    ({"status": "publishing"}, ["e"]),
    ({"status": "published"}, []),
    ({"platform": "x"}, ["a", "c", "e"]),
    ({"platform": "linkedin"}, ["b", "c"]),
    ({"platform": "threads"}, ["d"]),
    ({"platform": "tiktok"}, []),
    ({"campaign": "spring"}, ["a", "b"]),
    ({"campaign": "autumn"}, ["c"]),
    ({"tag": "launch"}, ["a", "c", "e"]),
    ({"tag": "promo"}, ["b", "c"]),
    ({"tag": "LAUNCH"}, []),
    ({"platform": "x", "tag": "launch", "status": "scheduled"}, ["a"]),
    ({"campaign": "spring", "platform": "linkedin"}, ["b"]),
]


async def test_filters(publishing: Publishing, calendar: dict[str, Any]) -> None:
    for params, expected in FILTERS:
        got = await ids(publishing, calendar["ws"], **params)
        assert got == [calendar[k] for k in expected], params


async def test_date_window(publishing: Publishing, calendar: dict[str, Any]) -> None:
    c = calendar
    window = {"startDate": day(1.5).isoformat(), "endDate": day(5).isoformat()}
    assert await ids(publishing, c["ws"], **window) == [c["b"]]
    # The start is inclusive, the end exclusive.
    exact = {"startDate": day(1).isoformat(), "endDate": day(2).isoformat()}
    assert await ids(publishing, c["ws"], **exact) == [c["a"]]
    # Any offset names the same instants.
    pacific = day(1).astimezone(timezone(timedelta(hours=-7))).isoformat()
    assert pacific.endswith("-07:00")
    assert await ids(publishing, c["ws"], startDate=pacific, endDate=day(30).isoformat()) == [
        c["a"],
        c["b"],
        c["d"],
    ]
    assert await ids(publishing, c["ws"], startDate=day(3).isoformat()) == [c["d"]]
    assert await ids(publishing, c["ws"], endDate=day(1.5).isoformat()) == [c["a"]]
    assert await ids(publishing, c["ws"], startDate=day(20).isoformat()) == []


async def test_cursor_pages_through_25_posts_without_gaps_or_repeats(
    publishing: Publishing,
) -> None:
    ws = str(uuid.uuid4())
    made = []
    for i in range(15):  # some share a time: the order falls back to creation, then id
        made.append(await make(publishing, ws, "x", at=day(i // 3)))
    for _ in range(10):
        made.append(await make(publishing, ws, "linkedin"))
    await make(publishing, str(uuid.uuid4()), "x", at=day(0))  # a neighbour's post

    pages = await all_pages(publishing, ws, limit=10)
    assert [len(page) for page in pages] == [10, 10, 5]
    seen = [pid for page in pages for pid in page]
    assert len(set(seen)) == 25
    assert seen == [p["id"] for p in made], "scheduled by time, then drafts by creation"
    assert seen == await ids(publishing, ws, limit=200)

    exact = await all_pages(publishing, ws, limit=5)
    assert [len(page) for page in exact] == [5] * 5, "no empty page after an exact fit"


async def test_cursor_pages_through_drafts_in_any_server_time_zone(
    publishing: Publishing,
) -> None:
    """The drafts' sort key is the end of year 9999 UTC: resolving the cursor must not depend
    on the server's local zone (east of UTC, that instant's local date is in year 10000)."""
    ws = str(uuid.uuid4())
    made = [await make(publishing, ws, "x") for _ in range(5)]
    for zone in ("Asia/Tokyo", "America/New_York", "UTC"):
        with local_timezone(zone):
            pages = await all_pages(publishing, ws, limit=2)
        assert [pid for page in pages for pid in page] == [p["id"] for p in made], zone


async def test_a_page_never_shows_another_workspaces_posts(
    publishing: Publishing, calendar: dict[str, Any]
) -> None:
    c = calendar
    ours = set(await ids(publishing, c["ws"]))
    theirs = set(await ids(publishing, c["other"]))
    assert ours and theirs and not ours & theirs
    # A cursor taken from the neighbour's calendar still only pages through ours.
    first = (await listing(publishing, c["other"], limit=1)).json()
    mine = await listing(publishing, c["ws"], cursor=first["nextCursor"], limit=200)
    assert mine.status_code == 200, mine.text
    assert {p["workspaceId"] for p in mine.json()["posts"]} <= {c["ws"]}


MALFORMED_CURSORS = {
    "not base64": "garbage!!",
    "not json": "bm90IGpzb24",
    "too short": cursor_of([1, 2]),
    "an object": cursor_of({"a": 1}),
    "not times": cursor_of(["x", "y", "z"]),
    "no creation time": cursor_of([None, None, str(uuid.uuid4())]),
    "id not a uuid": cursor_of([None, "2026-01-01T00:00:00+00:00", "not-a-uuid"]),
    "id a number": cursor_of([None, "2026-01-01T00:00:00+00:00", 42]),
    "naive schedule": cursor_of(
        ["2026-01-01T00:00:00", "2026-01-01T00:00:00+00:00", str(uuid.uuid4())]
    ),
    "naive creation": cursor_of([None, "2026-01-01T00:00:00", str(uuid.uuid4())]),
}


@pytest.mark.parametrize("case", list(MALFORMED_CURSORS))
async def test_a_malformed_cursor_is_422(publishing: Publishing, case: str) -> None:
    resp = await listing(publishing, str(uuid.uuid4()), cursor=MALFORMED_CURSORS[case])
    assert_invalid(resp, "cursor", "invalid_cursor")


async def test_bad_query_parameters_are_422(publishing: Publishing) -> None:
    ws = str(uuid.uuid4())
    start = day(1)
    cases: list[tuple[dict[str, Any], str, str | None]] = [
        ({"startDate": "2030-01-01T00:00:00"}, "startDate", "naive_datetime"),
        ({"endDate": "2030-01-01T00:00:00"}, "endDate", "naive_datetime"),
        (
            {"startDate": start.isoformat(), "endDate": start.isoformat()},
            "endDate",
            "invalid_range",
        ),
        (
            {"startDate": start.isoformat(), "endDate": (start - timedelta(hours=1)).isoformat()},
            "endDate",
            "invalid_range",
        ),
        ({"startDate": "yesterday"}, "query.startDate", None),
        ({"status": "archived"}, "query.status", None),
        ({"limit": 0}, "query.limit", None),
        ({"limit": 201}, "query.limit", None),
        ({"cursor": "c" * 513}, "query.cursor", None),
    ]
    for params, field, kind in cases:
        assert_invalid(await listing(publishing, ws, **params), field, kind)


async def test_listing_needs_read_permission(publishing: Publishing) -> None:
    resp = await publishing.client.get(
        "/api/v1/posts", headers=publishing.headers(str(uuid.uuid4()), permissions=[])
    )
    assert resp.status_code == 403, resp.text
    assert resp.json()["error"]["details"] == {"required": ["post:read"]}
