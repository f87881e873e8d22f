"""Gateway wiring: the one place its dependencies are put together."""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path

import httpx
from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware

from chorus_gateway import api_auth, api_keys, api_proxy, api_team
from chorus_gateway.keys import KeyStore
from chorus_gateway.pipeline import GatewayPipeline
from chorus_gateway.plans import RouteGroup, load_plans
from chorus_gateway.proxy import ReverseProxy
from chorus_gateway.ratelimit import LoginGuard, RateLimiter
from chorus_gateway.sessions import Sessions
from chorus_gateway.settings import GatewaySettings
from chorus_gateway.state import Gateway, principal_from_pipeline
from chorus_runtime.auth.deps import current_principal
from chorus_runtime.crypto import Keyring
from chorus_runtime.service import Role, ServiceRuntime, run_cli

MIGRATIONS = Path(__file__).parent / "migrations"
UPSTREAMS = ("publishing", "connector", "listening", "inbox", "analytics", "ai")
# Read timeouts per route group: AI generation and analytics exports take longer.
GROUP_TIMEOUTS = {
    RouteGroup.API.value: httpx.Timeout(15.0, connect=2.0),
    RouteGroup.PUBLISH.value: httpx.Timeout(15.0, connect=2.0),
    RouteGroup.AUTH.value: httpx.Timeout(10.0, connect=2.0),
    RouteGroup.ANALYTICS.value: httpx.Timeout(60.0, connect=2.0),
    RouteGroup.AI.value: httpx.Timeout(120.0, connect=2.0),
}


def build(settings: GatewaySettings | None = None) -> ServiceRuntime:
    settings = settings or GatewaySettings()
    runtime = ServiceRuntime(
        settings, title="Chorus API", migrations_dir=MIGRATIONS, uses_redis=True
    )
    assert runtime.db is not None and runtime.redis is not None
    keys = KeyStore(
        runtime.db,
        Keyring.parse(settings.key_encryption_key),
        algorithm=settings.signing_algorithm,
        issuer=settings.jwt_issuer,
        audience=settings.jwt_audience,
        token_ttl_seconds=settings.access_token_ttl_seconds,
    )
    upstreams = {s: getattr(settings, f"{s}_url") for s in UPSTREAMS}
    gw = Gateway(
        settings=settings,
        db=runtime.db,
        keys=keys,
        sessions=Sessions(keys, settings),
        limiter=RateLimiter(runtime.redis, fail_open=settings.rate_limit_fail_open),
        login_guard=LoginGuard(
            runtime.redis,
            max_failures=settings.login_max_failures,
            lockout_seconds=settings.login_lockout_seconds,
            fail_open=settings.rate_limit_fail_open,
        ),
        plans=load_plans(settings.plans_override),
        proxy=ReverseProxy(
            upstreams,  # empty URL = not deployed: 503, and listed as unavailable in the docs
            max_body_bytes=settings.max_body_bytes,
            upload_max_body_bytes=settings.upload_max_body_bytes,
            timeouts=GROUP_TIMEOUTS,
        ),
    )
    runtime.on_startup(keys.load)
    runtime.on_shutdown(gw.drain)
    runtime.on_shutdown(gw.proxy.aclose)
    runtime.add_task(Role.API, "signing-key-reload", keys.reload_forever)
    for module in (api_auth, api_team, api_keys, api_proxy):
        runtime.include_router(module.router)
    runtime.add_middleware(GatewayPipeline, gw=gw)
    if settings.cors_allow_origins:
        # Outside the pipeline, so preflight requests are answered without credentials.
        runtime.add_middleware(
            CORSMiddleware,
            allow_origins=settings.cors_allow_origins,
            allow_methods=["GET", "POST", "PUT", "PATCH", "DELETE"],
            allow_headers=["Authorization", "Content-Type", "X-API-Key", "X-Request-ID"],
            expose_headers=[
                "RateLimit-Limit",
                "RateLimit-Remaining",
                "RateLimit-Reset",
                "Retry-After",
                "X-Request-ID",
            ],
        )

    def configure(app: FastAPI) -> None:
        app.state.gateway = gw
        app.dependency_overrides[current_principal] = principal_from_pipeline
        # The gateway serves merged docs; drop the runtime's single-service /docs.
        app.router.routes = [
            r
            for r in app.router.routes
            if getattr(r, "path", None) != "/docs" or getattr(r, "endpoint", None) is api_proxy.docs
        ]

    runtime.configure_app(configure)

    async def rotate_keys(rt: ServiceRuntime) -> int:
        kid = await keys.rotate()
        print(
            f"new signing key {kid}; previous keys stay published until their tokens expire",
            file=sys.stderr,
        )
        return 0

    runtime.add_command("rotate-keys", rotate_keys)
    return runtime


def main(argv: Sequence[str] | None = None) -> int:
    return run_cli(build, argv)


if __name__ == "__main__":
    raise SystemExit(main())
