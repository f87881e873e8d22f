"""Analytics service wiring: the one place its dependencies are put together.

    chorus-analytics [serve] --role api|worker|all    # the API and/or the Kafka → ClickHouse ingest
    chorus-analytics migrate [--to N | --down-to N]   # ClickHouse migrations (not Postgres)
    chorus-analytics create-reader --workspace-id W [--name SUFFIX]   # server mode only
    chorus-analytics drop-reader --user U | refresh-readers

In the embedded mode the chdb directory may be opened by one process only: run `--role all`
(the API and the ingest worker then share the one client), and run `migrate` while the
service is stopped (the service also migrates at start).
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from collections.abc import Sequence

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from chorus_analytics import readers
from chorus_analytics.api import AnalyticsApi, router
from chorus_analytics.ingest import Backoff, ClickHouseWriter, KafkaIngestor
from chorus_analytics.repository import AnalyticsRepository
from chorus_analytics.settings import AnalyticsSettings
from chorus_analytics.store import MIGRATIONS, AnalyticsStore
from chorus_contracts.registry import load_registry
from chorus_runtime.clickhouse import ClickHouseClient, ClickHouseUnavailable, redact_url
from chorus_runtime.errors import error_response
from chorus_runtime.service import Role, ServiceRuntime, run_cli
from chorus_runtime.telemetry import setup_logging

__all__ = ["MIGRATIONS", "AnalyticsRuntime", "build", "main"]

log = logging.getLogger("chorus.analytics")


class AnalyticsRuntime(ServiceRuntime):
    """The service runtime plus the analytics parts (tests and commands reach them here)."""

    store: AnalyticsStore
    ingestor: KafkaIngestor
    api: AnalyticsApi


def consumed_topics() -> list[str]:
    return [t.name for t in load_registry().consumed_by("analytics")]


def build(
    settings: AnalyticsSettings | None = None, *, clickhouse: ClickHouseClient | None = None
) -> AnalyticsRuntime:
    settings = settings or AnalyticsSettings()
    runtime = AnalyticsRuntime(settings, title="Chorus Analytics", uses_database=False)
    store = AnalyticsStore(settings, clickhouse)
    backoff = Backoff(settings.ingest_retry_initial_seconds, settings.ingest_retry_max_seconds)
    writer = ClickHouseWriter(
        store.client, backoff=backoff, rejected_attempts=settings.ingest_rejected_attempts
    )
    ingestor = KafkaIngestor(
        bootstrap_servers=settings.kafka_bootstrap_servers,
        topics=consumed_topics(),
        writer=writer,
        group_id=settings.ingest_group,
        topic_prefix=settings.topic_prefix,
        max_rows=settings.ingest_batch_max_rows,
        max_seconds=settings.ingest_batch_max_seconds,
        backoff=backoff,
        session_timeout_ms=settings.ingest_session_timeout_ms,
        fetch_max_wait_ms=settings.ingest_fetch_max_wait_ms,
    )
    api = AnalyticsApi(
        AnalyticsRepository(store.client, export_chunk_rows=settings.export_chunk_rows),
        max_range_days=settings.max_range_days,
    )
    runtime.store, runtime.ingestor, runtime.api = store, ingestor, api

    runtime.on_startup(store.start)
    runtime.on_shutdown(store.close)
    runtime.health.add("clickhouse", store.ping)
    runtime.add_task(Role.WORKER, "clickhouse-ingest", ingestor.run)
    runtime.add_task(Role.WORKER, "ingest-lag", ingestor.lag_reporter)
    runtime.include_router(router)
    runtime.configure_app(lambda app: _configure(app, api))
    runtime.add_command("migrate-clickhouse", _migrate_all)
    runtime.add_command("refresh-readers", _refresh_readers)
    return runtime


def _configure(app: FastAPI, api: AnalyticsApi) -> None:
    app.state.analytics = api

    async def unavailable(_: Request, exc: Exception) -> JSONResponse:
        log.warning("ClickHouse unavailable", extra={"fields": {"error": str(exc)[:300]}})
        return error_response(
            503,
            "SERVICE_UNAVAILABLE",
            "analytics store unavailable, try again shortly",
            headers={"Retry-After": "5"},
        )

    app.add_exception_handler(ClickHouseUnavailable, unavailable)


async def _migrate_all(runtime: ServiceRuntime) -> int:
    assert isinstance(runtime, AnalyticsRuntime)
    return await _migrate(runtime, to=None, down_to=None)


async def _migrate(runtime: AnalyticsRuntime, *, to: int | None, down_to: int | None) -> int:
    store = runtime.store
    try:
        await store.ensure_database()
        if down_to is not None:
            done = await store.rollback(down_to)
            verb = "reverted"
        else:
            done = await store.migrate(to)
            verb = "applied"
    finally:
        await store.close()
    where = f"{redact_url(store.settings.clickhouse_url)} database {store.database}"
    print(f"analytics: ClickHouse migrations {verb}: {done or 'none'} ({where})", file=sys.stderr)
    return 0


async def _refresh_readers(runtime: ServiceRuntime) -> int:
    assert isinstance(runtime, AnalyticsRuntime)
    store = runtime.store
    try:
        done = await readers.refresh_readers(store.client, store.database)
    except readers.ReaderError as exc:
        print(f"analytics: {exc}", file=sys.stderr)
        return 2
    finally:
        await store.close()
    print(f"analytics: refreshed {len(done)} reader(s)", file=sys.stderr)
    return 0


async def _readers(runtime: AnalyticsRuntime, args: argparse.Namespace) -> int:
    store = runtime.store
    try:
        if args.command == "create-reader":
            user, password = await readers.create_reader(
                store.client,
                store.database,
                args.workspace_id,
                suffix=args.name,
                password=args.password,
            )
            print(f"user={user}\npassword={password}\ndatabase={store.database}")
        else:
            await readers.drop_reader(store.client, store.database, args.user)
            print(f"analytics: dropped {args.user}", file=sys.stderr)
    except readers.ReaderError as exc:
        print(f"analytics: {exc}", file=sys.stderr)
        return 2
    finally:
        await store.close()
    return 0


ADMIN_COMMANDS = ("migrate", "create-reader", "drop-reader")


def admin_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="chorus-analytics")
    sub = parser.add_subparsers(dest="command", required=True)
    migrate = sub.add_parser("migrate", help="apply (or revert) ClickHouse migrations and exit")
    migrate.add_argument("--provision", action="store_true", help="accepted; creates the database")
    migrate.add_argument("--revision", default="head", help="accepted for symmetry: head")
    group = migrate.add_mutually_exclusive_group()
    group.add_argument("--to", type=int, default=None, help="apply up to this version")
    group.add_argument("--down-to", type=int, default=None, help="revert versions above this")
    create = sub.add_parser("create-reader", help="read-only user for one workspace (server)")
    create.add_argument("--workspace-id", required=True)
    create.add_argument("--name", default=None, help="suffix: ws_<id>_<name>")
    create.add_argument("--password", default=None, help="default: generated")
    drop = sub.add_parser("drop-reader", help="remove a workspace reader (server)")
    drop.add_argument("--user", required=True)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args_list = list(sys.argv[1:] if argv is None else argv)
    if args_list and args_list[0] in ADMIN_COMMANDS:
        args = admin_parser().parse_args(args_list)
        runtime = build()
        s = runtime.settings
        setup_logging(runtime.name, s.log_level, json_logs=s.log_json)
        if args.command == "migrate":
            return asyncio.run(_migrate(runtime, to=args.to, down_to=args.down_to))
        return asyncio.run(_readers(runtime, args))
    return run_cli(build, args_list)


if __name__ == "__main__":
    raise SystemExit(main())
