"""Everything under the service prefixes goes to its upstream; merged OpenAPI and docs."""

from __future__ import annotations

import time
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request, Response
from fastapi.responses import HTMLResponse

from chorus_gateway.openapi_merge import docs_html, merge_openapi
from chorus_gateway.plans import route_group
from chorus_gateway.proxy import resolve
from chorus_gateway.state import Gateway, gateway
from chorus_runtime.errors import NotFound

router = APIRouter()
GatewayDep = Annotated[Gateway, Depends(gateway)]
METHODS = ["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"]


_cache: dict[str, tuple[float, dict[str, Any]]] = {}
CACHE_SECONDS = 30.0


@router.get("/api/v1/openapi.json", include_in_schema=False)
async def merged_openapi(request: Request, gw: GatewayDep) -> dict[str, Any]:
    # Cached briefly: merging fetches every upstream's spec.
    hit = _cache.get("spec")
    if hit is not None and hit[0] > time.monotonic():
        return hit[1]
    spec = await merge_openapi(
        request.app.openapi(), gw.proxy.upstreams, gw.proxy.client, timeout=3.0
    )
    _cache["spec"] = (time.monotonic() + CACHE_SECONDS, spec)
    return spec


@router.get("/docs", include_in_schema=False)
async def docs() -> HTMLResponse:
    return HTMLResponse(docs_html("/api/v1/openapi.json"))


async def _forward(request: Request, gw: Gateway) -> Response:
    service = resolve(request.url.path)
    if service is None:
        raise NotFound("no such route")
    caller = request.scope.get("state", {}).get("caller")
    token = caller.token if caller is not None else None
    group = route_group(request.method, request.url.path).value
    return await gw.proxy.forward(request, service, token=token, group=group)


@router.api_route("/api/v1/{rest:path}", methods=METHODS, include_in_schema=False)
async def proxy_api(request: Request, gw: GatewayDep) -> Response:
    return await _forward(request, gw)


@router.api_route("/webhooks/{rest:path}", methods=METHODS, include_in_schema=False)
async def proxy_webhooks(request: Request, gw: GatewayDep) -> Response:
    # Not authenticated here: the connector verifies each platform's signature.
    return await _forward(request, gw)
