"""Connector wiring: the one place its dependencies are put together."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta
from pathlib import Path

from fastapi import FastAPI

from chorus_connector import handlers
from chorus_connector.accounts import AccountService
from chorus_connector.api import router
from chorus_connector.clients import Clients
from chorus_connector.governor import RateGovernor
from chorus_connector.inbound import InboundService
from chorus_connector.metrics_collector import MetricsCollector
from chorus_connector.publisher import Publisher
from chorus_connector.settings import ConnectorSettings
from chorus_connector.vault import TokenVault
from chorus_connector.vault_rotation import reseal_tokens
from chorus_connector.webhooks import router as webhooks_router
from chorus_runtime.crypto import Keyring
from chorus_runtime.service import Role, ServiceRuntime, run_cli

MIGRATIONS = Path(__file__).parent / "migrations"


def build(settings: ConnectorSettings | None = None) -> ServiceRuntime:
    settings = settings or ConnectorSettings()
    runtime = ServiceRuntime(
        settings, title="Chorus Connector", migrations_dir=MIGRATIONS, uses_redis=True
    )
    assert runtime.db is not None and runtime.redis is not None
    vault = TokenVault(Keyring.parse(settings.token_encryption_keys))
    clients = Clients(settings)
    accounts = AccountService(runtime.db, settings, clients, vault)
    governor = RateGovernor(runtime.redis)
    publisher = Publisher(
        runtime.db,
        accounts,
        clients,
        governor,
        readback_slack=timedelta(seconds=settings.readback_slack_seconds),
    )
    inbound = InboundService(runtime.db)
    collector = MetricsCollector(runtime.db, accounts, clients, governor, settings)
    runtime.include_router(router)
    runtime.include_router(webhooks_router)
    handlers.register(runtime, publisher)
    if settings.metrics_enabled:
        # Every worker replica collects; the per-account claim keeps it to one per round.
        runtime.add_task(Role.WORKER, "metrics-collector", collector.run)
    runtime.on_shutdown(clients.aclose)

    async def rotate_token_key(rt: ServiceRuntime) -> int:
        assert rt.db is not None
        resealed, current = await reseal_tokens(rt.db, vault)
        print(f"re-sealed {resealed} accounts' tokens; {current} were already current")
        return 0

    runtime.add_command("rotate-token-key", rotate_token_key)

    def configure(app: FastAPI) -> None:
        app.state.accounts = accounts
        app.state.publisher = publisher
        app.state.inbound = inbound
        app.state.metrics_collector = collector
        app.state.connector_settings = settings

    runtime.configure_app(configure)
    return runtime


def main(argv: Sequence[str] | None = None) -> int:
    return run_cli(build, argv)


if __name__ == "__main__":
    raise SystemExit(main())
