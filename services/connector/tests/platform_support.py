"""Harness for the platform-client tests (generic: every platform's tests use it).

The sandbox app runs in process, its lifespan entered through
`app.router.lifespan_context(app)`, and is served to httpx through `ASGITransport`. A fake
media host (`MEDIA`) serves the files that posts attach, so media flows that download and
re-upload bytes work offline. `connect` walks a client's OAuth authorization-code flow
against the sandbox.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import secrets
from collections.abc import AsyncIterator, Awaitable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any, TypeVar
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from chorus_connector.platforms.base import (
    AccountProfile,
    AppCredentials,
    Endpoints,
    MediaFile,
    OAuthTokens,
    PlatformClient,
    PlatformError,
)
from chorus_sandbox.main import build
from chorus_sandbox.settings import SandboxSettings
from chorus_sandbox.store import Store

SANDBOX = "http://sandbox"
MEDIA = "http://media.test"
REDIRECT_URI = "https://chorus.test/api/v1/accounts/oauth/callback"
APP = AppCredentials(client_id="sandbox-client-id", client_secret="sandbox-app-secret")
C = TypeVar("C", bound=PlatformClient)
# How long a simulated `timeout` fault holds its response; clients in timeout tests use less.
SANDBOX_TIMEOUT_SECONDS = 0.6
# The post metrics every client reports (`post_metrics` keys).
METRIC_NAMES = frozenset(
    {"likes", "comments", "shares", "saves", "impressions", "reach", "clicks", "video_views"}
)

# Just enough bytes to look like the files they claim to be.
FAKE_FILES = {
    "mp4": ("video/mp4", b"\x00\x00\x00\x18ftypmp42\x00\x00\x00\x00mp42isom" + bytes(2048)),
    "mov": ("video/quicktime", b"\x00\x00\x00\x14ftypqt  \x00\x00\x00\x00" + bytes(2048)),
    "jpg": ("image/jpeg", b"\xff\xd8\xff\xe0\x00\x10JFIF\x00" + bytes(1024) + b"\xff\xd9"),
    "png": ("image/png", b"\x89PNG\r\n\x1a\n" + bytes(1024)),
    "gif": ("image/gif", b"GIF89a" + bytes(512)),
}


def media(name: str) -> MediaFile:
    """A `MediaFile` served by the fake media host, e.g. `media("clip.mp4")`."""
    mime, body = FAKE_FILES[name.rsplit(".", 1)[-1]]
    return MediaFile(url=f"{MEDIA}/{name}", mime_type=mime, size_bytes=len(body))


def _serve_media(request: httpx.Request) -> httpx.Response:
    ext = request.url.path.rsplit(".", 1)[-1]
    if ext not in FAKE_FILES:
        return httpx.Response(404)
    mime, body = FAKE_FILES[ext]
    return httpx.Response(200, content=body, headers={"content-type": mime})


class DeadlineASGITransport(httpx.ASGITransport):
    """`ASGITransport` ignores timeouts; enforce the request's read timeout as a socket would,
    so a sandbox that holds its response surfaces as `httpx.ReadTimeout`."""

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        timeout = (request.extensions.get("timeout") or {}).get("read")
        if timeout is None:
            return await super().handle_async_request(request)
        try:
            return await asyncio.wait_for(super().handle_async_request(request), timeout)
        except TimeoutError as exc:
            raise httpx.ReadTimeout("sandbox did not answer in time", request=request) from exc


@dataclass
class Sandbox:
    app: Any
    settings: SandboxSettings
    transport: httpx.AsyncBaseTransport
    http: httpx.AsyncClient  # reaches the sandbox (`SANDBOX`) and the media host (`MEDIA`)
    _clients: list[httpx.AsyncClient] = field(default_factory=list)

    @property
    def store(self) -> Store:
        store: Store = self.app.state.sandbox[0]
        return store

    def new_http(self, timeout: float = 5.0) -> httpx.AsyncClient:
        http = httpx.AsyncClient(
            mounts={
                f"all://{urlsplit(SANDBOX).netloc}": self.transport,
                f"all://{urlsplit(MEDIA).netloc}": httpx.MockTransport(_serve_media),
            },
            timeout=timeout,
        )
        self._clients.append(http)
        return http

    def endpoints(self, platform: str) -> Endpoints:
        return Endpoints(api=f"{SANDBOX}/{platform}")

    def client(self, cls: type[C], *, timeout: float = 5.0) -> C:
        """A platform client talking to this sandbox (its own httpx client and timeout)."""
        return cls(self.new_http(timeout), self.endpoints(cls.platform.value), APP)

    async def fault(
        self, platform: str, kind: str, *, operation: str | None = None, count: int = 1
    ) -> None:
        body = {"platform": platform, "kind": kind, "count": count, "operation": operation}
        response = await self.http.post(f"{SANDBOX}/_sandbox/faults", json=body)
        assert response.status_code == 201, response.text

    async def posts(self, platform: str) -> list[dict[str, Any]]:
        response = await self.http.get(f"{SANDBOX}/_sandbox/posts", params={"platform": platform})
        assert response.status_code == 200, response.text
        posts: list[dict[str, Any]] = response.json()["posts"]
        return posts

    async def aclose(self) -> None:
        for http in self._clients:
            await http.aclose()


@asynccontextmanager
async def running_sandbox(settings: SandboxSettings | None = None) -> AsyncIterator[Sandbox]:
    settings = settings or SandboxSettings(timeout_seconds=SANDBOX_TIMEOUT_SECONDS)
    app = build(settings).create_app()
    # raise_app_exceptions=False: an unhandled error is a 500 answer, as from a real server.
    transport = DeadlineASGITransport(app=app, raise_app_exceptions=False)
    async with app.router.lifespan_context(app):
        sandbox = Sandbox(app, settings, transport, http=None)  # type: ignore[arg-type]
        sandbox.http = sandbox.new_http()
        try:
            yield sandbox
        finally:
            await sandbox.aclose()


@pytest.fixture(name="sandbox")
async def sandbox_fixture() -> AsyncIterator[Sandbox]:
    """A running sandbox as the `sandbox` fixture: a test module imports `sandbox_fixture`."""
    async with running_sandbox() as running:
        yield running


@pytest.fixture
def sandbox_http(sandbox: Sandbox) -> httpx.AsyncClient:
    return sandbox.http


# -- OAuth -------------------------------------------------------------------------------------


def pkce_pair() -> tuple[str, str]:
    """(verifier, S256 challenge)."""
    verifier = secrets.token_urlsafe(48)
    digest = hashlib.sha256(verifier.encode()).digest()
    return verifier, base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


@dataclass(frozen=True)
class Grant:
    code: str
    state: str
    verifier: str | None
    redirect_uri: str


async def authorize(
    client: PlatformClient,
    http: httpx.AsyncClient,
    *,
    scopes: tuple[str, ...] | None = None,
    redirect_uri: str = REDIRECT_URI,
) -> Grant:
    """Open the client's authorize URL; the sandbox redirects straight back with a code."""
    verifier, challenge = pkce_pair() if client.supports_pkce else (None, None)
    state = secrets.token_urlsafe(12)
    url = client.authorize_url(
        state=state,
        redirect_uri=redirect_uri,
        code_challenge=challenge,
        scopes=scopes if scopes is not None else client.default_scopes,
    )
    response = await http.get(url, follow_redirects=False)
    assert response.status_code in (302, 303, 307), response.text
    location = response.headers["location"]
    assert location.startswith(redirect_uri), location
    query = parse_qs(urlsplit(location).query)
    assert query.get("state") == [state]
    return Grant(query["code"][0], state, verifier, redirect_uri)


async def connect(
    client: PlatformClient,
    sandbox_http: httpx.AsyncClient,
    *,
    scopes: tuple[str, ...] | None = None,
) -> OAuthTokens:
    """The whole OAuth walk: authorize, follow the redirect back, exchange the code."""
    grant = await authorize(client, sandbox_http, scopes=scopes)
    return await client.exchange_code(
        code=grant.code, redirect_uri=grant.redirect_uri, code_verifier=grant.verifier
    )


async def connect_client(
    sandbox: Sandbox, *, cls: type[C], timeout: float = 5.0, poll_interval: float | None = None
) -> tuple[C, OAuthTokens, AccountProfile]:
    """A client of `cls` connected through OAuth: (client, tokens, the account's profile).
    `poll_interval` shortens the client's status polls (clients that poll have one)."""
    client = sandbox.client(cls, timeout=timeout)
    if poll_interval is not None:
        client.poll_interval = poll_interval  # type: ignore[attr-defined]
    tokens = await connect(client, sandbox.http)
    return client, tokens, await client.profile(tokens.access_token)


async def connect_bearer(
    sandbox: Sandbox, *, cls: type[C], timeout: float = 5.0
) -> tuple[C, str, AccountProfile]:
    """`connect_client`, with only the access token: (client, access token, profile)."""
    client, tokens, account = await connect_client(sandbox, cls=cls, timeout=timeout)
    return client, tokens.access_token, account


async def fails(call: Awaitable[object]) -> PlatformError:
    """The `PlatformError` that awaiting `call` raises (the test fails if it raises none)."""
    with pytest.raises(PlatformError) as caught:
        await call
    return caught.value
