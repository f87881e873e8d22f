"""Scheduling: what a user typed becomes one UTC instant (design.md §1: timezones are never
wrong). Pure `resolve` (unit) and the same rules through the API (component)."""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
from publishing_testkit import Publishing

from chorus_publishing.scheduling import local_display, resolve
from chorus_runtime.errors import ValidationFailed

# Well before every instant below, so only the `past` tests are about the past.
NOW = datetime(2026, 1, 10, 12, 0, tzinfo=UTC)


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)  # type: ignore[misc]


def refused(scheduled_at: str, timezone: str | None, *, now: datetime = NOW) -> dict[str, Any]:
    with pytest.raises(ValidationFailed) as info:
        resolve(scheduled_at, timezone, now=now)
    (detail,) = info.value.details
    return detail  # type: ignore[no-any-return]


def last_sunday(year: int, month: int) -> date:
    first_of_next = date(year + (month == 12), month % 12 + 1, 1)
    d = first_of_next - timedelta(days=1)
    return d - timedelta(days=(d.weekday() + 1) % 7)


# -- resolve (unit) ----------------------------------------------------------------------------


@pytest.mark.unit
@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("2026-06-01T09:00:00+02:00", utc(2026, 6, 1, 7)),
        ("2026-06-01T09:00:00Z", utc(2026, 6, 1, 9)),
        ("2026-06-01T09:00:00-05:30", utc(2026, 6, 1, 14, 30)),
        ("  2026-06-01T09:00:00.250+00:00 ", utc(2026, 6, 1, 9) + timedelta(milliseconds=250)),
    ],
)
def test_an_offset_is_taken_as_given(given: str, expected: datetime) -> None:
    at = resolve(given, None, now=NOW)
    assert at == expected
    assert at.utcoffset() == timedelta(0)


@pytest.mark.unit
def test_an_offset_wins_over_the_timezone() -> None:
    assert resolve("2026-06-01T09:00:00+00:00", "Europe/Berlin", now=NOW) == utc(2026, 6, 1, 9)


@pytest.mark.unit
@pytest.mark.parametrize(
    ("local", "zone", "expected"),
    [
        ("2026-01-15T09:00:00", "Europe/Berlin", utc(2026, 1, 15, 8)),  # CET +1
        ("2026-07-15T09:00:00", "Europe/Berlin", utc(2026, 7, 15, 7)),  # CEST +2
        ("2026-03-28T09:00:00", "Europe/Berlin", utc(2026, 3, 28, 8)),  # day before the change
        ("2026-03-29T09:00:00", "Europe/Berlin", utc(2026, 3, 29, 7)),  # the change's morning
        ("2026-03-30T09:00:00", "Europe/Berlin", utc(2026, 3, 30, 7)),
        ("2026-01-15T09:00:00", "America/New_York", utc(2026, 1, 15, 14)),  # EST -5
        ("2026-07-15T09:00:00", "America/New_York", utc(2026, 7, 15, 13)),  # EDT -4
        ("2026-03-07T09:00:00", "America/New_York", utc(2026, 3, 7, 14)),
        ("2026-03-09T09:00:00", "America/New_York", utc(2026, 3, 9, 13)),
        ("2026-06-01T09:00:00", "UTC", utc(2026, 6, 1, 9)),
        ("2026-06-01T09:00:00", "Asia/Kolkata", utc(2026, 6, 1, 3, 30)),
    ],
)
def test_a_local_time_in_a_zone(local: str, zone: str, expected: datetime) -> None:
    assert resolve(local, zone, now=NOW) == expected


@pytest.mark.unit
@pytest.mark.parametrize(
    ("local", "zone"),
    [
        ("2026-03-29T02:30:00", "Europe/Berlin"),
        ("2026-03-29T02:00:00", "Europe/Berlin"),
        ("2026-03-08T02:30:00", "America/New_York"),
    ],
)
def test_a_time_in_the_spring_gap_does_not_exist(local: str, zone: str) -> None:
    detail = refused(local, zone)
    assert detail["field"] == "scheduledAt"
    assert detail["type"] == "nonexistent_local_time"
    assert zone in detail["message"]


@pytest.mark.unit
def test_the_edges_of_the_gap_exist() -> None:
    assert resolve("2026-03-29T01:59:59", "Europe/Berlin", now=NOW) == utc(2026, 3, 29, 0, 59, 59)
    assert resolve("2026-03-29T03:00:00", "Europe/Berlin", now=NOW) == utc(2026, 3, 29, 1)


@pytest.mark.unit
@pytest.mark.parametrize(
    ("local", "zone", "first"),
    [
        ("2026-10-25T02:30:00", "Europe/Berlin", utc(2026, 10, 25, 0, 30)),  # CEST, not 01:30Z
        ("2026-11-01T01:30:00", "America/New_York", utc(2026, 11, 1, 5, 30)),  # EDT, not 06:30Z
    ],
)
def test_an_ambiguous_time_means_its_first_occurrence(
    local: str, zone: str, first: datetime
) -> None:
    assert resolve(local, zone, now=NOW) == first


@pytest.mark.unit
def test_a_naive_time_without_a_zone_is_refused() -> None:
    detail = refused("2026-06-01T09:00:00", None)
    assert (detail["field"], detail["type"]) == ("scheduledAt", "naive_datetime")


@pytest.mark.unit
@pytest.mark.parametrize("zone", ["Europe/Nowhere", "CEST", "", "../../etc/passwd", "Mars/Olympus"])
def test_an_unknown_zone_is_refused(zone: str) -> None:
    detail = refused("2026-06-01T09:00:00", zone)
    assert (detail["field"], detail["type"]) == ("timezone", "unknown_timezone")


@pytest.mark.unit
@pytest.mark.parametrize("given", ["tomorrow", "2026-13-01T09:00:00Z", "", "2026-06-01 9am"])
def test_not_a_date_time(given: str) -> None:
    detail = refused(given, "UTC")
    assert (detail["field"], detail["type"]) == ("scheduledAt", "invalid_datetime")


@pytest.mark.unit
def test_the_past_is_refused_within_a_small_grace() -> None:
    detail = refused("2026-01-10T11:00:00Z", None)
    assert (detail["field"], detail["type"]) == ("scheduledAt", "past_datetime")
    # Local time in the past, too.
    assert refused("2026-01-10T12:30:00", "Europe/Berlin")["type"] == "past_datetime"
    # A few seconds late (clock skew, slow client) is fine.
    assert resolve("2026-01-10T11:59:57Z", None, now=NOW) == utc(2026, 1, 10, 11, 59, 57)
    assert resolve("2026-01-10T11:00:00Z", None, now=NOW, allow_past=True) == utc(2026, 1, 10, 11)


@pytest.mark.unit
def test_local_display() -> None:
    assert local_display(utc(2026, 7, 1, 7), "Europe/Berlin") == "2026-07-01T09:00:00+02:00"
    assert local_display(utc(2026, 7, 1, 7), None) == "2026-07-01T07:00:00+00:00"


@pytest.mark.unit
def test_last_sunday_helper() -> None:
    assert last_sunday(2026, 3) == date(2026, 3, 29)
    assert last_sunday(2026, 10) == date(2026, 10, 25)
    assert last_sunday(2027, 3) == date(2027, 3, 28)


# -- through the API (component) -----------------------------------------------------------------

# A year ahead of today, so every time below is in the future whenever the suite runs.
YEAR = datetime.now(UTC).year + 1
SPRING = last_sunday(YEAR, 3)  # Europe/Berlin: clocks go forward at 02:00 local
AUTUMN = last_sunday(YEAR, 10)  # and back at 03:00 local


def at_nine(day: date) -> str:
    return f"{day.isoformat()}T09:00:00"


async def create(p: Publishing, workspace: str, **extra: Any) -> Any:
    return await p.client.post(
        "/api/v1/posts", json=await p.body(workspace, "x", **extra), headers=p.headers(workspace)
    )


def stored(resp: Any) -> datetime:
    assert resp.status_code == 201, resp.text
    post = resp.json()["post"]
    assert post["status"] == "scheduled"
    return datetime.fromisoformat(post["scheduledAt"])


@pytest.mark.component
async def test_nine_in_berlin_across_the_spring_change(publishing: Publishing) -> None:
    """The issue's case: 09:00 Europe/Berlin goes out at the right UTC instant on the day
    before the change (CET, 08:00Z), on the change's morning and after it (CEST, 07:00Z)."""
    workspace = str(uuid.uuid4())
    days = [SPRING - timedelta(days=1), SPRING, SPRING + timedelta(days=1)]
    instants = [
        stored(
            await create(publishing, workspace, scheduledAt=at_nine(d), timezone="Europe/Berlin")
        )
        for d in days
    ]
    assert instants == [
        datetime(d.year, d.month, d.day, hour, tzinfo=UTC)
        for d, hour in zip(days, (8, 7, 7), strict=True)
    ]
    assert instants[1] - instants[0] == timedelta(hours=23), "the day of the change is 23 h"
    assert instants[2] - instants[1] == timedelta(hours=24)

    # Stored as UTC timestamptz; the zone is kept for display.
    rows = await publishing.scalar(
        "SELECT string_agg(to_char(scheduled_at AT TIME ZONE 'UTC', 'HH24:MI') || ' ' || timezone,"
        " ',' ORDER BY scheduled_at) FROM posts"
    )
    assert rows == "08:00 Europe/Berlin,07:00 Europe/Berlin,07:00 Europe/Berlin"
    listed = await publishing.client.get("/api/v1/posts", headers=publishing.headers(workspace))
    assert listed.status_code == 200, listed.text
    posts = listed.json()["posts"]
    assert [datetime.fromisoformat(p["scheduledAt"]) for p in posts] == instants
    assert {p["timezone"] for p in posts} == {"Europe/Berlin"}


@pytest.mark.component
async def test_ambiguous_autumn_time_through_the_api(publishing: Publishing) -> None:
    resp = await create(
        publishing,
        str(uuid.uuid4()),
        scheduledAt=f"{AUTUMN.isoformat()}T02:30:00",
        timezone="Europe/Berlin",
    )
    assert stored(resp) == datetime(AUTUMN.year, AUTUMN.month, AUTUMN.day, 0, 30, tzinfo=UTC)


@pytest.mark.component
async def test_new_york_across_its_change_through_the_schedule_endpoint(
    publishing: Publishing,
) -> None:
    workspace = str(uuid.uuid4())
    post = await publishing.create_ok(workspace, "x")
    resp = await publishing.client.post(
        f"/api/v1/posts/{post['id']}/schedule",
        json={"scheduledAt": f"{YEAR}-07-04T09:00:00", "timezone": "America/New_York"},
        headers=publishing.headers(workspace),
    )
    assert resp.status_code == 200, resp.text
    body = resp.json()["post"]
    assert body["status"] == "scheduled"
    assert body["timezone"] == "America/New_York"
    assert datetime.fromisoformat(body["scheduledAt"]) == datetime(YEAR, 7, 4, 13, tzinfo=UTC)


BAD: dict[str, tuple[dict[str, Any], str, str]] = {
    "nonexistent": (
        {"scheduledAt": f"{SPRING.isoformat()}T02:30:00", "timezone": "Europe/Berlin"},
        "scheduledAt",
        "nonexistent_local_time",
    ),
    "naive": ({"scheduledAt": f"{YEAR}-06-01T09:00:00"}, "scheduledAt", "naive_datetime"),
    "unknown zone": (
        {"scheduledAt": f"{YEAR}-06-01T09:00:00", "timezone": "Europe/Atlantis"},
        "timezone",
        "unknown_timezone",
    ),
    "zone without a time": ({"timezone": "Nowhere/Land"}, "timezone", "unknown_timezone"),
    "past": ({"scheduledAt": "2020-06-01T09:00:00Z"}, "scheduledAt", "past_datetime"),
    "garbage": ({"scheduledAt": "next tuesday"}, "scheduledAt", "invalid_datetime"),
}


@pytest.mark.component
@pytest.mark.parametrize("case", list(BAD))
async def test_bad_schedules_are_422_naming_the_field(publishing: Publishing, case: str) -> None:
    extra, field, kind = BAD[case]
    workspace = str(uuid.uuid4())
    resp = await create(publishing, workspace, **extra)
    assert resp.status_code == 422, resp.text
    err = resp.json()["error"]
    assert err["code"] == "VALIDATION_ERROR"
    assert [(d["field"], d["type"]) for d in err["details"]] == [(field, kind)]
    assert await publishing.scalar("SELECT count(*) FROM posts") == 0
    assert await publishing.scalar("SELECT count(*) FROM outbox") == 0

    if "scheduledAt" in extra:  # the schedule endpoint refuses it the same way
        post = await publishing.create_ok(workspace, "x")
        again = await publishing.client.post(
            f"/api/v1/posts/{post['id']}/schedule",
            json={k: v for k, v in extra.items() if k in ("scheduledAt", "timezone")},
            headers=publishing.headers(workspace),
        )
        assert again.status_code == 422, again.text
        details = again.json()["error"]["details"]
        assert [(d["field"], d["type"]) for d in details] == [(field, kind)]
        assert await publishing.scalar("SELECT status FROM posts") == "draft"
