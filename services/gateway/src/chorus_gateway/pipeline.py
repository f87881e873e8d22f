"""The gateway's request pipeline (pure ASGI, in front of every route):

authenticate (except public routes) → rate-limit by plan and route group (per workspace, or
per IP on public routes) → run the route with the caller in `request.state` → add
`RateLimit-*` and security headers → audit mutating requests through the outbox.
"""

from __future__ import annotations

import logging
import re
import time
from datetime import UTC, datetime
from uuid import UUID

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from chorus_contracts.events.common import Plan
from chorus_contracts.events.gateway import RequestAudited
from chorus_gateway.authn import Caller, authenticate, current_plan, local_verifier
from chorus_gateway.plans import RouteGroup, route_group
from chorus_gateway.proxy import resolve
from chorus_gateway.ratelimit import headers as ratelimit_headers
from chorus_gateway.ratelimit import raise_if_refused, subject_key
from chorus_gateway.state import Gateway
from chorus_runtime.context import current_request_id
from chorus_runtime.errors import ChorusError, PayloadTooLarge, Unauthorized, error_response
from chorus_runtime.outbox import emit

log = logging.getLogger("chorus.gateway.pipeline")

PUBLIC = re.compile(
    r"^/api/v1/auth/(register|login|refresh|logout)$"
    r"|^/api/v1/team/invitations/[^/]+/accept$"
)
UNMETERED = re.compile(
    r"^/(healthz|readyz|metrics|docs|openapi\.json|\.well-known/jwks\.json)$"
    r"|^/api/v1/openapi\.json$|^/webhooks/"
)
PLAN_CHANGE = re.compile(r"^/api/v1/workspace/plan$")
MUTATING = {"POST", "PUT", "PATCH", "DELETE"}
_UUID = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")
SECURITY_HEADERS = [
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"no-referrer"),
    (b"strict-transport-security", b"max-age=31536000; includeSubDomains"),
    (b"cache-control", b"no-store"),
]


class GatewayPipeline:
    def __init__(self, app: ASGIApp, gw: Gateway) -> None:
        self.app = app
        self.gw = gw
        self.verifier = local_verifier(gw)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path: str = scope["path"]
        method: str = scope["method"]
        started = time.perf_counter()
        headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]}
        ip = self._client_ip(scope, headers)
        body_limit = self.gw.proxy.body_limit(method, path)
        try:
            _check_length(headers, body_limit)
            if not UNMETERED.match(path):
                _check_single_credentials(scope["headers"])
            caller, extra = await self._admit(method, path, headers, ip)
        except ChorusError as exc:
            response = error_response(
                exc.status_code, exc.code, exc.message, exc.details, exc.headers
            )
            await response(scope, receive, _with_headers(send, []))
            self._audit(
                method, path, None, status=exc.status_code, ip=ip, headers=headers, started=started
            )
            return
        state = scope.setdefault("state", {})
        state["client_ip"] = ip
        state["caller"] = caller
        if caller is not None:
            state["principal"] = caller.principal
        status = {"code": 500}

        async def send_wrapper(message: Message) -> None:
            if message["type"] == "http.response.start":
                status["code"] = message["status"]
            await _with_headers(send, extra)(message)

        limited = _limit_body(receive, body_limit)
        service = resolve(path)
        if service is not None:
            # Proxied paths never match a gateway route: forward straight from here instead
            # of walking the router and dependency machinery on the hot path.
            await self._forward(scope, limited, send_wrapper, service, caller, method, path)
        else:
            await self.app(scope, limited, send_wrapper)
        self._audit(
            method, path, caller, status=status["code"], ip=ip, headers=headers, started=started
        )

    async def _forward(
        self,
        scope: Scope,
        receive: Receive,
        send: Send,
        service: str,
        caller: Caller | None,
        method: str,
        path: str,
    ) -> None:
        request = Request(scope, receive)
        try:
            response = await self.gw.proxy.forward(
                request,
                service,
                token=caller.token if caller is not None else None,
                group=route_group(method, path).value,
            )
        except ChorusError as exc:
            response = error_response(
                exc.status_code, exc.code, exc.message, exc.details, exc.headers
            )
        except HTTPException as exc:
            response = error_response(exc.status_code, _http_code(exc.status_code), exc.detail)
        except Exception:
            log.exception("proxy failure")
            response = error_response(500, "INTERNAL_ERROR", "internal error")
        await response(scope, receive, send)

    async def _admit(
        self, method: str, path: str, headers: dict[str, str], ip: str
    ) -> tuple[Caller | None, list[tuple[bytes, bytes]]]:
        if UNMETERED.match(path):
            return None, []
        group = route_group(method, path)
        caller: Caller | None = None
        if PUBLIC.match(path):
            key = subject_key(RouteGroup.AUTH, workspace_id=None, ip=ip)
            limit = self.gw.plans[Plan.FREE].limits[RouteGroup.AUTH]
            group = RouteGroup.AUTH
        else:
            caller = await authenticate(
                self.gw, self.verifier, headers.get("authorization"), headers.get("x-api-key")
            )
            p = caller.principal
            plan_name = await current_plan(self.gw, p.workspace_id, p.plan)
            if group is RouteGroup.AUTH:
                # `auth` is the per-IP budget of the pre-auth routes; once the caller is known
                # (/auth/me, /auth/switch) the workspace's plan applies like anywhere else.
                group = RouteGroup.API
            if method == "PUT" and PLAN_CHANGE.match(path):
                # Upgrading is the way out of a 429: it must not sit behind the exhausted
                # budget (it still needs billing:manage).
                return caller, []
            key = subject_key(group, workspace_id=p.workspace_id, ip=ip)
            limit = self.gw.plans[plan_name].limits[group]
        decision = await self.gw.limiter.hit(key, limit, group=group.value)
        extra = [(k.lower().encode(), v.encode()) for k, v in ratelimit_headers(decision).items()]
        raise_if_refused(decision)
        return caller, extra

    def _client_ip(self, scope: Scope, headers: dict[str, str]) -> str:
        client = scope.get("client")
        peer = client[0] if client else "unknown"
        trusted = self.gw.settings.trusted_proxies
        if peer in trusted:
            hops = [h.strip() for h in headers.get("x-forwarded-for", "").split(",") if h.strip()]
            for hop in reversed(hops):
                if hop not in trusted:
                    return hop
        return peer

    def _audit(
        self,
        method: str,
        path: str,
        caller: Caller | None,
        *,
        status: int,
        ip: str,
        headers: dict[str, str],
        started: float,
    ) -> None:
        if method not in MUTATING:
            return
        principal = caller.principal if caller else None
        ids = _UUID.findall(path)
        parts = [p for p in path.split("/") if p]
        resource_type = parts[2] if len(parts) > 2 and parts[:2] == ["api", "v1"] else None
        event = RequestAudited(
            workspace_id=UUID(principal.workspace_id) if principal else None,
            actor_type=principal.token_type if principal else "anonymous",
            actor_id=principal.subject if principal else None,
            action=f"{method} {_UUID.sub('{id}', path)}",
            resource_type=resource_type,
            resource_id=ids[0] if ids else None,
            status_code=status,
            ip=ip,
            user_agent=headers.get("user-agent", "")[:512] or None,
            request_id=current_request_id() or "",
            duration_ms=round((time.perf_counter() - started) * 1000, 3),
            occurred_at=datetime.now(UTC),
        )
        self.gw.spawn(self._write_audit(event))

    async def _write_audit(self, event: RequestAudited) -> None:
        # After the response: auditing must not add latency; the outbox makes it durable.
        try:
            key = str(event.workspace_id) if event.workspace_id else "anonymous"
            async with self.gw.db.unit_of_work(system=True) as uow:
                await emit(
                    uow.session,
                    event,
                    topic="gateway.audit",
                    key=key,
                    source="/chorus/gateway",
                    tenant_id=str(event.workspace_id) if event.workspace_id else None,
                )
                await uow.commit()
        except Exception:
            log.exception("audit event lost")


def _check_single_credentials(raw: list[tuple[bytes, bytes]]) -> None:
    # Repeated credentials are ambiguous: the headers dict keeps the last one, while a proxy
    # or WAF in front (and Starlette's `headers.get`) sees the first. Refuse rather than pick.
    names = [k.lower() for k, _ in raw]
    if names.count(b"authorization") > 1 or names.count(b"x-api-key") > 1:
        raise Unauthorized("send exactly one Authorization or X-API-Key header")


def _check_length(headers: dict[str, str], limit: int) -> None:
    raw = headers.get("content-length")
    if raw is not None and raw.isdigit() and int(raw) > limit:
        raise PayloadTooLarge(f"request body exceeds {limit} bytes", details={"maxBytes": limit})


def _limit_body(receive: Receive, limit: int) -> Receive:
    seen = {"n": 0}

    async def wrapped() -> Message:
        message = await receive()
        if message["type"] == "http.request":
            seen["n"] += len(message.get("body", b""))
            if seen["n"] > limit:
                # An HTTPException, not a ChorusError: FastAPI turns any other exception
                # raised while it reads a body into "400 error parsing the body".
                raise HTTPException(413, f"request body exceeds {limit} bytes")
        return message

    return wrapped


def _with_headers(send: Send, extra: list[tuple[bytes, bytes]]) -> Send:
    async def wrapped(message: Message) -> None:
        if message["type"] == "http.response.start":
            headers = list(message.get("headers", []))
            present = {k.lower() for k, _ in headers}
            # no-store is a default, not an override: a route that chose its own caching (the
            # JWKS) must not answer with two contradicting Cache-Control headers.
            security = [
                h for h in SECURITY_HEADERS if h[0] != b"cache-control" or h[0] not in present
            ]
            message["headers"] = [*headers, *extra, *security]
        await send(message)

    return wrapped


def _http_code(status: int) -> str:
    return {413: "PAYLOAD_TOO_LARGE", 400: "BAD_REQUEST"}.get(status, "ERROR")
