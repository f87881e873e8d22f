"""Connector service wiring: the one place its dependencies are put together."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from chorus_connector import handlers
from chorus_connector.settings import ConnectorSettings
from chorus_runtime.service import ServiceRuntime, run_cli

MIGRATIONS = Path(__file__).parent / "migrations"


def build(settings: ConnectorSettings | None = None) -> ServiceRuntime:
    settings = settings or ConnectorSettings()
    runtime = ServiceRuntime(settings, title="Chorus Connector", migrations_dir=MIGRATIONS)
    handlers.register(runtime)
    return runtime


def main(argv: Sequence[str] | None = None) -> int:
    return run_cli(build, argv)


if __name__ == "__main__":
    raise SystemExit(main())
