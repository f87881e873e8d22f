"""Posting slots: the next free slot across DST changes (unit), the slots API and
`POST /posts/{id}/queue` on a real database (component)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from publishing_testkit import Publishing

from chorus_contracts.events.identity import WorkspaceSettingsChanged
from chorus_publishing.slots import Slot, next_free, occurrences

BERLIN = ZoneInfo("Europe/Berlin")
SLOTS = "/api/v1/publishing/slots"


# -- unit --------------------------------------------------------------------------------------


@pytest.mark.unit
def test_a_slot_keeps_its_local_time_across_the_dst_change() -> None:
    # Sunday 2026-03-29 Berlin springs forward (CET +01 → CEST +02).
    friday = datetime(2026, 3, 27, 12, 0, tzinfo=UTC)
    daily = [Slot("a", d, time(9, 30)) for d in range(7)]
    got = list(occurrences(daily, BERLIN, after=friday, days=3))
    assert got == [
        datetime(2026, 3, 28, 8, 30, tzinfo=UTC),  # Saturday 09:30 CET
        datetime(2026, 3, 29, 7, 30, tzinfo=UTC),  # Sunday 09:30 CEST
        datetime(2026, 3, 30, 7, 30, tzinfo=UTC),
    ]
    assert {g.astimezone(BERLIN).strftime("%H:%M") for g in got} == {"09:30"}


@pytest.mark.unit
def test_a_slot_inside_the_spring_gap_is_skipped_and_the_repeated_hour_is_the_first() -> None:
    gap = [Slot("a", 6, time(2, 30))]  # Sundays 02:30
    spring = list(occurrences(gap, BERLIN, after=datetime(2026, 3, 28, tzinfo=UTC), days=8))
    assert spring == [datetime(2026, 4, 5, 0, 30, tzinfo=UTC)]  # 29 March has no 02:30
    autumn = list(occurrences(gap, BERLIN, after=datetime(2026, 10, 24, tzinfo=UTC), days=2))
    assert autumn == [datetime(2026, 10, 25, 0, 30, tzinfo=UTC)]  # 02:30 CEST, the first


@pytest.mark.unit
def test_next_free_skips_taken_instants_and_other_accounts_slots() -> None:
    now = datetime(2026, 6, 1, 6, 0, tzinfo=UTC)  # Monday 08:00 Berlin
    slots = [Slot("a", 0, time(9, 0)), Slot("a", 0, time(12, 0)), Slot("b", 0, time(10, 0))]
    first = datetime(2026, 6, 1, 7, 0, tzinfo=UTC)
    assert next_free(slots, ["a"], BERLIN, now=now, taken=set()) == first
    assert next_free(slots, ["a"], BERLIN, now=now, taken={first}) == datetime(
        2026, 6, 1, 10, 0, tzinfo=UTC
    )
    assert next_free(slots, ["c"], BERLIN, now=now, taken=set()) is None
    # Past slots today do not count: after 12:00 the next is next Monday 09:00.
    late = datetime(2026, 6, 1, 11, 0, tzinfo=UTC)
    assert next_free(slots, ["a"], BERLIN, now=late, taken=set()) == datetime(
        2026, 6, 8, 7, 0, tzinfo=UTC
    )


# -- component ---------------------------------------------------------------------------------


async def in_berlin(p: Publishing, workspace: str) -> None:
    await p.send(
        WorkspaceSettingsChanged(
            workspace_id=uuid.UUID(workspace),
            timezone="Europe/Berlin",
            default_locale="de",
            approval_required_for=[],
            changed_by=uuid.uuid4(),
            changed_at=datetime.now(UTC),
        ),
        topic="identity.workspaces",
        tenant=workspace,
        key=workspace,
    )


async def put_slots(p: Publishing, workspace: str, slots: Any, role: str = "owner") -> Any:
    return await p.client.put(SLOTS, json={"slots": slots}, headers=p.headers(workspace, role))


async def queue(p: Publishing, workspace: str, post_id: str, role: str = "owner") -> Any:
    return await p.client.post(f"/api/v1/posts/{post_id}/queue", headers=p.headers(workspace, role))


def every_day(account: str, at: str) -> list[dict[str, Any]]:
    return [{"accountId": account, "weekday": d, "time": at} for d in range(7)]


@pytest.mark.component
async def test_slots_are_stored_per_workspace_and_replaced(publishing: Publishing) -> None:
    workspace, other = str(uuid.uuid4()), str(uuid.uuid4())
    await in_berlin(publishing, workspace)
    account = await publishing.connect(workspace, "x")
    resp = await put_slots(
        publishing,
        workspace,
        [
            {"accountId": account, "weekday": 4, "time": "17:00"},
            {"accountId": account, "weekday": 0, "time": "09:30"},
        ],
    )
    assert resp.status_code == 200, resp.text
    assert resp.json() == {
        "slots": [
            {"accountId": account, "weekday": 0, "time": "09:30"},
            {"accountId": account, "weekday": 4, "time": "17:00"},
        ],
        "timezone": "Europe/Berlin",
    }
    replaced = await put_slots(
        publishing, workspace, [{"accountId": account, "weekday": 2, "time": "08:00"}]
    )
    assert [s["weekday"] for s in replaced.json()["slots"]] == [2]

    theirs = await publishing.client.get(SLOTS, headers=publishing.headers(other, "viewer"))
    assert theirs.json() == {"slots": [], "timezone": "UTC"}
    # Another workspace cannot configure slots for my account.
    foreign = await put_slots(
        publishing, other, [{"accountId": account, "weekday": 1, "time": "08:00"}]
    )
    assert foreign.status_code == 422, foreign.text
    assert foreign.json()["error"]["details"][0]["rule"] == "account_not_connected"
    # Their empty PUT leaves mine alone.
    assert (await put_slots(publishing, other, [])).status_code == 200
    assert await publishing.scalar("SELECT count(*) FROM posting_slots") == 1


BAD_SLOTS: dict[str, Any] = {
    "weekday 7": {"weekday": 7, "time": "09:00"},
    "negative weekday": {"weekday": -1, "time": "09:00"},
    "24:00": {"weekday": 1, "time": "24:00"},
    "seconds": {"weekday": 1, "time": "09:00:00"},
    "no leading zero": {"weekday": 1, "time": "9:00"},
    "missing time": {"weekday": 1},
}


@pytest.mark.component
@pytest.mark.parametrize("case", list(BAD_SLOTS))
async def test_a_bad_slot_is_422(publishing: Publishing, case: str) -> None:
    workspace = str(uuid.uuid4())
    account = await publishing.connect(workspace)
    resp = await put_slots(publishing, workspace, [{"accountId": account, **BAD_SLOTS[case]}])
    assert resp.status_code == 422, resp.text
    assert resp.json()["error"]["code"] == "VALIDATION_ERROR"


@pytest.mark.component
async def test_repeated_slots_and_roles(publishing: Publishing) -> None:
    workspace = str(uuid.uuid4())
    account = await publishing.connect(workspace)
    slot = {"accountId": account, "weekday": 1, "time": "09:00"}
    assert (await put_slots(publishing, workspace, [slot, slot])).status_code == 422
    for role in ("editor", "viewer"):
        denied = await put_slots(publishing, workspace, [slot], role)
        assert denied.status_code == 403, denied.text
    assert (await put_slots(publishing, workspace, [slot], "manager")).status_code == 200


@pytest.mark.component
async def test_queue_takes_the_next_free_slot_in_the_workspace_zone(
    publishing: Publishing,
) -> None:
    workspace = str(uuid.uuid4())
    await in_berlin(publishing, workspace)
    x = await publishing.connect(workspace, "x")
    li = await publishing.connect(workspace, "linkedin")
    await put_slots(publishing, workspace, every_day(x, "09:30") + every_day(x, "18:00"))

    async def new_post(*targets: tuple[str, str]) -> str:
        resp = await publishing.client.post(
            "/api/v1/posts",
            json={
                "content": {"text": "queued"},
                "platforms": [{"platform": p, "accountId": a} for p, a in targets],
            },
            headers=publishing.headers(workspace),
        )
        assert resp.status_code == 201, resp.text
        return resp.json()["post"]["id"]  # type: ignore[no-any-return]

    expected = sorted(
        occurrences(
            [Slot(x, d, time(h, m)) for d in range(7) for h, m in ((9, 30), (18, 0))],
            BERLIN,
            after=datetime.now(UTC),
            days=3,
        )
    )
    got = []
    for _ in range(3):
        resp = await queue(publishing, workspace, await new_post(("x", x)))
        assert resp.status_code == 200, resp.text
        post = resp.json()["post"]
        assert (post["status"], post["timezone"]) == ("scheduled", "Europe/Berlin")
        got.append(datetime.fromisoformat(post["scheduledAt"]))
    assert got == expected[:3]  # each post a different, consecutive slot

    # A post for x and linkedin: linkedin has no slots but x's next free one serves both.
    both = await queue(publishing, workspace, await new_post(("x", x), ("linkedin", li)))
    assert datetime.fromisoformat(both.json()["post"]["scheduledAt"]) == expected[3]
    # Linkedin alone: nothing configured → 409 with a clear message.
    alone = await queue(publishing, workspace, await new_post(("linkedin", li)))
    assert alone.status_code == 409, alone.text
    assert alone.json()["error"]["details"]["reason"] == "no_slots"
    assert "PUT /api/v1/publishing/slots" in alone.json()["error"]["message"]

    # Unscheduling frees a slot: the next queued post takes it.
    first = await publishing.client.get("/api/v1/posts", headers=publishing.headers(workspace))
    first_id = first.json()["posts"][0]["id"]
    await publishing.client.post(
        f"/api/v1/posts/{first_id}/unschedule", headers=publishing.headers(workspace)
    )
    refill = await queue(publishing, workspace, await new_post(("x", x)))
    assert datetime.fromisoformat(refill.json()["post"]["scheduledAt"]) == expected[0]


@pytest.mark.component
async def test_queue_respects_approval_roles_and_tenancy(publishing: Publishing) -> None:
    workspace, stranger = str(uuid.uuid4()), str(uuid.uuid4())
    await publishing.require_approval(workspace, "editor")
    x = await publishing.connect(workspace, "x")
    await put_slots(publishing, workspace, every_day(x, "10:00"))
    resp = await publishing.client.post(
        "/api/v1/posts",
        json={"content": {"text": "hi"}, "platforms": [{"platform": "x", "accountId": x}]},
        headers=publishing.headers(workspace, "editor"),
    )
    post_id = resp.json()["post"]["id"]

    assert (await queue(publishing, workspace, post_id, "viewer")).status_code == 403
    other = await queue(publishing, stranger, post_id)
    assert other.status_code == 404, other.text
    assert (await queue(publishing, workspace, str(uuid.uuid4()))).status_code == 404
    assert (await queue(publishing, workspace, "not-a-uuid")).status_code == 422

    queued = await queue(publishing, workspace, post_id, "editor")
    assert queued.status_code == 200, queued.text
    assert queued.json()["post"]["status"] == "pending_approval"
    history = (await publishing.get(workspace, post_id))["history"]
    assert history[-1]["action"] == "queued"
    # The pending post holds its slot too: the next queued post goes a day later.
    second = await publishing.client.post(
        "/api/v1/posts",
        json={"content": {"text": "hi2"}, "platforms": [{"platform": "x", "accountId": x}]},
        headers=publishing.headers(workspace),
    )
    later = await queue(publishing, workspace, second.json()["post"]["id"])
    gap = datetime.fromisoformat(later.json()["post"]["scheduledAt"]) - datetime.fromisoformat(
        queued.json()["post"]["scheduledAt"]
    )
    assert gap == timedelta(days=1)
