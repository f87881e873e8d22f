"""Bad input never becomes a 5xx: every malformed request gets a 4xx with the common error
body (design.md §5)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from gateway_support import FakeUpstream, assert_error, join, register

pytestmark = pytest.mark.integration

MAX_BODY = 4096
REGISTER = "/api/v1/auth/register"


async def _chunks(total: int, size: int = 1024) -> AsyncIterator[bytes]:
    sent = 0
    while sent < total:
        n = min(size, total - sent)
        yield b" " * n
        sent += n


@pytest.mark.usefixtures("fast_password_hashing")
async def test_bad_input_is_a_4xx_with_the_error_body(  # type: ignore[no-untyped-def]
    start_gateway, fake_upstream: FakeUpstream
) -> None:
    svc = await start_gateway(
        max_body_bytes=MAX_BODY,
        publishing_url=fake_upstream.url,
        plans_override=(
            '{"free": {"quotas": {"seats": null}, "limits": {"auth": {"requests": 500}}}}'
        ),
    )
    c = svc.client
    owner = await register(c, "bad-input@example.com", "Bad Input")
    admin = await join(c, owner, "admin@bad-input.example", "admin")
    auth = owner.headers
    valid_register = {
        "email": "new@example.com",
        "password": "correct horse 42!",
        "name": "New",
        "workspaceName": "WS",
    }
    future = (datetime.now(UTC) + timedelta(days=1)).isoformat()
    past = (datetime.now(UTC) - timedelta(minutes=1)).isoformat()
    json_headers = {"Content-Type": "application/json"}

    # (name, method, path, request kwargs, expected status, expected code)
    cases: list[tuple[str, str, str, dict[str, Any], int, str]] = [
        # JSON that does not parse
        (
            "malformed json",
            "POST",
            REGISTER,
            {"content": b'{"email": ', "headers": json_headers},
            400,
            "INVALID_JSON",
        ),
        (
            "malformed json, authenticated",
            "PUT",
            "/api/v1/settings",
            {"content": b"{nope}", "headers": {**auth, **json_headers}},
            400,
            "INVALID_JSON",
        ),
        ("json array body", "POST", REGISTER, {"json": [1, 2]}, 422, "VALIDATION_ERROR"),
        ("json string body", "POST", "/api/v1/auth/login", {"json": "x"}, 422, "VALIDATION_ERROR"),
        (
            "empty body",
            "POST",
            REGISTER,
            {"content": b"", "headers": json_headers},
            422,
            "VALIDATION_ERROR",
        ),
        (
            "not json at all",
            "POST",
            REGISTER,
            {
                "content": b"email=a",
                "headers": {"Content-Type": "application/x-www-form-urlencoded"},
            },
            422,
            "VALIDATION_ERROR",
        ),
        # types, unknown and missing fields
        (
            "wrong types",
            "POST",
            REGISTER,
            {"json": {**valid_register, "email": 123, "name": ["x"]}},
            422,
            "VALIDATION_ERROR",
        ),
        (
            "unknown field",
            "POST",
            REGISTER,
            {"json": {**valid_register, "isAdmin": True}},
            422,
            "VALIDATION_ERROR",
        ),
        (
            "unknown field, role",
            "POST",
            "/api/v1/team/invitations",
            {
                "json": {
                    "email": "x@example.com",
                    "role": "viewer",
                    "workspaceId": owner.workspace_id,
                },
                "headers": auth,
            },
            422,
            "VALIDATION_ERROR",
        ),
        ("missing fields", "POST", REGISTER, {"json": {}}, 422, "VALIDATION_ERROR"),
        (
            "missing password",
            "POST",
            "/api/v1/auth/login",
            {"json": {"email": "a@example.com"}},
            422,
            "VALIDATION_ERROR",
        ),
        (
            "null field",
            "POST",
            REGISTER,
            {"json": {**valid_register, "name": None}},
            422,
            "VALIDATION_ERROR",
        ),
        (
            "huge string",
            "POST",
            REGISTER,
            {"json": {**valid_register, "name": "x" * 1000}},
            422,
            "VALIDATION_ERROR",
        ),
        # passwords and emails
        (
            "short password",
            "POST",
            REGISTER,
            {"json": {**valid_register, "password": "Sh0rt!"}},
            422,
            "VALIDATION_ERROR",
        ),
        (
            "common password",
            "POST",
            REGISTER,
            {"json": {**valid_register, "password": "1q2w3e4r5t6y"}},
            422,
            "VALIDATION_ERROR",
        ),
        (
            "password is the email",
            "POST",
            REGISTER,
            {
                "json": {
                    **valid_register,
                    "email": "someperson@example.com",
                    "password": "someperson@example.com",
                }
            },
            422,
            "VALIDATION_ERROR",
        ),
        (
            "invalid email",
            "POST",
            REGISTER,
            {"json": {**valid_register, "email": "not-an-email"}},
            422,
            "VALIDATION_ERROR",
        ),
        (
            "invalid invite email",
            "POST",
            "/api/v1/team/invitations",
            {"json": {"email": "@@", "role": "viewer"}, "headers": auth},
            422,
            "VALIDATION_ERROR",
        ),
        (
            "unknown role",
            "POST",
            "/api/v1/team/invitations",
            {"json": {"email": "x@example.com", "role": "superuser"}, "headers": auth},
            422,
            "VALIDATION_ERROR",
        ),
        (
            "duplicate email",
            "POST",
            REGISTER,
            {"json": {**valid_register, "email": "bad-input@example.com"}},
            409,
            "ALREADY_EXISTS",
        ),
        # settings
        (
            "invalid timezone",
            "PUT",
            "/api/v1/settings",
            {"json": {"timezone": "Mars/Olympus_Mons", "defaultLocale": "en-US"}, "headers": auth},
            422,
            "VALIDATION_ERROR",
        ),
        (
            "timezone abbreviation",
            "PUT",
            "/api/v1/settings",
            {"json": {"timezone": "../../etc/passwd", "defaultLocale": "en-US"}, "headers": auth},
            422,
            "VALIDATION_ERROR",
        ),
        (
            "invalid locale",
            "PUT",
            "/api/v1/settings",
            {"json": {"timezone": "UTC", "defaultLocale": "English!"}, "headers": auth},
            422,
            "VALIDATION_ERROR",
        ),
        (
            "invalid plan",
            "PUT",
            "/api/v1/workspace/plan",
            {"json": {"plan": "platinum"}, "headers": auth},
            422,
            "VALIDATION_ERROR",
        ),
        # API keys
        (
            "unknown scope",
            "POST",
            "/api/v1/api-keys",
            {"json": {"name": "k", "scopes": ["post:read", "root:all"]}, "headers": auth},
            422,
            "VALIDATION_ERROR",
        ),
        (
            "no scopes",
            "POST",
            "/api/v1/api-keys",
            {"json": {"name": "k", "scopes": []}, "headers": auth},
            422,
            "VALIDATION_ERROR",
        ),
        (
            "scope beyond the creator",
            "POST",
            "/api/v1/api-keys",
            {"json": {"name": "k", "scopes": ["billing:manage"]}, "headers": admin.headers},
            403,
            "FORBIDDEN",
        ),
        (
            "past expiresAt",
            "POST",
            "/api/v1/api-keys",
            {"json": {"name": "k", "scopes": ["post:read"], "expiresAt": past}, "headers": auth},
            422,
            "VALIDATION_ERROR",
        ),
        (
            "naive expiresAt",
            "POST",
            "/api/v1/api-keys",
            {
                "json": {"name": "k", "scopes": ["post:read"], "expiresAt": future[:19]},
                "headers": auth,
            },
            422,
            "VALIDATION_ERROR",
        ),
        (
            "garbage expiresAt",
            "POST",
            "/api/v1/api-keys",
            {
                "json": {"name": "k", "scopes": ["post:read"], "expiresAt": "tomorrow"},
                "headers": auth,
            },
            422,
            "VALIDATION_ERROR",
        ),
        # size limits
        (
            "content-length over the limit",
            "POST",
            REGISTER,
            {"content": b"x" * (MAX_BODY + 1), "headers": json_headers},
            413,
            "PAYLOAD_TOO_LARGE",
        ),
        (
            "content-length over the limit, authenticated",
            "PUT",
            "/api/v1/settings",
            {"content": b"x" * (MAX_BODY + 1), "headers": {**auth, **json_headers}},
            413,
            "PAYLOAD_TOO_LARGE",
        ),
        (
            "chunked body over the limit",
            "POST",
            REGISTER,
            {"content": _chunks(MAX_BODY * 3), "headers": json_headers},
            413,
            "PAYLOAD_TOO_LARGE",
        ),
        (
            "chunked body over the limit, authenticated",
            "PUT",
            "/api/v1/settings",
            {"content": _chunks(MAX_BODY * 3), "headers": {**auth, **json_headers}},
            413,
            "PAYLOAD_TOO_LARGE",
        ),
        (
            "content-length over the limit, proxied",
            "POST",
            "/api/v1/posts",
            {"content": b"x" * (MAX_BODY + 1), "headers": {**auth, **json_headers}},
            413,
            "PAYLOAD_TOO_LARGE",
        ),
        (
            "chunked body over the limit, proxied",
            "POST",
            "/api/v1/posts",
            {"content": _chunks(MAX_BODY * 3), "headers": {**auth, **json_headers}},
            413,
            "PAYLOAD_TOO_LARGE",
        ),
        # path ids and routes
        (
            "non-uuid member id",
            "PUT",
            "/api/v1/team/members/not-a-uuid",
            {"json": {"role": "viewer"}, "headers": auth},
            422,
            "VALIDATION_ERROR",
        ),
        (
            "non-uuid member id (delete)",
            "DELETE",
            "/api/v1/team/members/1%20OR%201=1",
            {"headers": auth},
            422,
            "VALIDATION_ERROR",
        ),
        (
            "non-uuid api key id",
            "DELETE",
            "/api/v1/api-keys/../../etc",
            {"headers": auth},
            404,
            "NOT_FOUND",
        ),
        (
            "non-uuid api key id 2",
            "DELETE",
            "/api/v1/api-keys/12345",
            {"headers": auth},
            422,
            "VALIDATION_ERROR",
        ),
        (
            "non-uuid switch",
            "POST",
            "/api/v1/auth/switch",
            {"json": {"workspaceId": "ws-1"}, "headers": auth},
            422,
            "VALIDATION_ERROR",
        ),
        ("unknown api route", "GET", "/api/v1/nothing-here", {"headers": auth}, 404, "NOT_FOUND"),
        ("unknown route", "GET", "/definitely/not/here", {"headers": auth}, 404, "NOT_FOUND"),
        ("unknown route, anonymous", "GET", "/api/v1/nothing-here", {}, 401, "UNAUTHORIZED"),
        ("wrong method", "DELETE", "/api/v1/settings", {"headers": auth}, 404, "NOT_FOUND"),
        ("wrong method on a public route", "GET", "/api/v1/auth/login", {}, 404, "NOT_FOUND"),
        (
            "invalid refresh token",
            "POST",
            "/api/v1/auth/refresh",
            {"json": {"refreshToken": "x" * 600}},
            422,
            "VALIDATION_ERROR",
        ),
        (
            "invalid invitation token",
            "POST",
            "/api/v1/team/invitations/%00%ff/accept",
            {"json": {"name": "x", "password": "correct horse 42!"}},
            404,
            "NOT_FOUND",
        ),
    ]
    failures = []
    for name, method, path, kwargs, status, code in cases:
        r = await c.request(method, path, **kwargs)
        assert r.status_code < 500, (name, r.status_code, r.text)
        try:
            assert_error(r, status, code)
        except AssertionError as exc:
            failures.append(f"{name}: {exc}")
    assert not failures, "\n".join(failures)

    # None of it changed anything, nor reached the upstream.
    assert fake_upstream.seen == []
    me = (await c.get("/api/v1/auth/me", headers=auth)).json()
    assert me["workspace"]["plan"] == "free"
    assert (await c.get("/api/v1/settings", headers=auth)).json()["timezone"] == "UTC"
    assert (await c.get("/api/v1/api-keys", headers=auth)).json() == {"apiKeys": []}


async def test_body_at_the_limit_is_accepted(start_gateway) -> None:  # type: ignore[no-untyped-def]
    svc = await start_gateway(max_body_bytes=MAX_BODY)
    c = svc.client
    t = await register(c, "limit@example.com", "Limit")
    body = b'{"timezone": "UTC", "defaultLocale": "en-US"}'
    padded = body[:-1] + b" " * (MAX_BODY - len(body)) + b"}"
    assert len(padded) == MAX_BODY
    r = await c.put(
        "/api/v1/settings",
        content=padded,
        headers={**t.headers, "Content-Type": "application/json"},
    )
    assert r.status_code == 200, r.text
