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
from chorus_connector.publisher import Publisher
from chorus_connector.settings import ConnectorSettings
from chorus_connector.vault import TokenVault
from chorus_runtime.crypto import Keyring
from chorus_runtime.service import ServiceRuntime, run_cli

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
    publisher = Publisher(
        runtime.db,
        accounts,
        clients,
        RateGovernor(runtime.redis),
        readback_slack=timedelta(seconds=settings.readback_slack_seconds),
    )
    runtime.include_router(router)
    handlers.register(runtime, publisher)
    runtime.on_shutdown(clients.aclose)

    def configure(app: FastAPI) -> None:
        app.state.accounts = accounts
        app.state.publisher = publisher

    runtime.configure_app(configure)
    return runtime


def main(argv: Sequence[str] | None = None) -> int:
    return run_cli(build, argv)


if __name__ == "__main__":
    raise SystemExit(main())
