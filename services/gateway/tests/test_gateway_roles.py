"""The role × action matrix through the gateway (design.md §5) and privilege escalation.

Roles come from real invitations; each guarded gateway action is tried by every role and
must be allowed or refused with 403 FORBIDDEN. Post permissions are checked by the
publishing service, so for posts the gateway must pass the request on with a token whose
`perms` are exactly the role's row of `chorus_runtime.auth.permissions`.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import httpx
import pytest
from gateway_support import (
    FakeUpstream,
    Tenant,
    assert_error,
    invite,
    join,
    register,
    verify_with_gateway,
)

from chorus_runtime.auth.permissions import ROLE_PERMISSIONS, permissions_for

pytestmark = pytest.mark.integration

ROLES = ("owner", "admin", "manager", "editor", "viewer")
# Seats unlimited, and room for the many calls one workspace makes here.
PLANS = '{"free": {"quotas": {"seats": null}, "limits": {"api": {"requests": 5000}}}}'

# action → roles allowed (design.md §5; the matrix).
ALLOWED: dict[str, set[str]] = {
    "invite": {"owner", "admin", "manager"},
    "change_role": {"owner", "admin"},
    "remove_member": {"owner", "admin"},
    "get_settings": {"owner", "admin", "manager"},
    "put_settings": {"owner", "admin"},
    "change_plan": {"owner"},
    "create_api_key": {"owner", "admin"},
    "list_api_keys": {"owner", "admin"},
    "delete_api_key": {"owner", "admin"},
}
POST_ROLES = {
    "post:create": {"owner", "admin", "manager", "editor"},
    "post:read": set(ROLES),
    "post:update": {"owner", "admin", "manager", "editor"},
    "post:publish": {"owner", "admin", "manager"},
    "post:delete": {"owner", "admin"},
    "analytics:view": set(ROLES),
    "team:invite": {"owner", "admin", "manager"},
    "billing:manage": {"owner"},
}


@pytest.mark.unit
def test_permission_matrix_matches_the_design() -> None:
    for permission, roles in POST_ROLES.items():
        assert {r for r in ROLES if permission in permissions_for(r)} == roles, permission
    assert permissions_for("admin") == permissions_for("owner") - {"billing:manage"}
    assert {r.value for r in ROLE_PERMISSIONS} == set(ROLES)


@pytest.mark.usefixtures("fast_password_hashing")
async def test_role_matrix(start_gateway, fake_upstream: FakeUpstream) -> None:  # type: ignore[no-untyped-def]
    svc = await start_gateway(plans_override=PLANS, publishing_url=fake_upstream.url)
    c = svc.client
    owner = await register(c, "owner@matrix.example", "Matrix")
    members: dict[str, Tenant] = {"owner": owner}
    for role in ROLES[1:]:
        members[role] = await join(c, owner, f"{role}@matrix.example", role)
    # Targets for the member-management actions (viewers, so every manager ranks above).
    target = await join(c, owner, "target@matrix.example", "viewer")
    removable = {
        r: await join(c, owner, f"rm-{r}@matrix.example", "viewer") for r in ("owner", "admin")
    }
    owner_key = await c.post(
        "/api/v1/api-keys", json={"name": "shared", "scopes": ["post:read"]}, headers=owner.headers
    )
    assert owner_key.status_code == 201, owner_key.text
    shared_key_id = owner_key.json()["apiKey"]["id"]

    async def do_invite(m: Tenant, role: str) -> httpx.Response:
        return await invite(c, m, f"invitee-{role}@matrix.example", "viewer")

    async def do_change_role(m: Tenant, role: str) -> httpx.Response:
        return await c.put(
            f"/api/v1/team/members/{target.user_id}", json={"role": "editor"}, headers=m.headers
        )

    async def do_remove(m: Tenant, role: str) -> httpx.Response:
        victim = removable.get(role, target)
        return await c.delete(f"/api/v1/team/members/{victim.user_id}", headers=m.headers)

    async def do_get_settings(m: Tenant, role: str) -> httpx.Response:
        return await c.get("/api/v1/settings", headers=m.headers)

    async def do_put_settings(m: Tenant, role: str) -> httpx.Response:
        return await c.put(
            "/api/v1/settings",
            json={"timezone": "America/New_York", "defaultLocale": "en-US"},
            headers=m.headers,
        )

    async def do_change_plan(m: Tenant, role: str) -> httpx.Response:
        return await c.put("/api/v1/workspace/plan", json={"plan": "free"}, headers=m.headers)

    async def do_create_key(m: Tenant, role: str) -> httpx.Response:
        return await c.post(
            "/api/v1/api-keys",
            json={"name": f"{role} key", "scopes": ["post:read"]},
            headers=m.headers,
        )

    async def do_list_keys(m: Tenant, role: str) -> httpx.Response:
        return await c.get("/api/v1/api-keys", headers=m.headers)

    async def do_delete_key(m: Tenant, role: str) -> httpx.Response:
        if role in ALLOWED["delete_api_key"]:
            own = await do_create_key(m, role)
            return await c.delete(
                f"/api/v1/api-keys/{own.json()['apiKey']['id']}", headers=m.headers
            )
        return await c.delete(f"/api/v1/api-keys/{shared_key_id}", headers=m.headers)

    actions: dict[str, Callable[[Tenant, str], Awaitable[httpx.Response]]] = {
        "invite": do_invite,
        "change_role": do_change_role,
        "remove_member": do_remove,
        "get_settings": do_get_settings,
        "put_settings": do_put_settings,
        "change_plan": do_change_plan,
        "create_api_key": do_create_key,
        "list_api_keys": do_list_keys,
        "delete_api_key": do_delete_key,
    }
    outcomes: dict[tuple[str, str], int] = {}
    # Least privileged first: refusals must not depend on what the others already changed.
    for role in reversed(ROLES):
        for action, call in actions.items():
            response = await call(members[role], role)
            outcomes[(role, action)] = response.status_code
            if role in ALLOWED[action]:
                assert response.status_code < 300, (role, action, response.text)
            else:
                assert_error(response, 403, "FORBIDDEN")
    assert {k for k, v in outcomes.items() if v < 300} == {
        (role, action) for action, roles in ALLOWED.items() for role in roles
    }
    # Removed members lose their sessions at once: no refresh, and /auth/me says 401.
    for gone in removable.values():
        r = await c.post("/api/v1/auth/refresh", json={"refreshToken": gone.refresh})
        assert_error(r, 401, "UNAUTHORIZED")
        assert_error(await c.get("/api/v1/auth/me", headers=gone.headers), 401, "UNAUTHORIZED")
    # The refused requests changed nothing.
    still = await c.get("/api/v1/api-keys", headers=owner.headers)
    assert shared_key_id in {k["id"] for k in still.json()["apiKeys"]}

    # Posts: the gateway passes every role's request on; the token carries the role's row.
    for role in ROLES:
        m = members[role]
        for method in ("POST", "GET"):
            fake_upstream.seen.clear()
            r = await c.request(
                method,
                "/api/v1/posts",
                json={"text": "x"} if method == "POST" else None,
                headers=m.headers,
            )
            assert r.status_code == 200, (role, method, r.text)
            principal = await verify_with_gateway(c, fake_upstream.last().token)
            assert principal.role == role
            assert principal.permissions == permissions_for(role)
            assert principal.workspace_id == owner.workspace_id
            assert principal.can("post:create") == (role in POST_ROLES["post:create"])
            assert principal.can("post:read")
        me = (await c.get("/api/v1/auth/me", headers=m.headers)).json()
        assert (me["role"], set(me["permissions"])) == (role, set(permissions_for(role)))


@pytest.mark.usefixtures("fast_password_hashing")
async def test_privilege_escalation_is_refused(start_gateway) -> None:  # type: ignore[no-untyped-def]
    svc = await start_gateway(plans_override=PLANS)
    c = svc.client
    owner = await register(c, "owner@escalate.example", "Escalate")
    admin = await join(c, owner, "admin@escalate.example", "admin")
    manager = await join(c, owner, "manager@escalate.example", "manager")
    editor = await join(c, owner, "editor@escalate.example", "editor")
    viewer = await join(c, owner, "viewer@escalate.example", "viewer")

    # Nobody grants a role above their own.
    assert_error(await invite(c, editor, "x1@escalate.example", "admin"), 403, "FORBIDDEN")
    assert_error(await invite(c, manager, "x2@escalate.example", "admin"), 403, "FORBIDDEN")
    assert_error(await invite(c, admin, "x3@escalate.example", "owner"), 403, "FORBIDDEN")
    # …but up to it.
    assert (await invite(c, manager, "x4@escalate.example", "manager")).status_code == 201
    assert (await invite(c, admin, "x5@escalate.example", "admin")).status_code == 201

    def put_role(actor: Tenant, user: Tenant, role: str) -> Awaitable[httpx.Response]:
        return c.put(
            f"/api/v1/team/members/{user.user_id}", json={"role": role}, headers=actor.headers
        )

    # An admin may not promote anyone (themselves included) to owner, nor touch the owner.
    assert_error(await put_role(admin, viewer, "owner"), 403, "FORBIDDEN")
    assert_error(await put_role(admin, admin, "owner"), 403, "FORBIDDEN")
    assert_error(await put_role(admin, owner, "viewer"), 403, "FORBIDDEN")
    assert_error(
        await c.delete(f"/api/v1/team/members/{owner.user_id}", headers=admin.headers),
        403,
        "FORBIDDEN",
    )
    # A manager cannot change roles at all.
    assert_error(await put_role(manager, viewer, "editor"), 403, "FORBIDDEN")
    # An admin manages those below.
    ok = await put_role(admin, viewer, "manager")
    assert ok.status_code == 200, ok.text
    assert ok.json()["role"] == "manager"

    # The last owner can neither demote nor remove themselves.
    err = assert_error(await put_role(owner, owner, "admin"), 422, "VALIDATION_ERROR")
    assert err["details"][0]["type"] == "last_owner"
    assert_error(
        await c.delete(f"/api/v1/team/members/{owner.user_id}", headers=owner.headers),
        422,
        "VALIDATION_ERROR",
    )
    me = (await c.get("/api/v1/auth/me", headers=owner.headers)).json()
    assert me["role"] == "owner"

    # With two owners, one may demote the other; then the remaining one is the last again.
    second = await join(c, owner, "owner2@escalate.example", "owner")
    demoted = await put_role(second, owner, "admin")
    assert demoted.status_code == 200, demoted.text
    assert demoted.json()["role"] == "admin"
    assert_error(await put_role(second, second, "admin"), 422, "VALIDATION_ERROR")
    # The demoted owner's fresh session carries the new role.
    relog = await c.post(
        "/api/v1/auth/login",
        json={"email": "owner@escalate.example", "password": "correct horse 42!"},
    )
    assert relog.status_code == 200, relog.text
    now_admin = Tenant(relog.json())
    assert (await c.get("/api/v1/auth/me", headers=now_admin.headers)).json()["role"] == "admin"
    assert_error(await put_role(now_admin, second, "admin"), 403, "FORBIDDEN")
    members = (await c.get("/api/v1/team/members", headers=second.headers)).json()["members"]
    assert [m["role"] for m in members].count("owner") == 1
