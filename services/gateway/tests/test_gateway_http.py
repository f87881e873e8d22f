"""HTTP surface of the gateway: security headers on every answer, request ids, the merged
OpenAPI document and the docs page."""

from __future__ import annotations

import re

import pytest
from gateway_support import FakeUpstream, assert_error, register

from chorus_gateway import api_proxy
from chorus_gateway.main import UPSTREAMS

pytestmark = pytest.mark.integration

SECURITY_HEADERS = {
    "x-content-type-options": "nosniff",
    "x-frame-options": "DENY",
    "referrer-policy": "no-referrer",
    "cache-control": "no-store",
}


async def test_security_headers_and_request_ids(start_gateway, fake_upstream: FakeUpstream) -> None:  # type: ignore[no-untyped-def]
    svc = await start_gateway(publishing_url=fake_upstream.url)
    c = svc.client
    t = await register(c, "headers@example.com", "Headers")
    responses = {
        "ok": await c.get("/api/v1/auth/me", headers=t.headers),
        "created": await c.post(
            "/api/v1/api-keys", json={"name": "k", "scopes": ["post:read"]}, headers=t.headers
        ),
        "unauthorized": await c.get("/api/v1/auth/me"),
        "bad token": await c.get("/api/v1/auth/me", headers={"Authorization": "Bearer x"}),
        "not found": await c.get("/api/v1/nothing", headers=t.headers),
        "validation": await c.post("/api/v1/auth/login", json={}),
        "proxied": await c.get("/api/v1/posts", headers=t.headers),
    }
    for name, r in responses.items():
        for header, value in SECURITY_HEADERS.items():
            assert r.headers.get(header) == value, (name, header, r.headers)
        assert r.headers["strict-transport-security"].startswith("max-age="), name
        assert len(r.headers.get_list("x-content-type-options")) == 1, name
        assert re.fullmatch(r"[0-9a-f]{32}", r.headers["x-request-id"]), name
        if r.status_code >= 400:
            assert assert_error(r, r.status_code)["requestId"] == r.headers["x-request-id"]
    # A sane client request id is echoed (and used in the error body); a hostile one is not.
    r = await c.get("/api/v1/auth/me", headers={"X-Request-ID": "client-req.42"})
    assert r.headers["x-request-id"] == "client-req.42"
    assert assert_error(r, 401)["requestId"] == "client-req.42"
    r = await c.get("/api/v1/auth/me", headers={**t.headers, "X-Request-ID": "bad id\r\nx: y"})
    assert r.headers["x-request-id"] != "bad id\r\nx: y"
    assert re.fullmatch(r"[0-9a-f]{32}", r.headers["x-request-id"])
    # The upstream got the same request id the client saw.
    fake_upstream.seen.clear()
    r = await c.get("/api/v1/posts", headers={**t.headers, "X-Request-ID": "trace-me-1"})
    assert r.headers["x-request-id"] == "trace-me-1"
    assert fake_upstream.last().values("x-request-id") == ["trace-me-1"]
    # The JWKS may be cached by services; everything else is no-store.
    jwks = await c.get("/.well-known/jwks.json")
    assert jwks.headers["x-content-type-options"] == "nosniff"
    assert jwks.headers.get_list("cache-control") == ["public, max-age=60"]
    for r in responses.values():
        assert r.headers.get_list("cache-control") == ["no-store"]


async def test_openapi_and_docs(gateway) -> None:  # type: ignore[no-untyped-def]
    c = gateway.client
    api_proxy._cache.clear()  # merged spec is cached per process for 30 s
    r = await c.get("/api/v1/openapi.json")
    assert r.status_code == 200, r.text
    spec = r.json()
    paths = spec["paths"]
    for path in (
        "/api/v1/auth/register",
        "/api/v1/auth/login",
        "/api/v1/auth/refresh",
        "/api/v1/auth/me",
        "/api/v1/team/members",
        "/api/v1/team/invitations",
        "/api/v1/team/invitations/{token}/accept",
        "/api/v1/api-keys",
        "/api/v1/api-keys/{key_id}",
        "/api/v1/settings",
        "/api/v1/workspace/plan",
        "/.well-known/jwks.json",
    ):
        assert path in paths, path
    # The catch-all proxy routes are not documented as gateway paths.
    assert not [p for p in paths if "{rest" in p]
    # No upstream is configured here: all of them are listed as unavailable.
    assert spec["info"]["x-unavailable-services"] == sorted(UPSTREAMS)
    assert api_proxy._cache  # cached for the next caller
    api_proxy._cache.clear()

    docs = await c.get("/docs")
    assert docs.status_code == 200
    assert docs.headers["content-type"].startswith("text/html")
    assert "/api/v1/openapi.json" in docs.text
    assert docs.headers["x-content-type-options"] == "nosniff"
