"""Reverse proxy and circuit breaker: real uvicorn upstreams and a real uvicorn gateway on
free ports in this process, so headers, chunked bodies and streaming go through real HTTP."""

from __future__ import annotations

import asyncio
import contextlib
import gzip
import hashlib
import socket
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
import uvicorn
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse
from opentelemetry.instrumentation.fastapi import FastAPIInstrumentor
from prometheus_client import REGISTRY
from starlette.requests import ClientDisconnect

from chorus_gateway.breaker import BreakerState, CircuitBreaker
from chorus_gateway.proxy import ROUTES, ReverseProxy, resolve
from chorus_runtime.errors import NotFound, install_error_handlers
from chorus_runtime.http import RequestContextMiddleware
from chorus_runtime.telemetry import setup_tracing
from chorus_testing.waiting import wait_for

pytestmark = pytest.mark.integration

TOKEN = "verified-token-123"
METHODS = ["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"]


# -- servers -------------------------------------------------------------------------------


class _Server(uvicorn.Server):
    def capture_signals(self) -> contextlib.AbstractContextManager[None]:
        # Leave pytest's own SIGINT handling alone.
        return contextlib.nullcontext()


@asynccontextmanager
async def serve(app: FastAPI) -> AsyncIterator[str]:
    """Run `app` with uvicorn on a free port as a task of the running loop."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    config = uvicorn.Config(
        app,
        lifespan="off",
        http="h11",
        log_level="warning",
        access_log=False,
        timeout_graceful_shutdown=1,
        # The gateway here faces clients directly: no X-Forwarded-* is trusted (uvicorn
        # would otherwise trust them from 127.0.0.1, which is where the tests connect from).
        proxy_headers=False,
    )
    server = _Server(config)
    task = asyncio.create_task(server.serve(sockets=[sock]))
    await wait_for(lambda: server.started or task.done(), timeout=10, interval=0.01)
    if task.done():
        task.result()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await asyncio.wait_for(task, 10)
        sock.close()


def free_port() -> int:
    """A port nothing listens on (bound, then released)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# -- the upstream --------------------------------------------------------------------------


@dataclass
class UpstreamState:
    hits: Counter[str] = field(default_factory=Counter)
    fail: bool = False
    first_chunk_relayed: asyncio.Event = field(default_factory=asyncio.Event)
    first_chunk_received: asyncio.Event = field(default_factory=asyncio.Event)
    stream_finished: asyncio.Event = field(default_factory=asyncio.Event)


def stream_chunk(i: int, size: int = 64 * 1024) -> bytes:
    return bytes([i % 251]) * size


def build_upstream(state: UpstreamState) -> FastAPI:
    app = FastAPI()

    @app.get("/api/v1/posts/stream")
    async def stream(chunks: int = 80) -> StreamingResponse:
        async def body() -> AsyncIterator[bytes]:
            try:
                yield stream_chunk(0)
                # The rest is produced only after the client saw the first chunk through the
                # gateway: a buffering proxy would deadlock here.
                await asyncio.wait_for(state.first_chunk_relayed.wait(), 10)
                for i in range(1, chunks):
                    yield stream_chunk(i)
            finally:
                state.stream_finished.set()

        return StreamingResponse(body(), media_type="application/octet-stream")

    @app.get("/api/v1/posts/broken")
    async def broken() -> StreamingResponse:
        async def body() -> AsyncIterator[bytes]:
            yield b"partial"
            raise RuntimeError("upstream dies mid-body")

        return StreamingResponse(body(), media_type="text/plain")

    @app.get("/api/v1/posts/short")
    async def short() -> Response:
        # Declares more than it sends: the upstream dies before the body is complete.
        return Response(b"partial", headers={"content-length": "100"})

    @app.api_route("/api/v1/media/sized", methods=["GET", "HEAD"])
    async def sized() -> Response:
        return Response(b"x" * 1_000_000, media_type="application/octet-stream")

    @app.get("/api/v1/media/gz")
    async def gz() -> Response:
        data = b"chorus " * 10_000
        return Response(
            gzip.compress(data),
            media_type="text/plain",
            headers={"Content-Encoding": "gzip"},
        )

    @app.post("/api/v1/media/upload")
    async def upload(request: Request) -> dict[str, Any]:
        digest = hashlib.sha256()
        received = 0
        async for chunk in request.stream():
            if chunk and not state.first_chunk_received.is_set():
                state.first_chunk_received.set()
            received += len(chunk)
            digest.update(chunk)
        return {
            "received": received,
            "sha256": digest.hexdigest(),
            "transferEncoding": request.headers.get("transfer-encoding"),
            "contentLength": request.headers.get("content-length"),
        }

    @app.get("/api/v1/analytics/slow")
    async def slow(seconds: float = 0.8) -> dict[str, bool]:
        await asyncio.sleep(seconds)
        return {"slow": True}

    @app.get("/api/v1/ai/flaky")
    async def flaky() -> JSONResponse:
        state.hits["flaky"] += 1
        if state.fail:
            return JSONResponse({"detail": "down"}, status_code=500)
        return JSONResponse({"ok": True})

    @app.get("/api/v1/ai/missing")
    async def missing() -> JSONResponse:
        state.hits["missing"] += 1
        return JSONResponse({"detail": "nope"}, status_code=404)

    @app.get("/api/v1/inbox/hop")
    async def hop() -> Response:
        response = Response(b"{}", media_type="application/json")
        response.raw_headers += [
            (b"connection", b"x-upstream-private"),
            (b"x-upstream-private", b"secret"),
            (b"keep-alive", b"timeout=5"),
            (b"proxy-authenticate", b"Basic"),
            (b"x-visible", b"yes"),
            (b"set-cookie", b"a=1; Path=/"),
            (b"set-cookie", b"b=2; Path=/"),
        ]
        return response

    @app.api_route("/{path:path}", methods=METHODS)
    async def echo(request: Request, path: str) -> JSONResponse:
        state.hits[request.url.path] += 1
        body = await request.body()
        status = int(request.query_params.get("status", "200"))
        return JSONResponse(
            {
                "method": request.method,
                "path": request.url.path,
                "rawPath": request.scope["raw_path"].decode(),
                "query": request.scope["query_string"].decode(),
                "headers": [[k.decode(), v.decode()] for k, v in request.headers.raw],
                "body": body.decode(),
            },
            status_code=status,
        )

    return app


@pytest.fixture(scope="module")
async def upstream() -> AsyncIterator[tuple[str, UpstreamState]]:
    state = UpstreamState()
    async with serve(build_upstream(state)) as url:
        yield url, state


# -- the gateway (a minimal stand-in for the real routing layer) ----------------------------


def build_gateway(proxy: ReverseProxy) -> FastAPI:
    app = FastAPI()
    install_error_handlers(app)

    @app.api_route("/{path:path}", methods=METHODS)
    async def route(request: Request, path: str) -> Response:
        service = resolve(request.scope["path"])
        if service is None:
            raise NotFound("no such route")
        # The real gateway verifies the caller here; webhooks carry no user token.
        token = None if request.scope["path"].startswith("/webhooks") else TOKEN
        group = request.headers.get("x-test-group", "default")
        return await proxy.forward(request, service, token=token, group=group)

    app.add_middleware(RequestContextMiddleware, service="gateway")
    FastAPIInstrumentor.instrument_app(app, tracer_provider=setup_tracing("gateway-tests"))
    return app


@dataclass
class Gateway:
    url: str
    client: httpx.AsyncClient
    proxy: ReverseProxy


@asynccontextmanager
async def gateway(upstreams: dict[str, str], **kw: Any) -> AsyncIterator[Gateway]:
    kw.setdefault("max_body_bytes", 8 * 1024 * 1024)
    proxy = ReverseProxy(upstreams, **kw)
    try:
        async with (
            serve(build_gateway(proxy)) as url,
            httpx.AsyncClient(base_url=url, timeout=15) as client,
        ):
            yield Gateway(url, client, proxy)
    finally:
        await proxy.aclose()


def all_upstreams(url: str) -> dict[str, str]:
    return {name: url for name in set(ROUTES.values())}


def header_values(echo: dict[str, Any], name: str) -> list[str]:
    return [v for k, v in echo["headers"] if k == name]


def assert_error(response: httpx.Response, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert error["code"] == code
    assert set(error) == {"code", "message", "details", "timestamp", "requestId"}
    assert error["requestId"]
    return error


def metric(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


# -- routing -------------------------------------------------------------------------------


@pytest.mark.unit
@pytest.mark.parametrize(
    ("path", "service"),
    [
        ("/api/v1/posts", "publishing"),
        ("/api/v1/posts/", "publishing"),
        ("/api/v1/posts/123/targets", "publishing"),
        ("/api/v1/publishing/slots", "publishing"),
        ("/api/v1/media/abc", "publishing"),
        ("/api/v1/accounts/oauth/callback", "connector"),
        ("/webhooks/x", "connector"),
        ("/api/v1/listening/queries", "listening"),
        ("/api/v1/inbox", "inbox"),
        ("/api/v1/analytics/reports", "analytics"),
        ("/api/v1/ai/generate", "ai"),
        ("/api/v1/postsX", None),
        ("/api/v1/posts-archive", None),
        ("/api/v1/auth/login", None),
        ("/api/v1", None),
        ("/webhooksX", None),
        ("/api/v1/posts/../auth/login", None),
        ("/api/v1/posts/./x", None),
        ("api/v1/posts", None),
    ],
)
def test_resolve(path: str, service: str | None) -> None:
    assert resolve(path) == service


async def test_unrouted_path_is_not_proxied(upstream: tuple[str, UpstreamState]) -> None:
    url, state = upstream
    async with gateway(all_upstreams(url)) as gw:
        before = state.hits["/api/v1/postsX"]
        r = await gw.client.get("/api/v1/postsX")
        assert_error(r, 404, "NOT_FOUND")
        assert state.hits["/api/v1/postsX"] == before


# -- round trips and headers ---------------------------------------------------------------


@pytest.mark.parametrize("method", ["GET", "POST", "PUT", "PATCH", "DELETE"])
async def test_methods_round_trip(upstream: tuple[str, UpstreamState], method: str) -> None:
    url, _ = upstream
    async with gateway(all_upstreams(url)) as gw:
        payload = {"text": "hello wörld", "n": 3} if method in ("POST", "PUT", "PATCH") else None
        r = await gw.client.request(
            method,
            "/api/v1/posts/p%2F1/targets?a=1&b=two%20words&a=3&status=201",
            json=payload,
        )
        assert r.status_code == 201
        echo = r.json()
        assert echo["method"] == method
        assert echo["rawPath"] == "/api/v1/posts/p%2F1/targets"  # encoding preserved
        assert echo["query"] == "a=1&b=two%20words&a=3&status=201"  # order and encoding kept
        if payload is not None:
            assert httpx.Response(200, content=echo["body"]).json() == payload
            assert header_values(echo, "content-type") == ["application/json"]
        else:
            assert echo["body"] == ""
            assert header_values(echo, "transfer-encoding") == []


async def test_head_and_options_pass_through(upstream: tuple[str, UpstreamState]) -> None:
    url, _ = upstream
    async with gateway(all_upstreams(url)) as gw:
        r = await gw.client.head("/api/v1/media/sized")
        assert r.status_code == 200
        assert r.headers["content-length"] == "1000000"
        assert r.content == b""
        r = await gw.client.options("/api/v1/inbox/x")
        assert r.json()["method"] == "OPTIONS"


async def test_forwarded_and_stripped_request_headers(
    upstream: tuple[str, UpstreamState],
) -> None:
    url, _ = upstream
    client_trace = "0af7651916cd43dd8448eb211c80319c"
    async with gateway(all_upstreams(url)) as gw:
        request = gw.client.build_request(
            "GET",
            "/api/v1/inbox/conversations",
            headers=[
                ("Authorization", "Bearer client-forged"),
                ("X-API-Key", "ck_forged"),
                ("Cookie", "session=stolen"),
                ("X-Chorus-Workspace", "ws-other-tenant"),
                ("X-Chorus-User", "admin"),
                ("X-Forwarded-For", "6.6.6.6"),
                ("X-Forwarded-Host", "evil.example"),
                ("X-Forwarded-Proto", "https"),
                ("Forwarded", "for=6.6.6.6"),
                ("X-Real-IP", "6.6.6.6"),
                ("Connection", "keep-alive, X-Hop-Secret"),
                ("X-Hop-Secret", "only-for-the-gateway"),
                ("Keep-Alive", "timeout=5"),
                ("Proxy-Authorization", "Basic Zm9vOmJhcg=="),
                ("TE", "trailers"),
                ("X-Request-ID", "req-abc.123"),
                ("traceparent", f"00-{client_trace}-b7ad6b7169203331-01"),
                ("X-Custom", "kept"),
                ("Accept", "application/json"),
                ("User-Agent", "chorus-test/1.0"),
            ],
        )
        del request.headers["accept-encoding"]  # so the check below means something
        r = await gw.client.send(request)
        assert r.status_code == 200, r.text
        assert r.headers["x-request-id"] == "req-abc.123"
        echo = r.json()
        names = {k for k, _ in echo["headers"]}

        assert header_values(echo, "authorization") == [f"Bearer {TOKEN}"]
        assert header_values(echo, "x-request-id") == ["req-abc.123"]
        assert header_values(echo, "x-forwarded-for") == ["127.0.0.1"]
        assert header_values(echo, "x-forwarded-proto") == ["http"]
        assert header_values(echo, "x-forwarded-host") == [gw.url.removeprefix("http://")]
        for gone in (
            "x-api-key",
            "cookie",
            "x-chorus-workspace",
            "x-chorus-user",
            "forwarded",
            "x-real-ip",
            "x-hop-secret",
            "keep-alive",
            "proxy-authorization",
            "te",
        ):
            assert gone not in names, gone
        assert header_values(echo, "x-custom") == ["kept"]
        assert header_values(echo, "user-agent") == ["chorus-test/1.0"]
        assert header_values(echo, "accept") == ["application/json"]
        # httpx's own defaults must not be injected on the way upstream.
        assert "accept-encoding" not in names

        # The trace continues through the gateway: same trace, the gateway's span as parent.
        (traceparent,) = header_values(echo, "traceparent")
        _, trace_id, parent_id, _ = traceparent.split("-")
        assert trace_id == client_trace
        assert parent_id != "b7ad6b7169203331"


async def test_webhooks_carry_no_authorization(upstream: tuple[str, UpstreamState]) -> None:
    url, _ = upstream
    async with gateway(all_upstreams(url)) as gw:
        r = await gw.client.post(
            "/webhooks/x",
            content=b'{"event": 1}',
            headers={"Authorization": "Bearer forged", "X-Hub-Signature-256": "sha256=ab"},
        )
        echo = r.json()
        assert header_values(echo, "authorization") == []
        assert header_values(echo, "x-hub-signature-256") == ["sha256=ab"]
        assert header_values(echo, "x-request-id")  # made up when the client sent none
        assert echo["body"] == '{"event": 1}'


async def test_response_hop_by_hop_headers_dropped(upstream: tuple[str, UpstreamState]) -> None:
    url, _ = upstream
    async with gateway(all_upstreams(url)) as gw:
        r = await gw.client.get("/api/v1/inbox/hop")
        assert r.status_code == 200
        assert "x-upstream-private" not in r.headers
        assert "keep-alive" not in r.headers
        assert "proxy-authenticate" not in r.headers
        assert r.headers["x-visible"] == "yes"
        assert r.headers.get_list("set-cookie") == ["a=1; Path=/", "b=2; Path=/"]
        # Exactly one of the headers the gateway's own server sets.
        assert len(r.headers.get_list("date")) == 1
        assert len(r.headers.get_list("server")) == 1
        assert len(r.headers.get_list("x-request-id")) == 1


# -- streaming -----------------------------------------------------------------------------


async def test_large_response_streams_through(upstream: tuple[str, UpstreamState]) -> None:
    url, state = upstream
    state.first_chunk_relayed.clear()
    chunks = 80  # 5 MiB
    expected = hashlib.sha256(b"".join(stream_chunk(i) for i in range(chunks))).hexdigest()
    async with (
        gateway(all_upstreams(url)) as gw,
        gw.client.stream("GET", f"/api/v1/posts/stream?chunks={chunks}") as r,
    ):
        assert r.status_code == 200
        assert "content-length" not in r.headers
        assert r.headers["transfer-encoding"] == "chunked"
        digest = hashlib.sha256()
        total = 0
        async for chunk in r.aiter_raw():
            state.first_chunk_relayed.set()  # lets the upstream produce the rest
            digest.update(chunk)
            total += len(chunk)
    assert total == chunks * 64 * 1024
    assert digest.hexdigest() == expected


async def test_client_going_away_releases_the_upstream(
    upstream: tuple[str, UpstreamState],
) -> None:
    url, state = upstream
    state.first_chunk_relayed.clear()
    state.stream_finished.clear()
    async with gateway(all_upstreams(url)) as gw:
        async with gw.client.stream("GET", "/api/v1/posts/stream?chunks=100000") as r:
            async for _ in r.aiter_raw():
                state.first_chunk_relayed.set()
                break  # leave after the first chunk of a ~6 GB body
        # The gateway closed its upstream response, so the upstream stopped producing.
        await asyncio.wait_for(state.stream_finished.wait(), 10)


async def test_upstream_failing_mid_body_is_not_a_clean_response(
    upstream: tuple[str, UpstreamState],
) -> None:
    url, _ = upstream
    before = metric(
        "chorus_gateway_upstream_requests_total", service="publishing", outcome="stream_error"
    )
    async with gateway(all_upstreams(url)) as gw:
        # Headers are gone already, so the client must see a broken body, never a short one
        # that looks complete.
        with pytest.raises(httpx.RemoteProtocolError):
            await gw.client.get("/api/v1/posts/broken")
        assert (
            metric(
                "chorus_gateway_upstream_requests_total",
                service="publishing",
                outcome="stream_error",
            )
            == before + 1
        )


async def test_small_body_cut_short_is_a_clean_502(upstream: tuple[str, UpstreamState]) -> None:
    """Small sized bodies are read whole before the headers go out, so an upstream that
    dies mid-body becomes a proper error, never a truncated 200."""
    url, _ = upstream
    before = metric(
        "chorus_gateway_upstream_requests_total", service="publishing", outcome="unreachable"
    )
    async with gateway(all_upstreams(url)) as gw:
        r = await gw.client.get("/api/v1/posts/short")
        assert r.status_code == 502
        assert r.json()["error"]["code"] == "BAD_GATEWAY"
        after = metric(
            "chorus_gateway_upstream_requests_total", service="publishing", outcome="unreachable"
        )
        assert after == before + 1
        # The connection pool is healthy afterwards.
        assert (await gw.client.get("/api/v1/posts/echo")).status_code == 200


@pytest.mark.unit
async def test_upstream_closed_when_sending_to_client_fails() -> None:
    """The other half of the above, where the client is found gone while the gateway writes
    (not while it reads upstream): the response still releases the upstream."""
    upstream_responses: list[httpx.Response] = []

    async def endless() -> AsyncIterator[bytes]:
        while True:
            yield b"x" * 1024

    def handler(request: httpx.Request) -> httpx.Response:
        response = httpx.Response(200, content=endless())
        upstream_responses.append(response)
        return response

    async with httpx.AsyncClient(transport=httpx.MockTransport(handler)) as client:
        proxy = ReverseProxy({"publishing": "http://publishing"}, client=client, max_body_bytes=10)
        scope = {
            "type": "http",
            "asgi": {"version": "3.0", "spec_version": "2.4"},
            "http_version": "1.1",
            "method": "GET",
            "scheme": "http",
            "path": "/api/v1/posts/x",
            "raw_path": b"/api/v1/posts/x",
            "query_string": b"",
            "headers": [(b"host", b"gw.example")],
            "client": ("10.0.0.1", 4321),
            "server": ("gw.example", 80),
        }

        async def receive() -> dict[str, Any]:
            return {"type": "http.request", "body": b"", "more_body": False}

        async def send(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.body":
                raise OSError("client gone")

        response = await proxy.forward(Request(scope, receive), "publishing", token=None, group="x")
        (upstream_response,) = upstream_responses
        assert upstream_response.request.headers["x-forwarded-for"] == "10.0.0.1"
        assert upstream_response.request.headers["x-forwarded-host"] == "gw.example"
        assert not upstream_response.is_closed
        with pytest.raises(ClientDisconnect):
            await response(scope, receive, send)
        assert upstream_response.is_closed
        await proxy.aclose()
        assert not client.is_closed  # a client passed in stays the caller's


async def test_content_length_and_encoding_kept(upstream: tuple[str, UpstreamState]) -> None:
    url, _ = upstream
    async with gateway(all_upstreams(url)) as gw:
        r = await gw.client.get("/api/v1/media/sized")
        assert r.headers["content-length"] == "1000000"
        assert "transfer-encoding" not in r.headers
        assert r.content == b"x" * 1_000_000

        r = await gw.client.get("/api/v1/media/gz", headers={"Accept-Encoding": "gzip"})
        assert r.headers["content-encoding"] == "gzip"
        assert int(r.headers["content-length"]) == len(gzip.compress(b"chorus " * 10_000))
        assert r.text == "chorus " * 10_000


async def test_request_body_streams_through(upstream: tuple[str, UpstreamState]) -> None:
    url, state = upstream
    state.first_chunk_received.clear()
    parts = [bytes([i]) * 64 * 1024 for i in range(48)]  # 3 MiB, under the 4 MiB limit

    async def body() -> AsyncIterator[bytes]:
        yield parts[0]
        # Only once the upstream has the first chunk: a buffering gateway would hang here.
        await asyncio.wait_for(state.first_chunk_received.wait(), 10)
        for part in parts[1:]:
            yield part

    async with gateway(all_upstreams(url), max_body_bytes=4 * 1024 * 1024) as gw:
        r = await gw.client.post("/api/v1/media/upload", content=body())
        assert r.status_code == 200, r.text
        result = r.json()
        assert result["received"] == 48 * 64 * 1024
        assert result["sha256"] == hashlib.sha256(b"".join(parts)).hexdigest()
        assert result["transferEncoding"] == "chunked"

        # A sized body keeps its Content-Length upstream.
        r = await gw.client.post("/api/v1/media/upload", content=b"z" * 5000)
        assert r.json()["contentLength"] == "5000"
        assert r.json()["transferEncoding"] is None


async def test_body_over_limit_by_content_length(upstream: tuple[str, UpstreamState]) -> None:
    url, state = upstream
    async with gateway(all_upstreams(url), max_body_bytes=1024) as gw:
        before = state.hits["/api/v1/posts/big"]
        too_large = metric(
            "chorus_gateway_upstream_requests_total",
            service="publishing",
            outcome="payload_too_large",
        )
        r = await gw.client.post("/api/v1/posts/big", content=b"a" * 2048)
        error = assert_error(r, 413, "PAYLOAD_TOO_LARGE")
        assert error["details"] == {"maxBytes": 1024}
        assert state.hits["/api/v1/posts/big"] == before  # never sent upstream
        assert (
            metric(
                "chorus_gateway_upstream_requests_total",
                service="publishing",
                outcome="payload_too_large",
            )
            == too_large + 1
        )
        # Exactly at the limit is fine.
        r = await gw.client.post("/api/v1/posts/big", content=b"a" * 1024)
        assert r.status_code == 200
        assert len(r.json()["body"]) == 1024


async def test_media_uploads_have_their_own_larger_limit(
    upstream: tuple[str, UpstreamState],
) -> None:
    url, _ = upstream
    async with gateway(all_upstreams(url), max_body_bytes=1024, upload_max_body_bytes=4096) as gw:
        ok = await gw.client.post("/api/v1/media", content=b"m" * 3000)
        assert ok.status_code == 200, ok.text
        assert len(ok.json()["body"]) == 3000
        too_large = await gw.client.post("/api/v1/media", content=b"m" * 5000)
        assert assert_error(too_large, 413, "PAYLOAD_TOO_LARGE")["details"] == {"maxBytes": 4096}
        # Only the upload itself: any other media call keeps the API limit.
        other = await gw.client.put("/api/v1/media/x", content=b"m" * 3000)
        assert assert_error(other, 413, "PAYLOAD_TOO_LARGE")["details"] == {"maxBytes": 1024}


async def test_body_over_limit_while_streaming(upstream: tuple[str, UpstreamState]) -> None:
    url, _ = upstream

    async def body() -> AsyncIterator[bytes]:
        for _ in range(10):
            yield b"b" * 512

    async with gateway(all_upstreams(url), max_body_bytes=1024) as gw:
        r = await gw.client.post("/api/v1/media/upload", content=body())
        assert_error(r, 413, "PAYLOAD_TOO_LARGE")
        # The breaker did not count the client's oversized body against the upstream.
        assert gw.proxy.breaker("publishing").consecutive_failures == 0
        # A chunked body under the limit passes.

        async def small() -> AsyncIterator[bytes]:
            yield b"c" * 512
            yield b"c" * 512

        r = await gw.client.post("/api/v1/media/upload", content=small())
        assert r.json()["received"] == 1024


# -- failures ------------------------------------------------------------------------------


async def test_unconfigured_upstream_is_503(upstream: tuple[str, UpstreamState]) -> None:
    url, _ = upstream
    async with gateway({"publishing": url, "listening": ""}) as gw:
        r = await gw.client.get("/api/v1/listening/queries", headers={"X-Request-ID": "r-503"})
        error = assert_error(r, 503, "SERVICE_UNAVAILABLE")
        assert error["requestId"] == "r-503"
        assert "listening" in error["message"]
        assert_error(await gw.client.get("/api/v1/ai/x"), 503, "SERVICE_UNAVAILABLE")  # absent


async def test_nothing_listening_is_502() -> None:
    async with gateway({"inbox": f"http://127.0.0.1:{free_port()}"}) as gw:
        before = metric(
            "chorus_gateway_upstream_requests_total", service="inbox", outcome="unreachable"
        )
        timed = metric("chorus_gateway_upstream_duration_seconds_count", service="inbox")
        error = assert_error(await gw.client.get("/api/v1/inbox/x"), 502, "BAD_GATEWAY")
        assert "127.0.0.1" not in error["message"]  # no internal addresses to clients
        assert (
            metric("chorus_gateway_upstream_requests_total", service="inbox", outcome="unreachable")
            == before + 1
        )
        assert metric("chorus_gateway_upstream_duration_seconds_count", service="inbox") == (
            timed + 1
        )


async def test_slow_upstream_is_504_per_group(upstream: tuple[str, UpstreamState]) -> None:
    url, _ = upstream
    timeouts = {
        "reports": httpx.Timeout(5.0, connect=1.0, read=0.2),
        "default": httpx.Timeout(5.0, connect=1.0),
    }
    async with gateway(all_upstreams(url), timeouts=timeouts) as gw:
        r = await gw.client.get("/api/v1/analytics/slow", headers={"X-Test-Group": "reports"})
        assert_error(r, 504, "GATEWAY_TIMEOUT")
        # The same call in a group with a longer read timeout succeeds.
        r = await gw.client.get("/api/v1/analytics/slow?seconds=0.4")
        assert r.json() == {"slow": True}


async def test_breaker_opens_then_recovers(upstream: tuple[str, UpstreamState]) -> None:
    url, state = upstream
    state.fail = True
    factory = lambda: CircuitBreaker(failure_threshold=3, reset_timeout=0.3)  # noqa: E731
    try:
        async with gateway(all_upstreams(url), breaker_factory=factory) as gw:
            breaker = gw.proxy.breaker("ai")
            for _ in range(3):  # upstream 5xx pass through, and count
                assert (await gw.client.get("/api/v1/ai/flaky")).status_code == 500
            assert breaker.state is BreakerState.OPEN

            hits = state.hits["flaky"]
            r = await gw.client.get("/api/v1/ai/flaky")
            assert_error(r, 503, "SERVICE_UNAVAILABLE")
            assert r.headers["retry-after"] == "1"
            assert state.hits["flaky"] == hits  # refused without calling the upstream

            # Half-open: one trial; a failing one re-opens the circuit.
            await wait_for(lambda: breaker.state is BreakerState.HALF_OPEN, timeout=5)
            assert (await gw.client.get("/api/v1/ai/flaky")).status_code == 500
            assert breaker.state is BreakerState.OPEN

            # Recovered upstream: the next trial succeeds and closes the circuit.
            state.fail = False
            await wait_for(lambda: breaker.state is BreakerState.HALF_OPEN, timeout=5)
            r = await gw.client.get("/api/v1/ai/flaky")
            assert r.json() == {"ok": True}
            assert breaker.state is BreakerState.CLOSED
            # Other upstreams were never affected.
            assert gw.proxy.breaker("inbox").state is BreakerState.CLOSED
    finally:
        state.fail = False


async def test_breaker_counts_unreachable_not_4xx(upstream: tuple[str, UpstreamState]) -> None:
    url, _ = upstream
    factory = lambda: CircuitBreaker(failure_threshold=2, reset_timeout=30)  # noqa: E731
    upstreams = {"inbox": f"http://127.0.0.1:{free_port()}", "ai": url}
    async with gateway(upstreams, breaker_factory=factory) as gw:
        for _ in range(2):
            assert_error(await gw.client.get("/api/v1/inbox/x"), 502, "BAD_GATEWAY")
        r = await gw.client.get("/api/v1/inbox/x")
        assert_error(r, 503, "SERVICE_UNAVAILABLE")
        assert 28 <= int(r.headers["retry-after"]) <= 30

        for _ in range(4):  # the client's mistakes say nothing about the upstream
            assert (await gw.client.get("/api/v1/ai/missing")).status_code == 404
        assert gw.proxy.breaker("ai").state is BreakerState.CLOSED


# -- the breaker on its own ------------------------------------------------------------------


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def clock() -> Iterator[FakeClock]:
    yield FakeClock()


@pytest.mark.unit
def test_breaker_opens_after_consecutive_failures(clock: FakeClock) -> None:
    b = CircuitBreaker(failure_threshold=3, reset_timeout=10, clock=clock)
    assert b.state is BreakerState.CLOSED and b.allow()
    b.record_failure()
    b.record_failure()
    b.record_success()  # resets the streak
    b.record_failure()
    b.record_failure()
    assert b.state is BreakerState.CLOSED
    b.record_failure()
    assert b.state is BreakerState.OPEN
    assert not b.allow()
    assert b.retry_after() == 10
    clock.advance(4)
    assert b.retry_after() == 6
    b.record_failure()  # a straggler does not extend the open period
    assert b.retry_after() == 6


@pytest.mark.unit
def test_breaker_half_open_trial(clock: FakeClock) -> None:
    b = CircuitBreaker(failure_threshold=1, reset_timeout=10, clock=clock)
    b.record_failure()
    clock.advance(9.9)
    assert not b.allow()
    clock.advance(0.1)
    assert b.state is BreakerState.HALF_OPEN
    assert b.retry_after() == 0
    assert b.allow()
    assert not b.allow()  # one trial at a time
    b.record_success()
    assert b.state is BreakerState.CLOSED
    assert b.allow() and b.allow()


@pytest.mark.unit
def test_breaker_failed_trial_reopens(clock: FakeClock) -> None:
    b = CircuitBreaker(failure_threshold=1, reset_timeout=5, clock=clock)
    b.record_failure()
    clock.advance(5)
    assert b.allow()
    b.record_failure()
    assert b.state is BreakerState.OPEN
    assert b.retry_after() == 5


@pytest.mark.unit
def test_breaker_needs_all_trials_to_succeed(clock: FakeClock) -> None:
    b = CircuitBreaker(failure_threshold=1, reset_timeout=5, half_open_max_calls=2, clock=clock)
    b.record_failure()
    clock.advance(5)
    assert b.allow() and b.allow()
    assert not b.allow()
    b.record_success()
    assert b.state is BreakerState.HALF_OPEN
    b.record_success()
    assert b.state is BreakerState.CLOSED


@pytest.mark.unit
def test_breaker_release_and_lost_trials(clock: FakeClock) -> None:
    b = CircuitBreaker(failure_threshold=1, reset_timeout=5, clock=clock)
    b.record_failure()
    clock.advance(5)
    assert b.allow()
    b.release()  # neutral outcome frees the slot
    assert b.allow()
    assert not b.allow()
    # The trial never reports back: after another reset_timeout a new one is admitted.
    clock.advance(5)
    assert b.allow()
    b.record_success()
    assert b.state is BreakerState.CLOSED


@pytest.mark.unit
def test_breaker_rejects_nonsense() -> None:
    with pytest.raises(ValueError):
        CircuitBreaker(failure_threshold=0)
    with pytest.raises(ValueError):
        CircuitBreaker(half_open_max_calls=0)
