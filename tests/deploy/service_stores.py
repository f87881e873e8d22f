"""Which store each workspace service owns, and the subcommand that migrates it.

Every service owns a Postgres database (`CHORUS_<SERVICE>_DATABASE_URL`) migrated by the
one-shot subcommand `migrate`, except those listed in CLICKHOUSE_SERVICES: their state is
ClickHouse (`CHORUS_<SERVICE>_CLICKHOUSE_URL`), migrated by their own subcommand, and they
have no Postgres database at all. test_compose checks this list against the services' own
settings (`needs_database()`) and commands, so it cannot drift from the code.
"""

from __future__ import annotations

POSTGRES_MIGRATE = ["migrate"]
CLICKHOUSE_SERVICES = {"analytics": ["migrate-clickhouse"]}


def uses_postgres(service: str) -> bool:
    return service not in CLICKHOUSE_SERVICES


def migrate_command(service: str) -> list[str]:
    """Arguments of `chorus-<service>` in its migrations job (compose and the Helm hook)."""
    return list(CLICKHOUSE_SERVICES.get(service, POSTGRES_MIGRATE))
