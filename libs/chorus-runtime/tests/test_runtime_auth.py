"""Access-token verification (design.md §5): every way a token can be wrong is a 401,
the permission matrix, and the FastAPI dependencies that enforce both."""

from __future__ import annotations

import base64
import hashlib
import hmac
import itertools
import json
import time
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from cryptography.hazmat.primitives import serialization
from fastapi import Depends, FastAPI

from chorus_contracts.events.common import Role
from chorus_runtime.auth import (
    ROLE_PERMISSIONS,
    JwtSigner,
    Principal,
    SigningKey,
    TokenError,
    TokenVerifier,
    permissions_for,
    require_permission,
    verify_token,
)
from chorus_runtime.auth.permissions import ALL_PERMISSIONS
from chorus_runtime.errors import install_error_handlers
from chorus_runtime.http import RequestContextMiddleware

pytestmark = pytest.mark.unit

ISS = "chorus-gateway"
AUD = "chorus"
KID = "key-1"


def b64url(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def b64url_json(obj: dict[str, Any]) -> str:
    return b64url(json.dumps(obj, separators=(",", ":")).encode())


def unb64url(part: str) -> bytes:
    return base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))


def claims(**overrides: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "sub": str(uuid.uuid4()),
        "wid": str(uuid.uuid4()),
        "role": "editor",
        "perms": sorted(permissions_for("editor")),
        "plan": "pro",
        "typ": "user",
    }
    base.update(overrides)
    return {k: v for k, v in base.items() if v is not None}


class StaticJwks:
    """A JWKS source that serves whatever keys the test's signer holds and counts fetches."""

    def __init__(self, signer: JwtSigner) -> None:
        self.signer = signer
        self.fetches = 0

    async def __call__(self) -> dict[str, Any]:
        self.fetches += 1
        return self.signer.jwks()


@pytest.fixture(scope="module")
def key() -> SigningKey:
    return SigningKey.generate(KID)


@pytest.fixture
def signer(key: SigningKey) -> JwtSigner:
    return JwtSigner([key], issuer=ISS, audience=AUD)


@pytest.fixture
def jwks(signer: JwtSigner) -> dict[str, Any]:
    return signer.jwks()


def verify(token: str, jwks: dict[str, Any]) -> Principal:
    return verify_token(token, jwks, issuer=ISS, audience=AUD)


# -- the happy paths -----------------------------------------------------------------------


def test_valid_eddsa_token_gives_the_principal(signer: JwtSigner, jwks: dict[str, Any]) -> None:
    c = claims(role="manager", perms=["post:create", "post:publish"])
    principal = verify(signer.issue(c), jwks)
    assert principal.subject == c["sub"]
    assert principal.workspace_id == c["wid"]
    assert principal.role == "manager"
    assert principal.permissions == frozenset({"post:create", "post:publish"})
    assert principal.plan == "pro"
    assert principal.token_type == "user"
    assert principal.token_id  # jti from the signer
    assert principal.can("post:publish")
    assert not principal.can("post:delete")


def test_rs256_token_is_accepted() -> None:
    rsa_signer = JwtSigner([SigningKey.generate("rsa-1", "RS256")], issuer=ISS, audience=AUD)
    token = rsa_signer.issue(claims())
    header = json.loads(unb64url(token.split(".")[0]))
    assert header == {"alg": "RS256", "kid": "rsa-1", "typ": "JWT"}
    jwk = rsa_signer.jwks()["keys"][0]
    assert jwk["kty"] == "RSA"
    assert "d" not in jwk, "the JWKS must not leak the private exponent"
    assert verify(token, rsa_signer.jwks()).role == "editor"


def test_jwks_only_holds_public_material(jwks: dict[str, Any]) -> None:
    (jwk,) = jwks["keys"]
    assert jwk["kid"] == KID
    assert jwk["alg"] == "EdDSA"
    assert jwk["use"] == "sig"
    assert "d" not in jwk


# -- the token matrix: every row is a TokenError --------------------------------------------


def test_expired_token_is_rejected(signer: JwtSigner, jwks: dict[str, Any]) -> None:
    now = int(time.time())
    token = signer.issue(claims(iat=now - 3600, nbf=now - 3600, exp=now - 120))
    with pytest.raises(TokenError, match="expired"):
        verify(token, jwks)


def test_expiry_within_leeway_is_still_accepted(signer: JwtSigner, jwks: dict[str, Any]) -> None:
    now = int(time.time())
    token = signer.issue(claims(iat=now - 900, nbf=now - 900, exp=now - 5))
    assert verify(token, jwks).role == "editor"


def test_not_yet_valid_token_is_rejected(signer: JwtSigner, jwks: dict[str, Any]) -> None:
    now = int(time.time())
    token = signer.issue(claims(nbf=now + 300, exp=now + 900))
    with pytest.raises(TokenError, match="not yet valid"):
        verify(token, jwks)


def test_token_issued_in_the_future_is_rejected(signer: JwtSigner, jwks: dict[str, Any]) -> None:
    now = int(time.time())
    token = signer.issue(claims(iat=now + 300, nbf=now - 5, exp=now + 900))
    with pytest.raises(TokenError):
        verify(token, jwks)


def test_signature_by_another_key_with_the_same_kid_is_rejected(jwks: dict[str, Any]) -> None:
    impostor = JwtSigner([SigningKey.generate(KID)], issuer=ISS, audience=AUD)
    token = impostor.issue(claims())
    with pytest.raises(TokenError, match="invalid token"):
        verify(token, jwks)


def test_unknown_kid_is_rejected(jwks: dict[str, Any]) -> None:
    other = JwtSigner([SigningKey.generate("never-published")], issuer=ISS, audience=AUD)
    with pytest.raises(TokenError, match="unknown signing key"):
        verify(other.issue(claims()), jwks)


def test_missing_kid_is_rejected(key: SigningKey, jwks: dict[str, Any]) -> None:
    import jwt

    now = int(time.time())
    token = jwt.encode(
        {**claims(), "iss": ISS, "aud": AUD, "iat": now, "exp": now + 60},
        key.private_key,
        algorithm="EdDSA",
    )
    with pytest.raises(TokenError, match="no key id"):
        verify(token, jwks)


def test_alg_none_is_rejected(jwks: dict[str, Any]) -> None:
    now = int(time.time())
    payload = {**claims(role="owner"), "iss": ISS, "aud": AUD, "iat": now, "exp": now + 600}
    for alg in ("none", "None", "NONE"):
        token = f"{b64url_json({'alg': alg, 'kid': KID, 'typ': 'JWT'})}.{b64url_json(payload)}."
        with pytest.raises(TokenError, match="algorithm not allowed"):
            verify(token, jwks)


def _hs256_with_public_key(key: SigningKey, header_alg: str) -> str:
    """The classic confusion attack: HMAC keyed with the (public) verification key."""
    secret = key.private_key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    now = int(time.time())
    payload = {**claims(role="owner"), "iss": ISS, "aud": AUD, "iat": now, "exp": now + 600}
    signing_input = f"{b64url_json({'alg': header_alg, 'kid': KID})}.{b64url_json(payload)}"
    sig = hmac.new(secret, signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{b64url(sig)}"


def test_hs256_signed_with_the_public_key_is_rejected(
    key: SigningKey, jwks: dict[str, Any]
) -> None:
    with pytest.raises(TokenError, match="algorithm not allowed"):
        verify(_hs256_with_public_key(key, "HS256"), jwks)
    # Same HMAC signature under an allowed alg name: the signature check must fail.
    with pytest.raises(TokenError, match="invalid token"):
        verify(_hs256_with_public_key(key, "EdDSA"), jwks)


def test_alg_that_does_not_match_the_key_is_rejected(
    signer: JwtSigner, jwks: dict[str, Any]
) -> None:
    head, body, sig = signer.issue(claims()).split(".")
    header = json.loads(unb64url(head))
    header["alg"] = "RS256"
    with pytest.raises(TokenError, match="does not match its key"):
        verify(f"{b64url_json(header)}.{body}.{sig}", jwks)


def test_wrong_audience_is_rejected(key: SigningKey, jwks: dict[str, Any]) -> None:
    other = JwtSigner([key], issuer=ISS, audience="someone-else")
    with pytest.raises(TokenError, match="audience"):
        verify(other.issue(claims()), jwks)


def test_wrong_issuer_is_rejected(key: SigningKey, jwks: dict[str, Any]) -> None:
    other = JwtSigner([key], issuer="evil-gateway", audience=AUD)
    with pytest.raises(TokenError, match="issuer"):
        verify(other.issue(claims()), jwks)


def test_tampered_claims_are_rejected(signer: JwtSigner, jwks: dict[str, Any]) -> None:
    token = signer.issue(claims(role="viewer", perms=["post:read"]))
    assert verify(token, jwks).role == "viewer"  # the untampered token is fine
    head, body, sig = token.split(".")
    payload = json.loads(unb64url(body))
    payload["role"] = "owner"
    payload["perms"] = sorted(ALL_PERMISSIONS)
    with pytest.raises(TokenError, match="invalid token"):
        verify(f"{head}.{b64url_json(payload)}.{sig}", jwks)


@pytest.mark.parametrize("garbage", ["", "abc", "a.b", "a.b.c", "🙂.🙂.🙂", "x" * 5000])
def test_garbage_is_rejected(garbage: str, jwks: dict[str, Any]) -> None:
    with pytest.raises(TokenError):
        verify(garbage, jwks)


@pytest.mark.parametrize("missing", ["exp", "iat", "sub"])
def test_required_registered_claims(key: SigningKey, jwks: dict[str, Any], missing: str) -> None:
    import jwt

    now = int(time.time())
    payload = {**claims(), "iss": ISS, "aud": AUD, "iat": now, "exp": now + 600}
    del payload[missing]
    token = jwt.encode(payload, key.private_key, algorithm="EdDSA", headers={"kid": KID})
    with pytest.raises(TokenError):
        verify(token, jwks)


def test_missing_workspace_claim_is_rejected(signer: JwtSigner, jwks: dict[str, Any]) -> None:
    token = signer.issue(claims(wid=None))
    with pytest.raises(TokenError, match="claim"):
        verify(token, jwks)


def test_malformed_workspace_claim_is_rejected(signer: JwtSigner, jwks: dict[str, Any]) -> None:
    with pytest.raises(TokenError, match="claim"):
        verify(signer.issue(claims(wid="workspace-1")), jwks)


@pytest.mark.parametrize(
    "perms", ["post:create", {"post:create": True}, [1, 2], ["post:read", None], 7]
)
def test_malformed_permissions_are_rejected(
    signer: JwtSigner, jwks: dict[str, Any], perms: Any
) -> None:
    with pytest.raises(TokenError, match="permissions"):
        verify(signer.issue(claims(perms=perms)), jwks)


# -- the verifier: JWKS caching and key rotation ---------------------------------------------


async def test_verifier_caches_the_jwks(signer: JwtSigner) -> None:
    source = StaticJwks(signer)
    verifier = TokenVerifier(source, issuer=ISS, audience=AUD)
    for _ in range(5):
        await verifier.verify(signer.issue(claims()))
    assert source.fetches == 1


async def test_key_rotation_refreshes_once_and_accepts_the_new_key(signer: JwtSigner) -> None:
    source = StaticJwks(signer)
    verifier = TokenVerifier(source, issuer=ISS, audience=AUD, min_refresh_seconds=0)
    old_token = signer.issue(claims())
    await verifier.verify(old_token)
    assert source.fetches == 1

    # The gateway rotates: signs with a new key, still publishes the old one.
    signer.keys = [SigningKey.generate("key-2"), *signer.keys]
    new_token = signer.issue(claims(role="viewer"))
    principal = await verifier.verify(new_token)
    assert principal.role == "viewer"
    assert source.fetches == 2, "exactly one refresh for the unknown kid"

    await verifier.verify(new_token)
    await verifier.verify(old_token)
    assert source.fetches == 2, "both keys now served from the cache"


async def test_unknown_kid_refreshes_once_then_fails(signer: JwtSigner) -> None:
    source = StaticJwks(signer)
    verifier = TokenVerifier(source, issuer=ISS, audience=AUD, min_refresh_seconds=0)
    await verifier.verify(signer.issue(claims()))
    stranger = JwtSigner([SigningKey.generate("unknown")], issuer=ISS, audience=AUD)
    with pytest.raises(TokenError, match="unknown signing key"):
        await verifier.verify(stranger.issue(claims()))
    assert source.fetches == 2


async def test_unknown_kids_cannot_hammer_the_jwks_endpoint(signer: JwtSigner) -> None:
    source = StaticJwks(signer)
    verifier = TokenVerifier(source, issuer=ISS, audience=AUD, min_refresh_seconds=60)
    await verifier.verify(signer.issue(claims()))
    for i in range(20):
        stranger = JwtSigner([SigningKey.generate(f"bad-{i}")], issuer=ISS, audience=AUD)
        with pytest.raises(TokenError):
            await verifier.verify(stranger.issue(claims()))
    assert source.fetches == 1, "refreshes are rate-limited by min_refresh_seconds"


async def test_unreachable_jwks_is_a_token_error() -> None:
    async def down() -> dict[str, Any]:
        raise ConnectionError("gateway down")

    verifier = TokenVerifier(down, issuer=ISS, audience=AUD)
    signer = JwtSigner([SigningKey.generate()], issuer=ISS, audience=AUD)
    with pytest.raises(TokenError, match="keys unavailable"):
        await verifier.verify(signer.issue(claims()))


async def test_cached_keys_survive_a_jwks_outage(signer: JwtSigner) -> None:
    calls = {"n": 0}

    async def flaky() -> dict[str, Any]:
        calls["n"] += 1
        if calls["n"] > 1:
            raise ConnectionError("gateway down")
        return signer.jwks()

    verifier = TokenVerifier(flaky, issuer=ISS, audience=AUD, ttl_seconds=0)
    await verifier.verify(signer.issue(claims()))
    assert (await verifier.verify(signer.issue(claims(role="viewer")))).role == "viewer"
    assert calls["n"] == 2, "the TTL expired, the refresh failed, the cached keys were used"


class CountingVerify:
    """Wraps `verify_token` in the verifier's module to count full signature checks."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        import chorus_runtime.auth.jwks as jwks_module

        self.calls = 0
        real = jwks_module.verify_token

        def counting(*args: Any, **kwargs: Any) -> Principal:
            self.calls += 1
            return real(*args, **kwargs)

        monkeypatch.setattr(jwks_module, "verify_token", counting)


async def test_a_verified_token_is_not_checked_again(
    signer: JwtSigner, monkeypatch: pytest.MonkeyPatch
) -> None:
    counter = CountingVerify(monkeypatch)
    verifier = TokenVerifier(StaticJwks(signer), issuer=ISS, audience=AUD)
    token = signer.issue(claims(role="viewer"))
    first = await verifier.verify(token)
    for _ in range(5):
        assert await verifier.verify(token) == first
    assert counter.calls == 1
    await verifier.verify(signer.issue(claims()))
    assert counter.calls == 2, "another token is checked in full"


async def test_cached_token_stops_at_its_expiry(
    signer: JwtSigner, monkeypatch: pytest.MonkeyPatch
) -> None:
    counter = CountingVerify(monkeypatch)
    verifier = TokenVerifier(StaticJwks(signer), issuer=ISS, audience=AUD)
    token = signer.issue(claims(), ttl_seconds=60)
    await verifier.verify(token)
    import chorus_runtime.auth.jwks as jwks_module

    later = time.time() + 61
    monkeypatch.setattr(jwks_module.time, "time", lambda: later)
    await verifier.verify(token)  # still inside the leeway for PyJWT's real clock
    assert counter.calls == 2, "past its exp the cache no longer answers"


async def test_removing_a_key_revokes_its_cached_tokens(signer: JwtSigner) -> None:
    verifier = TokenVerifier(
        StaticJwks(signer), issuer=ISS, audience=AUD, ttl_seconds=0, min_refresh_seconds=0
    )
    token = signer.issue(claims())
    await verifier.verify(token)
    signer.keys = [SigningKey.generate("key-2")]  # key-1 withdrawn
    with pytest.raises(TokenError, match="unknown signing key"):
        await verifier.verify(token)


async def test_token_cache_is_bounded(signer: JwtSigner, monkeypatch: pytest.MonkeyPatch) -> None:
    counter = CountingVerify(monkeypatch)
    verifier = TokenVerifier(StaticJwks(signer), issuer=ISS, audience=AUD, cache_size=2)
    a, b, c = (signer.issue(claims()) for _ in range(3))
    for token in (a, b, c):
        await verifier.verify(token)
    await verifier.verify(c)
    assert counter.calls == 3, "the newest stays cached"
    await verifier.verify(a)
    assert counter.calls == 4, "the oldest was evicted"


# -- the permission matrix ---------------------------------------------------------------------


def test_permission_matrix() -> None:
    assert ROLE_PERMISSIONS[Role.OWNER] == ALL_PERMISSIONS
    assert ALL_PERMISSIONS - ROLE_PERMISSIONS[Role.ADMIN] == {"billing:manage"}
    viewer = permissions_for("viewer")
    assert "post:read" in viewer
    assert not viewer & {"post:create", "post:update", "post:delete", "post:publish"}
    editor = permissions_for(Role.EDITOR)
    assert {"post:create", "post:update"} <= editor
    assert "post:publish" not in editor
    assert "post:publish" in permissions_for("manager")
    assert "billing:manage" not in permissions_for("manager")
    # Each role holds everything the role below it holds.
    ladder = [Role.VIEWER, Role.EDITOR, Role.MANAGER, Role.ADMIN, Role.OWNER]
    for lower, higher in itertools.pairwise(ladder):
        assert ROLE_PERMISSIONS[lower] <= ROLE_PERMISSIONS[higher], (lower, higher)
    for perms in ROLE_PERMISSIONS.values():
        assert perms <= ALL_PERMISSIONS
    with pytest.raises(ValueError):
        permissions_for("superuser")


# -- FastAPI level -------------------------------------------------------------------------------


def guarded_app(verifier: TokenVerifier | None) -> FastAPI:
    app = FastAPI()
    install_error_handlers(app)
    if verifier is not None:
        app.state.verifier = verifier

    @app.post("/things")
    async def create_thing(
        principal: Principal = Depends(require_permission("post:create")),
    ) -> dict[str, str]:
        return {"workspaceId": principal.workspace_id, "role": principal.role}

    @app.post("/things/publish")
    async def publish_thing(
        principal: Principal = Depends(require_permission("post:create", "post:publish")),
    ) -> dict[str, str]:
        return {"ok": "yes"}

    app.add_middleware(RequestContextMiddleware, service="auth-test")
    return app


@pytest.fixture
def http_signer() -> JwtSigner:
    return JwtSigner([SigningKey.generate("http-key")], issuer=ISS, audience=AUD)


@pytest.fixture
def client(http_signer: JwtSigner) -> Iterator[httpx.AsyncClient]:
    app = guarded_app(TokenVerifier(StaticJwks(http_signer), issuer=ISS, audience=AUD))
    yield httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t")


def bearer(signer: JwtSigner, role: str, **kw: Any) -> dict[str, str]:
    token = signer.issue(claims(role=role, perms=sorted(permissions_for(role)), **kw))
    return {"Authorization": f"Bearer {token}"}


def assert_error(resp: httpx.Response, status: int, code: str) -> dict[str, Any]:
    assert resp.status_code == status, resp.text
    body = resp.json()
    assert set(body) == {"error"}
    err = body["error"]
    assert set(err) == {"code", "message", "details", "timestamp", "requestId"}
    assert err["code"] == code
    assert err["requestId"] == resp.headers["x-request-id"]
    return err  # type: ignore[no-any-return]


@pytest.mark.parametrize(
    "header",
    [None, "", "Bearer", "Bearer   ", "Basic dXNlcjpwYXNz", "Token abc", "Bearer not-a-jwt"],
)
async def test_http_without_a_valid_token_is_401(
    client: httpx.AsyncClient, header: str | None
) -> None:
    headers = {} if header is None else {"Authorization": header}
    resp = await client.post("/things", headers=headers)
    err = assert_error(resp, 401, "UNAUTHORIZED")
    assert resp.headers["www-authenticate"] == "Bearer"
    assert err["message"]


async def test_http_expired_token_is_401(client: httpx.AsyncClient, http_signer: JwtSigner) -> None:
    now = int(time.time())
    headers = bearer(http_signer, "owner", iat=now - 3600, nbf=now - 3600, exp=now - 600)
    err = assert_error(await client.post("/things", headers=headers), 401, "UNAUTHORIZED")
    assert err["message"] == "token expired"


async def test_http_token_from_another_issuer_key_is_401(client: httpx.AsyncClient) -> None:
    stranger = JwtSigner([SigningKey.generate("http-key")], issuer=ISS, audience=AUD)
    resp = await client.post("/things", headers=bearer(stranger, "owner"))
    assert_error(resp, 401, "UNAUTHORIZED")


async def test_http_viewer_is_403_with_the_missing_permission(
    client: httpx.AsyncClient, http_signer: JwtSigner
) -> None:
    resp = await client.post("/things", headers=bearer(http_signer, "viewer"))
    err = assert_error(resp, 403, "FORBIDDEN")
    assert err["details"] == {"required": ["post:create"]}
    assert "post:create" in err["message"]


async def test_http_lists_only_the_permissions_missing(
    client: httpx.AsyncClient, http_signer: JwtSigner
) -> None:
    resp = await client.post("/things/publish", headers=bearer(http_signer, "editor"))
    err = assert_error(resp, 403, "FORBIDDEN")
    assert err["details"] == {"required": ["post:publish"]}
    ok = await client.post("/things/publish", headers=bearer(http_signer, "manager"))
    assert ok.status_code == 200, ok.text


async def test_http_editor_is_allowed(client: httpx.AsyncClient, http_signer: JwtSigner) -> None:
    workspace = str(uuid.uuid4())
    resp = await client.post("/things", headers=bearer(http_signer, "editor", wid=workspace))
    assert resp.status_code == 200, resp.text
    assert resp.json() == {"workspaceId": workspace, "role": "editor"}


async def test_http_role_claim_alone_grants_nothing(
    client: httpx.AsyncClient, http_signer: JwtSigner
) -> None:
    """Permissions come from the signed `perms` claim, not from the role name."""
    token = http_signer.issue(claims(role="owner", perms=["post:read"]))
    resp = await client.post("/things", headers={"Authorization": f"Bearer {token}"})
    assert_error(resp, 403, "FORBIDDEN")


async def test_http_without_a_configured_verifier_is_503() -> None:
    app = guarded_app(None)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as c:
        resp = await c.post("/things", headers={"Authorization": "Bearer x.y.z"})
    assert_error(resp, 503, "SERVICE_UNAVAILABLE")
