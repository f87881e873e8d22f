"""Service skeleton every Chorus service is built from (design.md §2, §6, §7).

A service's `main.py` creates a `ServiceRuntime`, registers its routers, consumers and
timers for the roles that need them, and hands the CLI to `run_cli`. The same process can
run `--role api|worker|scheduler|all`; every role serves `/healthz`, `/readyz`, `/metrics`.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import sys
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from enum import StrEnum
from pathlib import Path
from typing import Any

import redis.asyncio as aioredis
import uvicorn
from fastapi import APIRouter, FastAPI
from faststream.kafka import KafkaBroker
from faststream.kafka.opentelemetry import KafkaTelemetryMiddleware
from opentelemetry.instrumentation.fastapi import FastAPIInstrumentor

from chorus_runtime.auth.jwks import TokenVerifier, http_jwks_source
from chorus_runtime.consumer import ConsumerRuntime
from chorus_runtime.db.database import Database
from chorus_runtime.errors import install_error_handlers
from chorus_runtime.health import HealthChecks, health_router
from chorus_runtime.http import RequestContextMiddleware
from chorus_runtime.metrics import metrics_endpoint
from chorus_runtime.outbox import OutboxRelay, RelayConfig
from chorus_runtime.settings import ServiceSettings
from chorus_runtime.telemetry import setup_logging, setup_tracing

log = logging.getLogger("chorus.service")


class Role(StrEnum):
    API = "api"
    WORKER = "worker"
    SCHEDULER = "scheduler"
    ALL = "all"

    def includes(self, other: Role) -> bool:
        return self is Role.ALL or self is other


Task = Callable[[], Awaitable[None]]


class ServiceRuntime:
    """Owns the shared resources of one service process and their lifecycle."""

    def __init__(
        self,
        settings: ServiceSettings,
        *,
        title: str,
        version: str = "0.1.0",
        migrations_dir: Path | None = None,
        uses_redis: bool = False,
        uses_database: bool = True,
        uses_broker: bool = True,
    ) -> None:
        self.settings = settings
        self.name = settings.service_name
        self.uses_broker = uses_broker
        self.title = title
        self.version = version
        self.migrations_dir = migrations_dir
        self.tracer_provider = setup_tracing(
            self.name,
            otlp_endpoint=settings.otlp_endpoint,
            sample_ratio=settings.trace_sample_ratio,
        )
        self.db = (
            Database(settings.database_url, pool_size=settings.database_pool_size)
            if uses_database
            else None
        )
        self.broker = KafkaBroker(
            settings.kafka_bootstrap_servers,
            client_id=f"chorus-{self.name}",
            middlewares=[KafkaTelemetryMiddleware(tracer_provider=self.tracer_provider)],
            logger=logging.getLogger(f"chorus.{self.name}.kafka"),
        )
        self.consumers = ConsumerRuntime(
            self.name, self.broker, db=self.db, topic_prefix=settings.topic_prefix
        )
        # A blocking pool waits for a free connection under bursts instead of failing at once.
        self.redis: aioredis.Redis | None = (
            aioredis.Redis(
                connection_pool=aioredis.BlockingConnectionPool.from_url(
                    settings.redis_url, max_connections=64, timeout=2, socket_timeout=2
                )
            )
            if uses_redis
            else None
        )
        self.verifier = TokenVerifier(
            http_jwks_source(settings.jwks_url),
            issuer=settings.jwt_issuer,
            audience=settings.jwt_audience,
        )
        self.relay: OutboxRelay | None = (
            OutboxRelay(
                self.db,
                RelayConfig(
                    service=self.name,
                    bootstrap_servers=settings.kafka_bootstrap_servers,
                    topic_prefix=settings.topic_prefix,
                    batch_size=settings.outbox_batch_size,
                    poll_interval=settings.outbox_poll_interval_seconds,
                ),
            )
            if self.db is not None
            else None
        )
        self.health = HealthChecks(timeout_seconds=settings.readiness_timeout_seconds)
        self._tasks: dict[Role, list[tuple[str, Task]]] = {r: [] for r in Role}
        self._routers: list[APIRouter] = []
        self._startup: list[Task] = []
        self._shutdown: list[Task] = []
        self._middlewares: list[tuple[type, dict[str, Any]]] = []
        self._configure: list[Callable[[FastAPI], None]] = []
        self.commands: dict[str, Callable[[ServiceRuntime], Awaitable[int]]] = {}

    # -- wiring ----------------------------------------------------------------------------

    def include_router(self, router: APIRouter) -> None:
        self._routers.append(router)

    def add_task(self, role: Role, name: str, task: Task) -> None:
        """A long-running loop started for `role` (and for `all`)."""
        self._tasks[role].append((name, task))

    def on_startup(self, fn: Task) -> None:
        self._startup.append(fn)

    def on_shutdown(self, fn: Task) -> None:
        self._shutdown.append(fn)

    def add_middleware(self, cls: type, **options: Any) -> None:
        """Service middleware; runs inside the request-id/metrics and tracing layers."""
        self._middlewares.append((cls, options))

    def configure_app(self, fn: Callable[[FastAPI], None]) -> None:
        """Last touches on the app (state, dependency overrides, extra middleware)."""
        self._configure.append(fn)

    def add_command(self, name: str, fn: Callable[[ServiceRuntime], Awaitable[int]]) -> None:
        """An extra one-shot CLI subcommand, e.g. `chorus-gateway rotate-keys`."""
        self.commands[name] = fn

    # -- app -------------------------------------------------------------------------------

    def create_app(self, role: Role = Role.ALL) -> FastAPI:
        self._install_checks(role)

        @asynccontextmanager
        async def lifespan(_: FastAPI) -> AsyncIterator[None]:
            tasks = await self._start(role)
            try:
                yield
            finally:
                await self._stop(tasks)

        app = FastAPI(
            title=self.title,
            version=self.version,
            lifespan=lifespan,
            openapi_url="/openapi.json",
            docs_url="/docs",
            redoc_url=None,
        )
        app.state.runtime = self
        app.state.verifier = self.verifier
        install_error_handlers(app)
        app.include_router(health_router(self.health, self.name))
        app.add_route("/metrics", metrics_endpoint, include_in_schema=False)
        if role.includes(Role.API):
            for router in self._routers:
                app.include_router(router)
        for fn in self._configure:
            fn(app)
        for cls, options in self._middlewares:
            app.add_middleware(cls, **options)  # type: ignore[arg-type]
        app.add_middleware(RequestContextMiddleware, service=self.name)
        FastAPIInstrumentor.instrument_app(
            app,
            tracer_provider=self.tracer_provider,
            excluded_urls="healthz,readyz,metrics",
            # One server span per request; the per-message "http send/receive" child spans
            # add cost on every request and nothing a trace reader needs.
            exclude_spans=["receive", "send"],
        )
        return app

    def _install_checks(self, role: Role) -> None:
        if self.db is not None:
            self.health.add("database", self.db.ping)
        if self.uses_broker:
            self.health.add("broker", self._ping_broker)
        if self.redis is not None:
            redis = self.redis

            async def ping_redis() -> None:
                await redis.ping()

            self.health.add("redis", ping_redis)

    async def _ping_broker(self) -> None:
        if not await self.broker.ping(timeout=self.settings.readiness_timeout_seconds):
            raise ConnectionError("Kafka not reachable")

    async def _start(self, role: Role) -> list[asyncio.Task[None]]:
        for fn in self._startup:
            await fn()
        consuming = role.includes(Role.WORKER) and self.consumers.subscriptions
        if self.uses_broker:
            # Connecting is lazy in aiokafka; readiness reports the broker honestly either way.
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self.broker.connect(), 10)
        if consuming:
            await self.broker.start()
        tasks: list[asyncio.Task[None]] = []
        selected: list[tuple[str, Task]] = []
        for r, items in self._tasks.items():
            if role.includes(r):
                selected.extend(items)
        if role.includes(Role.WORKER) and self.relay is not None:
            selected.append(("outbox-relay", self.relay.run))
        if consuming:
            selected.append(("consumer-lag", self.consumers.lag_reporter))
        for name, fn in selected:
            tasks.append(asyncio.create_task(_supervised(name, fn), name=name))
        log.info(
            "started", extra={"fields": {"role": role.value, "tasks": [n for n, _ in selected]}}
        )
        return tasks

    async def _stop(self, tasks: list[asyncio.Task[None]]) -> None:
        if self.relay is not None:
            self.relay.stop()
        for t in tasks:
            t.cancel()
        for t in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await asyncio.wait_for(t, 10)
        if self.uses_broker:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self.broker.stop(), 10)
        for fn in self._shutdown:
            with contextlib.suppress(Exception):
                await fn()
        if self.redis is not None:
            await self.redis.aclose()
        if self.db is not None:
            await self.db.dispose()


async def _supervised(name: str, fn: Task) -> None:
    """Restart a background loop that crashes instead of leaving the role half-alive."""
    delay = 0.5
    while True:
        try:
            await fn()
            return
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("background task crashed; restarting", extra={"fields": {"task": name}})
            await asyncio.sleep(delay)
            delay = min(delay * 2, 30)


def parse_args(
    argv: Sequence[str] | None, service: str, commands: Sequence[str] = ()
) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog=f"chorus-{service}", description=f"Chorus {service}")
    sub = parser.add_subparsers(dest="command")
    serve = sub.add_parser("serve", help="run the service (default)")
    for p in (parser, serve):
        p.add_argument("--role", choices=[r.value for r in Role], default=None)
        p.add_argument("--host", default=None)
        p.add_argument("--port", type=int, default=None)
    migrate = sub.add_parser("migrate", help="apply database migrations and exit")
    migrate.add_argument(
        "--provision", action="store_true", help="create the database and app role first"
    )
    migrate.add_argument("--revision", default="head")
    for name in commands:
        sub.add_parser(name, help=f"{name} and exit")
    return parser.parse_args(argv)


def run_cli(
    build: Callable[[], ServiceRuntime],
    argv: Sequence[str] | None = None,
) -> int:
    """Entry point shared by every service: `chorus-<svc> [serve] --role …` or `migrate`."""
    runtime = build()
    s = runtime.settings
    args = parse_args(argv, runtime.name, list(runtime.commands))
    setup_logging(runtime.name, s.log_level, json_logs=s.log_json)
    if args.command == "migrate":
        return asyncio.run(migrate(runtime, provision=args.provision, revision=args.revision))
    if args.command in runtime.commands:
        return asyncio.run(runtime.commands[args.command](runtime))
    role = Role(args.role or "all")
    app = runtime.create_app(role)
    config = uvicorn.Config(
        app,
        host=args.host or s.host,
        port=args.port if args.port is not None else s.port,
        log_config=None,
        access_log=False,
        lifespan="on",
        timeout_graceful_shutdown=10,
        # Client addresses are resolved by the gateway from its own trusted-proxy list.
        proxy_headers=False,
    )
    uvicorn.Server(config).run()
    return 0


async def migrate(runtime: ServiceRuntime, *, provision: bool, revision: str = "head") -> int:
    from chorus_runtime.db.migrate import upgrade_async
    from chorus_runtime.db.provision import admin_url_for, database_name, ensure_database, role_name

    s = runtime.settings
    if runtime.migrations_dir is None:
        print(f"{runtime.name}: no migrations", file=sys.stderr)
        return 0
    if provision:
        created = await ensure_database(
            admin_url_for(s.migrations_url),
            database_name(s.database_url),
            app_role=role_name(s.database_url),
        )
        print(
            f"{runtime.name}: database {database_name(s.database_url)} "
            + ("created" if created else "exists"),
            file=sys.stderr,
        )
    await upgrade_async(
        runtime.migrations_dir,
        s.migrations_url,
        app_role=role_name(s.database_url),
        revision=revision,
    )
    print(f"{runtime.name}: migrations at {revision}", file=sys.stderr)
    return 0
