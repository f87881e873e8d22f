"""Dashboard numbers against a hand computation on a seeded data set, tenancy, validation,
permissions and exports — through the HTTP API of the service on chdb.

The data set (workspace A, zone America/New_York; workspace B is the other tenant):

account metrics (followers, at the end of each UTC day):
  A1 linkedin: 02-27 1000 | 03-03 1010 then 1020 | 03-07 1050 | 03-09 1040 | 03-12 1100
  A2 x:        03-10 500 | 03-13 530
  B1 (B):      03-10 987654
post metrics (cumulative likes, comments, shares, saves / impressions / reach):
  P1 (X1, A1, li-1, delivered 03-05 14:30Z): 03-05 10,2,1,0/100/80 | 03-06 20,4,2,1/200/150 |
      03-09 30,5,2,1/300/220 then 35,6,3,1/360/250 | 03-12 40,6,3,2/400/270
  P2 (X2, A2, x-2, delivered 03-10 13:00Z):  03-10 5,1,0,0/50/40 | 03-11 15,3,2,0/150/100
  P3 (no post, A1, li-3):                    03-02 7,0,0,0/70/60
  P4 (X4, A1, li-4, delivered 03-10 02:30Z): 03-11 3,1,0,0/40/30
  B-P (B1, bee-post-1):                      03-10 1000,0,0,0/10000/9000
Current period 03-08..03-14, default comparison 03-01..03-07 (UTC days).
"""

from __future__ import annotations

import csv
import io
import json
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from analytics_support import AnalyticsApp, analytics_settings, new_database
from analytics_testkit import (
    account_connected,
    account_metrics,
    audited,
    delivered,
    ingest,
    post_created,
    post_metrics,
    settings_changed,
    workspace_created,
)
from faststream.kafka import TestKafkaBroker

from chorus_analytics.main import build
from chorus_analytics.store import MIGRATIONS, SESSION_SETTINGS
from chorus_contracts.catalog import build_event
from chorus_contracts.events.common import Platform
from chorus_contracts.events.connector import DeliveryFailed, FailureKind
from chorus_runtime.clickhouse import EmbeddedClickHouseClient, migrate_up
from chorus_runtime.service import Role
from chorus_testing.apps import running
from chorus_testing.auth import TestTokens

pytestmark = pytest.mark.integration

CURRENT = {"startDate": "2025-03-08", "endDate": "2025-03-14"}


@dataclass
class Seed:
    a: uuid.UUID
    b: uuid.UUID
    a1: uuid.UUID
    a2: uuid.UUID
    b1: uuid.UUID
    x1: uuid.UUID
    x2: uuid.UUID
    x4: uuid.UUID
    bp: uuid.UUID
    b_event_ids: set[str]
    a_event_count_march: int


def seed_events(s: Seed) -> tuple[list[Any], list[Any]]:
    a, b, a1, a2, b1 = s.a, s.b, s.a1, s.a2, s.b1

    def pm(acc: uuid.UUID, pid: str, when: str, post: uuid.UUID | None, platform: str,
           v: tuple[int, int, int, int, int, int], ws: uuid.UUID = a) -> Any:  # fmt: skip
        likes, comments, shares, saves, impressions, reach = v
        return post_metrics(
            ws,
            acc,
            pid,
            when,
            platform=platform,
            post_id=post,
            likes=likes,
            comments=comments,
            shares=shares,
            saves=saves,
            impressions=impressions,
            reach=reach,
        )

    a_events = [
        workspace_created(a, "UTC"),
        settings_changed(a, "America/New_York", "2025-02-01T00:00:00"),
        account_connected(a, a1, "linkedin", "acme-li"),
        account_connected(a, a2, "x", "acme_x"),
        account_metrics(a, a1, "2025-02-27T10:00:00", 1000),
        account_metrics(a, a1, "2025-03-03T09:00:00", 1010),
        account_metrics(a, a1, "2025-03-03T20:00:00", 1020),
        account_metrics(a, a1, "2025-03-07T12:00:00", 1050),
        account_metrics(a, a1, "2025-03-09T12:00:00", 1040),
        account_metrics(a, a1, "2025-03-12T12:00:00", 1100),
        account_metrics(a, a2, "2025-03-10T08:00:00", 500, platform="x"),
        account_metrics(a, a2, "2025-03-13T08:00:00", 530, platform="x"),
        post_created(a, s.x1, "Spring is here", ["launch", "Old"], "2025-03-04T10:00:00"),
        post_created(a, s.x2, "We launched", ["#Launch", "spring"], "2025-03-09T10:00:00"),
        post_created(a, s.x4, "Late night", ["launch"], "2025-03-09T20:00:00"),
        delivered(a, s.x1, a1, "li-1", "2025-03-05T14:30:00"),
        delivered(a, s.x2, a2, "x-2", "2025-03-10T13:00:00", platform="x"),
        delivered(a, s.x4, a1, "li-4", "2025-03-10T02:30:00"),
        pm(a1, "li-1", "2025-03-05T20:00:00", s.x1, "linkedin", (10, 2, 1, 0, 100, 80)),
        pm(a1, "li-1", "2025-03-06T20:00:00", s.x1, "linkedin", (20, 4, 2, 1, 200, 150)),
        pm(a1, "li-1", "2025-03-09T10:00:00", s.x1, "linkedin", (30, 5, 2, 1, 300, 220)),
        pm(a1, "li-1", "2025-03-09T22:00:00", s.x1, "linkedin", (35, 6, 3, 1, 360, 250)),
        pm(a1, "li-1", "2025-03-12T10:00:00", s.x1, "linkedin", (40, 6, 3, 2, 400, 270)),
        pm(a2, "x-2", "2025-03-10T18:00:00", s.x2, "x", (5, 1, 0, 0, 50, 40)),
        pm(a2, "x-2", "2025-03-11T18:00:00", s.x2, "x", (15, 3, 2, 0, 150, 100)),
        pm(a1, "li-3", "2025-03-02T12:00:00", None, "linkedin", (7, 0, 0, 0, 70, 60)),
        pm(a1, "li-4", "2025-03-11T12:00:00", s.x4, "linkedin", (3, 1, 0, 0, 40, 30)),
        build_event(
            DeliveryFailed(
                command_id=uuid.uuid4(),
                workspace_id=a,
                post_id=uuid.uuid4(),
                target_id=uuid.uuid4(),
                platform=Platform.X,
                account_id=a2,
                attempt=1,
                kind=FailureKind.PERMANENT,
                error_code="REJECTED",
                error_message="no",
                failed_at=datetime_utc("2025-03-11T09:00:00"),
            ),
            source="/tests",
            tenant_id=str(a),
        ),
        audited(a, "POST /api/v1/posts", "2025-03-09T10:00:00", 201, actor="alice"),
        audited(a, "DELETE /api/v1/posts/{post_id}", "2025-03-10T10:00:00", 202, actor="bob"),
        audited(a, "POST /api/v1/posts", "2025-03-11T10:00:00", 422, actor="alice"),
    ]
    b_events = [
        workspace_created(b, "UTC"),
        account_connected(b, b1, "linkedin", "bee"),
        account_metrics(b, b1, "2025-03-10T08:00:00", 987654),
        post_created(b, s.bp, "B secret", ["launch"], "2025-03-09T10:00:00"),
        delivered(b, s.bp, b1, "bee-post-1", "2025-03-10T09:00:00"),
        pm(
            b1,
            "bee-post-1",
            "2025-03-10T20:00:00",
            s.bp,
            "linkedin",
            (1000, 0, 0, 0, 10000, 9000),
            b,
        ),
        audited(b, "POST /api/v1/posts", "2025-03-10T11:00:00", 201, actor="mallory"),
        audited(None, "POST /api/v1/auth/login", "2025-03-10T12:00:00", 401, actor="anon"),
    ]
    return a_events, b_events


def datetime_utc(text: str) -> Any:
    from analytics_testkit import at

    return at(text)


@pytest.fixture(scope="module")
async def seeded(chdb_path: Path) -> AsyncIterator[tuple[str, Seed]]:
    name = new_database()
    client = EmbeddedClickHouseClient(chdb_path, database=name, settings=SESSION_SETTINGS)
    await migrate_up(client, MIGRATIONS)
    ids = [uuid.uuid4() for _ in range(9)]
    seed = Seed(*ids, b_event_ids=set(), a_event_count_march=0)
    a_events, b_events = seed_events(seed)
    await ingest(client, [*a_events, *b_events])
    seed.b_event_ids = {e.id for e in b_events}
    seed.a_event_count_march = sum(1 for e in a_events if e.time.month == 3)
    yield name, seed
    await client.command(f"DROP DATABASE IF EXISTS {name} SYNC")
    await client.close()


@pytest.fixture(scope="module")
async def api(
    chdb_path: Path, seeded: tuple[str, Seed], tokens: TestTokens
) -> AsyncIterator[AnalyticsApp]:
    runtime = build(analytics_settings(chdb_path, seeded[0], export_chunk_rows=3))
    async with (
        TestKafkaBroker(runtime.broker),
        running(runtime, Role.API, verifier=tokens.verifier()) as svc,
    ):
        yield AnalyticsApp(runtime, svc.client, tokens)


@pytest.fixture
def s(seeded: tuple[str, Seed]) -> Seed:
    return seeded[1]


def change(current: float, previous: float, percent: float | None) -> dict[str, Any]:
    return {
        "current": current,
        "previous": previous,
        "change": current - previous,
        "changePercent": percent,
    }


async def test_overview_equals_the_hand_computation(api: AnalyticsApp, s: Seed) -> None:
    body = await api.ok("/overview", s.a, **CURRENT)
    assert body["period"] == {
        "startDate": "2025-03-08",
        "endDate": "2025-03-14",
        "compareStartDate": "2025-03-01",
        "compareEndDate": "2025-03-07",
        "timezone": "UTC",
    }
    assert body["metrics"] == {
        "followers": change(1630, 1050, 55.24),
        "engagement": change(48, 34, 41.18),
        "reach": change(250, 210, 19.05),
        "impressions": change(390, 270, 44.44),
        "posts": change(2, 1, 100.0),
    }
    engagement = {d["date"]: d["engagement"] for d in body["charts"]["engagement"]}
    assert engagement == {
        "2025-03-08": 0,
        "2025-03-09": 18,
        "2025-03-10": 6,
        "2025-03-11": 18,
        "2025-03-12": 6,
        "2025-03-13": 0,
        "2025-03-14": 0,
    }
    day9 = body["charts"]["engagement"][1]
    assert (day9["likes"], day9["comments"], day9["shares"], day9["saves"]) == (15, 2, 1, 0)
    assert (day9["impressions"], day9["reach"], day9["engagementRate"]) == (160, 100, 11.25)
    assert [(p["date"], p["followers"], p["change"]) for p in body["charts"]["followerGrowth"]] == [
        ("2025-03-08", 1050, 0),
        ("2025-03-09", 1040, -10),
        ("2025-03-10", 1540, 0),
        ("2025-03-11", 1540, 0),
        ("2025-03-12", 1600, 60),
        ("2025-03-13", 1630, 30),
        ("2025-03-14", 1630, 0),
    ]
    assert body["charts"]["platformBreakdown"] == [
        {
            "platform": "linkedin",
            "posts": 1,
            "engagement": 28,
            "impressions": 240,
            "reach": 150,
            "followers": 1100,
        },
        {
            "platform": "x",
            "posts": 1,
            "engagement": 20,
            "impressions": 150,
            "reach": 100,
            "followers": 530,
        },
    ]
    top = body["topPosts"]
    assert [(t["postId"], t["engagement"], t["text"]) for t in top] == [
        (str(s.x1), 24, "Spring is here"),
        (str(s.x2), 20, "We launched"),
        (str(s.x4), 4, "Late night"),
    ]
    assert top[0]["engagementRate"] == 12.0  # 24 / 200


async def test_overview_with_explicit_compare_dates_and_account_filter(
    api: AnalyticsApp, s: Seed
) -> None:
    body = await api.ok(
        "/overview",
        s.a,
        **CURRENT,
        compareStartDate="2025-02-22",
        compareEndDate="2025-02-28",
    )
    assert body["metrics"]["followers"] == change(1630, 1000, 63.0)
    assert body["metrics"]["engagement"] == change(48, 0, None)
    only_x = await api.ok("/overview", s.a, **CURRENT, accounts=str(s.a2))
    assert only_x["metrics"]["engagement"]["current"] == 20
    assert only_x["metrics"]["followers"]["current"] == 530
    assert [t["postId"] for t in only_x["topPosts"]] == [str(s.x2)]


async def test_an_empty_period_is_all_zeros(api: AnalyticsApp, s: Seed) -> None:
    body = await api.ok("/overview", s.a, startDate="2024-01-01", endDate="2024-01-03")
    zero = change(0, 0, 0.0)
    assert body["metrics"] == {k: zero for k in body["metrics"]}
    assert [d["engagement"] for d in body["charts"]["engagement"]] == [0, 0, 0]
    assert [p["followers"] for p in body["charts"]["followerGrowth"]] == [0, 0, 0]
    assert body["charts"]["platformBreakdown"] == []
    assert body["topPosts"] == []
    brand_new = await api.ok("/overview", uuid.uuid4(), **CURRENT)
    assert brand_new["metrics"]["followers"] == zero


async def test_engagement_by_day_and_platform(api: AnalyticsApp, s: Seed) -> None:
    body = await api.ok("/engagement", s.a, **CURRENT)
    assert body["totals"]["engagement"] == 48
    assert body["totals"]["posts"] == 2
    assert body["totals"]["engagementRate"] == round(48 / 390 * 100, 2)
    assert sum(d["engagement"] for d in body["daily"]) == 48
    assert {p["platform"]: p["engagement"] for p in body["byPlatform"]} == {"linkedin": 28, "x": 20}
    x_only = await api.ok("/engagement", s.a, **CURRENT, platform="x")
    assert x_only["totals"]["engagement"] == 20


async def test_post_detail(api: AnalyticsApp, s: Seed) -> None:
    body = await api.ok(f"/posts/{s.x1}", s.a)
    assert body["text"] == "Spring is here"
    assert body["hashtags"] == ["launch", "old"]
    totals = body["totals"]
    assert (totals["likes"], totals["engagement"], totals["impressions"]) == (40, 51, 400)
    assert totals["engagementRate"] == 12.75
    [target] = body["platforms"]
    assert target["platformPostId"] == "li-1"
    assert target["status"] == "succeeded"
    assert target["publishedAt"].startswith("2025-03-05T14:30:00")
    assert target["engagement"] == 51
    assert [(d["date"], d["engagement"]) for d in body["timeline"]] == [
        ("2025-03-05", 13),
        ("2025-03-06", 27),
        ("2025-03-09", 45),
        ("2025-03-12", 51),
    ]


async def test_account_detail(api: AnalyticsApp, s: Seed) -> None:
    body = await api.ok(f"/accounts/{s.a1}", s.a, **CURRENT)
    assert body["account"]["username"] == "acme-li"
    assert body["account"]["platform"] == "linkedin"
    assert body["growth"] == {
        "start": 1050,
        "end": 1100,
        "gained": 60,
        "lost": 10,
        "net": 50,
        "growthPercent": 4.76,
    }
    assert [(d["date"], d["followers"], d["gained"], d["lost"]) for d in body["followers"]] == [
        ("2025-03-08", 1050, 0, 0),
        ("2025-03-09", 1040, 0, 10),
        ("2025-03-10", 1040, 0, 0),
        ("2025-03-11", 1040, 0, 0),
        ("2025-03-12", 1100, 60, 0),
        ("2025-03-13", 1100, 0, 0),
        ("2025-03-14", 1100, 0, 0),
    ]
    eng = body["engagement"]
    assert (eng["engagement"], eng["impressions"], eng["posts"]) == (28, 240, 1)
    assert eng["engagementRate"] == 11.67
    assert body["compare"]["engagement"] == change(28, 34, -17.65)
    assert body["compare"]["followers"] == change(1100, 1050, 4.76)

    new = await api.ok(f"/accounts/{s.a2}", s.a, **CURRENT)
    assert new["growth"] == {
        "start": 500,
        "end": 530,
        "gained": 30,
        "lost": 0,
        "net": 30,
        "growthPercent": 6.0,
    }


async def test_hashtags_of_posts_published_in_the_period(api: AnalyticsApp, s: Seed) -> None:
    body = await api.ok("/hashtags", s.a, **CURRENT)
    rows = [(h["hashtag"], h["posts"], h["engagement"]) for h in body["hashtags"]]
    assert rows == [("launch", 2, 24), ("spring", 1, 20)]
    assert body["hashtags"][0]["avgEngagement"] == 12.0


async def test_best_time_buckets_in_the_workspace_zone(api: AnalyticsApp, s: Seed) -> None:
    body = await api.ok(
        "/best-time", s.a, startDate="2025-03-01", endDate="2025-03-14", minSamples=1
    )
    assert body["timezone"] == "America/New_York"
    assert len(body["grid"]) == 7 * 24
    filled = {(c["weekday"], c["hour"]): c for c in body["grid"] if c["posts"]}
    # 14:30Z on Wed 03-05 is 09:30 EST; 13:00Z on Mon 03-10 is 09:00 EDT (after the DST
    # switch); 02:30Z on Mon 03-10 is 22:30 on Sunday 03-09 in New York.
    assert {k: (c["posts"], c["engagementRate"]) for k, c in filled.items()} == {
        (3, 9): (1, 12.75),
        (1, 9): (1, 13.33),
        (7, 22): (1, 10.0),
    }
    assert [(c["weekday"], c["hour"]) for c in body["topSlots"]] == [(1, 9), (3, 9), (7, 22)]
    # A local day: Monday 03-10 in New York is 04:00Z..04:00Z; the Sunday-night post is out.
    monday = await api.ok(
        "/best-time", s.a, startDate="2025-03-10", endDate="2025-03-10", minSamples=1
    )
    assert [(c["weekday"], c["hour"]) for c in monday["grid"] if c["posts"]] == [(1, 9)]
    x = await api.ok(
        "/best-time", s.a, startDate="2025-03-01", endDate="2025-03-14", platform="x", minSamples=1
    )
    assert [(c["weekday"], c["hour"]) for c in x["topSlots"]] == [(1, 9)]
    strict = await api.ok("/best-time", s.a, startDate="2025-03-01", endDate="2025-03-14")
    assert strict["topSlots"] == [], "no slot has the default 3 samples"


async def test_the_audit_log_filters_and_pages(api: AnalyticsApp, s: Seed) -> None:
    body = await api.ok("/audit", s.a, **CURRENT)
    assert [i["actorId"] for i in body["items"]] == ["alice", "bob", "alice"]
    assert body["nextCursor"] is None
    deletes = await api.ok("/audit", s.a, **CURRENT, action="DELETE ")
    assert [i["actorId"] for i in deletes["items"]] == ["bob"]
    errors = await api.ok("/audit", s.a, **CURRENT, statusCode="4xx")
    assert [i["statusCode"] for i in errors["items"]] == [422]
    page1 = await api.ok("/audit", s.a, **CURRENT, limit=2)
    assert len(page1["items"]) == 2 and page1["nextCursor"]
    page2 = await api.ok("/audit", s.a, **CURRENT, limit=2, cursor=page1["nextCursor"])
    assert [i["actorId"] for i in page2["items"]] == ["alice"]
    assert page2["nextCursor"] is None
    bad = await api.get("/audit", s.a, cursor="not-a-cursor")
    assert bad.status_code == 422


async def test_another_workspaces_objects_are_404_and_its_rows_never_show(
    api: AnalyticsApp, s: Seed
) -> None:
    assert (await api.get(f"/posts/{s.bp}", s.a)).status_code == 404
    assert (await api.get(f"/accounts/{s.b1}", s.a)).status_code == 404
    assert (await api.get(f"/posts/{s.x1}", s.b)).status_code == 404
    assert (await api.get(f"/accounts/{s.a1}", s.b)).status_code == 404
    assert (await api.get(f"/posts/{uuid.uuid4()}", s.a)).json()["error"]["code"] == "NOT_FOUND"

    b_markers = [str(s.b1), str(s.bp), "bee-post-1", "B secret", "mallory", "987654", "anon"]
    paths = [
        ("/overview", CURRENT),
        ("/engagement", CURRENT),
        ("/hashtags", CURRENT),
        ("/best-time", {"startDate": "2025-03-01", "endDate": "2025-03-14", "minSamples": 1}),
        ("/audit", CURRENT),
        (f"/posts/{s.x1}", {}),
        (f"/accounts/{s.a1}", CURRENT),
    ]
    for path, params in paths:
        text = (await api.get(path, s.a, **params)).text
        assert not [m for m in b_markers if m in text], path
    for dataset in ("events", "posts", "accounts", "audit"):
        resp = await api.get(
            "/export", s.a, role="admin", dataset=dataset, format="jsonl", **CURRENT
        )
        assert resp.status_code == 200
        assert not [m for m in [*b_markers, *s.b_event_ids] if m in resp.text], dataset
    # And B sees only B.
    b_overview = await api.ok("/overview", s.b, **CURRENT)
    assert b_overview["metrics"]["followers"]["current"] == 987654
    assert b_overview["metrics"]["engagement"]["current"] == 1000


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"startDate": "2025-03-10", "endDate": "2025-03-01"}, "startDate"),
        ({"startDate": "2024-01-01", "endDate": "2025-03-01"}, "endDate"),
        ({**CURRENT, "compareStartDate": "2025-03-01"}, "compareEndDate"),
        (
            {**CURRENT, "compareStartDate": "2025-03-07", "compareEndDate": "2025-03-01"},
            "compareStartDate",
        ),
        ({**CURRENT, "accounts": "nope"}, "accounts"),
        ({"startDate": "03/01/2025"}, "query.startDate"),
    ],
)
async def test_invalid_ranges_are_422(
    api: AnalyticsApp, s: Seed, params: dict[str, str], field: str
) -> None:
    resp = await api.get("/overview", s.a, **params)
    assert resp.status_code == 422, resp.text
    error = resp.json()["error"]
    assert error["code"] == "VALIDATION_ERROR"
    assert field in [d["field"] for d in error["details"]]


async def test_other_endpoints_validate_too(api: AnalyticsApp, s: Seed) -> None:
    bad = {"startDate": "2025-03-10", "endDate": "2025-03-01"}
    for path in ("/engagement", "/hashtags", "/best-time", "/audit", f"/accounts/{s.a1}"):
        assert (await api.get(path, s.a, **bad)).status_code == 422, path
    assert (await api.get("/engagement", s.a, platform="myspace")).status_code == 422
    assert (await api.get("/posts/not-a-uuid", s.a)).status_code == 422
    assert (await api.get("/export", s.a, role="admin", dataset="secrets")).status_code == 422


async def test_permissions(api: AnalyticsApp, s: Seed) -> None:
    assert (await api.client.get("/api/v1/analytics/overview")).status_code == 401
    assert (await api.get("/overview", s.a, role="viewer")).status_code == 200
    forbidden = await api.get("/export", s.a, role="viewer", dataset="events")
    assert forbidden.status_code == 403
    assert forbidden.json()["error"]["code"] == "FORBIDDEN"
    no_view = await api.client.get(
        "/api/v1/analytics/overview", headers=api.headers(s.a, "viewer", permissions=["post:read"])
    )
    assert no_view.status_code == 403
    assert (await api.get("/export", s.a, role="admin", dataset="events")).status_code == 200


async def test_exports_stream_page_by_page(api: AnalyticsApp, s: Seed) -> None:
    calls: list[str] = []
    repo = api.runtime.api.repo
    original = repo._rows

    async def spy(sql: str, **params: Any) -> list[dict[str, Any]]:
        calls.append(sql)
        return await original(sql, **params)

    repo._rows = spy  # type: ignore[method-assign]
    try:
        resp = await api.get(
            "/export", s.a, role="admin", dataset="events", format="jsonl",
            startDate="2025-03-01", endDate="2025-03-31",
        )  # fmt: skip
    finally:
        repo._rows = original  # type: ignore[method-assign]
    assert resp.status_code == 200
    assert resp.headers["content-type"].startswith("application/x-ndjson")
    assert "attachment" in resp.headers["content-disposition"]
    lines = [json.loads(line) for line in resp.text.splitlines()]
    assert len(lines) == s.a_event_count_march
    assert len(calls) >= s.a_event_count_march // 3, "pages of 3 rows (export_chunk_rows)"
    times = [line["time"] for line in lines]
    assert times == sorted(times)
    assert isinstance(lines[0]["data"], dict), "JSON lines carry the data as an object"

    posts = await api.get("/export", s.a, role="admin", dataset="posts", **CURRENT)
    assert posts.headers["content-type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(posts.text)))
    by_id = {r["platformPostId"]: r for r in rows}
    assert set(by_id) == {"li-1", "x-2", "li-4"}
    assert by_id["li-1"]["engagement"] == "24"
    assert by_id["li-1"]["totalEngagement"] == "51"
    accounts = await api.get("/export", s.a, role="admin", dataset="accounts", **CURRENT)
    rows = list(csv.DictReader(io.StringIO(accounts.text)))
    assert [(r["date"], r["followers"]) for r in rows if r["accountId"] == str(s.a1)] == [
        ("2025-03-09", "1040"),
        ("2025-03-12", "1100"),
    ]
    empty = await api.get(
        "/export", s.a, role="admin", dataset="audit", startDate="2024-01-01", endDate="2024-01-02"
    )
    assert empty.text.splitlines() == [
        "eventId,occurredAt,actorType,actorId,action,resourceType,resourceId,statusCode,ip,"
        "userAgent,requestId,durationMs"
    ]


async def test_an_unavailable_store_is_a_503(
    chdb_path: Path, database: str, tokens: TestTokens
) -> None:
    from test_analytics_writer import FlakyClient

    flaky = FlakyClient(
        EmbeddedClickHouseClient(chdb_path, database=database, settings=SESSION_SETTINGS)
    )
    runtime = build(analytics_settings(chdb_path, database), clickhouse=flaky)
    async with (
        TestKafkaBroker(runtime.broker),
        running(runtime, Role.API, verifier=tokens.verifier()) as svc,
    ):
        app = AnalyticsApp(runtime, svc.client, tokens)
        assert (await app.get("/overview", uuid.uuid4())).status_code == 200
        flaky.down = True
        resp = await app.get("/overview", uuid.uuid4())
        assert resp.status_code == 503
        assert resp.json()["error"]["code"] == "SERVICE_UNAVAILABLE"
        assert resp.headers["retry-after"] == "5"
        ready = await svc.client.get("/readyz")
        assert ready.status_code == 503
        assert ready.json()["checks"]["clickhouse"]["status"] == "down"
        flaky.down = False
