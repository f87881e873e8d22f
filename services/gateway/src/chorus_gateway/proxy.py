"""The gateway's reverse proxy to the domain services (design.md §2, §5, §7).

The caller (the gateway's routing layer) authenticates first and hands `ReverseProxy.forward`
the *verified* bearer token (None for `/webhooks/*`). The proxy then:

* picks the upstream by path prefix (`ROUTES`, `resolve`) — the caller passes the service;
* answers without contacting anything when the upstream is not configured (503), the body is
  declared too large (413) or the upstream's circuit is open (503 + `Retry-After`);
* rebuilds the request headers: hop-by-hop headers and everything a client could use to
  impersonate someone (its own Authorization, X-API-Key, Cookie, `X-Chorus-*`,
  `X-Forwarded-*`, Forwarded) are dropped; the verified token, `X-Request-ID`,
  `traceparent` and `X-Forwarded-For/-Proto/-Host` are set by the gateway;
* streams the request body with a running size check (413 if a chunked body outgrows
  `max_body_bytes`) and the response body back unchanged (`aiter_raw`, so Content-Length and
  Content-Encoding stay valid), never buffering either in full;
* maps transport errors to the common error body: unreachable → 502, timeout → 504.

Metrics (Prometheus, defined here because only the gateway proxies):
`chorus_gateway_upstream_requests_total{service,outcome}` with outcome one of `Outcome`, and
`chorus_gateway_upstream_duration_seconds{service}` — time until the upstream's response
headers (or its failure); streaming time depends on the client and is not the upstream's.
"""

from __future__ import annotations

import logging
import math
import re
import socket
import time
import uuid
from collections.abc import AsyncIterator, Callable, Mapping
from enum import StrEnum
from http.cookiejar import CookieJar, DefaultCookiePolicy
from types import MappingProxyType

import anyio
import httpx
from opentelemetry import trace
from opentelemetry.trace import Span, SpanKind, Status, StatusCode
from prometheus_client import Counter, Histogram
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response, StreamingResponse
from starlette.types import Receive, Scope, Send

from chorus_gateway.breaker import CircuitBreaker
from chorus_runtime.context import current_request_id
from chorus_runtime.errors import error_response
from chorus_runtime.telemetry import current_traceparent

log = logging.getLogger("chorus.gateway.proxy")
_tracer = trace.get_tracer("chorus.gateway.proxy")

# Path prefix → service. Matched on whole path segments (`resolve`).
ROUTES: Mapping[str, str] = MappingProxyType(
    {
        "/api/v1/posts": "publishing",
        "/api/v1/publishing": "publishing",
        "/api/v1/media": "publishing",
        "/api/v1/accounts": "connector",
        "/webhooks": "connector",
        "/api/v1/listening": "listening",
        "/api/v1/inbox": "inbox",
        "/api/v1/analytics": "analytics",
        "/api/v1/ai": "ai",
    }
)
# Longest first, so a more specific prefix added later wins over a shorter one.
_ROUTES_BY_LENGTH = sorted(ROUTES.items(), key=lambda kv: len(kv[0]), reverse=True)


def resolve(path: str) -> str | None:
    """The service owning `path`, or None. `/api/v1/posts` and `/api/v1/posts/…` match,
    `/api/v1/postsX` does not; paths with `.`/`..` segments are never routed (an upstream
    that normalises them could otherwise be reached outside its prefix)."""
    if not path.startswith("/"):
        return None
    if any(seg in (".", "..") for seg in path.split("/")):
        return None
    for prefix, service in _ROUTES_BY_LENGTH:
        if path == prefix or path.startswith(prefix + "/"):
            return service
    return None


class Outcome(StrEnum):
    OK = "ok"  # upstream answered < 500
    UPSTREAM_ERROR = "upstream_error"  # upstream answered 5xx (passed through)
    UNREACHABLE = "unreachable"  # 502
    TIMEOUT = "timeout"  # 504
    CIRCUIT_OPEN = "circuit_open"  # 503, not sent
    UNCONFIGURED = "unconfigured"  # 503, not sent
    POOL_EXHAUSTED = "pool_exhausted"  # 503, gateway's own connection pool full
    PAYLOAD_TOO_LARGE = "payload_too_large"  # 413
    CLIENT_DISCONNECT = "client_disconnect"  # client went away while sending its body
    STREAM_ERROR = "stream_error"  # upstream failed after its headers were relayed


UPSTREAM_REQUESTS = Counter(
    "chorus_gateway_upstream_requests_total",
    "Requests the gateway proxied (or refused to proxy) per upstream service, by outcome",
    ["service", "outcome"],
)
UPSTREAM_DURATION = Histogram(
    "chorus_gateway_upstream_duration_seconds",
    "Time from sending a proxied request until the upstream's response headers or failure",
    ["service"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60),
)

DEFAULT_TIMEOUT = httpx.Timeout(30.0, connect=2.0)

_HOP_BY_HOP = frozenset(
    {
        b"connection",
        b"keep-alive",
        b"proxy-connection",
        b"te",
        b"trailer",
        b"transfer-encoding",
        b"upgrade",
    }
)
# Request headers the client may not pass on: identity is the gateway's verified token
# only, and forwarding/trace/request-id headers are the gateway's to set.
_REQUEST_DROP = frozenset(
    {
        b"host",
        b"content-length",  # re-added below after validation
        b"authorization",
        b"x-api-key",
        b"cookie",
        b"forwarded",
        b"x-real-ip",
        b"x-request-id",
        b"traceparent",
        b"tracestate",
        b"expect",  # the gateway already answered 100-continue to the client
        b"x-workspace-id",  # tenant selectors: the workspace is the verified token's only
        b"x-tenant-id",
    }
)
_REQUEST_DROP_PREFIXES = (b"x-chorus-", b"x-forwarded-", b"proxy-")
# Response headers uvicorn sets itself (duplicates otherwise) or the gateway's middleware
# echoes (X-Request-ID).
_RESPONSE_DROP = frozenset({b"date", b"server", b"x-request-id"})


def _connection_tokens(headers: list[tuple[bytes, bytes]]) -> set[bytes]:
    """Header names listed in Connection are hop-by-hop for this hop (RFC 9110 §7.6.1)."""
    tokens: set[bytes] = set()
    for name, value in headers:
        if name.lower() == b"connection":
            tokens.update(t.strip().lower() for t in value.split(b",") if t.strip())
    return tokens


def _is_hop_by_hop(name: bytes, named: set[bytes]) -> bool:
    return name in _HOP_BY_HOP or name in named or name.startswith(b"proxy-")


def upstream_request_headers(
    request: Request, *, token: str | None
) -> tuple[list[tuple[bytes, bytes]], bytes | None, bytes | None]:
    """Headers to send upstream, plus the client's traceparent/tracestate (used only when the
    gateway has no active span of its own)."""
    raw = list(request.headers.raw)
    named = _connection_tokens(raw)
    out: list[tuple[bytes, bytes]] = []
    client_tp: bytes | None = None
    client_ts: bytes | None = None
    for name, value in raw:
        lname = name.lower()
        if lname == b"traceparent":
            client_tp = value
        elif lname == b"tracestate":
            client_ts = value
        if (
            _is_hop_by_hop(lname, named)
            or lname in _REQUEST_DROP
            or lname.startswith(_REQUEST_DROP_PREFIXES)
        ):
            continue
        out.append((lname, value))
    if token:
        out.append((b"authorization", b"Bearer " + token.encode("latin-1")))
    request_id = current_request_id() or uuid.uuid4().hex
    out.append((b"x-request-id", request_id.encode("latin-1")))
    # The client's X-Forwarded-* were dropped: behind a trusted load balancer uvicorn's
    # --proxy-headers has already put the real client address and scheme into the scope.
    if request.client is not None and request.client.host:
        out.append((b"x-forwarded-for", request.client.host.encode("latin-1")))
    out.append((b"x-forwarded-proto", request.url.scheme.encode("latin-1")))
    host = request.headers.get("host")
    if host:
        out.append((b"x-forwarded-host", host.encode("latin-1")))
    return out, client_tp, client_ts


def upstream_response_headers(headers: list[tuple[bytes, bytes]]) -> list[tuple[bytes, bytes]]:
    """Upstream response headers minus hop-by-hop ones. Content-Length is kept: the body is
    relayed byte for byte (raw, still encoded), so it stays true."""
    named = _connection_tokens(headers)
    return [
        (name.lower(), value)
        for name, value in headers
        if not _is_hop_by_hop(name.lower(), named) and name.lower() not in _RESPONSE_DROP
    ]


def create_upstream_client(
    *, max_connections: int = 500, max_keepalive_connections: int = 100
) -> httpx.AsyncClient:
    """The HTTP client the proxy should use: no redirects followed, no proxy env vars, and a
    cookie jar that stores nothing (a shared client would otherwise keep one user's upstream
    Set-Cookie around)."""
    return httpx.AsyncClient(
        timeout=DEFAULT_TIMEOUT,
        follow_redirects=False,
        trust_env=False,
        cookies=CookieJar(policy=DefaultCookiePolicy(allowed_domains=[])),
        limits=httpx.Limits(
            max_connections=max_connections, max_keepalive_connections=max_keepalive_connections
        ),
        # Without TCP_NODELAY a request written in pieces (headers, then body) waits on
        # Nagle + delayed ACK: milliseconds per proxied request.
        transport=httpx.AsyncHTTPTransport(
            socket_options=[(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)],
            limits=httpx.Limits(
                max_connections=max_connections,
                max_keepalive_connections=max_keepalive_connections,
            ),
        ),
    )


# Upstream bodies up to this size (declared by Content-Length) are read whole, larger or
# unsized ones are streamed.
BUFFER_LIMIT = 256 * 1024


def _small(upstream: httpx.Response) -> bool:
    declared = upstream.headers.get("content-length")
    return declared is not None and declared.isdigit() and int(declared) <= BUFFER_LIMIT


UPLOAD_PATHS = re.compile(r"^/api/v1/media/?$")


def is_upload(method: str, path: str) -> bool:
    return method == "POST" and UPLOAD_PATHS.match(path) is not None


class BodyTooLarge(Exception):
    """Raised from the streamed request body once it passes the limit."""


class _UpstreamStream:
    """Relays one upstream response body and releases its connection exactly once."""

    def __init__(
        self,
        response: httpx.Response,
        span: Span,
        breaker: CircuitBreaker,
        service: str,
    ) -> None:
        self.response = response
        self.span = span
        self.breaker = breaker
        self.service = service
        self._closed = False

    async def body(self) -> AsyncIterator[bytes]:
        try:
            async for chunk in self.response.aiter_raw():
                yield chunk
        except httpx.TransportError as exc:
            # Headers are out already: the only honest signal left is aborting the
            # connection, so re-raise after accounting.
            self.breaker.record_failure()
            UPSTREAM_REQUESTS.labels(self.service, Outcome.STREAM_ERROR).inc()
            self.span.set_status(Status(StatusCode.ERROR, type(exc).__name__))
            log.warning(
                "upstream failed mid-stream",
                extra={"fields": {"service": self.service, "error": type(exc).__name__}},
            )
            raise
        finally:
            await self.close()

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        # Shielded: this runs on cancellation (client gone) and must still free the
        # upstream connection.
        with anyio.CancelScope(shield=True):
            try:
                await self.response.aclose()
            finally:
                self.span.end()


class ProxiedResponse(StreamingResponse):
    """StreamingResponse that always releases the upstream response when it is done —
    complete, failed or cancelled, even if the body iterator never started."""

    def __init__(self, stream: _UpstreamStream, headers: list[tuple[bytes, bytes]]) -> None:
        super().__init__(stream.body(), status_code=stream.response.status_code)
        # Raw list, not a dict: repeated headers (Set-Cookie, Link, Vary) must survive.
        self.raw_headers = headers
        self._upstream = stream

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            # Finalise the body generator now rather than at garbage collection.
            with anyio.CancelScope(shield=True):
                aclose = getattr(self.body_iterator, "aclose", None)
                if aclose is not None:
                    await aclose()
            await self._upstream.close()


class ReverseProxy:
    """Forwards requests to upstream services; one instance per gateway process.

    `upstreams` maps service name → base URL ("" = not deployed). `timeouts` maps route group
    → `httpx.Timeout` (falls back to the "default" entry, then `DEFAULT_TIMEOUT`). A client
    passed in stays the caller's to close; build it with `create_upstream_client()`.
    """

    def __init__(
        self,
        upstreams: Mapping[str, str],
        *,
        client: httpx.AsyncClient | None = None,
        max_body_bytes: int,
        upload_max_body_bytes: int | None = None,
        timeouts: Mapping[str, httpx.Timeout] | None = None,
        breaker_factory: Callable[[], CircuitBreaker] = CircuitBreaker,
    ) -> None:
        self.upstreams = {name: (url or "").rstrip("/") for name, url in upstreams.items()}
        self._owns_client = client is None
        self.client = client if client is not None else create_upstream_client()
        self.max_body_bytes = max_body_bytes
        self.upload_max_body_bytes = upload_max_body_bytes or max_body_bytes
        self.timeouts = dict(timeouts or {})
        self._breaker_factory = breaker_factory
        self._breakers: dict[str, CircuitBreaker] = {}

    def breaker(self, service: str) -> CircuitBreaker:
        if service not in self._breakers:
            self._breakers[service] = self._breaker_factory()
        return self._breakers[service]

    def timeout_for(self, group: str) -> httpx.Timeout:
        return self.timeouts.get(group) or self.timeouts.get("default") or DEFAULT_TIMEOUT

    async def aclose(self) -> None:
        if self._owns_client:
            await self.client.aclose()

    def body_limit(self, method: str, path: str) -> int:
        """Media uploads may be far larger than any API body."""
        return self.upload_max_body_bytes if is_upload(method, path) else self.max_body_bytes

    async def _limited_body(self, request: Request) -> AsyncIterator[bytes]:
        received = 0
        limit = self.body_limit(request.method, request.url.path)
        async for chunk in request.stream():
            received += len(chunk)
            if received > limit:
                raise BodyTooLarge
            if chunk:
                yield chunk

    def _too_large(self, service: str, limit: int) -> Response:
        UPSTREAM_REQUESTS.labels(service, Outcome.PAYLOAD_TOO_LARGE).inc()
        return error_response(
            413, "PAYLOAD_TOO_LARGE", f"request body exceeds {limit} bytes", {"maxBytes": limit}
        )

    def _refusal(self, request: Request, service: str) -> Response | None:
        """Answers that need no upstream call: not deployed, bad or too large Content-Length."""
        if not self.upstreams.get(service):
            UPSTREAM_REQUESTS.labels(service, Outcome.UNCONFIGURED).inc()
            return error_response(
                503, "SERVICE_UNAVAILABLE", f"service '{service}' is not available"
            )
        declared = request.headers.get("content-length")
        if declared is not None:
            if not (declared.isascii() and declared.isdigit()):
                return error_response(400, "BAD_REQUEST", "invalid Content-Length")
            limit = self.body_limit(request.method, request.url.path)
            if int(declared) > limit:
                return self._too_large(service, limit)
        return None

    def _upstream_request(
        self, request: Request, service: str, span: Span, *, token: str | None, group: str
    ) -> httpx.Request:
        headers, client_tp, client_ts = upstream_request_headers(request, token=token)
        content: AsyncIterator[bytes] | bytes | None = None
        declared = request.headers.get("content-length")
        if declared is not None:
            # Kept so the upstream sees a sized body (httpx then does not chunk it).
            headers.append((b"content-length", declared.encode("latin-1")))
            content = self._limited_body(request) if int(declared) > 0 else b""
        elif "transfer-encoding" in request.headers:
            content = self._limited_body(request)  # httpx sends it chunked

        with trace.use_span(span, end_on_exit=False):
            traceparent, tracestate = current_traceparent()
        if traceparent:
            headers.append((b"traceparent", traceparent.encode("latin-1")))
            if tracestate:
                headers.append((b"tracestate", tracestate.encode("latin-1")))
        elif client_tp:  # no tracing in this process: keep the caller's trace connected
            headers.append((b"traceparent", client_tp))
            if client_ts:
                headers.append((b"tracestate", client_ts))

        # raw_path keeps the client's percent-encoding (an id containing %2F stays one segment).
        raw_path = request.scope.get("raw_path") or request.url.path.encode()
        target = raw_path.split(b"?", 1)[0].decode("latin-1")
        query = request.scope.get("query_string") or b""
        url = self.upstreams[service] + target + ("?" + query.decode("latin-1") if query else "")
        return httpx.Request(
            request.method,
            url,
            headers=headers,
            content=content,
            extensions={"timeout": self.timeout_for(group).as_dict()},
        )

    async def forward(
        self, request: Request, service: str, *, token: str | None, group: str
    ) -> Response:
        """Proxy `request` to `service`. `token` is the already verified bearer token (None:
        no Authorization upstream); `group` selects the timeouts."""
        refused = self._refusal(request, service)
        if refused is not None:
            return refused
        breaker = self.breaker(service)
        if not breaker.allow():
            UPSTREAM_REQUESTS.labels(service, Outcome.CIRCUIT_OPEN).inc()
            retry = max(1, math.ceil(breaker.retry_after()))
            return error_response(
                503,
                "SERVICE_UNAVAILABLE",
                f"service '{service}' is temporarily unavailable",
                headers={"Retry-After": str(retry)},
            )

        span = _tracer.start_span(
            f"proxy {service}",
            kind=SpanKind.CLIENT,
            attributes={"http.request.method": request.method, "chorus.upstream": service},
        )
        try:
            upstream_request = self._upstream_request(
                request, service, span, token=token, group=group
            )
        except BaseException:
            breaker.release()
            self._end_span(span, "invalid request")
            raise
        started = time.perf_counter()
        try:
            upstream = await self.client.send(upstream_request, stream=True, follow_redirects=False)
        except BodyTooLarge:
            breaker.release()
            self._end_span(span, "payload too large")
            return self._too_large(service, self.body_limit(request.method, request.url.path))
        except ClientDisconnect:
            breaker.release()
            UPSTREAM_REQUESTS.labels(service, Outcome.CLIENT_DISCONNECT).inc()
            self._end_span(span, "client disconnected")
            return error_response(400, "BAD_REQUEST", "client closed the request early")
        except httpx.PoolTimeout:
            # Our own pool is saturated; says nothing about the upstream's health.
            breaker.release()
            UPSTREAM_REQUESTS.labels(service, Outcome.POOL_EXHAUSTED).inc()
            self._end_span(span, "pool timeout")
            return error_response(
                503,
                "SERVICE_UNAVAILABLE",
                "gateway is overloaded",
                headers={"Retry-After": "1"},
            )
        except httpx.TimeoutException as exc:
            return self._failed(service, breaker, span, started, exc, timeout=True)
        except httpx.TransportError as exc:
            return self._failed(service, breaker, span, started, exc, timeout=False)
        except BaseException as exc:  # cancelled, or a bug: free a half-open trial slot
            breaker.release()
            self._end_span(span, type(exc).__name__)
            raise

        body: bytes | None = None
        if _small(upstream):
            # Most API answers are a few KB: reading them whole costs less than relaying a
            # stream (no body task, one send) and a failure is still a clean 502, not a
            # truncated response after the headers went out.
            read = await self._read_whole(upstream, service, breaker, span, started)
            if isinstance(read, Response):
                return read
            body = read

        return self._respond(upstream, body, service, breaker, span, started)

    def _respond(
        self,
        upstream: httpx.Response,
        body: bytes | None,
        service: str,
        breaker: CircuitBreaker,
        span: Span,
        started: float,
    ) -> Response:
        UPSTREAM_DURATION.labels(service).observe(time.perf_counter() - started)
        span.set_attribute("http.response.status_code", upstream.status_code)
        if upstream.status_code >= 500:
            breaker.record_failure()
            UPSTREAM_REQUESTS.labels(service, Outcome.UPSTREAM_ERROR).inc()
            span.set_status(Status(StatusCode.ERROR, f"upstream {upstream.status_code}"))
        else:
            breaker.record_success()
            UPSTREAM_REQUESTS.labels(service, Outcome.OK).inc()
        headers = upstream_response_headers(upstream.headers.raw)
        if body is not None:
            span.end()
            response = Response(body, status_code=upstream.status_code)
            # Raw list, not a dict: repeated headers (Set-Cookie, Link, Vary) must survive;
            # the upstream's Content-Length is among them and matches the raw body.
            response.raw_headers = headers
            return response
        stream = _UpstreamStream(upstream, span, breaker, service)
        return ProxiedResponse(stream, headers)

    async def _read_whole(
        self,
        upstream: httpx.Response,
        service: str,
        breaker: CircuitBreaker,
        span: Span,
        started: float,
    ) -> bytes | Response:
        try:
            return b"".join([chunk async for chunk in upstream.aiter_raw()])
        except httpx.TimeoutException as exc:
            return self._failed(service, breaker, span, started, exc, timeout=True)
        except httpx.TransportError as exc:
            return self._failed(service, breaker, span, started, exc, timeout=False)
        except BaseException as exc:
            breaker.release()
            self._end_span(span, type(exc).__name__)
            raise
        finally:
            with anyio.CancelScope(shield=True):
                await upstream.aclose()

    def _failed(
        self,
        service: str,
        breaker: CircuitBreaker,
        span: Span,
        started: float,
        exc: Exception,
        *,
        timeout: bool,
    ) -> Response:
        UPSTREAM_DURATION.labels(service).observe(time.perf_counter() - started)
        breaker.record_failure()
        outcome = Outcome.TIMEOUT if timeout else Outcome.UNREACHABLE
        UPSTREAM_REQUESTS.labels(service, outcome).inc()
        self._end_span(span, type(exc).__name__)
        log.warning(
            "upstream request failed",
            extra={"fields": {"service": service, "error": type(exc).__name__}},
        )
        if timeout:
            return error_response(
                504, "GATEWAY_TIMEOUT", f"service '{service}' did not answer in time"
            )
        return error_response(502, "BAD_GATEWAY", f"service '{service}' is unreachable")

    @staticmethod
    def _end_span(span: Span, reason: str) -> None:
        span.set_status(Status(StatusCode.ERROR, reason))
        span.end()
