"""Deploy-issue journeys 1, 4, 5 and 6, through the gateway only: roles, a machine client,
plan limits, and tenant isolation across every service."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from e2e_client import Tenant, connect, create_post, eventually, invite, register, set_plan
from e2e_stack import read_endpoints

pytestmark = pytest.mark.e2e


def tomorrow_at_nine() -> str:
    return f"{(datetime.now(UTC) + timedelta(days=1)).date().isoformat()}T09:00:00"


def post_body(account: dict, text: str, **extra: object) -> dict:  # type: ignore[type-arg]
    return {
        "content": {"text": text},
        "platforms": [{"platform": account["platform"], "accountId": account["id"]}],
        **extra,
    }


async def test_each_role_sees_what_it_allows(stack_state: Path) -> None:
    ep = read_endpoints(stack_state)
    async with httpx.AsyncClient(base_url=ep["GATEWAY_URL"], timeout=15) as gw:
        owner = await register(gw, "roles")
        # The free plan has one seat: inviting two people takes a paid plan.
        refused = await gw.post(
            "/api/v1/team/invitations",
            headers=owner.auth,
            json={"email": f"x-{uuid.uuid4().hex[:6]}@example.com", "role": "editor"},
        )
        assert refused.status_code == 403, refused.text
        assert refused.json()["error"]["code"] == "QUOTA_EXCEEDED"
        await set_plan(gw, owner, "starter")
        editor = await invite(gw, owner, "editor")
        viewer = await invite(gw, owner, "viewer")
        account = await connect(gw, owner.auth, "x")

        members = (await gw.get("/api/v1/team/members", headers=viewer.auth)).json()
        roles = sorted(m["role"] for m in members["members"])
        assert roles == ["editor", "owner", "viewer"]

        # The editor writes and schedules; the viewer reads only.
        created = await create_post(
            gw, editor.auth, post_body(account, "Editor's draft", campaign="roles")
        )
        assert created.status_code == 201, created.text
        post_id = created.json()["post"]["id"]
        listed = await gw.get("/api/v1/posts", headers=viewer.auth, params={"campaign": "roles"})
        assert [p["id"] for p in listed.json()["posts"]] == [post_id]
        assert (await gw.get(f"/api/v1/posts/{post_id}", headers=viewer.auth)).status_code == 200
        for method, path, body in (
            ("POST", "/api/v1/posts", post_body(account, "viewer tries")),
            ("PUT", f"/api/v1/posts/{post_id}", post_body(account, "viewer edits")),
            ("DELETE", f"/api/v1/posts/{post_id}", None),
            ("POST", "/api/v1/accounts/connect/linkedin", {"redirectUri": "https://a.example/cb"}),
            ("POST", "/api/v1/team/invitations", {"email": "v@example.com", "role": "viewer"}),
            ("POST", "/api/v1/api-keys", {"name": "k", "scopes": ["post:read"]}),
            ("PUT", "/api/v1/workspace/plan", {"plan": "professional"}),
        ):
            resp = await gw.request(method, path, headers=viewer.auth, json=body)
            assert resp.status_code == 403, (method, path, resp.text)
            assert resp.json()["error"]["code"] == "FORBIDDEN"

        # The editor cannot publish now, manage the team, the plan or the accounts.
        for method, path, body in (
            ("POST", f"/api/v1/posts/{post_id}/publish", None),
            ("POST", "/api/v1/team/invitations", {"email": "e@example.com", "role": "viewer"}),
            ("PUT", "/api/v1/workspace/plan", {"plan": "professional"}),
            ("DELETE", f"/api/v1/accounts/{account['id']}", None),
        ):
            resp = await gw.request(method, path, headers=editor.auth, json=body)
            assert resp.status_code == 403, (method, path, resp.text)
        # Reading analytics is every role's right.
        for who in (owner, editor, viewer):
            overview = await gw.get("/api/v1/analytics/overview", headers=who.auth)
            assert overview.status_code == 200, overview.text
        # The owner publishes the editor's post.
        published = await gw.post(f"/api/v1/posts/{post_id}/publish", headers=owner.auth)
        assert published.status_code == 202, published.text


async def test_api_key_with_post_read_lists_but_cannot_create(stack_state: Path) -> None:
    ep = read_endpoints(stack_state)
    async with httpx.AsyncClient(base_url=ep["GATEWAY_URL"], timeout=15) as gw:
        owner = await register(gw, "machine")
        account = await connect(gw, owner.auth, "linkedin")
        created = await create_post(gw, owner.auth, post_body(account, "Seen by the robot"))
        assert created.status_code == 201, created.text
        made = await gw.post(
            "/api/v1/api-keys",
            headers=owner.auth,
            json={"name": "reporting robot", "scopes": ["post:read"]},
        )
        assert made.status_code == 201, made.text
        key = made.json()["key"]
        assert key not in str((await gw.get("/api/v1/api-keys", headers=owner.auth)).json())

        for headers in ({"X-API-Key": key}, {"Authorization": f"Bearer {key}"}):
            listed = await gw.get("/api/v1/posts", headers=headers)
            assert listed.status_code == 200, listed.text
            assert [p["id"] for p in listed.json()["posts"]] == [created.json()["post"]["id"]]
            denied = await gw.post(
                "/api/v1/posts", headers=headers, json=post_body(account, "robot writes")
            )
            assert denied.status_code == 403, denied.text
            assert (await gw.get("/api/v1/api-keys", headers=headers)).status_code == 403

        revoked = await gw.delete(
            f"/api/v1/api-keys/{made.json()['apiKey']['id']}", headers=owner.auth
        )
        assert revoked.status_code == 204

        async def after_revoke() -> int:
            return (await gw.get("/api/v1/posts", headers={"X-API-Key": key})).status_code

        # The gateway caches a verified key briefly; revocation wins within that time.
        await eventually(after_revoke, lambda status: status == 401, timeout=40, interval=1)


async def test_free_plan_limit_is_429_with_retry_after_and_upgrade_lifts_it(
    stack_state: Path,
) -> None:
    ep = read_endpoints(stack_state)
    async with httpx.AsyncClient(base_url=ep["GATEWAY_URL"], timeout=15) as gw:
        owner = await register(gw, "limits")
        statuses: list[int] = []
        limited: httpx.Response | None = None
        for _ in range(200):  # the free plan allows 120 API calls a minute
            resp = await gw.get("/api/v1/posts", headers=owner.auth)
            statuses.append(resp.status_code)
            if resp.status_code == 429:
                limited = resp
                break
        assert limited is not None, f"never limited after {len(statuses)} calls"
        assert 100 <= statuses.count(200) <= 120, statuses.count(200)
        assert int(limited.headers["Retry-After"]) >= 1
        assert limited.headers["RateLimit-Remaining"] == "0"
        assert limited.json()["error"]["code"] == "RATE_LIMIT_EXCEEDED"

        # Upgrading is the way out and is not itself behind the exhausted budget.
        await set_plan(gw, owner, "starter")

        async def listing() -> int:
            return (await gw.get("/api/v1/posts", headers=owner.auth)).status_code

        # The plan is re-read within seconds (cached briefly per gateway process).
        await eventually(listing, lambda status: status == 200, timeout=30, interval=1)


async def _own_everything(gw: httpx.AsyncClient) -> tuple[Tenant, dict, str, str]:  # type: ignore[type-arg]
    owner = await register(gw, "alpha")
    account = await connect(gw, owner.auth, "x")
    created = await create_post(
        gw,
        owner.auth,
        post_body(
            account,
            "Alpha's secret launch plan",
            scheduledAt=tomorrow_at_nine(),
            timezone="Europe/Berlin",
            campaign="alpha",
            tags=["secret"],
        ),
    )
    assert created.status_code == 201, created.text
    key = await gw.post(
        "/api/v1/api-keys", headers=owner.auth, json={"name": "alpha", "scopes": ["post:read"]}
    )
    assert key.status_code == 201, key.text
    return owner, account, created.json()["post"]["id"], key.json()["apiKey"]["id"]


async def test_a_second_tenant_sees_nothing_of_the_first(stack_state: Path) -> None:
    ep = read_endpoints(stack_state)
    async with httpx.AsyncClient(base_url=ep["GATEWAY_URL"], timeout=15) as gw:
        alpha, account, post_id, key_id = await _own_everything(gw)
        beta = await register(gw, "beta")
        b = beta.auth

        # Lists: nothing of alpha's.
        assert (await gw.get("/api/v1/posts", headers=b)).json()["posts"] == []
        assert (await gw.get("/api/v1/accounts", headers=b)).json()["accounts"] == []
        assert (await gw.get("/api/v1/api-keys", headers=b)).json()["apiKeys"] == []
        members = (await gw.get("/api/v1/team/members", headers=b)).json()["members"]
        assert [m["email"] for m in members] == [beta.email]
        exported = await gw.get("/api/v1/posts/export", headers=b, params={"format": "csv"})
        assert exported.status_code == 200, exported.text
        assert "Alpha's secret" not in exported.text
        media = await gw.get("/api/v1/media", headers=b)
        assert media.status_code == 200 and media.json()["media"] == []
        overview = (await gw.get("/api/v1/analytics/overview", headers=b)).json()
        assert overview["metrics"]["posts"]["current"] == 0

        # Alpha's ids, used by beta: 404 everywhere, never 403 (existence does not leak).
        for method, path, body in (
            ("GET", f"/api/v1/posts/{post_id}", None),
            ("PUT", f"/api/v1/posts/{post_id}", post_body(account, "hijack")),
            ("DELETE", f"/api/v1/posts/{post_id}", None),
            ("POST", f"/api/v1/posts/{post_id}/publish", None),
            ("POST", f"/api/v1/posts/{post_id}/unschedule", None),
            ("POST", f"/api/v1/posts/{post_id}/approve", {}),
            ("GET", f"/api/v1/accounts/{account['id']}/health", None),
            ("DELETE", f"/api/v1/accounts/{account['id']}", None),
            ("DELETE", f"/api/v1/api-keys/{key_id}", None),
            ("PUT", f"/api/v1/team/members/{alpha.user_id}", {"role": "viewer"}),
            ("DELETE", f"/api/v1/team/members/{alpha.user_id}", None),
            ("GET", f"/api/v1/analytics/posts/{post_id}", None),
            ("GET", f"/api/v1/analytics/accounts/{account['id']}", None),
        ):
            resp = await gw.request(method, path, headers=b, json=body)
            assert resp.status_code == 404, (method, path, resp.status_code, resp.text)
            assert resp.json()["error"]["code"] == "NOT_FOUND"

        # Posting to alpha's account is refused as if it did not exist.
        hijack = await gw.post("/api/v1/posts", headers=b, json=post_body(account, "as alpha"))
        assert hijack.status_code == 422, hijack.text
        assert "account_not_connected" in hijack.text

        # A bulk action on alpha's post fails for that post, touching nothing.
        bulk = await gw.post(
            "/api/v1/posts/bulk", headers=b, json={"action": "delete", "postIds": [post_id]}
        )
        assert bulk.status_code == 200, bulk.text
        assert bulk.json()["failed"] == [post_id]

        # And alpha's post is untouched by all of that.
        mine = await gw.get(f"/api/v1/posts/{post_id}", headers=alpha.auth)
        assert mine.status_code == 200
        assert mine.json()["post"]["status"] == "scheduled"
        assert mine.json()["post"]["content"]["text"] == "Alpha's secret launch plan"
